"""The DARTS weights update of the piecewise JAX step, one call per layer.

The piecewise step (`_darts_jax.py`) updated all the network's weights in
one jitted piece: the gradients' global-norm clip, the weight decay and
the optimizer's `stateless_apply` over every weight tensor (889 at the
micro configuration: 8 filters, 5 cells). XLA compiled it into two loop
kernels per tensor, ~1,800 in one module: the largest compilation of the
first step (micro: ~3 s CPU, +190 MiB of compiler memory while it ran, at
the end of the first step: its peak; benchmarks/RESULTS.md, #13 n17).

For `TorchSGD` (the default weights optimizer) the same arithmetic runs
instead (the JAX twin of `_weight_update_tensorflow.update`):

- the clip factor from the global norm of all the gradients, one jitted
  piece (`_darts_math.flat_norm`, as before: the same factor);
- then one call per layer (`_darts_math.by_layer`: an edge, a
  preprocessing block, ...) of a function jitted once per structure of
  the layer's weights (the shapes): the clip, the decay and `TorchSGD`'s
  momentum rule on that layer's weights, momentum buffers and gradients.
  Layers of one kind share one executable (micro: 5 kinds of edge), so
  XLA compiles a few small modules, not one with every tensor.

Element for element the arithmetic of `_darts_math.clip_and_decay` and
`TorchSGD.update_step` (`g * scale`, `+ decay * w`, `buf * momentum + g`,
`w - buf * lr`). Any other optimizer or setting (Keras-side clipping or
decay, EMA, gradient accumulation, a loss scale, constraints, weights
other than float32) goes through the whole piece as before (`applies`).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from keras_nas.supernet._darts_math import by_layer, clip_factor, flat_norm
from keras_nas.supernet.torch_style import fusable

__all__ = ["applies", "clip_scale", "groups", "update"]

#: XLA options of the per-layer functions.
OPTIONS = {"xla_backend_optimization_level": 0}


def applies(optimizer, variables) -> bool:
    """Whether `update` runs `optimizer`'s step on `variables`
    (`torch_style.fusable`)."""
    return fusable(optimizer, variables)


def groups(variables) -> list:
    """The positions of `variables` updated by one call each (per layer)."""
    return by_layer(variables)


def clip_scale(grads, clip):
    """`_darts_math.clip_and_decay`'s factor: `min(1, clip / norm)`."""
    return clip_factor(flat_norm(grads), clip)


@functools.cache
def _group_function(momentum: float, decay: float):
    """`fn(values, buffers, grads, lr, scale) -> (values, buffers)`: one
    layer's clip (`scale`, None: none), decay and `TorchSGD` step, jitted
    (compiled once per shapes)."""

    def run(values, buffers, grads, lr, scale):
        new_values, new_buffers = [], []
        for k, (v, g) in enumerate(zip(values, grads, strict=True)):
            g = g.astype(v.dtype)  # `clip_and_decay`'s full precision
            if scale is not None:
                g = g * scale
            if decay:
                g = g + decay * v
            if momentum:
                g = buffers[k] * jnp.asarray(momentum, g.dtype) + g
                new_buffers.append(g)
            new_values.append(v - g * lr)
        return new_values, new_buffers

    return jax.jit(run, compiler_options=OPTIONS)


def update(optimizer, layer_groups, values, buffers, grads, lr, scale, decay):
    """The new `(values, buffers)` of `TorchSGD`'s step with the DARTS
    clip (`scale`) and decay, one jitted call per group of
    `layer_groups` (`groups`). `buffers`: the momentum buffers' values
    (one per value; empty without momentum); `lr`: the learning rate,
    in the weights' dtype."""
    momentum = float(optimizer.momentum)
    fn = _group_function(momentum, float(decay) if decay else 0.0)
    new_values, new_buffers = list(values), list(buffers)
    for group in layer_groups:
        out, out_buffers = fn(
            [values[i] for i in group],
            [buffers[i] for i in group] if momentum else [],
            [grads[i] for i in group],
            lr,
            scale,
        )
        for k, i in enumerate(group):
            new_values[i] = out[k]
            if momentum:
                new_buffers[i] = out_buffers[k]
    return new_values, new_buffers
