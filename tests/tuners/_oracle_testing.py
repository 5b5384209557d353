"""Shared set-up of the oracle tests (evolution, MCTS, REINFORCE).

Toy spaces and scores, a loop that drives an oracle through keras-tuner's
oracle API without a tuner, and a tiny real search on digits (the `digits`
fixture is in `conftest.py`).
"""

from __future__ import annotations

import math

import keras_tuner
from keras_tuner.engine import trial as trial_module

OBJ = keras_tuner.Objective("score", "max")
STATUS = trial_module.TrialStatus


def choice_space(num=4):
    """`num` Choices `op{i}` of "a".."d"."""
    hp = keras_tuner.HyperParameters()
    for i in range(num):
        hp.Choice(f"op{i}", ["a", "b", "c", "d"])
    return hp


def mixed_space():
    """Four ops, a stepped Int, a log Float and a Boolean."""
    hp = choice_space()
    hp.Int("units", 8, 64, step=8)
    hp.Float("lr", 1e-4, 1e-1, sampling="log")
    hp.Boolean("bn")
    return hp


def conditional_space():
    """A `model` Choice whose values activate different children."""
    hp = keras_tuner.HyperParameters()
    hp.Choice("model", ["linear", "mlp", "cnn"])
    with hp.conditional_scope("model", ["mlp"]):
        hp.Int("layers", 1, 3)
        hp.Choice("units", [16, 32])
    with hp.conditional_scope("model", ["cnn"]):
        hp.Choice("kernel", [3, 5])
    hp.Boolean("dropout")
    return hp


def small_space():
    """3 * 3 * 2 = 18 points."""
    hp = keras_tuner.HyperParameters()
    hp.Choice("x", [0, 1, 2])
    hp.Choice("y", ["p", "q", "r"])
    hp.Boolean("z")
    return hp


def mixed_score(v):
    """Best: every op "d", 64 units, lr 1e-2, bn."""
    ops = [v[k] for k in v if k.startswith("op")]
    return (
        sum("abcd".index(op) for op in ops)
        + v["units"] / 64
        - abs(math.log10(v["lr"]) + 2)
        + v["bn"]
    )


def drive(oracle, fn, n, tuner_id="tuner0", save=True):
    """Runs `n` trials through the oracle API; returns their values.

    `fn(values)` is the score; a `RuntimeError` from it fails the trial.
    `save=True` saves the oracle after each trial, as
    `Tuner.on_trial_end` does.
    """
    out = []
    for _ in range(n):
        trial = oracle.create_trial(tuner_id)
        assert trial.status != STATUS.IDLE
        if trial.status == STATUS.STOPPED:
            break
        values = dict(trial.hyperparameters.values)
        out.append(values)
        try:
            score = fn(values)
        except RuntimeError as e:
            trial.status = STATUS.FAILED
            trial.message = str(e)
            oracle.end_trial(trial)
            continue
        oracle.update_trial(trial.trial_id, {"score": score})
        trial.status = STATUS.COMPLETED
        oracle.end_trial(trial)
        if save:
            oracle.save()
    return out


def make_oracle(cls, tmp_path, name="p", space=None, **kwargs):
    """An oracle of class `cls` in project `tmp_path/name`, quiet."""
    kwargs.setdefault("objective", OBJ)
    oracle = cls(
        hyperparameters=space if space is not None else mixed_space(),
        **kwargs,
    )
    oracle._set_project_dir(str(tmp_path), name)
    oracle.verbose = 0
    return oracle


def build_tiny_model(hp):
    """A compiled one-hidden-layer digits classifier (2 * 2 points)."""
    import keras

    model = keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Flatten(),
            keras.layers.Dense(
                hp.Choice("units", [8, 16]),
                activation=hp.Choice("act", ["relu", "tanh"]),
            ),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    model.compile(
        "adam", "sparse_categorical_crossentropy", metrics=["accuracy"]
    )
    return model


def tiny_digits_search(tuner_cls, tmp_path, digits, **kwargs):
    """Searches 3 trials of `build_tiny_model` (project `digits`).

    The project is reloaded if it exists (`overwrite=False`); returns the
    tuner after its search.
    """
    tuner = tiny_digits_tuner(tuner_cls, tmp_path, **kwargs)
    x, y = digits
    tuner.search(x, y, epochs=1, validation_split=0.3, verbose=0)
    return tuner


def tiny_digits_tuner(tuner_cls, tmp_path, **kwargs):
    """The tuner of `tiny_digits_search`, before its search."""
    kwargs.setdefault("max_trials", 3)
    kwargs.setdefault("seed", 1)
    return tuner_cls(
        build_tiny_model,
        objective="val_accuracy",
        directory=str(tmp_path),
        project_name="digits",
        **kwargs,
    )
