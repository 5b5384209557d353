"""Logic on a path given as Python integers or as an integer tensor.

A topology's `liveness` (`keras_nas.supernet.topology`) is written once with
these functions: on a Python path (the eager step) they return Python
booleans, on a path tensor (the compiled step) boolean tensors, and a Python
constant simplifies the expression (`x and True` is `x`), so the traced
graph only holds what depends on the path. Names as in `operator`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from keras import ops

__all__ = ["and_", "divmod_", "eq", "ne", "or_"]


def _static(value: Any) -> bool:
    return isinstance(value, (bool, int, np.integer, np.bool_))


def _logical(a, b, unit: bool, fn: Callable):
    """`fn(a, b)`, simplified when `a` or `b` is a Python bool (`unit` is
    the neutral one: False for `or`, True for `and`)."""
    if a is unit:
        return b
    if b is unit:
        return a
    if a is (not unit) or b is (not unit):
        return not unit
    return fn(a, b)


def or_(a, b):
    """`a or b`, a Python bool when both are, else a boolean tensor."""
    return _logical(a, b, False, ops.logical_or)


def and_(a, b):
    """`a and b`, a Python bool when both are, else a boolean tensor."""
    return _logical(a, b, True, ops.logical_and)


def eq(a, b):
    """`a == b` for Python integers (a bool) or integer tensors."""
    if _static(a) and _static(b):
        return bool(a == b)
    return ops.equal(a, b)


def ne(a, b):
    """`a != b` for Python integers (a bool) or integer tensors."""
    if _static(a) and _static(b):
        return bool(a != b)
    return ops.not_equal(a, b)


def divmod_(a, b: int) -> tuple[Any, Any]:
    """`(a // b, a % b)` for a Python integer or an integer tensor."""
    if _static(a):
        return int(a) // b, int(a) % b
    return ops.floor_divide(a, b), ops.mod(a, b)
