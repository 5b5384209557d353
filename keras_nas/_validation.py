"""Argument checks shared across the package (no TensorFlow, no Keras).

Every check takes `(name, value, ...)`: the argument's name first, then the
value the user passed, which the `ValueError` always shows as given
(`Received: name=value`), never a value converted or replaced on the way.
"""

from __future__ import annotations

import numbers
import reprlib
from collections.abc import Sequence
from typing import Any

__all__ = [
    "MAX_CELLS",
    "MAX_FILTERS",
    "MAX_NODES",
    "RELAXATIONS",
    "check_bool",
    "check_choice",
    "check_edge_arguments",
    "check_no_estimator",
    "check_number",
    "check_objective",
    "check_partial_channels",
    "check_positive_int",
    "check_relaxation",
    "check_seed",
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
#: The accepted values of a DARTS edge's `relaxation`
#: (keras_nas.supernet.relaxations).
RELAXATIONS = ("softmax", "gumbel", "binary")

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
    name: str,
    value: Any,
    minimum: int = 1,
    maximum: int | None = None,
    allow_none: bool = False,
) -> int | None:
    """`value` as an int, if it is an integer in [`minimum`, `maximum`]
    (or None, with `allow_none`)."""
    if value is None and allow_none:
        return None
    if (
        not is_int(value)
        or value < minimum
        or (maximum is not None and value > maximum)
    ):
        expected = (
            f">= {minimum}" if maximum is None else f"in [{minimum}, {maximum}]"
        )
        if allow_none:
            expected += " or None"
        raise ValueError(
            f"Expected `{name}` to be an integer {expected}. "
            f"Received: {name}={short_repr(value)}"
        )
    return int(value)


def check_relaxation(relaxation: Any) -> str:
    """`relaxation` of a DARTS edge, cell or supernet: one of
    `RELAXATIONS`."""
    if relaxation not in RELAXATIONS:
        raise ValueError(
            f"Expected `relaxation` to be one of {list(RELAXATIONS)}. "
            f"Received: relaxation={relaxation!r}"
        )
    return str(relaxation)


def check_partial_channels(partial_channels: Any, filters: int) -> int:
    """PC-DARTS' K: a positive int dividing `filters`."""
    k = check_positive_int("partial_channels", partial_channels)
    if filters % k:
        raise ValueError(
            "Expected `partial_channels` to divide the channels of every "
            f"edge ({filters}). Received: partial_channels={k!r}"
        )
    return k


def check_edge_arguments(
    filters: Any,
    relaxation: Any,
    partial_channels: Any,
    min_filters: int = 1,
) -> tuple[int, str, int]:
    """`(filters, relaxation, partial_channels)` of a DARTS `MixedOp`,
    `SearchCell` or NAS-Bench-201 search cell, checked in that order
    (their `ops_version` is checked by the blocks' version scope)."""
    filters = check_positive_int("filters", filters, min_filters, MAX_FILTERS)
    relaxation = check_relaxation(relaxation)
    k = check_partial_channels(partial_channels, filters)
    return filters, relaxation, k


def check_number(
    name: str,
    value: Any,
    low: float,
    high: float,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """`value` as a float, if it is a real number in the interval from `low`
    to `high` (each end closed unless `low_open` / `high_open`)."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if ok:
        number = float(value)
        ok = (low < number if low_open else low <= number) and (
            number < high if high_open else number <= high
        )
    if not ok:
        interval = (
            f"{'(' if low_open else '['}{low:g}, {high:g}"
            f"{')' if high_open else ']'}"
        )
        raise ValueError(
            f"Expected `{name}` to be a number in {interval}. "
            f"Received: {name}={short_repr(value)}"
        )
    return float(value)


def check_bool(name: str, value: Any) -> bool:
    """`value` if it is a bool (not an int that looks like one)."""
    if not isinstance(value, bool):
        raise ValueError(
            f"Expected `{name}` to be a bool. "
            f"Received: {name}={short_repr(value)}"
        )
    return value


def check_choice(name: str, value: Any, allowed: Sequence[Any]) -> Any:
    """`value` if it is one of `allowed` (bools never match numbers)."""
    if not any(
        value == a and isinstance(value, bool) == isinstance(a, bool)
        for a in allowed
    ):
        raise ValueError(
            f"Expected `{name}` to be one of {list(allowed)}. "
            f"Received: {name}={short_repr(value)}"
        )
    return value


def check_seed(seed: Any) -> int | None:
    """`seed` as an int in [0, 2**32), or `None`; else a `ValueError`."""
    if seed is None:
        return None
    if not is_int(seed) or not 0 <= seed < 2**32:
        raise ValueError(
            "Expected `seed` to be None or an integer in [0, 2**32). "
            f"Received: seed={short_repr(seed)}"
        )
    return int(seed)


def _is_objective(value: Any) -> bool:
    # A metric name or a `keras_tuner.Objective` (duck-typed: no Keras here).
    if isinstance(value, str):
        return bool(value)
    return isinstance(getattr(value, "name", None), str) and getattr(
        value, "direction", None
    ) in ("min", "max")


def check_objective(
    objective: Any, reported: Any = None, default: Any = None
) -> Any:
    """`objective` if keras-tuner accepts it: None, a metric name, a
    `keras_tuner.Objective`, or a non-empty list of names and Objectives.

    Every keras-nas tuner and oracle defaults to `objective=None`, as
    keras-tuner does. For a general oracle None keeps keras-tuner's meaning
    (the value `run_trial`/`fit` returns, minimized); a tuner that reports
    fixed metrics (`Darts`, `Enas`) passes its `default` metric, which None
    then stands for (returned in its place).

    With `reported` (the metric names a tuner reports, fixed in advance),
    each objective must also be one of them.
    """
    if objective is None:
        objective = default
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


def check_no_estimator(tuner: str, kwargs: dict) -> None:
    """A `ValueError` if `kwargs` pass an `estimator` to a tuner that scores
    its trials itself (`Darts`, `Enas`) and so cannot honour one."""
    estimator = kwargs.get("estimator")
    if estimator is not None:
        raise ValueError(
            f"Expected no `estimator` for `{tuner}`, which scores its "
            "trials with its own supernet (use the estimator with another "
            "tuner, e.g. `AgingEvolution`). "
            f"Received: estimator={short_repr(estimator)}"
        )
