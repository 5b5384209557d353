"""Paths of `OneShotSupernet` as integer tensors (the compiled step).

A path is encoded as one integer per *decision slot* of the supernet's
topology (`keras_nas.supernet.topology`): for NAS-Bench-201 the op index (in
`NB201_OPS`) of each of the 6 edges (shared by every cell); for the cell
space, for every node input of the normal and then the reduction cell,
`source * len(ops) + op_index`. With this encoding the topology's forward
pass dispatches every slot with a real branch (`keras.ops.switch`:
`tf.switch_case` / `jax.lax.switch`), so a single traced or jitted function
serves every path and only the taken branch runs. This module is
space-independent: sampling (uniform and strictly fair), the masks of the
variables a path trains, and the optimizer-slot and loss helpers the
backend steps share. Backend-neutral (`keras.ops` only); the backends
supply the `switch` used for dispatch.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
from keras import ops

from keras_nas.supernet._path_logic import or_
from keras_nas.supernet.topology import switch_dispatch


def training_loss(model, x, y, y_pred, sample_weight) -> tuple[Any, Any]:
    """The model's training loss on one batch, and the optimizer's scaled one.

    Shared by the backend gradient steps; returns `(loss, scaled_loss)`.
    """
    loss = model._compute_loss(
        x=x,
        y=y,
        y_pred=y_pred,
        sample_weight=sample_weight,
        training=True,
    )
    return loss, model.optimizer.scale_loss(loss)


def slot_sizes(model) -> list[int]:
    """Number of candidates of each decision slot."""
    return model.topology.slot_sizes()


def path_indices(model, path: tuple) -> np.ndarray:
    """The int32 slot vector of a (validated) Python path."""
    return model.topology.path_indices(path)


def indices_path(model, indices) -> tuple:
    """Inverse of `path_indices`."""
    return model.topology.indices_path(indices)


def _uniform_below(shape, sizes, seed_generator):
    """Integers uniform in `[0, sizes[j])` along the last axis."""
    u = keras.random.uniform(shape, seed=seed_generator)
    n = ops.convert_to_tensor(np.asarray(sizes, dtype="float32"))
    idx = ops.cast(ops.floor(u * n), "int32")
    return ops.minimum(idx, ops.cast(n, "int32") - 1)


def sample_indices(model, seed_generator):
    """A uniformly random path (SPOS) as an int32 tensor, in-graph.

    Every slot is drawn independently and uniformly, as `sample_values`
    draws every hyperparameter; slots that repeat others (a reduction cell
    mirroring the normal cell) repeat them.
    """
    topology = model.topology
    sizes = topology.drawn_slot_sizes()
    idx = _uniform_below((len(sizes),), sizes, seed_generator)
    return topology.expand_drawn(idx)


def num_fair_paths(model) -> int:
    """The number of paths of one strictly fair step: the number of
    candidate ops of every slot."""
    return len(model.topology.ops)


def sample_fair_indices(model, seed_generator):
    """`m` paths with strict fairness (FairNAS) as an `(m, slots)` tensor.

    Chu et al., "FairNAS: Rethinking Evaluation Fairness of Weight Sharing
    Neural Architecture Search", ICCV 2021: for every slot an independent
    uniformly random permutation of its `m` candidate ops is dealt to the
    `m` paths, so every op of every slot is on exactly one path. Where a
    slot also chooses its input (`source * m + op`), that is drawn
    uniformly and independently for every path (fairness is over the ops
    of every slot). Slots that repeat others repeat them.
    """
    topology = model.topology
    sizes = topology.drawn_slot_sizes()
    m = num_fair_paths(model)
    keys = keras.random.uniform((len(sizes), m), seed=seed_generator)
    op = ops.transpose(ops.cast(ops.argsort(keys, axis=-1), "int32"))
    sources = [size // m for size in sizes]
    src = _uniform_below((m, len(sizes)), sources, seed_generator)
    return topology.expand_drawn(src * m + op)


def forward(model, x, idx, training, switch) -> Any:
    """The supernet's output on the path `idx` (int tensor).

    `switch(index, branches, operands, training)` runs `branches[index]`,
    where a branch is `(layer, operand_position)`, on `operands`.
    """
    dispatch = switch_dispatch(idx, switch, training)
    return model.topology.forward(x, dispatch, training)


def liveness(model, idx) -> dict[Any, Any]:
    """Boolean (tensor or Python) liveness of every trainable layer.

    Keys: `("op", i)` for `model.op_layers[i]`, `("cell", i)` for
    `model.cell_layers[i]`, `"stem"` and `"head"`. A layer is live when the
    path runs it and its output reaches the classifier.
    """
    return model.topology.liveness(idx)


def variable_owners(model) -> list[Any]:
    """For each of `model.trainable_variables`, its liveness key."""
    owner = {}
    for key, layers in (("stem", model.stem), ("head", model.head)):
        for layer in layers:
            for v in layer.trainable_variables:
                owner[id(v)] = key
    for i, layer in enumerate(model.cell_layers):
        for v in layer.trainable_variables:
            owner[id(v)] = ("cell", i)
    for i, layer in enumerate(model.op_layers):
        for v in layer.trainable_variables:
            owner[id(v)] = ("op", i)
    return [owner.get(id(v), "head") for v in model.trainable_variables]


def variable_masks(model, idx) -> list[Any]:
    """Per trainable variable: whether the path `idx` trains it."""
    live = liveness(model, idx)
    return [live[key] for key in variable_owners(model)]


def union_masks(model, paths, num_paths: int) -> list[Any]:
    """Per trainable variable: whether any of the `num_paths` rows of
    `paths` trains it (the variables a strictly fair step updates)."""
    out = variable_masks(model, paths[0])
    for k in range(1, num_paths):
        masks = variable_masks(model, paths[k])
        out = [or_(a, b) for a, b in zip(out, masks, strict=True)]
    return out


def optimizer_slots(optimizer, variables) -> list[list]:
    """The optimizer's slot variables (momenta, ...) of each variable.

    Keras optimizers keep one list per kind of slot, indexed like their
    trainable variables; every such list found on the optimizer is used.
    """
    n = len(getattr(optimizer, "_trainable_variables", None) or [])
    slot_lists = []
    for name, value in vars(optimizer).items():
        if (
            isinstance(value, (list, tuple))
            and n
            and len(value) == n
            and name not in ("_variables", "_trainable_variables")
            and all(isinstance(v, keras.Variable) for v in value)
        ):
            slot_lists.append(value)
    out = []
    for v in variables:
        i = optimizer._get_variable_index(v)
        out.append([slots[i] for slots in slot_lists])
    return out
