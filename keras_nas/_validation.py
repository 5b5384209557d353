"""Argument checks shared across the package (no TensorFlow, no Keras)."""

from __future__ import annotations

import numbers
import reprlib
from typing import Any

__all__ = [
    "MAX_CELLS",
    "MAX_FILTERS",
    "MAX_NODES",
    "check_objective",
    "check_positive_int",
    "check_range",
    "is_int",
    "short_repr",
]

#: The largest channel count (`filters`) a keras-nas layer, cell, network,
#: supernet or search space accepts: 2**16, far above any published CNN
#: (<= 4096), so that a typo (10**9) fails at once instead of in the
#: allocator or after minutes of building.
MAX_FILTERS = 65_536
#: The most intermediate nodes per cell (DARTS uses 4, NASNet/AmoebaNet 5).
MAX_NODES = 64
#: The most cells in a network (DARTS: 20 on CIFAR-10, 14 on ImageNet).
MAX_CELLS = 1024

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


def check_positive_int(
    name: str, value: Any, minimum: int = 1, maximum: int | None = None
) -> int:
    """`value` as an int, if it is an integer in [`minimum`, `maximum`]."""
    if (
        not is_int(value)
        or value < minimum
        or (maximum is not None and value > maximum)
    ):
        expected = (
            f">= {minimum}" if maximum is None else f"in [{minimum}, {maximum}]"
        )
        raise ValueError(
            f"Expected `{name}` to be an integer {expected}. "
            f"Received: {name}={short_repr(value)}"
        )
    return int(value)


def check_range(name: str, value: Any, low: float, high: float) -> float:
    """`value` as a float, if it is a real number in [`low`, `high`]."""
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Real)
        or not low <= value <= high
    ):
        raise ValueError(
            f"Expected `{name}` to be a number in [{low:g}, {high:g}]. "
            f"Received: {name}={short_repr(value)}"
        )
    return float(value)


def _is_objective(value: Any) -> bool:
    # A metric name or a `keras_tuner.Objective` (duck-typed: no Keras here).
    if isinstance(value, str):
        return bool(value)
    return isinstance(getattr(value, "name", None), str) and getattr(
        value, "direction", None
    ) in ("min", "max")


def check_objective(objective: Any, reported: Any = None) -> Any:
    """`objective` if keras-tuner accepts it: None, a metric name, a
    `keras_tuner.Objective`, or a non-empty list of names and Objectives.

    With `reported` (the metric names a tuner reports, fixed in advance),
    each objective must also be one of them.
    """
    items = objective if isinstance(objective, list) else [objective]
    if objective is not None and (
        not items or not all(_is_objective(o) for o in items)
    ):
        raise ValueError(
            "Expected `objective` to be a metric name (e.g. 'val_accuracy'), "
            "a `keras_tuner.Objective`, or a non-empty list of these. "
            f"Received: objective={short_repr(objective)}"
        )
    if reported is not None:
        names = [o if isinstance(o, str) else o.name for o in items]
        if objective is None or any(n not in reported for n in names):
            raise ValueError(
                f"Expected `objective` to be one of the metrics this tuner "
                f"reports: {sorted(reported)}. "
                f"Received: objective={short_repr(objective)}"
            )
    return objective
