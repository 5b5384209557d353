"""Argument checks shared across the package (no TensorFlow, no Keras)."""

from __future__ import annotations

import numbers
import reprlib
from typing import Any

__all__ = ["check_positive_int", "is_int", "short_repr"]

_REPR = reprlib.Repr()
_REPR.maxlevel = 4
_REPR.maxstring = 120
_REPR.maxother = 120
for _attr in ("maxlist", "maxtuple", "maxdict", "maxset"):
    setattr(_REPR, _attr, 8)


def short_repr(value: Any) -> str:
    """`repr(value)` for an error message: nesting and length are capped.

    A deeply nested or huge value (a corrupt JSON file, say) would make
    `repr` raise `RecursionError` or flood the message.
    """
    return _REPR.repr(value)


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
