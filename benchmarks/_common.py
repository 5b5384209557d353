"""Helpers shared by the benchmark scripts: the digits splits (from
`keras_nas.data.load_digits_arrays`) and, for the ranking benchmarks
(`one_shot_ranking.py`, `zero_cost_ranking.py`), the arguments of their
common task and the same stand-alone training of one architecture, so both
scripts score architectures alike.

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


def add_ranking_task_arguments(parser, *, standalone_epochs: int) -> None:
    """Adds the arguments of the digits ranking task to an argparse parser.

    Shared by `one_shot_ranking.py` and `zero_cost_ranking.py`: which
    NAS-Bench-201 architectures (`--archs`, drawn with `--seed`), the
    digits split (`--num-train`, `--num-val`), the networks (`--filters`,
    `--cells-per-stage`), the training batch size (`--batch-size`), the
    stand-alone training (`--standalone-epochs`, `--learning-rate`) and
    `--json`. The same values give both scripts the same architectures and
    stand-alone scores.

    Args:
        parser: an `argparse.ArgumentParser`.
        standalone_epochs: the script's default of `--standalone-epochs`.
    """
    parser.add_argument("--archs", type=int, default=30)
    parser.add_argument(
        "--standalone-epochs", type=int, default=standalone_epochs
    )
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument(
        "--learning-rate",
        type=float,
        default=5e-3,
        help="Adam learning rate of the stand-alone training",
    )
    parser.add_argument("--filters", type=int, default=8)
    parser.add_argument("--cells-per-stage", type=int, default=1)
    parser.add_argument("--num-train", type=int, default=1100)
    parser.add_argument(
        "--num-val",
        type=int,
        default=400,
        help="validation images (0: all images not used for training)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None, help="write results here")


def ranking_task(args):
    """`(space, train, val)` of the digits ranking task: the
    NAS-Bench-201 space of `add_ranking_task_arguments`' networks on 8x8x1
    digits, and the digits split."""
    from keras_nas.spaces import NasBench201SearchSpace

    train, val = digits_split(args.seed, args.num_train, args.num_val)
    space = NasBench201SearchSpace(
        input_shape=(8, 8, 1),
        num_classes=10,
        filters=args.filters,
        cells_per_stage=args.cells_per_stage,
        learning_rate=args.learning_rate,
    )
    return space, train, val


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
