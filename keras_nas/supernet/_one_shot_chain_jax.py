"""JAX's piecewise one-shot step differentiated by hand.

The piecewise step (`_one_shot_jax`) runs every layer of the sampled path
as one call of its kind's compiled piece. Differentiated by an eager
`jax.value_and_grad` over the Python forward, every piece is a
`jax.custom_vjp` and every sum and concatenation between them a primitive
that JAX's linearize and transpose machinery processes in Python: about
as much CPU time as the pieces' executions (benchmarks/RESULTS.md, #13
a14, f15). Here the forward is recorded instead:

- every layer is one call of its kind's jitted forward, which returns the
  layer's output, its new moving statistics and the pullback of a
  `jax.vjp` (a pytree of residual arrays);
- the values between the layers are `Value`s: their sums and their
  concatenation (`topology.concatenate`) run eagerly and are recorded
  (`_one_shot_chain`, shared with TensorFlow);
- the backward pass walks the record in reverse from the loss's gradient
  (one jitted function of the head's output), calling each live layer's
  pullback through one jitted function (`_backward`), adding the
  cotangents of a value used more than once and splitting those of a
  concatenation. Layers not connected to the output (`liveness`) run
  forward (their moving statistics move) and get no gradient, as before.

Separable and dilated convolutions (`SepConv`, `DilConv`, version 2 ops)
run their depthwise convolutions as sums of shifted slices on XLA's CPU
(`_fused_mixed_op._depthwise`, as the DARTS piecewise step): XLA's
grouped convolution is several times slower there at these sizes. A
`SepConv` of several repeats runs as one piece per repeat (`_Repeat`:
ReLU, depthwise, pointwise, batch norm), compiled per kind of repeat: the
second repeat of a stride-1 `sep_conv_kxk` is the same kind as its first,
and as the repeats of the same op on the next cells of that width, so
each kind of depthwise convolution compiles once (micro configuration:
the separable convolutions' compiles about halved; benchmarks/RESULTS.md,
#13 o17). The optimizer updates such a layer per repeat too (`units`).
"""

from __future__ import annotations

import collections
import functools
import itertools
import weakref

import jax
import jax.numpy as jnp
import keras

from keras_nas.blocks.conv_ops import DilConv, SepConv
from keras_nas.supernet import _darts_graph
from keras_nas.supernet import _fused_mixed_op as fused
from keras_nas.supernet import _one_shot_groups as groups
from keras_nas.supernet import _one_shot_indexed as indexed
from keras_nas.supernet._one_shot_chain import PIECE, Recorder, Value, send

__all__ = ["loss_grad", "path_grads", "units"]


def _shifts(layer) -> bool:
    """Whether `_direct` computes `layer` with shifted slices: a version 2
    `SepConv` / `DilConv` (exactly those classes) of an odd kernel, in
    float32."""
    return (
        type(layer) in (SepConv, DilConv)
        and layer.dtype_policy.name == "float32"
        and layer.ops_version >= 2
        and layer.kernel_size % 2 == 1
        and all(d.depth_multiplier == 1 for d in layer.depthwise)
    )


def _direct(layer, x, training):
    """`layer(x, training=training)`, a separable convolution's depthwise
    convolutions as in the DARTS piecewise step (`_fused_mixed_op`)."""
    if not _shifts(layer):
        return layer(x, training=training)
    with _darts_graph.piecewise():
        for r in range(layer.repeats):
            x = keras.ops.relu(x)
            kernel = keras.ops.convert_to_tensor(layer.depthwise[r].kernel)
            x = fused._depthwise(
                x,
                kernel,
                layer.strides if r == 0 else 1,
                layer.kernel_size,
                layer.dilation_rate,
            )
            x = layer.pointwise[r](x)
            x = layer.bns[r](x, training=training)
    return x


class _Repeat:
    """Repeat `r` of a shifted `SepConv` (`_shifts`) as a piece of its own:
    its sublayers (depthwise, pointwise, batch norm) and, per input shape,
    dtype and `training`, its kind's jitted forward (`_vjp_piece`)."""

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
        return (
            _Repeat,
            self.strides,
            self.size,
            self.dilation,
            tuple(map(_darts_graph._config, self.sublayers)),
            tuple(x.shape),
            str(x.dtype),
            tuple((tuple(v.shape), str(v.dtype)) for v in self.variables),
            bool(training),
        )

    @property
    def variables(self) -> list:
        return self.trainable_variables + self.non_trainable_variables

    def output(self, x, training):
        """The repeat's output on the current values of its variables."""
        depthwise, pointwise, bn = self.sublayers
        with _darts_graph.piecewise():
            x = keras.ops.relu(x)
            kernel = keras.ops.convert_to_tensor(depthwise.kernel)
            x = fused._depthwise(
                x, kernel, self.strides, self.size, self.dilation
            )
            return bn(pointwise(x), training=training)

    def function(self, x, training: bool):
        key = (tuple(x.shape), str(x.dtype), training)
        entry = self.functions.get(key)
        if entry is None or entry[0]() is None:
            entry = self.functions[key] = _repeat_function(self, x, training)
        return entry[1]


# kind of repeat -> (weak reference to the representative's batch norm,
# jitted forward).
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
                block, trainable, non_trainable,
                lambda: block.output(x, training),
            )
            if not training or not non_trainable:
                return y, []
            return y, [
                _darts_graph.packed_statistics(block, non_trainable, scope)
            ]

        entry = _REPEAT_FUNCTIONS[key] = (ref, _vjp_piece(run))
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


def _vjp_piece(run):
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


@jax.jit
def _backward(pullback, cotangent, squared):
    """The pullback's `(trainable cotangents, input cotangent)` and
    `squared` plus the squares of the former summed (`global_clipnorm`)."""
    d_trainable, d_x = pullback(cotangent)
    for d in d_trainable:
        squared = squared + jnp.sum(jnp.square(d))
    return d_trainable, d_x, squared


@functools.cache
def _splitter(sizes: tuple, axis: int):
    """A jitted split of a concatenation's cotangent into its parts."""
    cuts = list(itertools.accumulate(sizes))[:-1]
    return jax.jit(lambda g: tuple(jnp.split(g, cuts, axis=axis)))


class _Tape(Recorder):
    """The recorded forward of one path (see the module)."""

    def __init__(self, step, trainable, non_trainable, live):
        super().__init__()
        self.step, self.trainable, self.live = step, trainable, live
        self.non_trainable = list(non_trainable)

    def piece(self, layer, x, training):
        live = id(layer) in self.live
        parts = _repeats(layer)
        if parts is None:
            fn = groups._PieceLayer.of(layer).function(
                x.array, training, _vjp_piece, _direct
            )
            return self._call(layer, fn, x, live)
        for part in parts:
            x = self._call(part, part.function(x.array, training), x, live)
        return x

    def _call(self, unit, fn, x, live):
        """`unit`'s piece `fn` on `x`: its output, recorded (`live`: with
        its pullback), the new moving statistics written."""
        t_pos, n_pos = self.step._positions(unit)
        nt = self.non_trainable
        y, new, pullback = fn(
            [self.trainable[i] for i in t_pos],
            [nt[j] for j in n_pos],
            x.array,
        )
        for j, value in zip(n_pos, new, strict=True):
            nt[j] = value
        out = self.value(y)
        if live:
            self.entries.append((PIECE, out.index, x.index, t_pos, pullback))
        return out

    def _concat(self, arrays, axis):
        return jnp.concatenate(arrays, axis=axis)

    def _split(self, cotangent, sizes, axis):
        return _splitter(sizes, axis)(cotangent)

    def backward(self, out: Value, cotangent) -> tuple:
        """`({trainable position: gradient}, their summed squares)` of the
        live layers, from the cotangent of `out`. The squares are summed
        by the backward pass, those of a layer that ran twice (a node's
        two inputs through the same op) of its summed gradients after it
        (one small compile per shape of such a layer's variables, where
        summing every gradient's compiled one per shape of the path)."""
        cts = {out.index: cotangent}
        grads: dict = {}
        runs = collections.Counter(
            tuple(e[3]) for e in self.entries if e[0] == PIECE
        )
        twice = [key for key, n in runs.items() if n > 1 and key]
        squared = _zero()
        for entry in reversed(self.entries):
            g = cts.pop(entry[1], None)
            if g is None:
                continue
            if entry[0] == PIECE:
                if runs[tuple(entry[3])] > 1:
                    d_trainable, d_x, _ = _backward(entry[4], g, _zero())
                else:
                    d_trainable, d_x, squared = _backward(
                        entry[4], g, squared
                    )
                send(cts, entry[2], d_x)
                for i, d in zip(entry[3], d_trainable, strict=True):
                    send(grads, i, d)
            else:
                self.send_back(entry, g, cts)
        self.entries = []
        for key in twice:
            for i in key:
                if i in grads:
                    squared = _add_squares(squared, grads[i])
        return grads, squared


@jax.jit
def _add_squares(squared, g):
    return squared + jnp.sum(jnp.square(g))


@functools.cache
def _zero():
    return jnp.zeros((), "float32")


def loss_grad(model, y_pred, x, y, sample_weight):
    """`(loss, gradient of the optimizer's scaled loss with respect to
    y_pred)` (jitted per model by `_one_shot_jax`)."""

    def scaled(y_pred):
        with keras.StatelessScope():
            loss, scaled = indexed.training_loss(
                model, x, y, y_pred, sample_weight
            )
        return scaled, loss

    (_, loss), grad = jax.value_and_grad(scaled, has_aux=True)(y_pred)
    return loss, grad


def path_grads(model, step, state, data, path, positions, loss_grad):
    """`(loss, y_pred, non_trainable, grads, squared)` of one Python path,
    as `_one_shot_jax._path_grads` computes the first four: the recorded
    forward of the path's pieces, `loss_grad(y_pred, x, y, sample_weight)
    -> (loss, the scaled loss's gradient)` (jitted), the backward walked
    by hand. `positions`: `_StepVariables.path` (`grads` follow its `on`);
    `squared`: the gradients' summed squares (or None)."""
    trainable, non_trainable = state
    x, y, sample_weight = data
    tape = _Tape(step, trainable, non_trainable, positions.live)
    y_pred = model._forward(tape.value(x), path, True, tape.use)
    loss, d_pred = loss_grad(y_pred.array, x, y, sample_weight)
    grads, squared = tape.backward(y_pred, d_pred)
    out = [
        grads[i] if i in grads else jnp.zeros_like(trainable[i])
        for i in positions.on
    ]
    return loss, y_pred.array, tape.non_trainable, out, squared
