"""A size budget for the models of a search (parameters and FLOPs).

`check_budget` fails a trial whose model is over a parameter or FLOP budget
before it trains, as keras-tuner's `max_model_size` does for parameters:
call it in a hypermodel's `build` (or a tuner's `_try_build`) and the tuner
records the trial as failed and goes on. The `keras-nas search` command's
`--max-params` / `--max-flops` options use it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from keras_tuner import errors

from keras_nas._validation import check_positive_int
from keras_nas.estimation.hardware import count_flops, count_params

__all__ = ["check_budget"]


def check_budget(
    model: Any,
    max_params: int | None = None,
    max_flops: int | None = None,
    labels: Mapping[str, str] | None = None,
) -> dict[str, int]:
    """Fails the trial of a model over a parameter or FLOP budget.

    Args:
        model: a Keras model (built, or with known input shapes).
        max_params: the most parameters (`count_params`), or None.
        max_flops: the most FLOPs of one example's forward pass
            (`count_flops`), or None.
        labels: how the limits are named in the message, e.g.
            `{"max_params": "--max-params "}` (default `max_params=`).

    Returns:
        The counts measured: `{"params": ..., "flops": ...}` for the limits
        given.

    Raises:
        keras_tuner.errors.FailedTrialError: the model is over a limit
            (keras-tuner then fails the trial and goes on).
        ValueError: a limit is not a positive integer.

    Example:

    ```python
    def build(hp):
        model = space.build(hp)
        check_budget(model, max_params=100_000)
        return model
    ```
    """
    limits = {
        "max_params": check_positive_int(
            "max_params", max_params, allow_none=True
        ),
        "max_flops": check_positive_int(
            "max_flops", max_flops, allow_none=True
        ),
    }
    labels = {k: f"{k}=" for k in limits} | dict(labels or {})
    counts = {}
    for key, what, count in (
        ("max_params", "params", count_params),
        ("max_flops", "flops", count_flops),
    ):
        limit = limits[key]
        if limit is None:
            continue
        counts[what] = value = int(count(model))
        if value > limit:
            raise errors.FailedTrialError(
                f"Over budget: {value} > {labels[key]}{limit}. Skip model."
            )
    return counts
