"""What the pieces of JAX's hand-chained one-shot step compute.

The piecewise one-shot step on JAX (`_one_shot_chain_jax`) runs a path's
layers as calls of jitted pieces, one per kind of layer (class,
configuration, input shape: `_one_shot_groups`), each returning its
output, its new moving statistics and the pullback of a `jax.vjp`
(`vjp_piece`). Kinds compile when a path first uses them: at the micro
configuration each kind's forward and backward cost ~0.3-1 s CPU and a
first path holds ~33 kinds, most of the time to the first step
(benchmarks/RESULTS.md, #13 f15, k16, o17). Here:

- `units(layer)`: the parts of a layer that run as one piece each. A
  `SepConv` of several repeats runs as one piece per repeat (`_Repeat`:
  ReLU, depthwise, pointwise, batch norm), compiled per kind of repeat:
  the second repeat of a stride-1 `sep_conv_kxk` is the same kind as its
  first, and as the repeats of that op on the next cells of that width,
  so each kind of depthwise convolution compiles once. The optimizer
  updates such a layer per repeat too (`_one_shot_jax`).
- `direct(layer, x, training)`: a layer's output in its piece. Separable
  and dilated convolutions (`SepConv`, `DilConv`, version 2 ops) run
  their depthwise convolutions as sums of shifted slices on XLA's CPU
  (`_fused_mixed_op._depthwise`, as the DARTS piecewise step): XLA's
  grouped convolution is several times slower there at these sizes. The
  batch norms of these, `ReLUConvBN`, `FactorizedReduce` and a lone
  `BatchNormalization` run Keras' training-mode arithmetic with a lean
  backward pass (`_batch_norm_jax.scaled_normalize`): a smaller compile
  and one residual tensor instead of several.
"""

from __future__ import annotations

import weakref

import jax
import keras

from keras_nas.blocks.conv_ops import (
    DilConv,
    FactorizedReduce,
    ReLUConvBN,
    SepConv,
)
from keras_nas.supernet import _batch_norm_jax, _darts_graph, _darts_math
from keras_nas.supernet import _fused_mixed_op as fused
from keras_nas.supernet import _one_shot_groups as groups

__all__ = ["direct", "function", "units", "vjp_piece"]


def _shifts(layer) -> bool:
    """Whether `direct` computes `layer` with shifted slices: a version 2
    `SepConv` / `DilConv` (exactly those classes) of an odd kernel, in
    float32."""
    return (
        type(layer) in (SepConv, DilConv)
        and layer.dtype_policy.name == "float32"
        and layer.ops_version >= 2
        and layer.kernel_size % 2 == 1
        and all(d.depth_multiplier == 1 for d in layer.depthwise)
    )


def _batch_norm(bn, x, training):
    """`bn(x, training=training)`; in training, for a plain float32 Keras
    `BatchNormalization` over the last axis, Keras' arithmetic with the
    lean backward pass (`_batch_norm_jax.scaled_normalize`) and Keras'
    moving-average updates."""
    if not (
        training
        and type(bn) is keras.layers.BatchNormalization
        and bn.trainable
        and bn.axis in (-1, len(x.shape) - 1)
        and len(x.shape) == 4
        and not bn.renorm
        and bn.center == bn.scale
        and bn.dtype_policy.name == "float32"
        and keras.backend.standardize_dtype(x.dtype) == "float32"
    ):
        return bn(x, training=training)
    if bn.scale:
        gamma, beta = bn.gamma.value, bn.beta.value
    else:  # affine-free: multiplying by one and adding zero are exact
        gamma = keras.ops.ones(x.shape[-1:], x.dtype)
        beta = keras.ops.zeros(x.shape[-1:], x.dtype)
    y, mean, variance = _batch_norm_jax.scaled_normalize(
        x, gamma, beta, bn.epsilon
    )
    for moving, batch in (
        (bn.moving_mean, mean),
        (bn.moving_variance, variance),
    ):
        moving.assign(
            _darts_math.moving_average(moving.value, batch, bn.momentum)
        )
    return y


def _block(sublayers, x, training, strides, size, dilation):
    """A `SepConv` repeat (`sublayers`: its depthwise, pointwise and batch
    norm layers) on `x`, the depthwise convolution as shifted slices."""
    depthwise, pointwise, bn = sublayers
    x = keras.ops.relu(x)
    kernel = keras.ops.convert_to_tensor(depthwise.kernel)
    x = fused._depthwise(x, kernel, strides, size, dilation)
    return _batch_norm(bn, pointwise(x), training)


def direct(layer, x, training):
    """`layer(x, training=training)` as its piece computes it (see the
    module)."""
    if _shifts(layer):
        with _darts_graph.piecewise():
            for r in range(layer.repeats):
                sublayers = (layer.depthwise[r], layer.pointwise[r])
                x = _block(
                    (*sublayers, layer.bns[r]),
                    x,
                    training,
                    layer.strides if r == 0 else 1,
                    layer.kernel_size,
                    layer.dilation_rate,
                )
        return x
    if type(layer) in (ReLUConvBN, FactorizedReduce):
        return _batch_norm(layer.bn, layer.unnormalized(x), training)
    if type(layer) is keras.layers.BatchNormalization:
        return _batch_norm(layer, x, training)
    return layer(x, training=training)


def vjp_piece(run):
    """`run(trainable, non_trainable, x) -> (y, new)` of a kind of layer
    (`_one_shot_groups.shared_function`) as one jitted function returning
    `(y, the new moving statistics (a list), the pullback of y with
    respect to the trainable values and x)`."""

    def forward(trainable, non_trainable, x):
        def output(trainable, x):
            y, new = run(trainable, non_trainable, x)
            if new:
                new = _darts_graph._unpack(new[0], non_trainable)
            return y, new

        y, pullback, new = jax.vjp(output, trainable, x, has_aux=True)
        return y, new, pullback

    return jax.jit(forward)


class _Repeat:
    """Repeat `r` of a shifted `SepConv` (`_shifts`) as a piece of its own:
    its sublayers (depthwise, pointwise, batch norm) and, per input shape,
    dtype and `training`, its kind's jitted forward (`vjp_piece`)."""

    def __init__(self, layer, r):
        self.sublayers = (layer.depthwise[r], layer.pointwise[r], layer.bns[r])
        self.strides = layer.strides if r == 0 else 1
        self.size, self.dilation = layer.kernel_size, layer.dilation_rate
        self.functions: dict = {}

    @property
    def trainable_variables(self) -> list:
        return [v for s in self.sublayers for v in s.trainable_variables]

    @property
    def non_trainable_variables(self) -> list:
        return [v for s in self.sublayers for v in s.non_trainable_variables]

    def kind(self, x, training) -> tuple:
        variables = self.trainable_variables + self.non_trainable_variables
        return (
            _Repeat,
            self.strides,
            self.size,
            self.dilation,
            tuple(map(_darts_graph._config, self.sublayers)),
            tuple(x.shape),
            str(x.dtype),
            tuple((tuple(v.shape), str(v.dtype)) for v in variables),
            bool(training),
        )

    def output(self, x, training):
        """The repeat's output on the current values of its variables."""
        with _darts_graph.piecewise():
            return _block(
                self.sublayers,
                x,
                training,
                self.strides,
                self.size,
                self.dilation,
            )

    def function(self, x, training: bool):
        key = (tuple(x.shape), str(x.dtype), training)
        entry = self.functions.get(key)
        if entry is None or entry[0]() is None:
            entry = self.functions[key] = _repeat_function(self, x, training)
        return entry[1]


# kind of repeat -> (weak reference to its representative, jitted forward).
_REPEAT_FUNCTIONS: dict = {}
# layer -> its `_Repeat`s (or None: the layer is one piece).
_REPEATS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _repeat_function(rep: _Repeat, x, training: bool) -> tuple:
    """`(weak reference, fn)`: the jitted forward of `rep`'s kind, made
    on its first repeat (the representative, held weakly)."""
    key = rep.kind(x, training)
    entry = _REPEAT_FUNCTIONS.get(key)
    if entry is None or entry[0]() is None:
        ref = weakref.ref(rep)

        def run(trainable, non_trainable, x):
            block = ref()
            y, scope = _darts_graph._run_stateless(
                block,
                trainable,
                non_trainable,
                lambda: block.output(x, training),
            )
            if not training or not non_trainable:
                return y, []
            return y, [
                _darts_graph.packed_statistics(block, non_trainable, scope)
            ]

        entry = _REPEAT_FUNCTIONS[key] = (ref, vjp_piece(run))
    return entry


def _repeats(layer):
    """`layer`'s `_Repeat`s where it runs per repeat (a shifted `SepConv`
    of several repeats), else None."""
    try:
        return _REPEATS[layer]
    except KeyError:
        pass
    parts = None
    if _shifts(layer) and layer.repeats > 1:
        parts = tuple(_Repeat(layer, r) for r in range(layer.repeats))
    _REPEATS[layer] = parts
    return parts


def units(layer) -> tuple:
    """The parts of `layer` run as one piece each (and updated by one
    call each): its `_Repeat`s, or the layer itself."""
    return _repeats(layer) or (layer,)


def function(unit, x, training: bool):
    """The jitted forward (`vjp_piece`) of `unit`'s kind (a unit of
    `units`) on inputs like `x`."""
    if isinstance(unit, _Repeat):
        return unit.function(x, training)
    return groups._PieceLayer.of(unit).function(x, training, vjp_piece, direct)
