"""DARTS: differentiable architecture search as a Keras model.

Implements the search phase of Liu, Simonyan and Yang, "DARTS:
Differentiable Architecture Search" (ICLR 2019). Every edge of the search
cell is a `MixedOp`: the softmax of an architecture vector `alpha` weights
the sum of all candidate operations. `DartsSupernet` shares one `alpha` matrix
among all normal cells and one among all reduction cells, keeps them apart
from the network weights, and trains both with a plain `fit`: each step
first updates `alpha` on a validation batch (first order, or second order
with the unrolled gradient of the paper's eq. 7-8), then the weights on a
training batch. The gradient code of each backend lives in
`_darts_tensorflow.py` and `_darts_jax.py` (with the numerics they share in
`_darts_math.py`); the layers in `darts_cells.py`, the two optimizers in
`bilevel.py`, the derivation of a genotype in `darts_derive.py` and the
search data in `darts_data.py` (all importable from here, as before). The
GDAS, ProxylessNAS and PC-DARTS relaxations (`relaxation=`,
`partial_channels=`) are in `relaxations.py`, the NAS-Bench-201 cell
space (`search_space="nb201"`) in `darts_nb201.py`.

Data: each element given to `fit` is `((x_train, y_train), (x_val, y_val))`;
`search_data` builds such a dataset from two arrays or two `tf.data`
datasets.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import keras
import numpy as np

from keras_nas._backend import backend_module, variable_creation_scope
from keras_nas._gc import deferred_collection, first_call_deferred
from keras_nas._validation import (
    MAX_CELLS,
    MAX_FILTERS,
    MAX_NODES,
    check_number,
    check_positive_int,
)
from keras_nas.blocks import ops as nas_ops
from keras_nas.blocks import registry
from keras_nas.spaces.cell_space import CellSearchSpace
from keras_nas.spaces.nas_bench_201_space import (
    NasBench201SearchSpace,
)
from keras_nas.supernet import _darts_graph, darts_nb201, relaxations
from keras_nas.supernet.bilevel import (
    BilevelOptimizer,
    add_metric_trackers,
    as_bilevel,
    default_arch_optimizer,
    default_weights_optimizer,
    is_arch,
)
from keras_nas.supernet.darts_cells import (
    MixedOp,
    SearchCell,
    check_ops,
    num_edges,
)
from keras_nas.supernet.darts_data import SearchData, search_data
from keras_nas.supernet.darts_derive import (
    GenotypeDerivation,
    derive_genotype,
)

# The layers, optimizers, data and derivation of a DARTS search are defined
# in their own modules and importable from here, as before.
__all__ = [
    "MixedOp",
    "SearchCell",
    "DartsSupernet",
    "BilevelOptimizer",
    "SearchData",
    "search_data",
    "derive_genotype",
    "num_edges",
    "default_weights_optimizer",
    "default_arch_optimizer",
]

_PACKAGE = "keras_nas"


def _non_negative(name: str, value: Any) -> float:
    return check_number(name, value, 0.0, math.inf, high_open=True)


def step_module():
    """Returns the module with the gradient steps of the current backend."""
    return backend_module("keras_nas.supernet", "_darts", "DARTS")


@keras.saving.register_keras_serializable(package=_PACKAGE)
class DartsSupernet(GenotypeDerivation, keras.Model):
    """The DARTS search network, trained with `fit` (Liu et al., ICLR 2019).

    A stem (3x3 conv with `3 * filters` channels and batch norm), `num_cells`
    `SearchCell`s with reduction cells at 1/3 and 2/3 of the depth (filters
    doubled there), global average pooling and a linear classifier that
    returns **logits**. All normal cells share the architecture variable
    `alpha_normal` and all reduction cells `alpha_reduce`, both of shape
    `(num_edges(num_nodes), len(ops))`, initialized as in the paper
    (`1e-3 * N(0, 1)`). They are listed by `arch_variables`, the network
    weights by `weight_variables`, and each group has its own optimizer
    (see `compile`).

    Each training step takes `((x_train, y_train), (x_val, y_val))`:

    1. `alpha` takes one step on the validation loss: with `order=1` its
       gradient at the current weights; with `order=2` the gradient of the
       validation loss at the unrolled weights `w' = w - xi grad_w
       L_train(w, alpha)`, with the paper's finite-difference Hessian-vector
       product (eq. 7-8, `epsilon = 0.01 / ||grad_w' L_val||`, `xi` the
       current weights learning rate);
    2. the weights take one step on the training loss (gradient clipped at
       global norm `grad_clip`, then L2 weight decay `weight_decay`).

    Memory: every op of every edge is evaluated, as in the DARTS code
    (`none` is skipped: it adds zeros). The passes of a step run one after
    another with one non-persistent tape (TensorFlow) or one `jax.grad`
    each, so the peak is that of one forward/backward pass plus at most
    three copies of the weights (`w'`, `w +- eps v`) for `order=2`. Each
    edge keeps its op outputs for the backward pass, not their weighted
    copies or partial sums (a custom gradient; TensorFlow's eager tape kept
    those too). Paper configuration (16 filters, 8 cells, batch 64,
    32x32x3), one forward/backward pass: ~6.7 GiB of activations by a hand
    count of what the backward pass needs (the DARTS code, which saves about
    the same, searched at this size on one 11 GB GTX 1080 Ti); measured
    peak RSS on CPU (benchmarks/RESULTS.md): TensorFlow graph mode 9.2 /
    11.3 GiB (plain / first-order step), JAX 11.9 / 13.7 GiB, TensorFlow
    eager 12.8 GiB (all three steps). GDAS and PC-DARTS (K=4), paper
    network at batch 16, eager TensorFlow: 0.52x and 0.45x of the
    softmax's step memory, 0.50x and 0.84x of its CPU time per step.

    `order=0` freezes `alpha` and only trains the weights (a baseline or a
    warm-up). Logs: `loss`, `accuracy` (training batch), `arch_loss`,
    `arch_accuracy` (validation batch). `evaluate` takes plain `(x, y)`.

    Args:
        input_shape: shape of one image, `(height, width, channels)`.
        num_classes: number of classes.
        filters: channels of each node in the first cells (C in the paper).
        num_cells: number of cells (8 in the paper's search).
        num_nodes: intermediate nodes per cell.
        ops: candidate op names; `none` is allowed and never derived.
        order: 1 (first order), 2 (second order) or 0 (`alpha` frozen).
        weight_decay: L2 decay of the network weights.
        arch_weight_decay: L2 decay of `alpha`.
        grad_clip: global-norm clipping of the weight gradients (None: off).
        stem_multiplier: the stem has `stem_multiplier * filters` channels.
        seed: seed of the initialization of `alpha`.
        relaxation: "softmax" (DARTS, the default) or "gumbel" (GDAS, Dong
            and Yang, CVPR 2019: each training forward draws one op per
            edge from the hard Gumbel-softmax of `alpha`, shared by the
            cells of a kind, runs only that op and passes the gradient
            straight through; `training=False` runs the argmax op). The
            temperature (variable `gumbel_tau`) falls linearly from
            `tau_max` to `tau_min` over `anneal_steps` steps of the weights
            optimizer, so a saved and resumed search continues the anneal.
            See `keras_nas.supernet.relaxations`. Or "binary"
            (ProxylessNAS, Cai et al., ICLR 2019): one sampled op per edge
            in the weights pass, two gated ones with the paper's estimator
            in the `alpha` pass (`call(..., arch_pass=True)`); `order` 0
            or 1; see `relaxations.paired_edge`.
        partial_channels: K of PC-DARTS (Xu et al., ICLR 2020): every edge
            mixes 1/K of its channels, the rest bypass it, the channels are
            shuffled, and each node weighs its incoming edges by the
            softmax of the edge-normalisation variables `beta_normal`
            (`beta_reduce`), trained with `alpha` and used by
            `derive_genotype`. 1 (default): off.
        search_space: "darts" (the DARTS cell, the default) or "nb201"
            (NAS-Bench-201's cell and skeleton: `num_cells` in three
            stages, one `alpha` of shape `(6, len(ops))`, ops default
            `NB201_OPS`; see `darts_nb201`).
        tau_max: the initial Gumbel temperature (GDAS: 10).
        tau_min: the final Gumbel temperature (GDAS: 0.1).
        anneal_steps: steps of the anneal; None: `compile`'s
            `decay_steps`.
        ops_version: 2 (default: the DARTS code's ops, stem batch norm
            with momentum 0.1 (PyTorch's convention) and epsilon 1e-5, and
            PyTorch's default initialization of the stem and classifier) or
            1 (keras-nas before: Keras' batch norm defaults in the stem;
            files saved then load as 1). See `MixedOp`,
            `keras_nas.blocks.ops`.
        **kwargs: `keras.Model` keyword arguments, such as `name`, or
            `dtype`: a mixed-precision policy ("mixed_bfloat16",
            "mixed_float16") applies to every layer but the classifier,
            which returns float32 logits; variables stay float32 (no
            loss scaling: prefer "mixed_bfloat16").

    Example:

    >>> model = DartsSupernet((16, 16, 3), 10, filters=4, num_cells=2)
    >>> model.compile(decay_steps=100)  # the paper's optimizers
    >>> data = search_data((x, y), (xv, yv), 16)  # doctest: +SKIP
    >>> model.fit(data, epochs=2)  # doctest: +SKIP
    >>> model.derive_genotype()  # doctest: +SKIP
    """

    # Keras builds the state before the step is traced (no second trace;
    # keras_nas/_distribute_tensorflow.py).
    BUILD_BEFORE_TRACE = True

    def __init__(
        self,
        input_shape: Sequence[int],
        num_classes: int,
        filters: int = 16,
        num_cells: int = 8,
        num_nodes: int = 4,
        ops: Sequence[str] | None = None,
        order: int = 1,
        weight_decay: float = 3e-4,
        arch_weight_decay: float = 1e-3,
        grad_clip: float | None = 5.0,
        stem_multiplier: int = 3,
        seed: int | None = None,
        ops_version: int | None = None,
        relaxation: str = "softmax",
        partial_channels: int = 1,
        search_space: str = "darts",
        tau_max: float = 10.0,
        tau_min: float = 0.1,
        anneal_steps: int | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.ops_version = nas_ops._check_version(ops_version)
        self._steps = step_module()
        if (
            isinstance(input_shape, (str, bytes))
            or not isinstance(input_shape, Sequence)
            or len(input_shape) != 3
            or not all(
                isinstance(d, (int, np.integer)) and d > 0 for d in input_shape
            )
        ):
            raise ValueError(
                "Expected `input_shape` to be (height, width, channels) of "
                f"positive ints. Received: input_shape={input_shape!r}"
            )
        self.image_shape = tuple(int(d) for d in input_shape)
        self.num_classes = check_positive_int(
            "num_classes", num_classes, minimum=2
        )
        self.filters = check_positive_int("filters", filters, 2, MAX_FILTERS)
        self.num_cells = check_positive_int(
            "num_cells", num_cells, 1, MAX_CELLS
        )
        self.num_nodes = check_positive_int(
            "num_nodes", num_nodes, 1, MAX_NODES
        )
        if search_space not in ("darts", "nb201"):
            raise ValueError(
                "Expected `search_space` to be 'darts' or 'nb201'. "
                f"Received: search_space={search_space!r}"
            )
        self.search_space = search_space
        if ops is None:
            nb201 = search_space == "nb201"
            ops = registry.NB201_OPS if nb201 else registry.DARTS_OPS
        self.candidate_ops = check_ops(ops)
        self.relaxation = relaxations.check_relaxation(relaxation)
        self.partial_channels = relaxations.check_partial_channels(
            partial_channels, self.filters
        )
        self.tau_max = _non_negative("tau_max", tau_max)
        self.tau_min = _non_negative("tau_min", tau_min)
        self.anneal_steps = (
            None
            if anneal_steps is None
            else check_positive_int("anneal_steps", anneal_steps)
        )
        if order not in (0, 1, 2) or isinstance(order, bool):
            raise ValueError(
                f"Expected `order` to be 0, 1 or 2. Received: order={order!r}"
            )
        self.order = int(order)
        if self.relaxation == "binary" and self.order == 2:
            raise ValueError(
                "Expected `order` 0 or 1 with relaxation='binary' (the "
                "ProxylessNAS estimator is first order). Received: order=2"
            )
        self.weight_decay = _non_negative("weight_decay", weight_decay)
        self.arch_weight_decay = _non_negative(
            "arch_weight_decay", arch_weight_decay
        )
        self.grad_clip = (
            None if grad_clip is None else _non_negative("grad_clip", grad_clip)
        )
        self.stem_multiplier = check_positive_int(
            "stem_multiplier", stem_multiplier
        )
        self.seed = seed

        # Sublayers take the model's dtype policy (e.g. `dtype=
        # "mixed_bfloat16"`): Keras passes it to no sublayer itself.
        previous_policy = keras.config.dtype_policy()
        keras.config.set_dtype_policy(self.dtype_policy)
        # The layers made and built without automatic garbage collections
        # (keras_nas/_gc.py).
        with deferred_collection():
            try:
                with nas_ops._version_scope(self.ops_version):
                    if self.search_space == "nb201":
                        darts_nb201.make_layers(self)
                    else:
                        self._make_layers()
                    self._make_classifier()
            finally:
                keras.config.set_dtype_policy(previous_policy)
            add_metric_trackers(self)
            self.build((None,) + self.image_shape)

    @classmethod
    def from_space(cls, space: Any, **kwargs) -> DartsSupernet:
        """The supernet of a search space's cells.

        Args:
            space: a `NasBench201SearchSpace` (`search_space="nb201"`, its
                input shape, classes, `filters` and `3 * cells_per_stage`
                cells, `NB201_OPS`) or a `CellSearchSpace` (its input
                shape, classes, nodes and ops plus `none`, its smallest
                `filters` and `num_cells`).
            **kwargs: other arguments of `DartsSupernet` (e.g.
                `relaxation="gumbel"`, `partial_channels=4`); they override
                the space's.

        Example:

        >>> space = NasBench201SearchSpace((8, 8, 1), 10, filters=4,
        ...                                cells_per_stage=1)
        >>> net = DartsSupernet.from_space(space, relaxation="gumbel")
        >>> net.derive_genotype().ops  # doctest: +SKIP
        """
        if isinstance(space, NasBench201SearchSpace):
            args = dict(
                filters=space.filters,
                num_cells=3 * space.cells_per_stage,
                search_space="nb201",
            )
        elif isinstance(space, CellSearchSpace):
            ops = tuple(space.ops)
            args = dict(
                filters=min(space.filters),
                num_cells=min(space.num_cells),
                num_nodes=space.num_nodes,
                ops=ops if "none" in ops else ("none", *ops),
            )
        else:
            raise ValueError(
                "Expected `space` to be a NasBench201SearchSpace or a "
                f"CellSearchSpace. Received: space={type(space).__name__}"
            )
        args.update(kwargs)
        return cls(space.input_shape, space.num_classes, **args)

    def _make_layers(self):
        legacy = self.ops_version < 2
        self.stem_conv = keras.layers.Conv2D(
            self.stem_multiplier * self.filters,
            3,
            padding="same",
            use_bias=False,
            kernel_initializer=nas_ops._kernel_init(self.ops_version),
            name="stem_conv",
        )
        if legacy:
            self.stem_bn = keras.layers.BatchNormalization(name="stem_bn")
        else:
            self.stem_bn = nas_ops._batch_norm(name="stem_bn")
        reductions = {self.num_cells // 3, 2 * self.num_cells // 3}
        if self.num_cells < 3:
            reductions = {self.num_cells - 1} if self.num_cells > 1 else set()
        self.reduction_cells = tuple(sorted(reductions))
        self.cells = []
        c, reduction_prev = self.filters, False
        for i in range(self.num_cells):
            reduction = i in reductions
            if reduction:
                c *= 2
            self.cells.append(
                SearchCell(
                    c,
                    reduction=reduction,
                    reduction_prev=reduction_prev,
                    num_nodes=self.num_nodes,
                    ops=self.candidate_ops,
                    relaxation=self.relaxation,
                    partial_channels=self.partial_channels,
                    name=f"cell_{i}",
                )
            )
            reduction_prev = reduction
        self.pool = keras.layers.GlobalAveragePooling2D(name="pool")

    def _make_classifier(self):
        # Logits in full precision under mixed-precision policies.
        mixed = self.dtype_policy.compute_dtype in ("float16", "bfloat16")
        self.classifier = keras.layers.Dense(
            self.num_classes,
            kernel_initializer=nas_ops._kernel_init(self.ops_version),
            dtype="float32" if mixed else self.dtype_policy,
            name="classifier",
        )

    # ----------------------------------------------------------- building

    @property
    def _kinds(self) -> int:
        """1 (nb201: one shared cell) or 2 (normal and reduction)."""
        return 1 if self.search_space == "nb201" else 2

    def _edges(self) -> int:
        if self.search_space == "nb201":
            return len(darts_nb201.NB201_EDGES)
        return num_edges(self.num_nodes)

    def _node_sizes(self) -> tuple[int, ...]:
        if self.search_space == "nb201":
            return darts_nb201.NODE_SIZES
        return tuple(i + 2 for i in range(self.num_nodes))

    def build(self, input_shape):
        if self.built:
            return
        with variable_creation_scope():
            self._build_variables()
        self.built = True

    def _build_variables(self):
        relaxations.add_arch_state(self)
        shape = (None,) + self.image_shape
        nas_ops._build(self.stem_conv, shape)
        shape = self.stem_conv.compute_output_shape(shape)
        nas_ops._build(self.stem_bn, shape)
        if self.search_space == "nb201":
            s1 = darts_nb201.build_cells(self, shape)
        else:
            s0 = s1 = shape
            for cell in self.cells:
                cell.build([s0, s1])
                s0, s1 = s1, cell.compute_output_shape([s0, s1])
        if self.ops_version >= 2:  # PyTorch's nn.Linear bias
            bound = 1.0 / math.sqrt(s1[-1])
            self.classifier.bias_initializer = keras.initializers.RandomUniform(
                -bound, bound
            )
        nas_ops._build(self.classifier, (None, s1[-1]))

    def call(self, inputs, training=None, arch_pass=False):
        # arch_pass: the alpha pass' forward (binary: two gated paths).
        weights = relaxations.cell_weights(self, training, arch_pass)
        # JAX's piecewise step: each stem layer one compiled piece, not
        # ~50 ops compiled one by one (_darts_graph.call_layer).
        x = _darts_graph.call_layer(
            self.stem_bn,
            _darts_graph.call_layer(self.stem_conv, inputs, training),
            training,
        )
        if self.search_space == "nb201":
            w, b = weights[False]
            return self.classifier(darts_nb201.forward(self, x, w, b, training))
        s0 = s1 = x
        for cell in self.cells:
            w, b = weights[cell.reduction]
            s0, s1 = s1, cell([s0, s1], w, training=training, edge_weights=b)
        return self.classifier(self.pool(s1))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.num_classes)

    @property
    def metrics(self):
        return [
            self.loss_tracker,
            self.accuracy_tracker,
            self.arch_loss_tracker,
            self.arch_accuracy_tracker,
        ]

    @property
    def arch_variables(self) -> list:
        """`[alpha_normal, alpha_reduce]` (only `alpha_normal` for nb201),
        then the PC-DARTS betas if `partial_channels > 1`."""
        return [v for v in self.trainable_variables if is_arch(v)]

    @property
    def weight_variables(self) -> list:
        """The trainable network weights (every trainable but `alpha`)."""
        return [v for v in self.trainable_variables if not is_arch(v)]

    # ---------------------------------------------------------- training

    def compile(
        self,
        optimizer: Any = None,
        arch_optimizer: Any = None,
        *,
        decay_steps: int | None = None,
        steps_per_epoch: int | None = None,
        jit_compile: Any = "auto",
        steps_per_execution: int = 1,
        run_eagerly: bool = False,
        **kwargs,
    ) -> None:
        """Configures the two optimizers (defaults: the paper's).

        Args:
            optimizer: optimizer of the network weights. Defaults to
                `default_weights_optimizer(decay_steps, steps_per_epoch=
                steps_per_epoch)`: SGD (PyTorch's rule), momentum 0.9,
                learning rate 0.025 with cosine decay to 0.001 over
                `decay_steps` steps (constant without it).
            arch_optimizer: optimizer of `alpha`. Defaults to Adam
                (PyTorch's rule) with learning rate 3e-4, betas (0.5,
                0.999) and epsilon 1e-8.
            decay_steps: total search steps, for the default schedule
                (and the Gumbel anneal if `anneal_steps` is None).
            steps_per_epoch: if given, the default schedule changes the
                learning rate once per epoch of this many steps, as in the
                DARTS code; otherwise every step.
            jit_compile: as in `keras.Model.compile` (XLA on TensorFlow;
                JAX compiles unless False: the step in separately jitted
                pieces, the whole step under a `keras.distribution`).
            steps_per_execution: as in `keras.Model.compile`.
            run_eagerly: as in `keras.Model.compile`. On TensorFlow the
                eager step reaches its first step ~3x sooner than the
                traced one (no graph to trace and optimize) and then runs
                each step ~1.8x slower (micro configuration on a CPU,
                benchmarks/RESULTS.md): for short runs and debugging.
            **kwargs: accepted for `compile_from_config`; `loss` and
                `metrics` are ignored (the supernet computes the
                cross-entropy of its logits and the accuracy itself).
        """
        for key in ("loss", "metrics", "loss_weights", "weighted_metrics"):
            kwargs.pop(key, None)
        if kwargs:
            raise ValueError(
                "Unexpected arguments to DartsSupernet.compile. "
                f"Received: {sorted(kwargs)}"
            )
        if self.relaxation == "gumbel" and self.anneal_steps is None:
            if decay_steps is None:
                raise ValueError(
                    "Expected `anneal_steps` (in the constructor) or "
                    "`decay_steps` with relaxation='gumbel': the number of "
                    "search steps over which the temperature falls. "
                    "Received: anneal_steps=None, decay_steps=None"
                )
            self.anneal_steps = check_positive_int("decay_steps", decay_steps)
        bilevel = as_bilevel(
            optimizer,
            arch_optimizer,
            lambda: default_weights_optimizer(
                decay_steps, steps_per_epoch=steps_per_epoch
            ),
        )
        super().compile(
            optimizer=bilevel,
            jit_compile=jit_compile,
            steps_per_execution=steps_per_execution,
            run_eagerly=run_eagerly,
            auto_scale_loss=False,
        )

    def get_compile_config(self):
        if not self.compiled:
            return None
        return {
            "optimizer": keras.optimizers.serialize(self.optimizer),
            "jit_compile": bool(self.jit_compile),
            "steps_per_execution": int(self.steps_per_execution),
        }

    def compile_from_config(self, config):
        optimizer = keras.optimizers.deserialize(config["optimizer"])
        self.compile(
            optimizer=optimizer,
            jit_compile=config.get("jit_compile", "auto"),
            steps_per_execution=config.get("steps_per_execution", 1),
        )
        if self.built:
            self.optimizer.build(self.trainable_variables)

    def temperature(self, step: Any = None) -> Any:
        """The Gumbel temperature at weights-optimizer step `step` (default:
        the optimizer's `iterations`); `train_step` sets `gumbel_tau` to it
        before each step."""
        if step is None:
            step = self.optimizer.weights_optimizer.iterations
        return relaxations.temperature(
            step, self.anneal_steps, self.tau_max, self.tau_min
        )

    def make_train_function(self, force=False):
        # JAX: compiled piecewise (_darts_jax.py); TensorFlow: Keras'.
        make = getattr(self._steps, "make_train_function", None)
        whole = super().make_train_function
        if make:
            make(self, force, whole)
        else:
            whole(force)
        # Its first call traces or compiles the step without automatic
        # garbage collections (keras_nas/_gc.py).
        self.train_function = first_call_deferred(self.train_function)
        return self.train_function

    def make_test_function(self, force=False):
        make = getattr(self._steps, "make_test_function", None)
        whole = super().make_test_function
        return make(self, force, whole) if make else whole(force)

    def train_step(self, *args):
        return self._steps.train_step(self, *args)

    def test_step(self, *args):
        return self._steps.test_step(self, *args)

    def arch_gradients(self, train_batch, val_batch) -> list[np.ndarray]:
        """The gradients `alpha` would get from one step, as numpy arrays.

        Uses `order` (1 or 2) and the current weights and learning rate;
        nothing is updated except batch-norm moving statistics (TensorFlow).
        The architecture weight decay is not included.

        Args:
            train_batch: `(x_train, y_train)`.
            val_batch: `(x_val, y_val)`.
        """
        if not self.compiled:
            self.compile()
        self.optimizer.build(self.trainable_variables)
        grads = self._steps.arch_gradients(self, train_batch, val_batch)
        return [np.asarray(keras.ops.convert_to_numpy(g)) for g in grads]

    def get_config(self):
        config = super().get_config()
        config.update(
            input_shape=list(self.image_shape),
            num_classes=self.num_classes,
            filters=self.filters,
            num_cells=self.num_cells,
            num_nodes=self.num_nodes,
            ops=list(self.candidate_ops),
            order=self.order,
            weight_decay=self.weight_decay,
            arch_weight_decay=self.arch_weight_decay,
            grad_clip=self.grad_clip,
            stem_multiplier=self.stem_multiplier,
            seed=self.seed,
            ops_version=self.ops_version,
            relaxation=self.relaxation,
            partial_channels=self.partial_channels,
            search_space=self.search_space,
            tau_max=self.tau_max,
            tau_min=self.tau_min,
            anneal_steps=self.anneal_steps,
        )
        return config

    from_config = nas_ops._legacy_from_config(keras.Model)
