"""The search itself in TensorBoard: architectures, scores, best so far."""

import json
import os

import keras
import keras_tuner
import numpy as np
import pytest

from keras_nas import tensorboard as tb
from keras_nas._tensorboard_read import _event_files
from keras_nas.visualize import draw_genotype, pareto_front


def _ordered(tuner):
    return sorted(tuner.oracle.trials.values(), key=lambda t: int(t.trial_id))


class _OpCount:
    """Scores a cell by its number of `sep_conv_3x3` edges (no training)."""

    def estimate(self, tuner, trial, *args, **kwargs):
        values = trial.hyperparameters.values
        convs = sum(v == "sep_conv_3x3" for v in values.values())
        return {"val_accuracy": 0.1 * convs + 0.001 * int(trial.trial_id)}


def _cell_space():
    from keras_nas.spaces import CellSearchSpace

    return CellSearchSpace(
        input_shape=(8, 8, 1),
        num_classes=3,
        ops=("skip_connect", "max_pool_3x3", "sep_conv_3x3"),
        num_nodes=2,
        num_cells=(1, 2),
        filters=4,
    )


def test_nas_tuner_logs_architectures_scores_and_history(tmp_path):
    from keras_nas.tuners import AgingEvolution

    space = _cell_space()
    tuner = AgingEvolution(
        space,
        objective="val_accuracy",
        max_trials=7,
        population_size=3,
        seed=0,
        estimator=_OpCount(),
        directory=str(tmp_path / "search"),
    )
    tuner.tensorboard_history_every = 3
    logdir = str(tmp_path / "logs")
    tuner.search(callbacks=[keras.callbacks.TensorBoard(logdir)])
    trials = _ordered(tuner)
    assert len(trials) == 7

    # Search run: the objective of trial k at step k (keras-tuner's trial
    # id, the one trial number everywhere), the best so far, monotone and
    # ending at the oracle's best.
    search = tb.read_scalars(os.path.join(logdir, tb.SEARCH_RUN))["."]
    scores = [t.score for t in trials]
    np.testing.assert_allclose(
        search["objective/val_accuracy"], scores, rtol=1e-6
    )
    best = search["best/val_accuracy"]
    np.testing.assert_allclose(best, np.maximum.accumulate(scores), rtol=1e-6)
    assert best[-1] == pytest.approx(tuner.oracle.get_best_trials(1)[0].score)
    assert not any(tag.startswith("hardware/") for tag in search)

    # History image: refreshed after trials 3 and 6, and at the end.
    images = tb.read_images(logdir)
    history = images[tb.SEARCH_RUN]["history"]
    assert len(history) == 3
    assert history[0].ndim == 3 and history[0].shape[2] == 3

    # Per trial: the cells drawn (pixel for pixel) and the text summary,
    # in the run of the trial, beside its HParams session.
    texts = tb.read_text(logdir)
    sessions = tb.read_hparams(logdir)
    for trial in trials:
        number = trial.trial_id  # As in the run's directory and the CLI.
        run = os.path.join(trial.trial_id, "execution0")
        assert sessions[run]["_status"] == "STATUS_SUCCESS"
        genotype = space.genotype(trial.hyperparameters.values)
        # The compact HParams column (see test_tensorboard_server.py).
        assert sessions[run][tb.GENOTYPE_HPARAM] == str(genotype)
        (text,) = texts[run][tb.ARCHITECTURE_TEXT]
        assert f"**trial {number}**" in text
        assert f"genotype: `{genotype}`" in text
        code = "\n".join(
            line[4:] for line in text.splitlines() if line.startswith("    ")
        )
        assert json.loads(code) == trial.hyperparameters.values
        (image,) = images[run][tb.ARCHITECTURE_IMAGE]
        expected = tb._figure_pixels(
            draw_genotype(genotype, title=f"trial {number}: {trial.score:.4g}")
        )[0]
        np.testing.assert_array_equal(image, expected)


def _build_dense(hp):
    model = keras.Sequential(
        [
            keras.Input((6,)),
            keras.layers.Dense(hp.Choice("units", [4, 8]), "relu"),
            keras.layers.Dense(2, activation="softmax"),
        ]
    )
    model.compile(
        optimizer="adam",
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def test_keras_tuner_tuner_with_add_search_views(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 6)).astype("float32")
    y = (x[:, 0] > 0).astype("int32")
    tuner = keras_tuner.RandomSearch(
        _build_dense,
        objective="val_accuracy",
        max_trials=2,
        seed=1,
        directory=str(tmp_path / "search"),
    )
    with pytest.raises(ValueError, match="history_every"):
        tb.add_search_views(tuner, history_every=0)
    assert tb.add_search_views(tuner, history_every=1) is tuner
    cls = type(tuner)
    assert tb.add_search_views(tuner) is tuner and type(tuner) is cls
    assert isinstance(tuner, keras_tuner.RandomSearch)
    logdir = str(tmp_path / "logs")
    tuner.search(
        x,
        y,
        validation_data=(x, y),
        epochs=1,
        batch_size=16,
        verbose=0,
        callbacks=[keras.callbacks.TensorBoard(logdir)],
    )
    trials = _ordered(tuner)
    search = tb.read_scalars(os.path.join(logdir, tb.SEARCH_RUN))["."]
    np.testing.assert_allclose(
        search["objective/val_accuracy"], [t.score for t in trials], rtol=1e-6
    )
    # history_every=1: after each trial, and at the end.
    images = tb.read_images(logdir)
    assert len(images[tb.SEARCH_RUN]["history"]) == 3
    texts = tb.read_text(logdir)
    for trial in trials:
        run = os.path.join(trial.trial_id, "execution0")
        # keras-tuner's own epoch curves are still there.
        assert tb.read_scalars(logdir)[os.path.join(run, "validation")]
        (text,) = texts[run][tb.ARCHITECTURE_TEXT]
        assert "genotype" not in text  # no genotype: the values
        assert f'"units": {trial.hyperparameters["units"]}' in text
        (image,) = images[run][tb.ARCHITECTURE_IMAGE]
        assert image.shape[2] == 3 and image.shape[0] > 50


class _Accuracy:
    def estimate(self, tuner, trial, *args, **kwargs):
        ops = list(trial.hyperparameters.values.values())
        return {"val_accuracy": 0.2 + 0.1 * ops.count("nor_conv_3x3")}


def test_hardware_aware_pareto_search(tmp_path):
    from keras_nas.estimation import HardwareAware
    from keras_nas.spaces import NasBench201SearchSpace
    from keras_nas.tuners import AgingEvolution

    space = NasBench201SearchSpace(
        input_shape=(8, 8, 1), num_classes=3, filters=4, cells_per_stage=1
    )
    estimator = HardwareAware(("params", "flops"), estimator=_Accuracy())
    tuner = AgingEvolution(
        space,
        objective=estimator.pareto_objectives("params"),
        max_trials=4,
        population_size=2,
        seed=3,
        estimator=estimator,
        directory=str(tmp_path / "search"),
    )
    logdir = str(tmp_path / "logs")
    tuner.search(callbacks=[keras.callbacks.TensorBoard(logdir)])
    trials = _ordered(tuner)
    search = tb.read_scalars(os.path.join(logdir, tb.SEARCH_RUN))["."]
    for name in ("params", "flops"):
        logged = search[f"hardware/{name}"]
        expected = [t.metrics.get_last_value(name) for t in trials]
        np.testing.assert_allclose(logged, expected, rtol=1e-6)
    accuracy = [t.metrics.get_best_value("val_accuracy") for t in trials]
    params = [t.metrics.get_best_value("params") for t in trials]
    np.testing.assert_allclose(search["objective/val_accuracy"], accuracy)
    np.testing.assert_allclose(search["objective/params"], params)
    np.testing.assert_allclose(
        search["best/params"], np.minimum.accumulate(params)
    )
    points = list(zip(accuracy, params, strict=True))
    front = [
        len(pareto_front(points[:k], ["max", "min"]))
        for k in range(1, len(trials) + 1)
    ]
    assert search["pareto/front_size"] == front
    images = tb.read_images(logdir)
    assert len(images[tb.SEARCH_RUN]["history"]) == 1  # 4 < 5: the end
    trial = trials[0]
    (image,) = images[os.path.join(trial.trial_id, "execution0")][
        tb.ARCHITECTURE_IMAGE
    ]
    genotype = space.genotype(trial.hyperparameters.values)
    title = f"trial {trial.trial_id}: {trial.score:.4g}"
    np.testing.assert_array_equal(
        image, tb._figure_pixels(draw_genotype(genotype, title=title))[0]
    )


def test_no_tensorboard_callback_writes_nothing(tmp_path):
    from keras_nas.tuners import AgingEvolution

    tuner = AgingEvolution(
        _cell_space(),
        objective="val_accuracy",
        max_trials=2,
        seed=0,
        estimator=_OpCount(),
        directory=str(tmp_path / "search"),
    )
    tuner.search(callbacks=[keras.callbacks.History()])
    assert tuner._search_views == []
    assert not _event_files(str(tmp_path))


def test_cli_tensorboard_option(tmp_path, capsys):
    from sklearn.datasets import load_digits

    from keras_nas import cli

    digits = load_digits()
    data = tmp_path / "digits.npz"
    np.savez(data, x=digits.images[:120] / 16.0, y=digits.target[:120])
    logdir = tmp_path / "tb"
    directory = tmp_path / "run"
    status = cli.main(
        ["search", "--dataset", str(data), "--directory", str(directory)]
        + ["--tensorboard", str(logdir), "--quiet", "--max-trials", "2"]
        + ["--epochs", "1", "--retrain-epochs", "1", "--num-nodes", "1"]
        + ["--num-cells", "1", "--filters", "4", "--seed", "1"]
    )
    assert status == 0, capsys.readouterr().err
    with open(directory / "results.json") as f:
        results = json.load(f)
    assert results["args"]["tensorboard"] == str(logdir)
    scores = [t["score"] for t in results["trials"]]
    search = tb.read_scalars(str(logdir / tb.SEARCH_RUN))["."]
    np.testing.assert_allclose(search["objective/val_accuracy"], scores)
    assert search["best/val_accuracy"][-1] == pytest.approx(
        results["best"]["score"]
    )
    texts = tb.read_text(str(logdir))
    sessions = tb.read_hparams(str(logdir))
    for trial in results["trials"]:
        run = os.path.join(trial["trial_id"], "execution0")
        assert sessions[run]["_status"] == "STATUS_SUCCESS"
        assert "genotype: `normal:" in texts[run][tb.ARCHITECTURE_TEXT][0]
    assert tb.read_images(str(logdir))[tb.SEARCH_RUN]["history"]


_JAX_SEARCH = """
import json, sys, keras
from keras_nas import tensorboard as tb
from keras_nas.spaces import CellSearchSpace
from keras_nas.tuners import AgingEvolution

class Est:
    def estimate(self, tuner, trial, *args, **kwargs):
        return {"val_accuracy": 0.25 * int(trial.trial_id)}

space = CellSearchSpace(input_shape=(8, 8, 1), num_classes=3,
    ops=("skip_connect", "sep_conv_3x3"), num_nodes=1, num_cells=(1,),
    filters=4)
tuner = AgingEvolution(space, objective="val_accuracy", max_trials=3,
    population_size=2, seed=0, estimator=Est(), directory=sys.argv[1])
logdir = sys.argv[1] + "/logs"
tuner.search(callbacks=[keras.callbacks.TensorBoard(logdir)], verbose=0)
print(json.dumps([keras.backend.backend(),
    tb.read_scalars(logdir + "/search")["."],
    sorted(tb.read_text(logdir))]))
"""


def test_search_views_on_jax(run_on_backend, tmp_path):
    code = f"import sys; sys.argv[1:] = [{str(tmp_path)!r}]\n" + _JAX_SEARCH
    backend, search, text_runs = json.loads(
        run_on_backend(code).strip().splitlines()[-1]
    )
    assert backend == "jax"
    assert search["objective/val_accuracy"] == [0.0, 0.25, 0.5]
    assert search["best/val_accuracy"] == [0.0, 0.25, 0.5]
    assert text_runs == ["0/execution0", "1/execution0", "2/execution0"]


class _FailsTrialOne(_OpCount):
    def estimate(self, tuner, trial, *args, **kwargs):
        if trial.trial_id == "1":
            raise keras_tuner.errors.FailedTrialError("over budget")
        return super().estimate(tuner, trial, *args, **kwargs)


def test_failed_trials_are_shown_without_a_score(tmp_path):
    from keras_nas.tuners import AgingEvolution

    tuner = AgingEvolution(
        _cell_space(),
        objective="val_accuracy",
        max_trials=3,
        seed=0,
        estimator=_FailsTrialOne(),
        directory=str(tmp_path / "search"),
    )
    logdir = str(tmp_path / "logs")
    tuner.search(callbacks=[keras.callbacks.TensorBoard(logdir)])
    scores = [t.score for t in _ordered(tuner)]
    assert scores[1] is None and None not in (scores[0], scores[2])
    search = tb.read_scalars(os.path.join(logdir, tb.SEARCH_RUN))["."]
    np.testing.assert_allclose(
        search["objective/val_accuracy"], [scores[0], scores[2]]
    )
    # The best so far is there at every trial, failed ones included.
    np.testing.assert_allclose(
        search["best/val_accuracy"],
        [scores[0], scores[0], max(scores[0], scores[2])],
    )
    (text,) = tb.read_text(logdir)["1/execution0"][tb.ARCHITECTURE_TEXT]
    assert "FAILED" in text and "score" not in text


def test_wrapped_keras_tuner_logs_estimated_trials(tmp_path):
    """`Estimator.wrap(keras_tuner_tuner)` logs like a keras-nas tuner."""
    from keras_nas.estimation._protocol import wrap_tuner

    space = _cell_space()
    tuner = keras_tuner.RandomSearch(
        space,
        objective="val_accuracy",
        max_trials=2,
        seed=2,
        directory=str(tmp_path / "search"),
    )
    tb.add_search_views(wrap_tuner(_OpCount(), tuner))
    logdir = str(tmp_path / "logs")
    tuner.search(callbacks=[keras.callbacks.TensorBoard(logdir)])
    sessions = tb.read_hparams(logdir)
    scalars = tb.read_scalars(logdir)
    texts = tb.read_text(logdir)
    for trial in _ordered(tuner):
        run = os.path.join(trial.trial_id, "execution0")
        assert sessions[run]["_status"] == "STATUS_SUCCESS"
        validation = scalars[os.path.join(run, "validation")]
        assert validation["epoch_accuracy"] == [pytest.approx(trial.score)]
        genotype = space.genotype(trial.hyperparameters.values)
        assert f"genotype: `{genotype}`" in texts[run][tb.ARCHITECTURE_TEXT][0]
    search = scalars[tb.SEARCH_RUN]
    assert len(search["objective/val_accuracy"]) == 2
