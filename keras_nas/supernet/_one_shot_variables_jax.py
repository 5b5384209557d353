"""The variables of the piecewise one-shot step on JAX, read once.

`_one_shot_jax`'s piecewise step reads and writes the variables of a
path as positions in the state lists that Keras' JAX trainer passes:
`StepVariables` holds the model's lists, the positions of every layer's
variables and of the optimizer's slots, read once per model and
optimizer; `StepVariables.path` gives a path's positions (`Positions`).
"""

from __future__ import annotations

import weakref
from typing import NamedTuple

import keras

from keras_nas.supernet import _one_shot_indexed as indexed
from keras_nas.supernet import _one_shot_pieces_jax as pieces

__all__ = [
    "Positions",
    "StepVariables",
    "sampler_variables",
    "step_variables",
]


def sampler_variables(model) -> list:
    """The variables the sampler reads and writes (a supernet's)."""
    seed = getattr(model, "_path_seed", None)
    variables = [
        None if seed is None else seed.state,
        getattr(model, "_last_indices", None),
        getattr(model, "_fair_indices", None),
    ]
    return [v for v in variables if v is not None]


class Positions(NamedTuple):
    """The variables a step on one path reads, as positions in the
    model's lists (`StepVariables.path`)."""

    on: list  # trainable, of the layers connected to the output
    read: list  # the other trainable ones the forward reads
    states: list  # the non-trainable ones the forward reads and writes
    live: set  # ids of the layers connected to the output
    chunks: list  # `on` per unit (`_one_shot_pieces_jax.units`)


class StepVariables:
    """The model's variable lists as the piecewise step uses them, read
    once per model and optimizer (each `model.trainable_variables` walks
    every layer: ~750 variables at the tiny size, called per variable of
    the path it cost more than the step's compiled pieces)."""

    def __init__(self, model):
        self.optimizer = model.optimizer
        self.trainable = model.trainable_variables
        self.non_trainable = model.non_trainable_variables
        self.optimizer_variables = model.optimizer.variables
        self.position = {id(v): i for i, v in enumerate(self.trainable)}
        self.state_position = {
            id(v): j for j, v in enumerate(self.non_trainable)
        }
        self.layers: dict = {}
        self.sampler = [
            self.state_position[id(v)] for v in sampler_variables(model)
        ]
        self.at = at = {
            id(v): p for p, v in enumerate(self.optimizer_variables)
        }
        slots = indexed.optimizer_slots(self.optimizer, self.trainable)
        # Per trainable variable its slots' positions; the optimizer's
        # other variables (iterations, learning rate, ...) are global.
        self.slots = [[at[id(w)] for w in v_slots] for v_slots in slots]
        owned = {p for positions in self.slots for p in positions}
        self.shared = [
            p for p in range(len(self.optimizer_variables)) if p not in owned
        ]
        self.whole = bool(getattr(self.optimizer, "use_ema", False))
        # The loss and its scale are one jitted function of the output
        # (`_one_shot_chain_jax.loss_grad`): not with weights'
        # regularization losses or a dynamic loss scale (values it would
        # hold as constants).
        self.chainable = not (
            any(getattr(v, "regularizer", None) for v in model.weights)
            or isinstance(self.optimizer, keras.optimizers.LossScaleOptimizer)
        )

    def _positions(self, layer) -> tuple[list, list]:
        known = self.layers.get(id(layer))
        if known is None:
            known = self.layers[id(layer)] = (
                [self.position[id(v)] for v in layer.trainable_variables],
                [
                    self.state_position[id(v)]
                    for v in layer.non_trainable_variables
                ],
            )
        return known

    def path(self, model, path) -> Positions:
        """Positions of the variables a step on `path` reads (each
        layer's variables read once; `_Positions`)."""
        on, seen, live, chunks = [], set(), set(), []
        for layer in model._path_layers(path):
            live.add(id(layer))
            for unit in pieces.units(layer):  # a layer, or its repeats
                chunk = [i for i in self._positions(unit)[0] if i not in seen]
                seen.update(chunk)
                on.extend(chunk)
                if chunk:
                    chunks.append(chunk)
        read, states = [], []
        for layer in model.topology.run_layers(path):
            trainable, non_trainable = self._positions(layer)
            for i in trainable:
                if i not in seen:
                    seen.add(i)
                    read.append(i)
            for j in non_trainable:
                if ~j not in seen:
                    seen.add(~j)
                    states.append(j)
        return Positions(on, read, states, live, chunks)

    def loaded(self, on) -> tuple:
        """`(trainable positions, optimizer positions)` an update of the
        variables `on` reads or writes: those, their slots and the
        optimizer's global variables (everything with an EMA)."""
        if self.whole:
            everything = range(len(self.optimizer_variables))
            return range(len(self.trainable)), everything
        return on, self.shared + [p for i in on for p in self.slots[i]]


STEP_VARIABLES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def step_variables(model, state) -> StepVariables:
    """`model`'s `StepVariables` (made again where the optimizer or the
    number of variables changed)."""
    step = STEP_VARIABLES.get(model)
    if (
        step is None
        or step.optimizer is not model.optimizer
        or len(step.trainable) != len(state[0])
        or len(step.non_trainable) != len(state[1])
        or len(step.optimizer_variables) != len(state[2])
    ):
        step = STEP_VARIABLES[model] = StepVariables(model)
    return step
