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
`_darts_tensorflow.py` and `_darts_jax.py`.

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
from keras import ops

from keras_nas._backend import backend_module
from keras_nas._validation import (
    MAX_CELLS,
    MAX_FILTERS,
    MAX_NODES,
    check_positive_int,
)
from keras_nas.blocks import ops as nas_ops
from keras_nas.blocks import registry
from keras_nas.blocks.genotypes import Genotype
from keras_nas.supernet import _darts_graph
from keras_nas.supernet.torch_style import (
    EpochCosineDecay,
    TorchAdam,
    TorchSGD,
)

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
_ARCH_NAMES = ("alpha_normal", "alpha_reduce")


def step_module():
    """Returns the module with the gradient steps of the current backend."""
    return backend_module("keras_nas.supernet", "_darts", "DARTS")


def _check_float(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(
            f"Expected `{name}` to be a non-negative number. "
            f"Received: {name}={value!r}"
        )
    if value < 0 or not math.isfinite(value):
        raise ValueError(
            f"Expected `{name}` to be a non-negative number. "
            f"Received: {name}={value!r}"
        )
    return float(value)


def _check_ops(candidates: Any) -> tuple[str, ...]:
    if isinstance(candidates, str) or not isinstance(candidates, Sequence):
        raise ValueError(
            "Expected `ops` to be a sequence of op names. "
            f"Received: ops={candidates!r}"
        )
    out = tuple(candidates)
    unknown = [c for c in out if not registry.is_known_op(c)]
    if unknown or len(set(out)) != len(out):
        raise ValueError(
            "Expected `ops` to hold distinct names of "
            f"{list(registry.known_ops())}. Received: ops={candidates!r}"
        )
    if not [c for c in out if c != "none"]:
        raise ValueError(
            "Expected `ops` to hold at least one op other than 'none'. "
            f"Received: ops={candidates!r}"
        )
    return out


def num_edges(num_nodes: int) -> int:
    """Number of edges of a search cell: 2 + 3 + ... (14 for 4 nodes)."""
    return sum(i + 2 for i in range(num_nodes))


@ops.custom_gradient
def _weighted_sum(weights, *outputs):
    """`sum_k weights[k] * outputs[k]`, keeping only `outputs` for backward.

    The backward pass needs the op outputs (for the gradient of `weights`)
    and nothing else. Written as a running sum under autodiff, TensorFlow's
    eager tape would also keep every weighted copy and partial sum (the
    inputs of each multiply and add: ~3 tensors per op instead of 1);
    graph mode and XLA drop them either way (benchmarks/RESULTS.md).
    """
    # The forward ops read stopped copies: TensorFlow's eager tape records
    # the ops of a custom gradient's forward too, and would keep their
    # inputs (`grad` below is the whole derivative anyway).
    w = ops.stop_gradient(weights)
    ys = [ops.stop_gradient(y) for y in outputs]
    total = w[0] * ys[0]
    for k in range(1, len(ys)):
        total = total + w[k] * ys[k]

    def grad(*args, upstream=None):
        if upstream is None:
            (upstream,) = args
        d_weights = ops.stack([ops.sum(y * upstream) for y in outputs])
        d_outputs = [weights[k] * upstream for k in range(len(outputs))]
        return (d_weights, *d_outputs)

    return total, grad


@keras.saving.register_keras_serializable(package=_PACKAGE)
class MixedOp(keras.layers.Layer):
    """A DARTS edge: the softmax-weighted sum of every candidate op.

    `MixedOp(filters, strides, ops)(x, weights)` returns
    `sum_k weights[k] * op_k(x)` (eq. 2 of Liu et al., ICLR 2019). The ops are
    built with `affine=False`, and every op whose name contains "pool" is
    followed by a `BatchNormalization` without scale and offset, as in the
    DARTS code (`cnn/model_search.py`), so that `alpha` weighs normalized
    outputs only. `none` contributes exactly zero to the sum and to every
    gradient, so it is skipped.

    Args:
        filters: channels of the input and the output.
        strides: 1, or 2 on the edges from a reduction cell's inputs.
        ops: candidate op names (see `keras_nas.blocks.known_ops()`).
        ops_version: 2 (default: the DARTS code's ops, with the batch norm
            after the pools) or 1 (keras-nas before: no batch norm after
            the pools; see `keras_nas.blocks.ops`).
        **kwargs: base layer keyword arguments, such as `name`.

    Example:

    >>> op = MixedOp(8, ops=("none", "skip_connect", "sep_conv_3x3"))
    >>> w = keras.ops.softmax(keras.ops.zeros((3,)))
    >>> op(keras.ops.ones((2, 6, 6, 8)), w).shape
    (2, 6, 6, 8)
    """

    def __init__(
        self,
        filters: int,
        strides: int = 1,
        ops: Sequence[str] = registry.DARTS_OPS,
        ops_version: int | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.ops_version = nas_ops._check_version(ops_version)
        self.filters = check_positive_int("filters", filters, 1, MAX_FILTERS)
        if strides not in (1, 2):
            raise ValueError(
                "Expected `strides` to be 1 or 2. "
                f"Received: strides={strides!r}"
            )
        self.strides = int(strides)
        self.ops = _check_ops(ops)
        self._active = [k for k, name in enumerate(self.ops) if name != "none"]
        with nas_ops._version_scope(self.ops_version):
            self.candidates = [
                self._candidate(self.ops[k]) for k in self._active
            ]

    def _candidate(self, name: str) -> keras.layers.Layer:
        op = nas_ops.get_op(name, self.filters, self.strides, False)
        if self.ops_version >= 2 and "pool" in name:
            op = keras.Sequential([op, nas_ops._batch_norm(affine=False)])
        return op

    def build(self, input_shape):
        for op in self.candidates:
            op.build(tuple(input_shape))

    def call(self, inputs, op_weights, training=None):
        if _darts_graph.enabled(inputs):
            # Traced: one function per kind of edge (_darts_graph.py).
            return _darts_graph.call(
                self, inputs, op_weights, training, MixedOp._call_ops
            )
        return self._call_ops(inputs, op_weights, training)

    def _call_ops(self, inputs, op_weights, training=None):
        weights = ops.take(ops.cast(op_weights, inputs.dtype), self._active)
        outputs = [op(inputs, training=training) for op in self.candidates]
        return _weighted_sum(weights, *outputs)

    def compute_output_shape(self, input_shape, op_weights_shape=None):
        return self.candidates[0].compute_output_shape(tuple(input_shape))

    def get_config(self):
        config = super().get_config()
        config.update(
            filters=self.filters,
            strides=self.strides,
            ops=list(self.ops),
            ops_version=self.ops_version,
        )
        return config

    from_config = nas_ops._legacy_from_config()


@keras.saving.register_keras_serializable(package=_PACKAGE)
class SearchCell(keras.layers.Layer):
    """A DARTS search cell: every node sums a `MixedOp` from each earlier node.

    Called on `[s0, s1]` (the outputs of the two previous cells) and the
    `(num_edges, len(ops))` softmax weights of its kind. Node `i` reads the
    two inputs and the nodes before it, so the cell has
    `num_edges(num_nodes)` edges (14 for 4 nodes), in the order of the DARTS
    code: node 0's edges from inputs 0, 1, then node 1's from 0, 1, 2, ...
    The output concatenates all intermediate nodes.

    Args:
        filters: channels of each node.
        reduction: whether the cell halves the spatial size (stride-2 edges
            from its inputs).
        reduction_prev: whether the previous cell was a reduction cell (then
            `s0` is reduced by a `FactorizedReduce`).
        num_nodes: number of intermediate nodes.
        ops: candidate op names.
        ops_version: 2 (default) or 1 (see `MixedOp`).
        **kwargs: base layer keyword arguments, such as `name`.
    """

    def __init__(
        self,
        filters: int,
        reduction: bool = False,
        reduction_prev: bool = False,
        num_nodes: int = 4,
        ops: Sequence[str] = registry.DARTS_OPS,
        ops_version: int | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.ops_version = nas_ops._check_version(ops_version)
        self.filters = check_positive_int("filters", filters, 2, MAX_FILTERS)
        self.reduction = bool(reduction)
        self.reduction_prev = bool(reduction_prev)
        self.num_nodes = check_positive_int(
            "num_nodes", num_nodes, 1, MAX_NODES
        )
        self.ops = _check_ops(ops)
        with nas_ops._version_scope(self.ops_version):
            self._make_layers()

    def _make_layers(self):
        if self.reduction_prev:
            self.preprocess0 = nas_ops.FactorizedReduce(
                self.filters, affine=False
            )
        else:
            self.preprocess0 = nas_ops.ReLUConvBN(self.filters, 1, affine=False)
        self.preprocess1 = nas_ops.ReLUConvBN(self.filters, 1, affine=False)
        self.edges = []
        for i in range(self.num_nodes):
            for j in range(i + 2):
                strides = 2 if self.reduction and j < 2 else 1
                self.edges.append(MixedOp(self.filters, strides, self.ops))

    def build(self, input_shape):
        shape0, shape1 = (tuple(s) for s in input_shape)
        self.preprocess0.build(shape0)
        self.preprocess1.build(shape1)
        states = [
            self.preprocess0.compute_output_shape(shape0),
            self.preprocess1.compute_output_shape(shape1),
        ]
        e = 0
        for i in range(self.num_nodes):
            for j in range(i + 2):
                self.edges[e].build(states[j])
                e += 1
            states.append(self.edges[e - 1].compute_output_shape(states[-1]))

    def call(self, inputs, op_weights, training=None):
        s0, s1 = inputs
        states = [
            self.preprocess0(s0, training=training),
            self.preprocess1(s1, training=training),
        ]
        e = 0
        for i in range(self.num_nodes):
            node = None
            for j in range(i + 2):
                y = self.edges[e](states[j], op_weights[e], training=training)
                node = y if node is None else node + y
                e += 1
            states.append(node)
        return ops.concatenate(states[2:], axis=-1)

    def compute_output_shape(self, input_shape, op_weights_shape=None):
        shape = tuple(input_shape[1])
        h, w = shape[1], shape[2]
        if self.reduction:
            h = None if h is None else (h + 1) // 2
            w = None if w is None else (w + 1) // 2
        return (shape[0], h, w, self.filters * self.num_nodes)

    def get_config(self):
        config = super().get_config()
        config.update(
            filters=self.filters,
            reduction=self.reduction,
            reduction_prev=self.reduction_prev,
            num_nodes=self.num_nodes,
            ops=list(self.ops),
            ops_version=self.ops_version,
        )
        return config

    from_config = nas_ops._legacy_from_config()


def default_weights_optimizer(
    decay_steps: int | None = None,
    learning_rate: float = 0.025,
    min_learning_rate: float = 0.001,
    steps_per_epoch: int | None = None,
) -> keras.optimizers.Optimizer:
    """The paper's optimizer of the network weights.

    SGD with momentum 0.9, PyTorch's rule (`TorchSGD`: the learning rate
    outside the momentum buffer, as the DARTS code), and a learning rate
    annealed from 0.025 to 0.001 with a cosine schedule over `decay_steps`
    steps (the number of search steps: epochs x steps per epoch). With
    `steps_per_epoch` the rate changes once per epoch, as in the DARTS code
    (`EpochCosineDecay`); without it, every step. Without `decay_steps` the
    learning rate stays at `learning_rate`. Weight decay (3e-4) and gradient
    clipping (5) are applied by `DartsSupernet` itself, as in the DARTS code.
    """
    lr: Any = float(learning_rate)
    alpha = float(min_learning_rate) / float(learning_rate)
    if decay_steps is not None:
        decay_steps = check_positive_int("decay_steps", decay_steps)
        if steps_per_epoch is None:
            lr = keras.optimizers.schedules.CosineDecay(
                float(learning_rate), decay_steps, alpha=alpha
            )
        else:
            steps_per_epoch = check_positive_int(
                "steps_per_epoch", steps_per_epoch
            )
            lr = EpochCosineDecay(
                float(learning_rate),
                max(1, decay_steps // steps_per_epoch),
                steps_per_epoch,
                alpha=alpha,
            )
    return TorchSGD(lr, momentum=0.9, name="weights_sgd")


def default_arch_optimizer(
    learning_rate: float = 3e-4,
) -> keras.optimizers.Optimizer:
    """The paper's optimizer of `alpha`: Adam, betas (0.5, 0.999).

    Epsilon 1e-8 in PyTorch's place (`TorchAdam`), as the DARTS code. The
    architecture weight decay (1e-3) is applied by `DartsSupernet`.
    """
    return TorchAdam(
        float(learning_rate),
        beta_1=0.5,
        beta_2=0.999,
        epsilon=1e-8,
        name="arch_adam",
    )


def _is_arch(variable) -> bool:
    return variable.name in _ARCH_NAMES


@keras.saving.register_keras_serializable(package=_PACKAGE)
class BilevelOptimizer(keras.optimizers.Optimizer):
    """Holds the two optimizers of a DARTS search as one Keras optimizer.

    `build(variables)` gives the architecture variables (`alpha_normal`,
    `alpha_reduce`) to `arch_optimizer` and every other variable to
    `weights_optimizer`. `variables` lists both optimizers' state, so Keras'
    JAX trainer threads it through the stateless step and `.keras` files
    store it. Updates are made by `DartsSupernet.train_step` through the two
    inner optimizers; `iterations` and `learning_rate` are those of
    `weights_optimizer`.

    Args:
        weights_optimizer: optimizer of the network weights.
        arch_optimizer: optimizer of the architecture variables.
        name: the optimizer's name.
    """

    def __init__(
        self,
        weights_optimizer: Any,
        arch_optimizer: Any,
        name: str = "bilevel",
        **kwargs,
    ):
        super().__init__(learning_rate=0.0, name=name, **kwargs)
        self.weights_optimizer = keras.optimizers.get(weights_optimizer)
        self.arch_optimizer = keras.optimizers.get(arch_optimizer)

    def build(self, variables):
        if self.built:
            return
        weights = [v for v in variables if not _is_arch(v)]
        arch = [v for v in variables if _is_arch(v)]
        self.weights_optimizer.build(weights)
        self.arch_optimizer.build(arch)
        super().build(variables)

    @property
    def variables(self):
        return self.weights_optimizer.variables + self.arch_optimizer.variables

    @property
    def iterations(self):
        return self.weights_optimizer.iterations

    @property
    def learning_rate(self):
        return self.weights_optimizer.learning_rate

    @learning_rate.setter
    def learning_rate(self, value):
        self.weights_optimizer.learning_rate = value

    def split(self, values: Sequence[Any]) -> tuple[list, list]:
        """Splits a list aligned with `variables` into (weights, arch)."""
        n = len(self.weights_optimizer.variables)
        return list(values[:n]), list(values[n:])

    def apply(self, grads, trainable_variables=None):
        raise ValueError(
            "BilevelOptimizer is applied by DartsSupernet.train_step through "
            "`weights_optimizer` and `arch_optimizer`. Received: a direct "
            "call to apply()"
        )

    def get_config(self):
        return {
            "name": self.name,
            "weights_optimizer": keras.optimizers.serialize(
                self.weights_optimizer
            ),
            "arch_optimizer": keras.optimizers.serialize(self.arch_optimizer),
        }

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        for key in ("weights_optimizer", "arch_optimizer"):
            config[key] = keras.optimizers.deserialize(
                config[key], custom_objects=custom_objects
            )
        return cls(**config)


def _softmax(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    e = np.exp(a - a.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _derive_cell(weights: np.ndarray, candidates: Sequence[str], num_nodes):
    none = [k for k, name in enumerate(candidates) if name == "none"]
    masked = np.array(weights, dtype=np.float64)
    masked[:, none] = -np.inf
    pairs = []
    start = 0
    for i in range(num_nodes):
        block = masked[start : start + i + 2]
        strength = block.max(axis=-1)
        # Stable sort: ties go to the earlier input, as in the DARTS code.
        best = sorted(range(i + 2), key=lambda j: -strength[j])[:2]
        for j in best:
            pairs.append((candidates[int(np.argmax(block[j]))], int(j)))
        start += i + 2
    return pairs


def derive_genotype(
    alpha_normal: Any,
    alpha_reduce: Any,
    ops: Sequence[str] = registry.DARTS_OPS,
    num_nodes: int = 4,
) -> Genotype:
    """Discretizes architecture weights into a `Genotype` (Liu et al., 2019).

    For each node, the two incoming edges whose strongest op other than
    `none` has the largest softmax weight are kept, each with that op. The
    cell concatenates all intermediate nodes.

    Args:
        alpha_normal: `(num_edges, len(ops))` logits of the normal cell.
        alpha_reduce: the same for the reduction cell.
        ops: the op names of the columns.
        num_nodes: intermediate nodes per cell.

    Returns:
        A `Genotype` with two `(op, input)` pairs per node, strongest first.

    Example:

    >>> import numpy as np
    >>> g = derive_genotype(np.zeros((14, 8)), np.zeros((14, 8)))
    >>> g.num_nodes, "none" in {op for op, _ in g.normal}
    (4, False)
    """
    candidates = _check_ops(ops)
    num_nodes = check_positive_int("num_nodes", num_nodes, 1, MAX_NODES)
    cells = {}
    for kind, alpha in (("normal", alpha_normal), ("reduce", alpha_reduce)):
        a = np.asarray(keras.ops.convert_to_numpy(alpha), dtype=np.float64)
        expected = (num_edges(num_nodes), len(candidates))
        if a.shape != expected:
            raise ValueError(
                f"Expected `alpha_{kind}` of shape {expected}. "
                f"Received: alpha_{kind} of shape {a.shape}"
            )
        cells[kind] = _derive_cell(_softmax(a), candidates, num_nodes)
    concat = tuple(range(2, 2 + num_nodes))
    return Genotype(
        normal=cells["normal"],
        normal_concat=concat,
        reduce=cells["reduce"],
        reduce_concat=concat,
    )


def _full_precision(x):
    dtype = keras.backend.standardize_dtype(x.dtype)
    return ops.cast(x, "float32") if dtype in ("float16", "bfloat16") else x


def cross_entropy(y, logits):
    """Mean sparse categorical cross-entropy of logits (at least float32)."""
    logits = _full_precision(logits)
    return ops.mean(
        ops.sparse_categorical_crossentropy(y, logits, from_logits=True)
    )


def clip_and_decay(grads, values, clip: float | None, decay: float):
    """Clips `grads` by global norm, then adds `decay * values` (L2).

    The order of the DARTS code: `clip_grad_norm_`, then PyTorch SGD's
    coupled weight decay. `clip` of None or 0 disables clipping.
    """
    grads = [_full_precision(g) for g in grads]
    if clip:
        norm = ops.sqrt(sum(ops.sum(ops.square(g)) for g in grads))
        scale = ops.minimum(1.0, clip / ops.maximum(norm, 1e-12))
        grads = [g * scale for g in grads]
    if decay:
        grads = [
            g + decay * ops.cast(v, g.dtype)
            for g, v in zip(grads, values, strict=False)
        ]
    return grads


def virtual_step(
    values,
    grads,
    momentums,
    lr,
    momentum: float,
    decay: float,
    lr_in_buffer: bool = True,
):
    """The unrolled weights `w' = w - xi * (momentum term + grad + wd * w)`.

    Eq. 6 of Liu et al. with the momentum and weight decay of the DARTS code
    (`_compute_unrolled_model`): `w - lr * (momentum * buf + g + wd * w)`.
    With `TorchSGD` (`lr_in_buffer=False`) the buffers are PyTorch's, and
    this is exact. Keras' SGD stores `m = momentum * m - lr * g` instead,
    so the term is taken as `-momentum * m`: exact only while the learning
    rate has been constant (under a schedule, `m` holds past rates).
    """
    out = []
    for k, (w, g) in enumerate(zip(values, grads, strict=False)):
        step = lr * (g + decay * w)
        if momentums is not None:
            if lr_in_buffer:
                step = step - momentum * momentums[k]
            else:
                step = step + lr * momentum * momentums[k]
        out.append(w - step)
    return out


def lr_in_buffer(optimizer) -> bool:
    """Whether `optimizer`'s momentum buffers include the learning rate
    (Keras' SGD) or not (`TorchSGD`, PyTorch's rule)."""
    return not isinstance(optimizer, TorchSGD)


def global_norm(tensors):
    return ops.sqrt(sum(ops.sum(ops.square(t)) for t in tensors))


def sgd_momentums(optimizer):
    """The momentum variables of a Keras SGD optimizer, else None."""
    if (
        isinstance(optimizer, keras.optimizers.SGD)
        and optimizer.momentum
        and getattr(optimizer, "momentums", None)
    ):
        return list(optimizer.momentums), float(optimizer.momentum)
    return None, 0.0


@keras.saving.register_keras_serializable(package=_PACKAGE)
class DartsSupernet(keras.Model):
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
    eager 12.8 GiB (all three steps).

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

    def __init__(
        self,
        input_shape: Sequence[int],
        num_classes: int,
        filters: int = 16,
        num_cells: int = 8,
        num_nodes: int = 4,
        ops: Sequence[str] = registry.DARTS_OPS,
        order: int = 1,
        weight_decay: float = 3e-4,
        arch_weight_decay: float = 1e-3,
        grad_clip: float | None = 5.0,
        stem_multiplier: int = 3,
        seed: int | None = None,
        ops_version: int | None = None,
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
        self.candidate_ops = _check_ops(ops)
        if order not in (0, 1, 2) or isinstance(order, bool):
            raise ValueError(
                f"Expected `order` to be 0, 1 or 2. Received: order={order!r}"
            )
        self.order = int(order)
        self.weight_decay = _check_float("weight_decay", weight_decay)
        self.arch_weight_decay = _check_float(
            "arch_weight_decay", arch_weight_decay
        )
        self.grad_clip = (
            None if grad_clip is None else _check_float("grad_clip", grad_clip)
        )
        self.stem_multiplier = check_positive_int(
            "stem_multiplier", stem_multiplier
        )
        self.seed = seed

        # Sublayers take the model's dtype policy (e.g. `dtype=
        # "mixed_bfloat16"`): Keras passes it to no sublayer itself.
        previous_policy = keras.config.dtype_policy()
        keras.config.set_dtype_policy(self.dtype_policy)
        try:
            with nas_ops._version_scope(self.ops_version):
                self._make_layers()
        finally:
            keras.config.set_dtype_policy(previous_policy)
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.accuracy_tracker = keras.metrics.SparseCategoricalAccuracy(
            name="accuracy"
        )
        self.arch_loss_tracker = keras.metrics.Mean(name="arch_loss")
        self.arch_accuracy_tracker = keras.metrics.SparseCategoricalAccuracy(
            name="arch_accuracy"
        )
        self.build((None,) + self.image_shape)

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
                    name=f"cell_{i}",
                )
            )
            reduction_prev = reduction
        self.pool = keras.layers.GlobalAveragePooling2D(name="pool")
        # Logits in full precision under mixed-precision policies.
        mixed = self.dtype_policy.compute_dtype in ("float16", "bfloat16")
        self.classifier = keras.layers.Dense(
            self.num_classes,
            kernel_initializer=nas_ops._kernel_init(self.ops_version),
            dtype="float32" if mixed else self.dtype_policy,
            name="classifier",
        )

    # ----------------------------------------------------------- building

    def build(self, input_shape):
        if self.built:
            return
        shape = (num_edges(self.num_nodes), len(self.candidate_ops))
        for k, name in enumerate(_ARCH_NAMES):
            seed = None if self.seed is None else self.seed + k
            init = keras.initializers.RandomNormal(stddev=1e-3, seed=seed)
            variable = self.add_weight(
                shape=shape,
                initializer=init,
                name=name,
                dtype=self.dtype_policy.variable_dtype,
                autocast=False,
            )
            setattr(self, name, variable)
        shape = (None,) + self.image_shape
        self.stem_conv.build(shape)
        shape = self.stem_conv.compute_output_shape(shape)
        self.stem_bn.build(shape)
        s0 = s1 = shape
        for cell in self.cells:
            cell.build([s0, s1])
            s0, s1 = s1, cell.compute_output_shape([s0, s1])
        if self.ops_version >= 2:  # PyTorch's nn.Linear bias
            bound = 1.0 / math.sqrt(s1[-1])
            self.classifier.bias_initializer = keras.initializers.RandomUniform(
                -bound, bound
            )
        self.classifier.build((None, s1[-1]))
        self.built = True

    def call(self, inputs, training=None):
        weights = {
            False: ops.softmax(self.alpha_normal),
            True: ops.softmax(self.alpha_reduce),
        }
        x = self.stem_bn(self.stem_conv(inputs), training=training)
        s0 = s1 = x
        for cell in self.cells:
            w = weights[cell.reduction]
            s0, s1 = s1, cell([s0, s1], w, training=training)
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
        """`[alpha_normal, alpha_reduce]`."""
        return [self.alpha_normal, self.alpha_reduce]

    @property
    def weight_variables(self) -> list:
        """The trainable network weights (every trainable but `alpha`)."""
        return [v for v in self.trainable_variables if not _is_arch(v)]

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
            decay_steps: total search steps, for the default schedule.
            steps_per_epoch: if given, the default schedule changes the
                learning rate once per epoch of this many steps, as in the
                DARTS code; otherwise every step.
            jit_compile: as in `keras.Model.compile` (XLA on TensorFlow;
                JAX always compiles unless False).
            steps_per_execution: as in `keras.Model.compile`.
            run_eagerly: as in `keras.Model.compile`.
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
        if isinstance(optimizer, BilevelOptimizer):
            bilevel = optimizer
        else:
            if optimizer is None:
                optimizer = default_weights_optimizer(
                    decay_steps, steps_per_epoch=steps_per_epoch
                )
            if arch_optimizer is None:
                arch_optimizer = default_arch_optimizer()
            bilevel = BilevelOptimizer(optimizer, arch_optimizer)
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

    # -------------------------------------------------------- derivation

    def arch_weights(self) -> dict[str, np.ndarray]:
        """The softmax of `alpha_normal` and `alpha_reduce` (numpy)."""
        return {
            "normal": _softmax(keras.ops.convert_to_numpy(self.alpha_normal)),
            "reduce": _softmax(keras.ops.convert_to_numpy(self.alpha_reduce)),
        }

    def derive_genotype(self) -> Genotype:
        """The discrete architecture of the current `alpha` (see
        `derive_genotype`)."""
        return derive_genotype(
            self.alpha_normal,
            self.alpha_reduce,
            ops=self.candidate_ops,
            num_nodes=self.num_nodes,
        )

    def derive_hyperparameters(
        self, num_cells: int | None = None, filters: int | None = None
    ) -> dict[str, Any]:
        """The derived genotype as `CellSearchSpace` hyperparameter values.

        Args:
            num_cells: if given, added as the `num_cells` value.
            filters: if given, added as the `filters` value.
        """
        from keras_nas.spaces.cell_space import hyperparameters_from_genotype

        return hyperparameters_from_genotype(
            self.derive_genotype(), num_cells=num_cells, filters=filters
        )

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
        )
        return config

    from_config = nas_ops._legacy_from_config(keras.Model)


class SearchData(keras.utils.PyDataset):
    """Batches of `((x_train, y_train), (x_val, y_val))` from four arrays.

    Each epoch has `min(len(x_train), len(x_val)) // batch_size` full
    batches (static shapes for XLA); both halves are reshuffled every epoch
    when `shuffle` is True. Works with every Keras backend.

    Args:
        train: `(x_train, y_train)` arrays.
        val: `(x_val, y_val)` arrays.
        batch_size: samples per batch of each half.
        shuffle: whether to reshuffle every epoch.
        seed: seed of the shuffling.
    """

    def __init__(
        self,
        train: tuple[Any, Any],
        val: tuple[Any, Any],
        batch_size: int = 64,
        shuffle: bool = True,
        seed: int | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.x_train, self.y_train = (np.asarray(a) for a in train)
        self.x_val, self.y_val = (np.asarray(a) for a in val)
        self.batch_size = check_positive_int("batch_size", batch_size)
        n = min(len(self.x_train), len(self.x_val))
        if n < self.batch_size:
            raise ValueError(
                "Expected at least `batch_size` training and validation "
                f"samples. Received: batch_size={batch_size} with "
                f"{len(self.x_train)} training and {len(self.x_val)} "
                "validation samples"
            )
        self.shuffle = bool(shuffle)
        self._rng = np.random.default_rng(seed)
        self._new_order()

    def _new_order(self):
        nt, nv = len(self.x_train), len(self.x_val)
        if self.shuffle:
            self._train_idx = self._rng.permutation(nt)
            self._val_idx = self._rng.permutation(nv)
        else:
            self._train_idx, self._val_idx = np.arange(nt), np.arange(nv)

    def __len__(self):
        return min(len(self.x_train), len(self.x_val)) // self.batch_size

    def __getitem__(self, index):
        s = slice(index * self.batch_size, (index + 1) * self.batch_size)
        t, v = self._train_idx[s], self._val_idx[s]
        return (
            (self.x_train[t], self.y_train[t]),
            (self.x_val[v], self.y_val[v]),
        )

    def on_epoch_end(self):
        self._new_order()


def search_data(
    train: Any,
    val: Any,
    batch_size: int = 64,
    shuffle: bool = True,
    seed: int | None = None,
) -> Any:
    """Zips training and validation data into DARTS search batches.

    Args:
        train: `(x_train, y_train)` arrays, or a batched `tf.data.Dataset`
            of `(x, y)`.
        val: the same for the validation data (same kind as `train`).
        batch_size: batch size when arrays are given.
        shuffle: reshuffle the arrays every epoch.
        seed: seed of the shuffling.

    Returns:
        A `SearchData` (arrays) or a zipped `tf.data.Dataset` (datasets),
        each element `((x_train, y_train), (x_val, y_val))`, for
        `DartsSupernet.fit`.

    Example:

    >>> data = search_data((x, y), (x_val, y_val))  # doctest: +SKIP
    >>> supernet.fit(data, epochs=10)  # doctest: +SKIP
    """
    if type(train).__module__.startswith("tensorflow"):
        import tensorflow as tf

        if not isinstance(val, tf.data.Dataset):
            raise ValueError(
                "Expected `val` to be a tf.data.Dataset like `train`. "
                f"Received: val={type(val).__name__}"
            )
        return tf.data.Dataset.zip((train, val))
    for name, value in (("train", train), ("val", val)):
        if not isinstance(value, (tuple, list)) or len(value) != 2:
            raise ValueError(
                f"Expected `{name}` to be an (x, y) pair of arrays or a "
                f"tf.data.Dataset. Received: {name}={type(value).__name__}"
            )
    return SearchData(
        train, val, batch_size=batch_size, shuffle=shuffle, seed=seed
    )
