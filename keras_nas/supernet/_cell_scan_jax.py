"""`scan` of `_cell_scan.py` on JAX: `jax.lax.scan` (one compiled body)."""

from __future__ import annotations

import jax

__all__ = ["scan", "applies"]


def applies(inputs) -> bool:
    """Traced inputs only (eager JAX runs the edges one by one)."""
    return isinstance(inputs, jax.core.Tracer)


def scan(body, carry, xs, ys_specs):
    """`(carry, ys)` of `body(carry, x)` over the leading axis of `xs`
    (`ys_specs`: unused here, see the TensorFlow module)."""
    del ys_specs
    return jax.lax.scan(body, carry, xs)

