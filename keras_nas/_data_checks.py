"""Checks of array data before any training (used by `keras_nas.data`).

Each check raises a `ValueError` that says what was found: a search on
data with NaN, inf or huge values, a handful of examples, labels that are
not `0..C-1` or complex numbers would otherwise run to the end and report a
"best model" with a NaN loss, or build a model with a million outputs.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "MAX_ABS_INPUT",
    "MAX_CLASSES",
    "MIN_EXAMPLES_PER_CLASS",
    "check_arrays",
    "check_split_sizes",
]

#: Largest number of classes a dataset may have (labels `0..C-1`).
MAX_CLASSES = 1000
#: Every class needs this many examples (one each for train, validation
#: and test).
MIN_EXAMPLES_PER_CLASS = 3
#: Largest absolute input value: larger ones overflow float32 activations
#: (their squares pass 3.4e38 at 1.8e19) long before that; inputs are
#: expected scaled, e.g. to [0, 1].
MAX_ABS_INPUT = 1e6


def _where(source: str) -> str:
    return f"dataset={source!r}"


def check_arrays(
    x: np.ndarray,
    y: np.ndarray,
    source: str,
    max_classes: int = MAX_CLASSES,
) -> tuple[np.ndarray, np.ndarray]:
    """Checks image arrays and labels; returns them as float32 and int64.

    Integer images (e.g. uint8 pixels) are scaled to [0, 1]; a missing
    channel axis is added, so `(n, H, W)` becomes `(n, H, W, 1)`.

    Args:
        x: images, `(n, H, W)` or `(n, H, W, C)`, real numbers.
        y: integer labels `0..C-1`, shape `(n,)`.
        source: where the arrays came from (for the messages).
        max_classes: largest number of classes accepted.

    Returns:
        `(x, y)` as float32 and int64 arrays.

    Raises:
        ValueError: saying what was found.
    """
    where = _where(source)
    for name, array in (("x", x), ("y", y)):
        kind = array.dtype.kind
        if kind not in "biuf":
            what = "complex" if kind == "c" else "non-numeric"
            raise ValueError(
                f"Expected '{name}' to hold real numbers. Received: {where} "
                f"with {name}.dtype={array.dtype} ({what})"
            )
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4 or y.ndim != 1 or len(x) != len(y):
        raise ValueError(
            "Expected 'x' of shape (n, H, W) or (n, H, W, C) and 'y' of shape "
            f"(n,). Received: {where} with x.shape={x.shape}, "
            f"y.shape={y.shape}"
        )
    if len(y) == 0 or 0 in x.shape[1:]:
        raise ValueError(
            "Expected at least one example of a non-empty shape. Received: "
            f"{where} with x.shape={x.shape}"
        )
    if x.dtype.kind == "f":
        _check_finite(x, where)
    if y.dtype.kind == "f":
        raise ValueError(
            "Expected 'y' to hold integer class labels 0..C-1. Received: "
            f"{where} with y.dtype={y.dtype}"
        )
    _check_labels(y, where, max_classes)
    if x.dtype.kind in "iub":
        x = x.astype("float32") / (1.0 if x.dtype.kind == "b" else 255.0)
    return x.astype("float32"), y.astype("int64")


def _check_finite(x: np.ndarray, where: str) -> None:
    finite = np.isfinite(x)
    if not finite.all():
        bad = np.flatnonzero(~finite.reshape(len(x), -1).all(axis=1))
        kinds = sorted(
            {"nan" if np.isnan(v) else str(v) for v in x[~finite][:1000]}
        )
        raise ValueError(
            "Expected 'x' to hold finite numbers. Received: "
            f"{where} with {int((~finite).sum())} non-finite values "
            f"({', '.join(kinds)}) in {len(bad)} examples, the first at "
            f"index {int(bad[0])}"
        )
    peak = float(np.abs(x).max())
    if peak > MAX_ABS_INPUT:
        raise ValueError(
            f"Expected 'x' to hold values within +-{MAX_ABS_INPUT:g} (scale "
            f"the inputs, e.g. to [0, 1]). Received: {where} with "
            f"max |x| = {peak:.3g}"
        )


def _check_labels(y: np.ndarray, where: str, max_classes: int) -> None:
    low, high = int(y.min()), int(y.max())
    if low < 0:
        raise ValueError(
            "Expected 'y' to hold class labels 0..C-1. Received: "
            f"{where} with label {low}"
        )
    if high + 1 > max_classes:
        raise ValueError(
            f"Expected at most {max_classes} classes (labels 0..C-1). "
            f"Received: {where} with label {high} ({high + 1} classes)"
        )
    counts = np.bincount(y.astype("int64"), minlength=high + 1)
    if high < 1:
        raise ValueError(
            "Expected at least 2 classes. Received: "
            f"{where} with every label {high}"
        )
    empty = np.flatnonzero(counts == 0)
    if len(empty):
        hint = " (labels counted from 1? subtract 1)" if empty[0] == 0 else ""
        raise ValueError(
            f"Expected labels 0..C-1 with an example of each class{hint}. "
            f"Received: {where} with labels 0..{high} and no example of "
            f"class {_listing(empty)}"
        )
    few = np.flatnonzero(counts < MIN_EXAMPLES_PER_CLASS)
    if len(few):
        raise ValueError(
            f"Expected at least {MIN_EXAMPLES_PER_CLASS} examples of each "
            "class (train, validation and test). Received: "
            f"{where} with {len(y)} examples; class {int(few[0])} has "
            f"{int(counts[few[0]])}"
        )


def _listing(values: np.ndarray, limit: int = 5) -> str:
    text = ", ".join(str(int(v)) for v in values[:limit])
    return text + (
        f" and {len(values) - limit} more" if len(values) > limit else ""
    )


def check_split_sizes(
    n: int,
    num_classes: int,
    validation_split: float,
    test_split: float,
    source: str,
) -> None:
    """Checks that each split can hold an example of every class.

    Raises:
        ValueError: naming the split, its size and the number of classes.
    """
    fractions = (validation_split, test_split)
    if not all(isinstance(f, (int, float)) and 0 < f < 1 for f in fractions):
        return  # `split_arrays` names the bad argument.
    if validation_split + test_split >= 1:
        return
    n_test = max(1, int(round(n * test_split)))
    n_val = max(1, int(round(n * validation_split)))
    sizes = {
        "train": n - n_test - n_val,
        "validation": n_val,
        "test": n_test,
    }
    for split, size in sizes.items():
        if size < num_classes:
            raise ValueError(
                f"Expected every split to hold at least one example of each "
                f"of the {num_classes} classes. Received: {_where(source)} "
                f"with {n} examples: the {split} split gets {size} "
                f"(validation_split={validation_split}, "
                f"test_split={test_split})"
            )
