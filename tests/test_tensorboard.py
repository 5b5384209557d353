"""Trials land in TensorBoard's HParams dashboard, with their epoch curves."""

import os

import keras
import keras_tuner
import numpy as np
import pytest

from keras_nas import tensorboard as tb
from keras_nas._tensorboard_read import _event_files

EPOCHS = 2


def _data(n=48, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 6)).astype("float32")
    y = (x[:, 0] > 0).astype("int32")
    return x, y


def build_tiny(hp):
    """A space with string, int and bool Choices and a conditional Int."""
    activation = hp.Choice("activation", ["relu", "tanh"])
    units = hp.Choice("units", [4, 8])
    layers = [keras.Input((6,)), keras.layers.Dense(units, activation)]
    # keras-tuner's pattern: the scope is entered on every build, so the
    # tuner discovers `extra_units` before the first trial.
    extra = hp.Boolean("extra")
    with hp.conditional_scope("extra", [True]):
        extra_units = hp.Int("extra_units", 2, 4)
    if extra:
        layers.append(keras.layers.Dense(extra_units))
    layers.append(keras.layers.Dense(2, activation="softmax"))
    model = keras.Sequential(layers)
    model.compile(
        optimizer="adam",
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def _search(tuner, logdir):
    x, y = _data()
    tuner.search(
        x,
        y,
        validation_data=_data(seed=1),
        epochs=EPOCHS,
        batch_size=16,
        verbose=0,
        callbacks=[keras.callbacks.TensorBoard(log_dir=str(logdir))],
    )


def _check_logged(tuner, logdir):
    """Every completed trial: an HParams session with its exact values, and
    train/validation epoch curves beside it."""
    sessions = tb.read_hparams(str(logdir))
    scalars = tb.read_scalars(str(logdir))
    trials = [
        t
        for t in tuner.oracle.trials.values()
        if t.status == keras_tuner.engine.trial.TrialStatus.COMPLETED
    ]
    assert trials
    for trial in trials:
        session = os.path.join(str(trial.trial_id), "execution0")
        assert session in sessions, sorted(sessions)
        logged = dict(sessions[session])
        assert logged.pop("_status") == "STATUS_SUCCESS"
        expected = {
            name: value
            for name, value in trial.hyperparameters.values.items()
            if trial.hyperparameters.is_active(name)
        }
        assert set(logged) == set(expected)
        for name, value in expected.items():
            if isinstance(value, str):
                assert logged[name] == value
            else:
                assert logged[name] == pytest.approx(float(value))
        for group in ("train", "validation"):
            curves = scalars[os.path.join(session, group)]
            assert len(curves["epoch_loss"]) == EPOCHS
            assert len(curves["epoch_accuracy"]) == EPOCHS
        best = trial.metrics.get_best_value("val_accuracy")
        val_curve = scalars[os.path.join(session, "validation")]
        assert max(val_curve["epoch_accuracy"]) == pytest.approx(best)
    return sessions


@pytest.mark.usefixtures("eager_functions")  # 2 epochs of 3 batches
def test_keras_tuner_random_search_logs_hparams(tmp_path):
    tuner = keras_tuner.RandomSearch(
        build_tiny,
        objective="val_accuracy",
        max_trials=3,
        seed=1,
        directory=str(tmp_path / "search"),
    )
    _search(tuner, tmp_path / "logs")
    sessions = _check_logged(tuner, tmp_path / "logs")
    assert len(sessions) == 3
    kinds = {type(v) for s in sessions.values() for v in s.values()}
    assert str in kinds and float in kinds and bool in kinds


@pytest.mark.usefixtures("eager_functions")  # 2 epochs of 3 batches
@pytest.mark.parametrize(
    "tuner_name", ["AgingEvolution", "Reinforce", "MonteCarloTreeSearch"]
)
def test_nas_tuners_log_hparams(tuner_name, tmp_path):
    from keras_nas import tuners

    cls = getattr(tuners, tuner_name)
    tuner = cls(
        build_tiny,
        objective="val_accuracy",
        max_trials=3,
        seed=2,
        directory=str(tmp_path / "search"),
    )
    _search(tuner, tmp_path / "logs")
    sessions = _check_logged(tuner, tmp_path / "logs")
    assert len(sessions) == 3


@pytest.mark.usefixtures("eager_functions")  # 2 epochs of 3 batches
def test_cell_space_choices_of_ints_and_op_names(tmp_path):
    from keras_nas.spaces import CellSearchSpace

    space = CellSearchSpace(
        input_shape=(8, 8, 1),
        num_classes=3,
        ops=("skip_connect", "max_pool_3x3", "sep_conv_3x3"),
        num_nodes=2,
        num_cells=(1, 2),
        filters=4,
    )
    rng = np.random.default_rng(0)
    x = rng.random((24, 8, 8, 1)).astype("float32")
    y = rng.integers(0, 3, 24)
    tuner = keras_tuner.RandomSearch(
        space,
        objective="val_accuracy",
        max_trials=2,
        seed=3,
        directory=str(tmp_path / "search"),
    )
    tuner.search(
        x,
        y,
        validation_data=(x, y),
        epochs=EPOCHS,
        batch_size=12,
        verbose=0,
        callbacks=[keras.callbacks.TensorBoard(str(tmp_path / "logs"))],
    )
    sessions = _check_logged(tuner, tmp_path / "logs")
    one = next(iter(sessions.values()))
    assert isinstance(one["normal/node0/op0"], str)
    assert one["normal/node1/input1"] in (0.0, 1.0, 2.0)
    assert one["num_cells"] in (1.0, 2.0)


class _FakeTuner(keras_tuner.Tuner):
    """Estimates instead of training, and logs with `log_trial_metrics`."""

    def run_trial(self, trial, *args, **kwargs):
        metrics = {
            "val_accuracy": 0.5 + 0.1 * trial.hyperparameters["units"] / 8,
            "accuracy": 0.25,
        }
        tb.log_trial_metrics(self, trial, kwargs.get("callbacks"), metrics)
        return metrics


def test_log_trial_metrics_for_estimated_trials(tmp_path):
    oracle = keras_tuner.oracles.RandomSearchOracle(
        objective="val_accuracy", max_trials=3, seed=4
    )
    tuner = _FakeTuner(
        oracle, build_tiny, directory=str(tmp_path / "search")
    )
    callback = keras.callbacks.TensorBoard(str(tmp_path / "logs"))
    tuner.search(callbacks=[callback])
    assert callback.log_dir == str(tmp_path / "logs")  # not modified
    sessions = tb.read_hparams(str(tmp_path / "logs"))
    scalars = tb.read_scalars(str(tmp_path / "logs"))
    assert len(sessions) == len(tuner.oracle.trials) == 3
    for trial in tuner.oracle.trials.values():
        session = os.path.join(trial.trial_id, "execution0")
        assert sessions[session]["_status"] == "STATUS_SUCCESS"
        assert sessions[session]["units"] == trial.hyperparameters["units"]
        val = scalars[os.path.join(session, "validation")]["epoch_accuracy"]
        train = scalars[os.path.join(session, "train")]["epoch_accuracy"]
        assert val == [
            pytest.approx(trial.metrics.get_last_value("val_accuracy"))
        ]
        assert train == [pytest.approx(0.25)]


def test_log_trial_metrics_without_tensorboard_callback_is_a_no_op(
    tmp_path,
):
    hp = keras_tuner.HyperParameters()
    hp.Choice("units", [4, 8])
    trial = keras_tuner.engine.trial.Trial(hp, trial_id="7")
    out = tb.log_trial_metrics(
        None, trial, [keras.callbacks.History()], {"val_accuracy": 1.0}
    )
    assert out == []
    callback = keras.callbacks.TensorBoard(str(tmp_path))
    out = tb.log_trial_metrics(None, trial, [callback], 0.75)
    assert out == [os.path.join(str(tmp_path), "7", "execution0")]
    sessions = tb.read_hparams(str(tmp_path))
    assert sessions["7/execution0"]["units"] == 4.0
    scalars = tb.read_scalars(str(tmp_path))
    assert scalars["7/execution0/train"]["epoch_objective"] == [0.75]


def _tags_by_plugin(logdir):
    from tensorboard.backend.event_processing import event_file_loader

    out = {}
    for path in _event_files(str(logdir)):
        for event in event_file_loader.EventFileLoader(path).Load():
            for value in event.summary.value:
                plugin = value.metadata.plugin_data.plugin_name
                out.setdefault(plugin, set()).add(value.tag)
    return out


def test_darts_logs_alpha_scalars_and_images(tmp_path):
    from keras_nas.spaces import CellSearchSpace
    from keras_nas.tuners import Darts

    rng = np.random.default_rng(0)
    x = rng.random((32, 8, 8, 1)).astype("float32")
    y = rng.integers(0, 3, 32)
    ops = ("skip_connect", "max_pool_3x3", "sep_conv_3x3")
    space = CellSearchSpace(
        (8, 8, 1), 3, ops=ops, num_nodes=2, num_cells=2, filters=4
    )
    tuner = Darts(
        space,
        batch_size=16,
        seed=0,
        directory=str(tmp_path / "search"),
    )
    logdir = tmp_path / "logs"
    tuner.search(
        x,
        y,
        validation_data=(x, y),
        epochs=EPOCHS,
        verbose=0,
        callbacks=[keras.callbacks.TensorBoard(str(logdir))],
    )
    scalars = tb.read_scalars(str(logdir / "darts"))
    alpha = {
        tag: values
        for run in scalars.values()
        for tag, values in run.items()
        if tag.startswith("alpha/")
    }
    num_edges = 2 + 3  # nodes with 2 and 3 possible inputs
    for kind in ("normal", "reduce"):
        for e in range(num_edges):
            per_op = [
                alpha[f"alpha/{kind}/edge{e}/{op}"] for op in ("none", *ops)
            ]
            assert all(len(v) == EPOCHS for v in per_op)
            # softmax weights of one edge sum to one, every epoch
            np.testing.assert_allclose(np.sum(per_op, axis=0), 1.0, rtol=1e-5)
    images = _tags_by_plugin(logdir / "darts").get("images", set())
    assert {"alpha/normal", "alpha/reduce"} <= images
    # the supernet's own epoch curves are there too
    curves = tb.read_scalars(str(logdir))
    assert len(curves[os.path.join("train")]["epoch_loss"]) == EPOCHS
    # the derived architecture is an HParams session with its score
    sessions = tb.read_hparams(str(logdir))
    assert len(sessions) == 1
    # ... with the derived cell as text and image (`SearchViews`)
    (run,) = sessions
    (text,) = tb.read_text(str(logdir))[run][tb.ARCHITECTURE_TEXT]
    genotype = tuner.hypermodel.genotype(
        tuner.get_best_hyperparameters()[0].values
    )
    assert f"genotype: `{genotype}`" in text
    assert tb.read_images(str(logdir))[run][tb.ARCHITECTURE_IMAGE]
    search = tb.read_scalars(str(logdir / tb.SEARCH_RUN))["."]
    score = tuner.oracle.get_best_trials(1)[0].score
    assert search["best/val_accuracy"] == [pytest.approx(score)]


class _HalfEstimator:
    """A stand-in for `SharedWeights`: scores without training."""

    def estimate(self, tuner, trial, *args, **kwargs):
        return {"val_accuracy": 0.5, "val_loss": 1.0}


def test_estimated_trials_of_nas_tuners_log_hparams(tmp_path):
    from keras_nas.tuners import AgingEvolution

    tuner = AgingEvolution(
        build_tiny,
        objective="val_accuracy",
        max_trials=3,
        seed=2,
        estimator=_HalfEstimator(),
        directory=str(tmp_path / "search"),
    )
    logdir = tmp_path / "logs"
    tuner.search(callbacks=[keras.callbacks.TensorBoard(str(logdir))])
    sessions = tb.read_hparams(str(logdir))
    assert len(sessions) == 3
    scalars = tb.read_scalars(str(logdir))
    for trial_id in tuner.oracle.trials:
        run = os.path.join(trial_id, "execution0", "validation")
        assert scalars[run]["epoch_accuracy"] == [0.5]
