"""Helpers shared by the benchmark scripts: the digits splits (from
`keras_nas.data.load_digits_arrays`) and, for the ranking benchmarks
(`one_shot_ranking.py`, `zero_cost_ranking.py`), the same stand-alone
training of one architecture, so both scripts score architectures alike.

The scripts run as `python benchmarks/<script>.py`, which puts this folder
on `sys.path`; they import this module as `_common`.
"""

from __future__ import annotations

import numpy as np


def digits_split(seed: int, num_train: int, num_val: int):
    """scikit-learn digits as (n, 8, 8, 1) in [0, 1], shuffled with `seed`.

    Returns `((x_train, y_train), (x_val, y_val))`: the first `num_train`
    shuffled images, then the next `num_val` (all the rest when
    `num_val <= 0`).
    """
    from keras_nas.data import load_digits_arrays

    x, y = load_digits_arrays()
    y = y.astype("int32")
    order = np.random.default_rng(seed).permutation(len(x))
    x, y = x[order], y[order]
    train = (x[:num_train], y[:num_train])
    end = len(x) if num_val <= 0 else num_train + num_val
    val = (x[num_train:end], y[num_train:end])
    return train, val


def digits_train_test(test_size: float = 0.2, random_state: int = 0):
    """Stratified split of the digits: `x_train, x_test, y_train, y_test`."""
    from sklearn.model_selection import train_test_split

    from keras_nas.data import load_digits_arrays

    x, y = load_digits_arrays()
    return train_test_split(
        x, y, test_size=test_size, random_state=random_state, stratify=y
    )


def fit_score(
    space, hp, train, val, *, seed: int, epochs: int, batch_size: int, last: int
) -> float:
    """Trains `space.build(hp)` from scratch (global seed `seed`).

    Returns the validation accuracy averaged over the last `last` epochs.
    """
    import keras

    keras.utils.set_random_seed(seed)
    model = space.build(hp)
    history = model.fit(
        *train,
        validation_data=val,
        epochs=epochs,
        batch_size=batch_size,
        verbose=0,
    ).history
    return float(np.mean(history["val_accuracy"][-last:]))
