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

What a layer's piece computes and how a layer is cut into pieces (a
`SepConv` per repeat) is `_one_shot_pieces_jax`'s.
"""

from __future__ import annotations

import collections
import functools
import itertools

import jax
import jax.numpy as jnp
import keras

from keras_nas.supernet import _one_shot_indexed as indexed
from keras_nas.supernet import _one_shot_pieces_jax as pieces
from keras_nas.supernet._one_shot_chain import PIECE, Recorder, Value, send

__all__ = ["loss_grad", "path_grads"]


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
        for unit in pieces.units(layer):
            fn = pieces.function(unit, x.array, training)
            x = self._call(unit, fn, x, live)
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
        by the backward pass; a piece that ran more than once (a node's
        two inputs through the same op) gets its calls' gradients summed
        and their squares added after the walk, by one call per such piece
        (`_summed`: one compile per structure of its variables, where
        adding each gradient compiled one per shape)."""
        cts = {out.index: cotangent}
        grads: dict = {}
        runs = collections.Counter(
            tuple(e[3]) for e in self.entries if e[0] == PIECE
        )
        twice = {key: [] for key, n in runs.items() if n > 1 and key}
        squared = _zero()
        for entry in reversed(self.entries):
            g = cts.pop(entry[1], None)
            if g is None:
                continue
            if entry[0] != PIECE:
                self.send_back(entry, g, cts)
                continue
            key = tuple(entry[3])
            if key in twice:
                d_trainable, d_x, _ = _backward(entry[4], g, _zero())
                twice[key].append(d_trainable)
            else:
                d_trainable, d_x, squared = _backward(entry[4], g, squared)
                for i, d in zip(key, d_trainable, strict=True):
                    send(grads, i, d)
            send(cts, entry[2], d_x)
        self.entries = []
        for key, parts in twice.items():
            if parts:
                total, squared = _summed(squared, parts)
                grads.update(zip(key, total, strict=True))
        return grads, squared


@jax.jit
def _summed(squared, parts):
    """The gradients of a piece's calls (`parts`) summed, and `squared`
    plus the sums' squares."""
    total = [functools.reduce(jnp.add, ds) for ds in zip(*parts, strict=True)]
    for d in total:
        squared = squared + jnp.sum(jnp.square(d))
    return total, squared


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
    by hand. `positions`: `_one_shot_variables_jax.StepVariables.path`
    (`grads` follow its `on`); `squared`: the gradients' summed squares
    (or None)."""
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
