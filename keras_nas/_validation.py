"""Argument checks shared across the package (no TensorFlow, no Keras)."""

from __future__ import annotations

import numbers
from typing import Any

__all__ = ["check_positive_int", "is_int"]


def is_int(value: Any) -> bool:
    """True for Python and NumPy integers, False for booleans."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_positive_int(name: str, value: Any, minimum: int = 1) -> int:
    """`value` as an int, if it is an integer >= `minimum`."""
    if not is_int(value) or value < minimum:
        raise ValueError(
            f"Expected `{name}` to be an integer >= {minimum}. "
            f"Received: {name}={value!r}"
        )
    return int(value)
