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
weights.

Supported spaces: `keras_nas.spaces.CellSearchSpace` (the DARTS/NASNet
space: each node chooses its inputs and ops) and
`keras_nas.spaces.NasBench201SearchSpace`.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import keras
import keras_tuner
import numpy as np
from keras import ops

from keras_nas._backend import backend_module
from keras_nas.blocks.genotypes import (
    NB201_EDGES,
    Genotype,
    NasBench201Genotype,
)
from keras_nas.blocks.network import ResNetBasicBlock
from keras_nas.blocks.ops import FactorizedReduce, ReLUConvBN, get_op

__all__ = ["OneShotSupernet"]

_PACKAGE = "keras_nas"
_SPACES = ("cell", "nb201")
_SAMPLINGS = ("uniform", "fair")
# The keys of the path samplers' states among the saved variables: the
# compiled step's seed and the eager step's NumPy generator (JSON bytes).
_SEED_KEY = "path_seed_state"
_RNG_KEY = "path_rng_state"


def _backend_module():
    return backend_module("keras_nas.supernet", "_one_shot", "OneShotSupernet")


def _space_spec(space: Any) -> dict[str, Any]:
    """The supernet arguments read from a keras-nas search space."""
    from keras_nas.spaces import CellSearchSpace, NasBench201SearchSpace

    if isinstance(space, NasBench201SearchSpace):
        return {
            "search_space": "nb201",
            "input_shape": space.input_shape,
            "num_classes": space.num_classes,
            "filters": space.filters,
            "cells_per_stage": space.cells_per_stage,
        }
    if isinstance(space, CellSearchSpace):
        return {
            "search_space": "cell",
            "input_shape": space.input_shape,
            "num_classes": space.num_classes,
            "ops": tuple(space.ops),
            "num_nodes": space.num_nodes,
            "num_cells": space.num_cells[0],
            "filters": space.filters[0],
            "search_reduction": space.search_reduction,
        }
    raise ValueError(
        "Expected `space` to be a keras_nas.spaces.CellSearchSpace or "
        f"NasBench201SearchSpace. Received: space={space!r}"
    )


def _reduction_indices(num_cells: int) -> tuple[int, ...]:
    """Cells that halve the resolution: at 1/3 and 2/3 of the depth."""
    return tuple(sorted({num_cells // 3, 2 * num_cells // 3}))


@keras.saving.register_keras_serializable(package=_PACKAGE)
class OneShotSupernet(keras.Model):
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
    the step is compiled by default: the path is an integer tensor drawn in
    the step from a seeded `keras.random.SeedGenerator` and every edge
    dispatches with a real branch (`keras.ops.switch`), so one traced
    (TensorFlow graph) or jitted (JAX) step serves every path and each step
    costs about one path; the updates of variables off the path are masked
    so the semantics equal the eager step's. With a Python `sampler` (or
    `step="eager"`) the path is a Python choice and the step runs eagerly.
    Tracing the compiled step is a one-time cost that grows with the number
    of candidate ops (tens of seconds on a CPU for a small NAS-Bench-201
    supernet). Backend code: `_one_shot_tensorflow`, `_one_shot_jax`; the
    path encoding and branch dispatch: `_one_shot_indexed`.

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
        search_space: `"cell"` or `"nb201"` (when `space` is not given).
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
        **kwargs: `keras.Model` arguments such as `name`.

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
        super().__init__(**kwargs)
        spec = _space_spec(space) if space is not None else {}
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
        spec.update({k: v for k, v in given.items() if v is not None})
        self._spec = self._check_spec(spec)
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
        self.space = self._make_space()
        self.hyperparameters = keras_tuner.HyperParameters()
        self.space.declare_hyperparameters(self.hyperparameters)
        self._op_index: dict[tuple, int] = {}
        self.op_layers: list[keras.layers.Layer] = []
        self.cell_layers: list[keras.layers.Layer] = []
        if self._spec["search_space"] == "cell":
            self._make_cell_network()
        else:
            self._make_nb201_network()
        self._build_all()
        # The compiled step records its sampled path here.
        self._last_indices = self.add_weight(
            shape=(len(_indexed().slot_sizes(self)),),
            dtype="int32",
            initializer="zeros",
            trainable=False,
            name="last_path_indices",
        )
        if sampler == "fair":  # The m paths of the last strictly fair step.
            self._fair_indices = self.add_weight(
                shape=(
                    _indexed().num_fair_paths(self),
                    len(_indexed().slot_sizes(self)),
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
    # Construction.
    # ------------------------------------------------------------------

    @staticmethod
    def _check_spec(spec: dict[str, Any]) -> dict[str, Any]:
        kind = spec.get("search_space", "cell")
        if kind not in _SPACES:
            raise ValueError(
                f"Expected `search_space` to be one of {list(_SPACES)}. "
                f"Received: search_space={kind!r}"
            )
        for name in ("input_shape", "num_classes"):
            if spec.get(name) is None:
                raise ValueError(
                    f"Expected `{name}` (or a `space`). Received: {name}=None"
                )
        out = {
            "search_space": kind,
            "input_shape": tuple(int(v) for v in spec["input_shape"]),
            "num_classes": int(spec["num_classes"]),
        }
        if kind == "cell":
            from keras_nas.spaces.cell_space import DEFAULT_OPS

            out.update(
                ops=tuple(spec.get("ops") or DEFAULT_OPS),
                num_nodes=int(spec.get("num_nodes", 4)),
                num_cells=int(spec.get("num_cells", 3)),
                search_reduction=bool(spec.get("search_reduction", True)),
                filters=int(spec.get("filters", 8)),
            )
        else:
            out.update(
                filters=int(spec.get("filters", 16)),
                cells_per_stage=int(spec.get("cells_per_stage", 5)),
            )
        return out

    def _make_space(self) -> keras_tuner.HyperModel:
        from keras_nas.spaces import CellSearchSpace, NasBench201SearchSpace

        s = self._spec
        if s["search_space"] == "cell":
            return CellSearchSpace(
                input_shape=s["input_shape"],
                num_classes=s["num_classes"],
                ops=s["ops"],
                num_nodes=s["num_nodes"],
                num_cells=s["num_cells"],
                filters=s["filters"],
                search_reduction=s["search_reduction"],
            )
        return NasBench201SearchSpace(
            input_shape=s["input_shape"],
            num_classes=s["num_classes"],
            filters=s["filters"],
            cells_per_stage=s["cells_per_stage"],
        )

    def _add_op(self, key: tuple, layer: keras.layers.Layer, shape) -> None:
        self._op_index[key] = len(self.op_layers)
        self.op_layers.append(layer)
        self._shapes.append(shape)

    def _make_cell_network(self) -> None:
        s = self._spec
        c = s["filters"]
        h, w, _ = s["input_shape"]
        self._shapes = []
        self.stem = [
            keras.layers.Conv2D(
                3 * c, 3, padding="same", use_bias=False, name="stem_conv"
            ),
            keras.layers.BatchNormalization(name="stem_bn"),
        ]
        self._reductions = _reduction_indices(s["num_cells"])
        self._cell_shapes = []
        c_pp, c_p, reduction_prev = 3 * c, 3 * c, False
        size_pp = size_p = (h, w)
        for cell in range(s["num_cells"]):
            reduce = cell in self._reductions
            if reduce:
                c *= 2
            kind = "reduce" if reduce else "normal"
            if reduction_prev:
                pre0 = FactorizedReduce(
                    c, affine=self.affine, name=f"cell{cell}_pre0"
                )
            else:
                pre0 = ReLUConvBN(
                    c, 1, affine=self.affine, name=f"cell{cell}_pre0"
                )
            pre1 = ReLUConvBN(c, 1, affine=self.affine, name=f"cell{cell}_pre1")
            self.cell_layers += [pre0, pre1]
            self._cell_shapes += [(None, *size_pp, c_pp), (None, *size_p, c_p)]
            out = size_p if not reduce else tuple((v + 1) // 2 for v in size_p)
            for node in range(s["num_nodes"]):
                for src in range(node + 2):
                    strides = 2 if reduce and src < 2 else 1
                    in_size = size_p if src < 2 else out
                    for op in s["ops"]:
                        layer = get_op(
                            op, c, strides=strides, affine=self.affine
                        )
                        layer.name = f"cell{cell}_{kind}_n{node}_i{src}_{op}"
                        self._add_op(
                            (cell, node, src, op), layer, (None, *in_size, c)
                        )
            c_pp, c_p = c_p, s["num_nodes"] * c
            size_pp, size_p = size_p, out
            reduction_prev = reduce
        self._head_shape = (None, *size_p, c_p)
        self.head = [
            keras.layers.GlobalAveragePooling2D(name="global_pool"),
            keras.layers.Dense(
                s["num_classes"], activation="softmax", name="classifier"
            ),
        ]

    def _make_nb201_network(self) -> None:
        s = self._spec
        c = s["filters"]
        h, w, _ = s["input_shape"]
        self._shapes = []
        self.stem = [
            keras.layers.Conv2D(
                c, 3, padding="same", use_bias=False, name="stem_conv"
            ),
            keras.layers.BatchNormalization(name="stem_bn"),
        ]
        self._cell_shapes = []
        size, cell = (h, w), 0
        for stage in range(3):
            if stage:
                block = ResNetBasicBlock(
                    2 * c, strides=2, name=f"reduction{stage}"
                )
                self.cell_layers.append(block)
                self._cell_shapes.append((None, *size, c))
                c *= 2
                size = tuple((v + 1) // 2 for v in size)
            for _ in range(s["cells_per_stage"]):
                for edge, (to, src) in enumerate(NB201_EDGES):
                    for op in self.space_ops:
                        layer = get_op(op, c, affine=self.affine)
                        layer.name = f"cell{cell}_e{to}{src}_{op}"
                        self._add_op((cell, edge, op), layer, (None, *size, c))
                cell += 1
        self._head_shape = (None, *size, c)
        self.head = [
            keras.layers.BatchNormalization(name="head_bn"),
            keras.layers.ReLU(name="head_relu"),
            keras.layers.GlobalAveragePooling2D(name="global_pool"),
            keras.layers.Dense(
                s["num_classes"], activation="softmax", name="classifier"
            ),
        ]

    def _build_all(self) -> None:
        shape = (None, *self._spec["input_shape"])
        for layer in self.stem:
            layer.build(shape)
            shape = layer.compute_output_shape(shape)
        for layer, shape in zip(
            self.cell_layers, self._cell_shapes, strict=False
        ):
            layer.build(shape)
        for layer, shape in zip(self.op_layers, self._shapes, strict=False):
            layer.build(shape)
        shape = self._head_shape
        for layer in self.head:
            layer.build(shape)
            shape = layer.compute_output_shape(shape)
        self.built = True

    @property
    def search_space(self) -> str:
        """`"cell"` or `"nb201"`."""
        return self._spec["search_space"]

    @property
    def space_ops(self) -> tuple[str, ...]:
        """The candidate ops of every edge."""
        if self._spec["search_space"] == "cell":
            return self._spec["ops"]
        from keras_nas.blocks.registry import NB201_OPS

        return NB201_OPS

    # ------------------------------------------------------------------
    # Paths.
    # ------------------------------------------------------------------

    def sample_values(
        self, rng: np.random.Generator | None = None
    ) -> dict[str, Any]:
        """Uniformly random hyperparameter values of one path (SPOS)."""
        from keras_nas.tuners._base import random_values

        return random_values(self.hyperparameters, rng or self._rng)

    def _to_path(self, values: Any) -> tuple:
        """Hyperparameters / genotype -> hashable internal path."""
        if isinstance(values, tuple):  # Already a path (validated below).
            if self.search_space == "nb201":
                values = NasBench201Genotype(values)
            else:
                values = Genotype(normal=values[0], reduce=values[1])
        if self.search_space == "nb201":
            from keras_nas.spaces import nb201_genotype_from_hyperparameters

            if isinstance(values, str):
                values = NasBench201Genotype.from_string(values)
            if not isinstance(values, NasBench201Genotype):
                values = nb201_genotype_from_hyperparameters(values)
            return tuple(values.ops)
        from keras_nas.spaces import genotype_from_hyperparameters

        genotype = values
        if not isinstance(genotype, Genotype):
            genotype = genotype_from_hyperparameters(values)
        s = self._spec
        for kind in ("normal", "reduce"):
            pairs = getattr(genotype, kind)
            bad = [p for p in pairs if p[0] not in s["ops"]]
            if genotype.arity != 2 or len(pairs) != 2 * s["num_nodes"] or bad:
                raise ValueError(
                    f"Expected a path of this supernet: {s['num_nodes']} "
                    f"nodes of 2 inputs with ops from {list(s['ops'])}. "
                    f"Received: {kind} cell {pairs!r}"
                )
        return (genotype.normal, genotype.reduce)

    def _cell_choices(self, path: tuple, cell: int) -> list[tuple]:
        """The op-layer keys a path uses in one cell, in forward order."""
        if self.search_space == "nb201":
            return [(cell, e, op) for e, op in enumerate(path)]
        kind = 1 if cell in self._reductions else 0
        pairs = path[kind]
        return [(cell, k // 2, src, op) for k, (op, src) in enumerate(pairs)]

    def _num_cells(self) -> int:
        s = self._spec
        if s["search_space"] == "cell":
            return s["num_cells"]
        return 3 * s["cells_per_stage"]

    def path_layers(self, values: Any) -> list[keras.layers.Layer]:
        """The layers a path runs (shared stem, cell plumbing and head)."""
        path = self._to_path(values)
        return self._path_layers(path)

    def _path_layers(self, path: tuple) -> list[keras.layers.Layer]:
        """The layers connected to the output on `path` (forward order).

        A layer whose output cannot reach the classifier (cut off by `none`
        ops or unused cell inputs) is left out: it gets no gradient.
        """
        if self.search_space == "nb201":
            live, stem_live = self._live_nb201(path)
        else:
            live, stem_live = self._live_cells(path)
        layers = list(self.stem) if stem_live else []
        layers += [layer for layer in self.cell_layers if id(layer) in live]
        seen = set()
        for cell in range(self._num_cells()):
            for key in self._cell_choices(path, cell):
                layer = self.op_layers[self._op_index[key]]
                if id(layer) in live and key not in seen:
                    seen.add(key)
                    layers.append(layer)
        return layers + list(self.head)

    def _live_nb201(self, path: tuple) -> tuple[set, bool]:
        live, flowing = set(), True
        cells = self._spec["cells_per_stage"]
        blocks = list(self.cell_layers)
        for cell in reversed(range(self._num_cells())):
            node_live = {3: flowing}
            for node in (2, 1, 0):
                node_live[node] = False
                for key in self._cell_choices(path, cell):
                    to, src = NB201_EDGES[key[1]]
                    if src == node and key[2] != "none" and node_live[to]:
                        node_live[node] = True
            for key in self._cell_choices(path, cell):
                to, src = NB201_EDGES[key[1]]
                if node_live[to] and key[2] != "none":
                    live.add(id(self.op_layers[self._op_index[key]]))
            flowing = node_live[0]
            if cell % cells == 0 and cell and flowing:
                live.add(id(blocks[cell // cells - 1]))
        return live, flowing

    def _live_cells(self, path: tuple) -> tuple[set, bool]:
        n = self._spec["num_cells"]
        live, pre_live = set(), {}
        for cell in reversed(range(n)):
            out_live = (
                cell == n - 1
                or pre_live.get((cell + 1, 1), False)
                or pre_live.get((cell + 2, 0), False)
            )
            used = set()
            if out_live:
                for key in self._cell_choices(path, cell):
                    if key[3] != "none":
                        used.add(key[2])
                        live.add(id(self.op_layers[self._op_index[key]]))
            for k in (0, 1):
                pre_live[(cell, k)] = k in used
                if k in used:
                    live.add(id(self.cell_layers[2 * cell + k]))
        stem_live = (
            pre_live[(0, 0)] or pre_live[(0, 1)] or pre_live.get((1, 0), False)
        )
        return live, stem_live

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
        index = self._op_index.get((cell, *key))
        if index is None:
            raise ValueError(
                "Unknown op key. Expected (cell, node, input, op) for the "
                "cell space or (cell, edge, op) for NAS-Bench-201. "
                f"Received: key={(cell, *key)!r}"
            )
        return self.op_layers[index]

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
        return _indexed().path_indices(self, self._to_path(path))

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
            idx = _indexed().sample_indices(self, self._path_seed)
            self._last_indices.assign(idx)
            return idx
        idx = _indexed().sample_fair_indices(self, self._path_seed)
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
            return _indexed().indices_path(self, idx)
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
            return [_indexed().indices_path(self, row) for row in idx]
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
        for layer in self.stem:
            x = use(layer)(x, training=training)
        if self.search_space == "cell":
            x = self._forward_cells(x, path, training, use)
        else:
            x = self._forward_nb201(x, path, training, use)
        for layer in self.head:
            x = use(layer)(x, training=training)
        return x

    def _op(self, key, use):
        return use(self.op_layers[self._op_index[key]])

    def _forward_cells(self, x, path, training, use):
        s0 = s1 = x
        for cell in range(self._spec["num_cells"]):
            pre0, pre1 = self.cell_layers[2 * cell : 2 * cell + 2]
            states = [
                use(pre0)(s0, training=training),
                use(pre1)(s1, training=training),
            ]
            choices = self._cell_choices(path, cell)
            for node in range(self._spec["num_nodes"]):
                total = None
                for key in choices[2 * node : 2 * node + 2]:
                    h = self._op(key, use)(states[key[2]], training=training)
                    total = h if total is None else total + h
                states.append(total)
            s0, s1 = s1, ops.concatenate(states[2:], axis=-1)
        return s1

    def _forward_nb201(self, x, path, training, use):
        blocks = iter(self.cell_layers)
        cell = 0
        for stage in range(3):
            if stage:
                x = use(next(blocks))(x, training=training)
            for _ in range(self._spec["cells_per_stage"]):
                nodes = [x]
                choices = self._cell_choices(path, cell)
                for to in (1, 2, 3):
                    total = None
                    for key in choices:
                        edge_to, src = NB201_EDGES[key[1]]
                        if edge_to != to:
                            continue
                        h = self._op(key, use)(nodes[src], training=training)
                        total = h if total is None else total + h
                    nodes.append(total)
                x = nodes[3]
                cell += 1
        return x

    def call(self, inputs, training=None, path=None):
        if path is None and getattr(self, "_sampling_call", False):
            # Inside the compiled JAX step (see `_one_shot_jax`).
            return _backend_module().compiled_call(self, inputs, training)
        path = self._active if path is None else path
        if not isinstance(path, tuple):
            path = self._to_path(path)
        return self._forward(inputs, path, training, _identity)

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
            step: `"compiled"`: the path is an integer tensor drawn
                uniformly inside the step (SPOS) and every edge dispatches
                with a real branch (`keras.ops.switch`), so `fit` runs one
                traced (TensorFlow) or jitted (JAX) step for all paths and
                each step costs about one path (`m` paths, run one after
                the other in a loop traced once, with `sampler="fair"`).
                `"eager"`: the path is a Python choice (required by a
                Python `sampler`, e.g. the ENAS controller), the step runs
                eagerly. `"auto"` (default): compiled when `sampler` is
                None, "uniform" or "fair", else eager; decided again at
                every `fit`. Both update exactly the sampled paths'
                variables and optimizer slots.
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
        if not self.optimizer.built:
            self.optimizer.build(self.trainable_variables)

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
        if mode != self._train_mode:
            self._train_mode = mode
            self.train_function = None
            self.run_eagerly = mode == "eager"
            jit = keras.backend.backend() == "jax"
            if self._jit is not None:
                jit = bool(self._jit)
            self.jit_compile = mode == "compiled" and jit
            # Keras' test/predict functions follow run_eagerly too.
            self.test_function = self.predict_function = None
        optimizer = getattr(self, "optimizer", None)
        if optimizer is not None and not optimizer.built:
            optimizer.build(self.trainable_variables)
        return super().make_train_function(force=force)

    def _train_on_path(self, data) -> dict[str, Any]:
        """The eager step: one batch on a Python-sampled path."""
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        values = self._next_training_values()
        path = self._to_path(values)
        if not self.optimizer.built:
            self.optimizer.build(self.trainable_variables)
        loss, y_pred = _backend_module().apply_path_gradients(
            self, x, y, sample_weight, path
        )
        self._loss_tracker.update_state(loss, sample_weight=ops.shape(y)[0])
        return self.compute_metrics(x, y, y_pred, sample_weight=sample_weight)

    def train_step(self, *args):
        """One batch on one sampled path (`(data)` on TF, `(state, data)` on
        JAX), with the compiled or the eager step (see `compile`)."""
        return _backend_module().train_step(self, *args)

    # ------------------------------------------------------------------
    # Evaluation with inherited weights.
    # ------------------------------------------------------------------

    def _batch_norms(self) -> list:
        """Every batch-norm layer of the supernet."""
        return [
            sub
            for sub in self._flatten_layers(include_self=False)
            if isinstance(sub, keras.layers.BatchNormalization)
        ]

    def _recalibrate(self, path, train_data, num_batches, batch_size):
        """Re-estimates the path's BN statistics; returns what to restore.

        The statistics become the exact mean and (biased) variance of the
        `num_batches * batch_size` training images, computed in one
        training-mode pass with momentum 0. All batch norms are saved, so
        `_restore` undoes every change (also of layers off the path).
        """
        if train_data is None:
            raise ValueError(
                "Expected `train_data` (x or (x, y) arrays, or an iterable "
                "of batches) when `bn_recalibration_batches` > 0. "
                "Received: train_data=None"
            )
        x = np.concatenate(
            [
                ops.convert_to_numpy(b)
                for b in _batches(train_data, num_batches, batch_size)
            ],
            axis=0,
        )
        bns = self._batch_norms()
        saved = [
            (
                bn,
                bn.momentum,
                ops.convert_to_numpy(bn.moving_mean),
                ops.convert_to_numpy(bn.moving_variance),
            )
            for bn in bns
        ]
        for bn in bns:
            bn.momentum = 0.0
        try:
            run = self._indexed_function(True)
            if run is None:
                self._forward(x, path, True, _identity)
            else:
                run(x, self.path_indices(path))
        finally:
            for bn, momentum, *_ in saved:
                bn.momentum = momentum
        return saved

    def _indexed_function(self, training: bool):
        """The backend's compiled `fn(x, idx)`; None with `step="eager"`."""
        if self._step == "eager":
            return None
        make = getattr(_backend_module(), "indexed_function", None)
        return None if make is None else make(self, training)

    @staticmethod
    def _restore(saved) -> None:
        for bn, momentum, mean, var in saved:
            bn.momentum = momentum
            bn.moving_mean.assign(mean)
            bn.moving_variance.assign(var)

    def predict_path(self, values: Any, x, batch_size: int = 256):
        """Class probabilities of a path with the current shared weights."""
        path = self._to_path(values)
        return self._predict(path, x, batch_size)

    def _predict(self, path, x, batch_size):
        x = np.asarray(x)
        run = self._indexed_function(False)
        if run is None:
            use = _backend_module().layer_caller(self)

            def run(xb, _):
                return self._forward(xb, path, False, use)

            idx = None
        else:
            idx = self.path_indices(path)
        out = [
            ops.convert_to_numpy(run(x[i : i + batch_size], idx))
            for i in range(0, len(x), batch_size)
        ]
        return np.concatenate(out, axis=0)

    def evaluate_path(
        self,
        values: Any,
        x_val,
        y_val,
        bn_recalibration_batches: int = 0,
        train_data: Any = None,
        batch_size: int = 256,
    ) -> dict[str, float]:
        """Scores one path with inherited (shared) weights.

        Only the path's layers run; nothing is rebuilt. With
        `bn_recalibration_batches=k`, the path's batch-norm statistics are
        first re-estimated (exact mean and variance of `k * batch_size`
        images of `train_data`, in one pass) as in SPOS; they are restored
        afterwards, so evaluating a path has no side effect on the
        supernet. Unless the supernet was compiled with `step="eager"`,
        the path runs in one traced (TensorFlow) or jitted (JAX) function
        shared by all paths (branch dispatch on `path_indices`): scoring
        many architectures costs one trace, then about one forward pass
        each.

        Args:
            values: hyperparameter values, `HyperParameters`, `Genotype`,
                `NasBench201Genotype` or NAS-Bench-201 cell string.
            x_val: validation images (array).
            y_val: integer labels.
            bn_recalibration_batches: number of training batches used to
                recalibrate batch norm (0: keep the running statistics).
            train_data: training `x`, `(x, y)` or an iterable of batches.
            batch_size: batch size of recalibration and evaluation.

        Returns:
            `{"accuracy": float, "loss": float}`.
        """
        path = self._to_path(values)
        saved = None
        if bn_recalibration_batches:
            saved = self._recalibrate(
                path, train_data, int(bn_recalibration_batches), batch_size
            )
        try:
            probs = self._predict(path, x_val, batch_size)
        finally:
            if saved is not None:
                self._restore(saved)
        y = np.asarray(y_val).reshape(-1).astype(int)
        p = np.clip(probs[np.arange(len(y)), y], 1e-7, 1.0)
        return {
            "accuracy": float(np.mean(np.argmax(probs, axis=-1) == y)),
            "loss": float(-np.mean(np.log(p))),
        }

    def extract(
        self,
        values: Any,
        bn_recalibration_batches: int = 0,
        train_data: Any = None,
        batch_size: int = 256,
    ) -> keras.Model:
        """Returns the path as a standalone functional model.

        The model holds copies of the path's layers with copied weights (and
        batch-norm statistics, recalibrated first when
        `bn_recalibration_batches` > 0), so `model.predict` equals
        `predict_path` and training it leaves the supernet untouched. It is
        compiled like the house models (sparse categorical cross-entropy,
        accuracy) with a fresh optimizer of the supernet's kind.

        Args:
            values: the path (see `evaluate_path`).
            bn_recalibration_batches: as in `evaluate_path`.
            train_data: as in `evaluate_path`.
            batch_size: batch size of the recalibration.

        Returns:
            A compiled `keras.Model`.
        """
        path = self._to_path(values)
        saved = None
        if bn_recalibration_batches:
            saved = self._recalibrate(
                path, train_data, int(bn_recalibration_batches), batch_size
            )
        try:
            clones: dict[int, tuple] = {}

            def use(layer):
                if id(layer) not in clones:
                    clone = layer.__class__.from_config(layer.get_config())
                    clones[id(layer)] = (layer, clone)
                return clones[id(layer)][1]

            inputs = keras.Input(self._spec["input_shape"])
            outputs = self._forward(inputs, path, None, use)
            model = keras.Model(inputs, outputs, name="one_shot_child")
            for layer, clone in clones.values():
                clone.set_weights(layer.get_weights())
        finally:
            if saved is not None:
                self._restore(saved)
        optimizer = "adam"
        if getattr(self, "optimizer", None) is not None:
            config = self.optimizer.get_config()
            optimizer = self.optimizer.__class__.from_config(config)
        model.compile(
            optimizer=optimizer,
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )
        return model

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
        from keras_nas.tuners._base import rng_to_json

        super().save_own_variables(store)
        store[_SEED_KEY] = self._path_seed.state
        state = json.dumps(rng_to_json(self._rng)).encode()
        store[_RNG_KEY] = np.frombuffer(state, dtype="uint8")

    def load_own_variables(self, store) -> None:
        from keras_nas.tuners._base import rng_from_json

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


def _identity(layer):
    return layer


def _indexed():
    return importlib.import_module("keras_nas.supernet._one_shot_indexed")


def _batches(data: Any, num_batches: int, batch_size: int) -> Iterable:
    """The first `num_batches` input batches of `data` (fixed order)."""
    if (
        isinstance(data, (tuple, list))
        and len(data) in (2, 3)
        and hasattr(data[0], "shape")
    ):
        data = data[0]
    if hasattr(data, "shape"):
        x = np.asarray(data)
        order = np.random.default_rng(0).permutation(len(x))
        for b in range(num_batches):
            idx = order[b * batch_size : (b + 1) * batch_size]
            if len(idx) == 0:
                return
            yield x[idx]
        return
    for b, batch in enumerate(data):
        if b >= num_batches:
            return
        if isinstance(batch, (tuple, list)):
            batch = batch[0]
        yield ops.convert_to_tensor(np.asarray(batch))
