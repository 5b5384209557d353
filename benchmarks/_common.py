"""Helpers shared by the ranking benchmarks (`one_shot_ranking.py`,
`zero_cost_ranking.py`): the same digits split and the same stand-alone
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
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = (digits.images / 16.0).astype("float32")[..., None]
    y = digits.target.astype("int32")
    order = np.random.default_rng(seed).permutation(len(x))
    x, y = x[order], y[order]
    train = (x[:num_train], y[:num_train])
    end = len(x) if num_val <= 0 else num_train + num_val
    val = (x[num_train:end], y[num_train:end])
    return train, val


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
