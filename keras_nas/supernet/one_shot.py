"""A single-path one-shot supernet: SPOS and the ENAS shared weights.

`OneShotSupernet` holds, for every edge of every cell of a cell search space,
one layer per candidate operation. All sub-networks (paths) share these
weights: the same op on the same edge of the same cell is the same layer in
every path. `fit` trains one sampled path per batch (uniform single-path
sampling, Guo et al., "Single Path One-Shot Neural Architecture Search with
Uniform Sampling", ECCV 2020), or the paths of a `sampler` such as the ENAS
controller (Pham et al., "Efficient Neural Architecture Search via Parameter
Sharing", ICML 2018). Only the sampled path's variables get gradients and
optimizer updates.

A trained supernet scores any path with inherited weights
(`evaluate_path`), without rebuilding anything, optionally after
recalibrating the path's batch-norm statistics on a few training batches,
and `extract` turns a path into a standalone Keras model with copied
weights (`_one_shot_eval.py`).

The search space is a `Topology` (`topology.py`: the protocol; one class
per space): `keras_nas.spaces.CellSearchSpace` (the DARTS/NASNet space: each
node chooses its inputs and ops, `topology_cell.py`) and
`keras_nas.spaces.NasBench201SearchSpace` (`topology_nb201.py`). The eager
and the compiled step run the same topology object.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

import keras
import keras_tuner
import numpy as np
from keras import ops
from keras.src.backend.common.symbolic_scope import in_symbolic_scope

from keras_nas._backend import backend_module, variable_creation_scope
from keras_nas._gc import deferred_collection, first_call_deferred
from keras_nas._hp_values import random_values, rng_from_json, rng_to_json
from keras_nas.supernet import _one_shot_indexed as indexed
from keras_nas.supernet._one_shot_eval import PathEvaluation
from keras_nas.supernet.topology import (
    TOPOLOGIES,
    Topology,
    identity,
    make_spec,
    python_dispatch,
)
from keras_nas.supernet.topology_cell import CellTopology
from keras_nas.supernet.topology_nb201 import NasBench201Topology

__all__ = ["OneShotSupernet"]

_PACKAGE = "keras_nas"
_SAMPLINGS = ("uniform", "fair")
# The keys of the path samplers' states among the saved variables: the
# compiled step's seed and the eager step's NumPy generator (JSON bytes).
_SEED_KEY = "path_seed_state"
_RNG_KEY = "path_rng_state"
# The built-in topologies (registered by their modules); others register
# themselves with `keras_nas.supernet.topology.register_topology`.
_BUILT_IN = (CellTopology, NasBench201Topology)
#: The topologies whose compiled step runs piecewise (see `compile`);
#: empty: the switch step everywhere (for measurements: benchmarks/).
PIECEWISE = ("cell",)


def _steps_module():
    return backend_module("keras_nas.supernet", "_one_shot", "OneShotSupernet")


@keras.saving.register_keras_serializable(package=_PACKAGE)
class OneShotSupernet(PathEvaluation, keras.Model):
    """Weight-sharing supernet trained one sampled path per batch.

    Every candidate op of every edge of every cell has its own weights,
    shared by all the sub-networks that use it. `fit` samples one path per
    batch, uniformly by default (SPOS: Guo et al., "Single Path One-Shot
    Neural Architecture Search with Uniform Sampling", ECCV 2020) or from
    `sampler` (e.g. the ENAS controller, Pham et al., ICML 2018), and updates
    only that path's variables (the others get no gradient, no weight decay
    and no optimizer-slot update). With `sampler="fair"` every step trains
    `m` paths instead (strict fairness, FairNAS: Chu et al., "FairNAS:
    Rethinking Evaluation Fairness of Weight Sharing Neural Architecture
    Search", ICCV 2021): every edge deals a random permutation of its `m`
    candidate ops to the `m` paths, the gradients of the `m` paths on the
    same batch are summed and applied in one optimizer update, so every op
    of every edge is trained exactly once per step.

    Two training steps (`compile(step=...)`): without a Python `sampler`
    the step is compiled by default: the path is drawn from a seeded
    `keras.random.SeedGenerator` (its state is saved with the supernet, so
    resumed training draws the paths uninterrupted training would) and
    only its ops run. On the cell space the compiled step runs piecewise:
    in Python, every layer of the path one call of a function compiled
    once per kind of layer (same op, stride, width and input shape; a
    `tf.function` / jitted `jax.custom_vjp` pieces, made when the kind is
    first sampled), and the optimizer gets the path's variables only.
    Elsewhere (NAS-Bench-201 and other topologies, under a `tf.distribute`
    strategy or a `keras.distribution`, with `jit_compile=True` on
    TensorFlow) every slot dispatches with a real branch
    (`keras.ops.switch`) in one traced (TensorFlow graph) or jitted (JAX)
    step for all paths, whose off-path updates are masked. Both equal the
    eager step on the same path. A Python `sampler`'s path runs on the
    pieces (cell space) or eagerly (elsewhere, or with `step="eager"`).
    Tracing the switch step is a one-time cost that grows with the number
    of candidate ops (tens of seconds on a CPU for a small NAS-Bench-201
    supernet, minutes for the DARTS cell space: why the cell space runs
    piecewise; benchmarks/RESULTS.md). Backend code: `_one_shot_tensorflow`,
    `_one_shot_jax`; the pieces: `_one_shot_groups`; the sampling and
    masks of the switch step: `_one_shot_indexed`; the space (layers, path
    encoding, forward pass, liveness): `topology`.

    The network: for the cell space a DARTS-style search network (3x3 conv
    stem with `3 * filters` channels, `num_cells` cells with reduction cells
    at 1/3 and 2/3 of the depth, each cell's output the concatenation of its
    intermediate nodes); for NAS-Bench-201 the benchmark's macro skeleton
    (stem, three stages of `cells_per_stage` cells separated by residual
    reduction blocks). Both end with global pooling and a softmax classifier.

    A path is given as the hyperparameter values of the space (a dict or a
    `keras_tuner.HyperParameters`), a `Genotype` / `NasBench201Genotype`, or
    a NAS-Bench-201 cell string.

    Args:
        space: a `CellSearchSpace` or `NasBench201SearchSpace`; its shape,
            classes, ops and sizes are used (the first value of searched
            `num_cells`/`filters`), unless given explicitly below.
        search_space: `"cell"`, `"nb201"` or the `name` of another
            registered `Topology` (when `space` is not given).
        input_shape: shape of one input image `(height, width, channels)`.
        num_classes: number of classes.
        ops: candidate ops of the cell space.
        num_nodes: intermediate nodes per cell (cell space).
        num_cells: number of cells (cell space).
        search_reduction: whether the reduction cell has its own choices
            (cell space); if False it mirrors the normal cell.
        filters: channels of the first cell / stage.
        cells_per_stage: cells per stage (NAS-Bench-201).
        affine: whether the ops' batch normalizations learn scale/offset.
        sampler: how training paths are drawn. `None` or `"uniform"`: one
            uniformly random path per step (SPOS). `"fair"`: `m` paths per
            step with strict fairness (FairNAS; compiled step only; for
            the cell space fairness is over the ops of every node input,
            the input itself is drawn uniformly for every path). A
            callable `sampler(rng) -> values` (or `(values, anything)`), or
            an object with `sample(rng) -> (values, trace)` such as a
            `keras_nas.tuners.controller.Controller` (eager step).
        seed: seed of the path sampling and of the default active path.
        **kwargs: `keras.Model` arguments such as `name`, and the
            arguments of another registered topology (its `arguments`).

    Example:

    ```python
    space = keras_nas.spaces.NasBench201SearchSpace(
        input_shape=(8, 8, 1), num_classes=10, filters=8,
        cells_per_stage=1)
    supernet = OneShotSupernet(space, seed=0)
    supernet.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9))
    supernet.fit(x_train, y_train, epochs=20, batch_size=64)
    values = supernet.sample_values()
    supernet.evaluate_path(values, x_val, y_val,
                           bn_recalibration_batches=4,
                           train_data=(x_train, y_train))
    model = supernet.extract(values)  # standalone, copied weights
    ```
    """

    # Keras builds the state before the step is traced (no second trace;
    # keras_nas/_distribute_tensorflow.py).
    BUILD_BEFORE_TRACE = True

    def __init__(
        self,
        space: Any = None,
        *,
        search_space: str | None = None,
        input_shape: tuple[int, ...] | None = None,
        num_classes: int | None = None,
        ops: tuple[str, ...] | None = None,
        num_nodes: int | None = None,
        num_cells: int | None = None,
        search_reduction: bool | None = None,
        filters: int | None = None,
        cells_per_stage: int | None = None,
        affine: bool = True,
        sampler: Any = None,
        seed: int | None = None,
        **kwargs: Any,
    ):
        given = {
            "search_space": search_space,
            "input_shape": input_shape,
            "num_classes": num_classes,
            "ops": ops,
            "num_nodes": num_nodes,
            "num_cells": num_cells,
            "search_reduction": search_reduction,
            "filters": filters,
            "cells_per_stage": cells_per_stage,
        }
        self._spec = make_spec(space, given, kwargs)
        super().__init__(**kwargs)
        _steps_module()  # Now: on TF it mends `fit` for several workers.
        self.affine = bool(affine)
        self.seed = seed
        if isinstance(sampler, str) and sampler not in _SAMPLINGS:
            raise ValueError(
                f"Expected `sampler` to be one of {list(_SAMPLINGS)}, a "
                "callable or an object with `sample(rng)`. "
                f"Received: sampler={sampler!r}"
            )
        self.sampler = sampler
        self._rng = np.random.default_rng(seed)
        self._path_seed = keras.random.SeedGenerator(seed)
        self._step = "auto"
        self._jit = None
        self._train_mode: str | None = None
        self._pieces = False
        self.topology: Topology = TOPOLOGIES[self._spec["search_space"]](
            self._spec, affine=self.affine
        )
        self.space = self.topology.make_space()
        self.hyperparameters = keras_tuner.HyperParameters()
        self.space.declare_hyperparameters(self.hyperparameters)
        # The layers live in the model's (tracked, saved) lists; the
        # topology fills them in the order of the files saved before.
        self.op_layers: list[keras.layers.Layer] = []
        self.cell_layers: list[keras.layers.Layer] = []
        self.stem: list[keras.layers.Layer] = []
        self.head: list[keras.layers.Layer] = []
        # Without automatic garbage collections (keras_nas/_gc.py).
        with deferred_collection():
            self.topology.make_layers(
                self.stem, self.cell_layers, self.op_layers, self.head
            )
            with variable_creation_scope():
                self.topology.build()
        self.built = True
        # The compiled step records its sampled path here.
        self._last_indices = self.add_weight(
            shape=(len(indexed.slot_sizes(self)),),
            dtype="int32",
            initializer="zeros",
            trainable=False,
            name="last_path_indices",
        )
        if sampler == "fair":  # The m paths of the last strictly fair step.
            self._fair_indices = self.add_weight(
                shape=(
                    indexed.num_fair_paths(self),
                    len(indexed.slot_sizes(self)),
                ),
                dtype="int32",
                initializer="zeros",
                trainable=False,
                name="last_fair_path_indices",
            )
        self.last_values: dict[str, Any] | None = None
        self.last_trace: Any = None
        self._active = self._to_path(
            self.sample_values(np.random.default_rng(seed))
        )

    # ------------------------------------------------------------------
    # The space.
    # ------------------------------------------------------------------

    @property
    def search_space(self) -> str:
        """The topology's name: `"cell"`, `"nb201"`, ..."""
        return self.topology.name

    @property
    def space_ops(self) -> tuple[str, ...]:
        """The candidate ops of every edge."""
        return self.topology.ops

    # ------------------------------------------------------------------
    # Paths.
    # ------------------------------------------------------------------

    def sample_values(
        self, rng: np.random.Generator | None = None
    ) -> dict[str, Any]:
        """Uniformly random hyperparameter values of one path (SPOS)."""
        return random_values(self.hyperparameters, rng or self._rng)

    def _to_path(self, values: Any) -> tuple:
        """Hyperparameters / genotype -> hashable internal path."""
        return self.topology.to_path(values)

    def path_layers(self, values: Any) -> list[keras.layers.Layer]:
        """The layers a path runs (shared stem, cell plumbing and head)."""
        path = self._to_path(values)
        return self._path_layers(path)

    def _path_layers(self, path: tuple) -> list[keras.layers.Layer]:
        """The layers connected to the output on `path` (forward order).

        A layer whose output cannot reach the classifier (cut off by `none`
        ops or unused cell inputs) is left out: it gets no gradient.
        """
        return self.topology.path_layers(path)

    def path_trainable_variables(self, values: Any) -> list:
        """The trainable variables of a path (those `fit` updates)."""
        path = values if isinstance(values, tuple) else self._to_path(values)
        out, seen = [], set()
        for layer in self._path_layers(path):
            for v in layer.trainable_variables:
                if id(v) not in seen:
                    seen.add(id(v))
                    out.append(v)
        return out

    def op_layer(self, cell: int, *key: Any) -> keras.layers.Layer:
        """The shared layer of an op: `(cell, node, input, op)` for the cell
        space, `(cell, edge_index, op)` for NAS-Bench-201."""
        return self.topology.op_layer((cell, *key))

    def set_active_path(self, values: Any) -> None:
        """Sets the path `call`, `evaluate` and `predict` use by default."""
        self._active = self._to_path(values)
        # Traced test/predict functions hold the old path.
        self.test_function = self.predict_function = None

    def path_indices(self, values: Any) -> np.ndarray:
        """The path as the int32 vector the compiled step dispatches on.

        One entry per decision slot: for NAS-Bench-201 the index of each
        edge's op in `space_ops`; for the cell space, for each node input
        of the normal then the reduction cell, `source * len(ops) + op`.
        """
        path = values if isinstance(values, tuple) else self._to_path(values)
        return indexed.path_indices(self, self._to_path(path))

    @property
    def _fair(self) -> bool:
        """Whether training is strictly fair (`sampler="fair"`)."""
        return isinstance(self.sampler, str) and self.sampler == "fair"

    def _sample_indices(self):
        """The compiled step's path tensor, drawn from the seeded generator
        and recorded for `last_paths`: one uniform (SPOS) path of shape
        `(slots,)`, or with `sampler="fair"` the `(m, slots)` paths of a
        strictly fair step."""
        if not self._fair:
            idx = indexed.sample_indices(self, self._path_seed)
            self._last_indices.assign(idx)
            return idx
        idx = indexed.sample_fair_indices(self, self._path_seed)
        self._fair_indices.assign(idx)
        self._last_indices.assign(idx[-1])
        return idx

    @property
    def last_path(self) -> tuple | None:
        """The path of the last training step (both steps), as `_to_path`
        gives it (NB201: the 6 ops; cell space: normal and reduce pairs).
        After a strictly fair step: the last of its `m` paths."""
        if self._train_mode == "compiled":
            idx = ops.convert_to_numpy(self._last_indices)
            return indexed.indices_path(self, idx)
        if self.last_values is None:
            return None
        return self._to_path(self.last_values)

    @property
    def last_paths(self) -> list[tuple]:
        """The paths of the last training step: the `m` paths of a strictly
        fair step (`sampler="fair"`), else `[last_path]` (empty before
        training)."""
        if self._train_mode == "compiled" and self._fair:
            idx = ops.convert_to_numpy(self._fair_indices)
            return [indexed.indices_path(self, row) for row in idx]
        path = self.last_path
        return [] if path is None else [path]

    def _next_training_values(self) -> dict[str, Any]:
        sampler = self.sampler
        trace = None
        if sampler is None or sampler == "uniform":
            values = self.sample_values()
        elif callable(getattr(sampler, "sample", None)):
            values, trace = sampler.sample(self._rng)
        elif callable(sampler):
            values = sampler(self._rng)
            if isinstance(values, tuple):
                values, trace = values
        else:
            raise ValueError(
                "Expected `sampler` to be None, a callable `sampler(rng)` or "
                "an object with `sample(rng)`. "
                f"Received: sampler={sampler!r}"
            )
        self.last_values, self.last_trace = dict(values), trace
        return values

    # ------------------------------------------------------------------
    # Forward pass.
    # ------------------------------------------------------------------

    def _forward(self, x, path: tuple, training, use: Callable) -> Any:
        """The output on a Python `path`; `use(layer)` is what is called."""
        indices = [int(v) for v in self.topology.path_indices(path)]
        dispatch = python_dispatch(indices, training, use)
        return self.topology.forward(x, dispatch, training, use)

    def call(self, inputs, training=None, path=None):
        if in_symbolic_scope():
            # Keras' shape inference (`fit`'s first call builds the
            # metrics and the loss from the model's output spec): the
            # output is (batch, classes) of the classifier's dtype on any
            # path, without tracing a path's layers (0.14 s CPU at the
            # tiny configuration; RESULTS.md, #13 e15).
            layer = self.head[-1] if self.head else self
            shape = self.compute_output_shape(ops.shape(inputs))
            return ops.zeros(shape, layer.compute_dtype)
        if path is None and getattr(self, "_sampling_call", False):
            # Inside the compiled JAX step (see `_one_shot_jax`).
            return _steps_module().compiled_call(self, inputs, training)
        path = self._active if path is None else path
        if not isinstance(path, tuple):
            path = self._to_path(path)
        return self._forward(inputs, path, training, identity)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self._spec["num_classes"])

    # ------------------------------------------------------------------
    # Training.
    # ------------------------------------------------------------------

    def compile(
        self,
        optimizer: Any = "adam",
        loss: Any = None,
        metrics: Any = None,
        step: str = "auto",
        **kwargs: Any,
    ) -> None:
        """Like `keras.Model.compile`, plus the choice of training step.

        Defaults: loss `"sparse_categorical_crossentropy"`, metrics
        `["accuracy"]`.

        Args:
            optimizer: as in `keras.Model.compile`.
            loss: as in `keras.Model.compile`.
            metrics: as in `keras.Model.compile`.
            step: `"compiled"`: the path is drawn uniformly (SPOS) from
                the supernet's seeded generator, and only the path's ops
                run, through compiled code: on the cell space piecewise
                (one function per kind of layer, compiled when first
                sampled, called from a Python step: the first step
                compiles only what its path uses), elsewhere (and under
                a distribution strategy, or `jit_compile=True` on
                TensorFlow) one traced (TensorFlow) or jitted (JAX) step
                for all paths that dispatches every slot with a real
                branch (`keras.ops.switch`). The piecewise step reaches
                its first step tens of times sooner and needs several
                times less memory; once compiled, the switch steps ran
                faster at a tiny size (TF ~1.2x, JAX ~5x;
                benchmarks/RESULTS.md). With `sampler="fair"` the `m`
                paths of a step run one after the other, their gradients
                summed into one update. `"eager"`: the path is a Python
                choice (required by a Python `sampler`, e.g. the ENAS
                controller), the step runs eagerly. `"auto"` (default):
                compiled when `sampler` is None, "uniform" or "fair",
                else eager (on the cell space a Python sampler's paths
                run on the piecewise step's pieces); decided again
                at every `fit`. All update
                exactly the sampled paths' variables and optimizer slots.
            **kwargs: other `keras.Model.compile` arguments.
                `run_eagerly=True` means `step="eager"`; `jit_compile`
                (XLA) applies to the compiled step (default: False on
                TensorFlow, True on JAX).
        """
        if step not in ("auto", "compiled", "eager"):
            raise ValueError(
                "Expected `step` to be 'auto', 'compiled' or 'eager'. "
                f"Received: step={step!r}"
            )
        if kwargs.pop("run_eagerly", False):
            step = "eager"
        self._step = step
        self._jit = kwargs.pop("jit_compile", None)
        if self._jit == "auto":
            self._jit = None
        self._train_mode = None
        kwargs["run_eagerly"] = True
        kwargs["jit_compile"] = False
        super().compile(
            optimizer=optimizer,
            loss=loss or "sparse_categorical_crossentropy",
            metrics=["accuracy"] if metrics is None else metrics,
            **kwargs,
        )
        # Built now (the supernet always is), so that `load_weights` also
        # restores the optimizer's state.
        self._build_optimizer()

    def _build_optimizer(self) -> None:
        """Builds the optimizer's state if it is not (its many slot
        variables cheaply: `variable_creation_scope`)."""
        optimizer = getattr(self, "optimizer", None)
        if optimizer is not None and not optimizer.built:
            with variable_creation_scope():
                optimizer.build(self.trainable_variables)

    def _wanted_mode(self) -> str:
        python_sampler = not (
            self.sampler is None or isinstance(self.sampler, str)
        )
        if self._step == "compiled" and python_sampler:
            raise ValueError(
                "Expected `sampler=None`, 'uniform' or 'fair' with "
                "step='compiled' (a Python sampler needs step='eager' or "
                f"'auto'). Received: sampler={self.sampler!r}"
            )
        if self._fair and self._step == "eager":
            raise ValueError(
                "Expected step='compiled' or 'auto' with sampler='fair' "
                "(strict fairness is a compiled step). Received: "
                "step='eager'"
            )
        if self._fair and not hasattr(self, "_fair_indices"):
            raise ValueError(
                "Expected sampler='fair' to be given when the supernet is "
                "created (`OneShotSupernet(..., sampler='fair')`). "
                "Received: sampler='fair' set afterwards"
            )
        if self._step == "eager" or python_sampler:
            return "eager"
        return "compiled"

    def make_train_function(self, force: bool = False):
        """Picks the compiled or eager step (see `compile`), then builds
        Keras' train function."""
        mode = self._wanted_mode()
        steps = _steps_module()
        # The pieces also take a Python sampler's path (`PYTHON_PATHS`).
        python_paths = self._step == "auto" and getattr(
            steps, "PYTHON_PATHS", False
        )
        pieces = (
            (mode == "compiled" or python_paths)
            and self.topology.name in PIECEWISE
            and steps.piecewise(self)
        )
        if mode != self._train_mode or pieces != self._pieces:
            self._train_mode, self._pieces = mode, pieces
            self.train_function = None
            self.run_eagerly = mode == "eager"
            jit = keras.backend.backend() == "jax"
            if self._jit is not None:
                jit = bool(self._jit)
            self.jit_compile = mode == "compiled" and jit
            # Keras' test/predict functions follow run_eagerly too.
            self.test_function = self.predict_function = None
        with deferred_collection():  # the slots (keras_nas/_gc.py)
            self._build_optimizer()
        if not self._pieces:
            super().make_train_function(force=force)
        else:  # the piecewise step runs in Python (its pieces compiled)
            made = force or self.train_function is None
            self.run_eagerly = True
            try:
                super().make_train_function(force=force)
            finally:
                self.run_eagerly = mode == "eager"
            lean = getattr(_steps_module(), "piecewise_train_function", None)
            if made and lean is not None:
                self.train_function = lean(self, self.train_function)
        # Its first call traces: no automatic collection (keras_nas/_gc.py).
        self.train_function = first_call_deferred(self.train_function)
        return self.train_function

    def _train_on_path(self, data, values=None) -> dict[str, Any]:
        """The eager step: one batch on a Python-sampled path (`values`,
        or the sampler's next)."""
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        if values is None:
            values = self._next_training_values()
        path = self._to_path(values)
        self._build_optimizer()
        loss, y_pred = _steps_module().apply_path_gradients(
            self, x, y, sample_weight, path
        )
        self._loss_tracker.update_state(loss, sample_weight=ops.shape(y)[0])
        return self.compute_metrics(x, y, y_pred, sample_weight=sample_weight)

    def train_step(self, *args):
        """One batch on one sampled path (`(data)` on TF, `(state, data)` on
        JAX), with the compiled or the eager step (see `compile`)."""
        return _steps_module().train_step(self, *args)

    def _sublayers(self) -> tuple[list, bool]:
        """The supernet's layers (Keras' `_flatten_layers`) and whether a
        weight has a regularizer, read once built: its layers and
        variables are all made when it is constructed, and Keras walks
        its ~1,000 layers and their weights for `losses` and `metrics`
        at every step (`losses`: 1.4 ms CPU tiny, 4.8 ms micro)."""
        sources = self.__dict__.get("_loss_sources")
        if sources is None:
            sources = (
                list(self._flatten_layers(include_self=False)),
                any(v.regularizer is not None for v in self.weights),
            )
            if self.built:
                object.__setattr__(self, "_loss_sources", sources)
        return sources

    @property
    def losses(self):
        """Keras' `losses` (the `add_loss` losses of the supernet and its
        layers, then its weights' regularization losses), over the layers
        listed once (`_sublayers`)."""
        if self._losses_override:
            return self._losses_override
        layers, regularized = self._sublayers()
        losses = self._get_own_losses()
        for layer in layers:
            losses.extend(layer._get_own_losses())
        if regularized:
            losses.extend(self._get_regularization_losses())
        return losses

    @property
    def metrics(self):
        """Keras' `metrics` (its walk recurses into every layer's
        sublayers: ~4 ms CPU a step, tiny). While no layer tracks a
        metric of its own (`_sublayers`), the compiled ones and the
        supernet's own, in Keras' order."""
        layers, _ = self._sublayers()
        if any(layer._metrics for layer in layers):
            return super().metrics
        metrics = []
        if self.compiled:
            if self._loss_tracker is not None:
                metrics.append(self._loss_tracker)
            if self._compile_metrics is not None:
                metrics.append(self._compile_metrics)
            if self._compile_loss is not None:
                metrics.extend(self._compile_loss.metrics)
        metrics.extend(self._metrics)
        return metrics

    def __setattr__(self, name, value):
        if name == "_jax_state":
            # Keras' JAX `fit` sets it after every step: the state's lists
            # of arrays, nothing to track, which the tracker would wrap and
            # walk (~1,500 values at the tiny size, ~4,000 at micro).
            object.__setattr__(self, name, value)
            return
        super().__setattr__(name, value)

    @staticmethod
    def _steps():
        """The backend's steps module (`_one_shot_tensorflow`, ...)."""
        return _steps_module()

    # ------------------------------------------------------------------
    # Serialization.
    # ------------------------------------------------------------------

    def get_config(self) -> dict[str, Any]:
        config = {"name": self.name, "trainable": self.trainable}
        config.update(self._spec)
        config.update(affine=self.affine, seed=self.seed)
        if isinstance(self.sampler, str):
            config["sampler"] = self.sampler
        return config

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> OneShotSupernet:
        return cls(**dict(config))

    def save_own_variables(self, store) -> None:
        """Saves the supernet's variables and its path samplers' states.

        Keras saves no `SeedGenerator` state (nor, of course, the NumPy
        generator of the eager step), so without them a supernet loaded
        from a `.keras` or `.weights.h5` file would restart its path
        sequence; with them, training resumed from the file draws the
        paths uninterrupted training would have drawn.
        """
        super().save_own_variables(store)
        store[_SEED_KEY] = self._path_seed.state
        state = json.dumps(rng_to_json(self._rng)).encode()
        store[_RNG_KEY] = np.frombuffer(state, dtype="uint8")

    def load_own_variables(self, store) -> None:
        # Files written before the sampler states were saved lack the keys.
        own = (_SEED_KEY, _RNG_KEY)
        keys = [k for k in store.keys() if k not in own]
        super().load_own_variables({k: store[k] for k in keys})
        if _SEED_KEY in store:
            self._path_seed.state.assign(store[_SEED_KEY])
        if _RNG_KEY in store:
            state = np.asarray(store[_RNG_KEY], dtype="uint8").tobytes()
            self._rng = rng_from_json(json.loads(state))

    def get_compile_config(self) -> dict[str, Any]:
        """`compile`'s arguments as given (with `step`), for saving."""
        config = super().get_compile_config()
        if config:
            # `compile` hands Keras run_eagerly=True, jit_compile=False.
            config.update(
                run_eagerly=False, step=self._step, jit_compile=self._jit
            )
        return config

    def compile_from_config(self, config: Mapping[str, Any]) -> None:
        """Compiles a loaded supernet as it was saved, so that the file's
        optimizer state is loaded too."""
        config = keras.saving.deserialize_keras_object(dict(config))
        self.compile(**config)
