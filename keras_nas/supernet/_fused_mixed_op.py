"""A DARTS edge evaluated with a few big ops instead of one graph per op.

A `MixedOp` with the DARTS candidates (`ops_version=2`, affine-free batch
norms) sums seven ops per edge; evaluated op by op, each edge traces into
~350 graph ops (benchmarks/RESULTS.md), and the trace, TensorFlow's graph
optimization and XLA's compile time grow with that count. Here the same sum
is computed from the same variables (they stay per op, so weights, saved
files and weight counts are unchanged) with:

- one depthwise convolution per group of separable convolutions with the
  same dilation and number of repeats (`sep_conv_3x3`/`5x5`/`7x7` are one
  group, `dil_conv_3x3`/`5x5` another): the members' kernels, zero-padded
  to the largest size around their centres, side by side along the
  channels;
- one einsum per group and repeat for the members' pointwise convolutions
  (block diagonal: member `m` maps its own channels);
- one batch normalization over the stacked channels for the inner repeats,
  and one for every normalized output of the edge (the last repeats of the
  convolution groups, the pools' batch norms and `FactorizedReduce`'s);
- one einsum for the `alpha`-weighted sum.

Every op computes exactly what it computes alone (zero taps add zeros; a
batch norm's statistics are per channel; the moving statistics get the same
updates), so outputs and gradients agree with the op-by-op evaluation to
float32 rounding (tests/supernet/test_fused_mixed_op.py).

`plan(layer)` says whether a built `MixedOp`'s candidates can be fused (any
other op, `ops_version=1`, or affine batch norms: no) and how; `call(layer,
plan, inputs, op_weights, training)` evaluates it.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import math

import keras
from keras import ops

from keras_nas._backend import backend_module
from keras_nas.blocks import ops as nas_ops
from keras_nas.supernet import _darts_graph, _darts_math

#: (backend, platform) pairs on which the depthwise convolutions of the
#: piecewise JAX step (`_darts_jax.py`) are computed as sums of shifted
#: slices (`_shifted_depthwise`): XLA's CPU convolution with
#: `feature_group_count` is ~20x slower at DARTS' sizes, but in one whole
#: jitted step the slices cost XLA far more compile time (micro: ~4x;
#: benchmarks/RESULTS.md, #13 piecewise JAX step). Not measured on GPUs.
SHIFTED_DEPTHWISE = {("jax", "cpu")}


def _shifted() -> bool:
    """Whether `_depthwise` sums shifted slices here and now."""
    if keras.backend.backend() != "jax" or not _darts_graph.in_piecewise():
        return False
    platform = importlib.import_module("jax").default_backend()
    return ("jax", platform) in SHIFTED_DEPTHWISE


@dataclasses.dataclass(frozen=True)
class ConvGroup:
    """Separable convolutions of one dilation and number of repeats."""

    members: tuple[int, ...]  # indices into `MixedOp.candidates`
    kernel: int  # the largest kernel size of the members
    dilation: int
    repeats: int


@dataclasses.dataclass(frozen=True)
class Plan:
    """How a `MixedOp`'s candidates are evaluated together."""

    groups: tuple[ConvGroup, ...]
    pools: tuple[int, ...]  # Sequential([Pool, BatchNormalization])
    reduce: int | None  # FactorizedReduce (skip_connect at stride 2)
    identity: int | None  # Identity (skip_connect at stride 1)
    epsilon: float
    momentum: float

    def normalized(self) -> tuple[int, ...]:
        """Candidate indices in the order of the stacked normalized outputs."""
        order = [m for g in self.groups for m in g.members]
        order += list(self.pools)
        if self.reduce is not None:
            order.append(self.reduce)
        return tuple(order)


def _affine_free(bn) -> bool:
    return (
        type(bn) is keras.layers.BatchNormalization
        and not bn.center
        and not bn.scale
        and not bn.renorm
        and bn.axis in (-1, 3)
    )


def _classify(op, filters, strides):
    """('conv', key) / ('pool',) / ('reduce',) / ('identity',) or None."""
    if type(op) in (nas_ops.SepConv, nas_ops.DilConv):
        if (
            op.ops_version >= 2
            and not op.affine
            and op.kernel_size % 2 == 1
            and op.filters == filters
            and op.strides == strides
            and all(_affine_free(bn) for bn in op.bns)
            and all(d.depth_multiplier == 1 for d in op.depthwise)
        ):
            return ("conv", (op.dilation_rate, op.repeats))
        return None
    if type(op) is nas_ops.FactorizedReduce:
        if op.ops_version >= 2 and not op.affine and _affine_free(op.bn):
            return ("reduce",)
        return None
    if type(op) is nas_ops.Identity:
        return ("identity",) if strides == 1 else None
    if type(op) is keras.Sequential and len(op.layers) == 2:
        pool, bn = op.layers
        if (
            type(pool) is nas_ops.Pool
            and pool.ops_version >= 2
            and pool.strides == strides
            and _affine_free(bn)
        ):
            return ("pool",)
    return None


def _batch_norms(layer, plan_):
    """Every batch norm a fused evaluation uses."""
    out = []
    for g in plan_.groups:
        for m in g.members:
            out += layer.candidates[m].bns
    out += [layer.candidates[p].layers[1] for p in plan_.pools]
    if plan_.reduce is not None:
        out.append(layer.candidates[plan_.reduce].bn)
    return out


def plan(layer) -> Plan | None:
    """How to fuse a built `MixedOp`, or None when it cannot be fused."""
    if getattr(layer, "ops_version", 1) < 2 or not layer.built:
        return None
    groups: dict = {}
    pools, reduce, identity = [], None, None
    for i, op in enumerate(layer.candidates):
        kind = _classify(op, layer.filters, layer.strides)
        if kind is None:
            return None
        if kind[0] == "conv":
            groups.setdefault(kind[1], []).append(i)
        elif kind[0] == "pool":
            pools.append(i)
        elif kind[0] == "reduce":
            reduce = i
        else:
            identity = i
    conv_groups = tuple(
        ConvGroup(
            tuple(members),
            max(layer.candidates[m].kernel_size for m in members),
            dilation,
            repeats,
        )
        for (dilation, repeats), members in groups.items()
    )
    result = Plan(conv_groups, tuple(pools), reduce, identity, 0.0, 0.0)
    bns = _batch_norms(layer, result)
    if not bns:
        return None
    settings = {(float(bn.epsilon), float(bn.momentum)) for bn in bns}
    if len(settings) != 1:
        return None
    ((epsilon, momentum),) = settings
    return dataclasses.replace(result, epsilon=epsilon, momentum=momentum)


def applies(layer, plan_: Plan | None, inputs) -> bool:
    """Whether `call` may evaluate `layer` on `inputs` now."""
    if plan_ is None or keras.backend.standardize_dtype(inputs.dtype) != (
        "float32"
    ):
        return False
    if layer.compute_dtype != "float32":
        return False
    # A frozen batch norm normalizes with its moving statistics in training.
    return all(bn.trainable for bn in _batch_norms(layer, plan_))


def _split_last(x, a, b):
    """(..., a * b) -> (..., a, b)."""
    return ops.reshape(x, (*ops.shape(x)[:-1], a, b))


def _merge_last(x):
    """(..., a, b) -> (..., a * b)."""
    shape = ops.shape(x)
    return ops.reshape(x, (*shape[:-2], shape[-2] * shape[-1]))


def _pad_kernel(kernel, size):
    p = (size - kernel.shape[0]) // 2
    if p == 0:
        return kernel
    return ops.pad(kernel, [[p, p], [p, p], [0, 0], [0, 0]])


def _moving(x, bns):
    """`bns`' moving means and variances side by side, in `x`'s dtype."""
    mean_parts = [ops.cast(bn.moving_mean, x.dtype) for bn in bns]
    var_parts = [ops.cast(bn.moving_variance, x.dtype) for bn in bns]
    return ops.concatenate(mean_parts, 0), ops.concatenate(var_parts, 0)


def _update_moving(bns, moving, mean, variance, momentum):
    """`bns`' moving statistics updated with the batch's, side by side."""
    new_mean = _darts_math.moving_average(moving[0], mean, momentum)
    new_var = _darts_math.moving_average(moving[1], variance, momentum)
    n = len(bns)
    new_means = ops.split(new_mean, n) if n > 1 else [new_mean]
    new_vars = ops.split(new_var, n) if n > 1 else [new_var]
    for bn, m, v in zip(bns, new_means, new_vars, strict=True):
        bn.moving_mean.assign(m)
        bn.moving_variance.assign(v)


def _batch_norm_module():
    """This backend's batch norms of the fused `MixedOp` (training mode):
    `_batch_norm_tensorflow` (one fused kernel) or `_batch_norm_jax` (a
    lean backward pass)."""
    return backend_module("keras_nas.supernet", "_batch_norm", "MixedOp")


def _batch_norm(x, bns, training, plan_):
    """One batch normalization of `x`'s channels, `bns` side by side."""
    moving = _moving(x, bns)
    if not training:
        return ops.batch_normalization(
            x, *moving, axis=-1, epsilon=plan_.epsilon
        )
    outputs, mean, variance = _batch_norm_module().batch_normalize(
        x, plan_.epsilon
    )
    _update_moving(bns, moving, mean, variance, plan_.momentum)
    return outputs


def _normalized_sum(x, bns, training, plan_, weights):
    """`_batch_norm(x)`'s `n` blocks of channels weighted by `weights`
    (`(n,)`) and summed: (B, H, W, n * F) -> (B, H, W, F). Where the
    backend has it, in float32 and training mode, one function whose
    backward pass keeps one tensor of `x`'s size
    (`_batch_norm_jax.normalized_sum`)."""
    n = weights.shape[0]
    fused = getattr(_batch_norm_module(), "normalized_sum", None)
    float32 = keras.backend.standardize_dtype(x.dtype) == "float32"
    if training and fused and float32:
        moving = _moving(x, bns)
        out, mean, variance = fused(x, weights, plan_.epsilon)
        _update_moving(bns, moving, mean, variance, plan_.momentum)
        return out
    y = _split_last(_batch_norm(x, bns, training, plan_), n, x.shape[-1] // n)
    if _shifted():  # as a contraction, y is transposed first (_pointwise)
        return ops.sum(y * ops.expand_dims(weights, -1), axis=-2)
    return ops.einsum("bhwnf,n->bhwf", y, weights)


def _window(x, a, b, out_hw, strides):
    """`x[:, a + strides * h, b + strides * w, :]` for the output's h, w."""
    h, w = out_hw
    return x[
        :,
        a : a + strides * (h - 1) + 1 : strides,
        b : b + strides * (w - 1) + 1 : strides,
        :,
    ]


def _taps(x, kernel, out_hw, strides, dilation):
    """The valid depthwise correlation of `x` with `kernel` (k, k, C, 1):
    the sum over taps of shifted windows times the tap's weights."""
    size = kernel.shape[0]
    out = None
    for i in range(size):
        for j in range(size):
            window = _window(x, i * dilation, j * dilation, out_hw, strides)
            tap = window * kernel[i, j, :, 0]
            out = tap if out is None else out + tap
    return out


def _zero_insert(y, strides, axis):
    """`strides - 1` zeros between the elements of `y` along `axis`."""
    if strides == 1:
        return y
    zeros = [ops.zeros_like(y)] * (strides - 1)
    z = ops.stack([y, *zeros], axis=axis + 1)
    shape = list(y.shape)
    shape[axis] *= strides
    z = ops.reshape(z, shape)
    keep = strides * (y.shape[axis] - 1) + 1
    return z[:, :keep] if axis == 1 else z[:, :, :keep]


def _kernel_grad(xp, upstream, size, dilation, strides):
    """The depthwise kernel's gradient, `(size * size, C)`: per tap, the
    sum over samples and positions of the tap's window of the padded
    input `xp` times `upstream`, one sample at a time (a scan). The taps'
    reductions over the whole batch read the two tensors once per tap;
    per sample they stay in the cache (paper configuration, batch 16,
    32x32x32, k=5: 27-29 -> 8-10 ms CPU; not slower at the micro
    configuration's sizes; benchmarks/RESULTS.md, #13 z13)."""
    out_hw = tuple(upstream.shape[1:3])

    def sample(total, pair):
        xs, us = (ops.expand_dims(t, 0) for t in pair)
        taps = [
            ops.sum(
                _window(xs, i * dilation, j * dilation, out_hw, strides) * us,
                axis=(0, 1, 2),
            )
            for i in range(size)
            for j in range(size)
        ]
        return total + ops.stack(taps), None

    zeros = ops.zeros((size * size, upstream.shape[-1]), upstream.dtype)
    total, _ = ops.scan(sample, zeros, (xp, upstream))
    return total


def _shifted_depthwise(x, kernel, strides, size, dilation):
    """`_depthwise` as sums over the kernel's taps of shifted (strided)
    windows of the padded input times the tap's per-channel weights, with
    the same sums for its gradients: the input's is the correlation of the
    (zero-inserted) upstream gradient with the flipped kernel, the
    kernel's one reduction per tap and sample (`_kernel_grad`). Equal to
    the convolution up to float32 rounding; on XLA's CPU backend ~20x
    faster forward and backward than its grouped convolution (micro
    configuration; benchmarks/RESULTS.md).
    """
    pad = dilation * (size // 2)
    height, width = x.shape[1], x.shape[2]
    out_hw = ((height - 1) // strides + 1, (width - 1) // strides + 1)

    def padded(t, after_h, after_w):
        return ops.pad(t, [[0, 0], [pad, after_h], [pad, after_w], [0, 0]])

    @ops.custom_gradient
    def depthwise(x, kernel):
        xp = padded(x, pad, pad)
        out = _taps(xp, kernel, out_hw, strides, dilation)

        def grad(*args, upstream=None):
            if upstream is None:
                (upstream,) = args
            dz = _zero_insert(_zero_insert(upstream, strides, 1), strides, 2)
            dzp = padded(
                dz, height + pad - dz.shape[1], width + pad - dz.shape[2]
            )
            d_x = _taps(
                dzp, kernel[::-1, ::-1], (height, width), 1, dilation
            )
            d_kernel = _kernel_grad(xp, upstream, size, dilation, strides)
            return d_x, ops.reshape(d_kernel, kernel.shape)

        return out, grad

    return depthwise(x, kernel)


def _placed(part, offset, strides, padded_hw):
    """`part` (the values of a tap's strided window) added back at the
    window's positions of a zero tensor of the padded input's size."""
    z = _zero_insert(_zero_insert(part, strides, 1), strides, 2)
    (i, j), (height, width) = offset, padded_hw
    return ops.pad(
        z,
        [[0, 0], [i, height - i - z.shape[1]], [j, width - j - z.shape[2]]]
        + [[0, 0]],
    )


def _shifted_max_pool(x, size, strides):
    """Max pooling (`Pool`, odd `size`, -inf padding of `size // 2` on
    every side) as the maximum of shifted (strided) windows, with the
    gradient of the same form: each output's upstream value goes to the
    first window position (row-major) holding its maximum, as XLA's
    select-and-scatter does. On XLA's CPU backend the built-in gradient
    costs ~5x the pooling (paper configuration; benchmarks/RESULTS.md,
    #13 z13)."""
    pad = size // 2
    height, width = x.shape[1], x.shape[2]
    out_hw = ((height - 1) // strides + 1, (width - 1) // strides + 1)
    taps = [(i, j) for i in range(size) for j in range(size)]
    padding = [[0, 0], [pad, pad], [pad, pad], [0, 0]]

    @ops.custom_gradient
    def max_pool(x):
        xp = ops.pad(x, padding, constant_values=-math.inf)
        windows = [_window(xp, i, j, out_hw, strides) for i, j in taps]
        out = functools.reduce(ops.maximum, windows)
        # The first tap holding the maximum, kept for the backward pass
        # (int8; computed there from the windows, XLA's CPU backend fused
        # it into every tap's term of the input's gradient: ~3x slower).
        first = functools.reduce(
            ops.minimum,
            [
                ops.where(ops.equal(w, out), t, len(taps))
                for t, w in enumerate(windows)
            ],
        )
        first = ops.cast(first, "int8")

        def grad(*args, upstream=None):
            if upstream is None:
                (upstream,) = args
            zeros = ops.zeros_like(upstream)
            d_xp = None
            for t, (i, j) in enumerate(taps):
                part = _placed(
                    ops.where(ops.equal(first, t), upstream, zeros),
                    (i, j),
                    strides,
                    (height + 2 * pad, width + 2 * pad),
                )
                d_xp = part if d_xp is None else d_xp + part
            return d_xp[:, pad : pad + height, pad : pad + width, :]

        return out, grad

    return max_pool(x)


def _pool(layer, inputs):
    """`layer(inputs)` of a fused `Pool`; max pooling as shifted windows
    in the piecewise JAX step on XLA's CPU (`_shifted`)."""
    if layer.pool_type == "max" and layer.pool_size % 2 and _shifted():
        return _shifted_max_pool(inputs, layer.pool_size, layer.strides)
    return layer.call(inputs)


def _depthwise(x, kernel, strides, size, dilation):
    """The depthwise conv of `SepConv` (ops_version 2) at `strides`."""
    if _shifted():
        return _shifted_depthwise(x, kernel, strides, size, dilation)
    if strides > 1 and dilation == 1:
        pad = size // 2
        x = ops.pad(x, [[0, 0], [pad, pad], [pad, pad], [0, 0]])
        return ops.depthwise_conv(x, kernel, strides=strides, padding="valid")
    y = ops.depthwise_conv(
        x, kernel, strides=1, padding="same", dilation_rate=dilation
    )
    return y[:, ::2, ::2, :] if strides > 1 else y


def _conv_group(layer, group, relu_x, training, plan_):
    """The group's output before its last batch norm: (B, H, W, M, F).

    The members sit side by side along the channels (member `m`'s channel
    `c` at `m * C + c`), the first repeat on `M` copies of the input: a
    channel multiplier would spare the copies, but XLA's CPU convolution
    runs it ~6x slower (one edge's training pass at micro size: 234 vs 41
    ms; TensorFlow 11.4 vs 9.4 ms; benchmarks/RESULTS.md).
    """
    members = [layer.candidates[m] for m in group.members]
    n = len(members)
    y = None
    for r in range(group.repeats):
        kernels = [
            _pad_kernel(op.depthwise[r].kernel, group.kernel) for op in members
        ]
        pointwise = [op.pointwise[r].kernel[0, 0] for op in members]
        if r == 0:
            x = relu_x if n == 1 else ops.concatenate([relu_x] * n, axis=-1)
            z = _depthwise(
                x,
                ops.concatenate(kernels, axis=2),
                layer.strides,
                group.kernel,
                group.dilation,
            )
        else:
            x = ops.relu(_merge_last(y))
            z = _depthwise(
                x, ops.concatenate(kernels, axis=2), 1, group.kernel, 1
            )
        y = _pointwise(z, pointwise)
        if r < group.repeats - 1:
            bns = [op.bns[r] for op in members]
            y = _split_last(
                _batch_norm(_merge_last(y), bns, training, plan_),
                n,
                y.shape[-1],
            )
    return y


def _pointwise(z, kernels):
    """The members' pointwise convolutions of `z` (B, H, W, M * C), member
    `m`'s `kernels[m]` (C, F) on its own channels: (B, H, W, M, F).

    On XLA's CPU in the piecewise JAX step (`_shifted`) one matmul with
    the block-diagonal kernel (its zero blocks add exact zeros): the
    batched einsum transposes `z` to the members' major order and back,
    copies that cost ~5x the convolution they follow (paper
    configuration; benchmarks/RESULTS.md, #13 z13)."""
    n = len(kernels)
    if n > 1 and _shifted():
        c, f = kernels[0].shape
        rows = [
            ops.pad(k, [[0, 0], [m * f, (n - 1 - m) * f]])
            for m, k in enumerate(kernels)
        ]
        y = ops.matmul(z, ops.concatenate(rows, axis=0))
        return _split_last(y, n, f)
    z = _split_last(z, n, z.shape[-1] // n)
    return ops.einsum("bhwmc,mcf->bhwmf", z, ops.stack(kernels))


def _reduce(op, relu_x):
    """`FactorizedReduce` before its batch norm, on the ReLU'd input."""
    shifted = ops.pad(relu_x, [[0, 0], [0, 1], [0, 1], [0, 0]])[:, 1:, 1:, :]
    return ops.concatenate(
        [
            ops.conv(relu_x, op.conv_1.kernel, strides=2),
            ops.conv(shifted, op.conv_2.kernel, strides=2),
        ],
        axis=-1,
    )


def call(layer, plan_: Plan, inputs, op_weights, training=None):
    """`sum_k op_weights[k] * op_k(inputs)` of a `MixedOp`, fused."""
    training = bool(training)
    cands = layer.candidates
    stacked = []  # (B, H, W, n, F) before batch norm
    if plan_.groups or plan_.reduce is not None:
        relu_x = ops.relu(inputs)
    for group in plan_.groups:
        stacked.append(_conv_group(layer, group, relu_x, training, plan_))
    for p in plan_.pools:
        stacked.append(ops.expand_dims(_pool(cands[p].layers[0], inputs), -2))
    if plan_.reduce is not None:
        reduced = _reduce(cands[plan_.reduce], relu_x)
        stacked.append(ops.expand_dims(reduced, -2))
    y = stacked[0] if len(stacked) == 1 else ops.concatenate(stacked, -2)
    last = [cands[m].bns[-1] for g in plan_.groups for m in g.members]
    last += [cands[p].layers[1] for p in plan_.pools]
    if plan_.reduce is not None:
        last.append(cands[plan_.reduce].bn)
    order = plan_.normalized()
    weights = ops.cast(op_weights, inputs.dtype)
    w = ops.take(weights, [layer._active[k] for k in order])
    out = _normalized_sum(_merge_last(y), last, training, plan_, w)
    if plan_.identity is not None:
        out = out + weights[layer._active[plan_.identity]] * inputs
    return out
