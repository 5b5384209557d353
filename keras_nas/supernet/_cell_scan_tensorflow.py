"""`scan` of `_cell_scan.py` on TensorFlow: one `tf.while_loop`.

The loop body is traced once, whatever the number of edges it runs; its
gradient is another loop (`while_v2`).
"""

from __future__ import annotations

import tensorflow as tf

__all__ = ["scan", "applies"]


def applies(inputs) -> bool:
    """In a traced graph without a `tf.distribute` strategy (eager steps
    and mirrored variables keep one function call per edge)."""
    return not tf.executing_eagerly() and not tf.distribute.has_strategy()


def scan(body, carry, xs, ys_specs):
    """`(carry, ys)` of `body(carry, x)` over the leading axis of `xs`.

    As `jax.lax.scan` with a flat list `xs` and `ys` and a tensor carry;
    `ys_specs`: the `(shape, dtype)` of each of `body`'s `ys`.
    """
    n = int(xs[0].shape[0])
    inputs = [
        tf.TensorArray(x.dtype, size=n, element_shape=x.shape[1:]).unstack(x)
        for x in xs
    ]
    outputs = [
        tf.TensorArray(dtype, size=n, element_shape=shape)
        for shape, dtype in ys_specs
    ]

    def step(i, c, arrays):
        c, ys = body(c, [a.read(i) for a in inputs])
        arrays = [a.write(i, y) for a, y in zip(arrays, ys, strict=True)]
        return i + 1, c, arrays

    _, carry, outputs = tf.while_loop(
        lambda i, *_: i < n,
        step,
        (tf.constant(0), carry, outputs),
        parallel_iterations=1,
    )
    return carry, [a.stack() for a in outputs]
