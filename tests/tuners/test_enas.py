"""Tests of the ENAS tuner (controller + shared weights in alternation)."""

import numpy as np
import pytest

from keras_nas.spaces import NasBench201SearchSpace
from keras_nas.tuners.enas import Enas

SPACE = NasBench201SearchSpace(
    input_shape=(8, 8, 1), num_classes=3, filters=4, cells_per_stage=1
)


def _data(n, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 8, 8, 1)).astype("float32")
    y = np.digitize(x[:, 2:6, 2:6].mean(axis=(1, 2, 3)), [-0.1, 0.1])
    return x, y.astype("int32")


def _tuner(tmp_path, max_trials, overwrite):
    return Enas(
        SPACE,
        max_trials=max_trials,
        controller="factorized",
        controller_steps=2,
        controller_batch=2,
        reward_batch_size=16,
        seed=0,
        directory=str(tmp_path),
        project_name="enas",
        overwrite=overwrite,
    )


def test_enas_search_best_models_and_resume(tmp_path):
    x, y = _data(64)
    val = _data(32, seed=1)
    tuner = _tuner(tmp_path, 2, True)
    tuner._load_supernet()
    tuner.supernet.sampler = "uniform"
    tuner.search(x, y, validation_data=val, epochs=1, batch_size=32)
    # The controller drives the rounds; the supernet's own sampler is back.
    assert tuner.supernet.sampler == "uniform"
    trials = list(tuner.oracle.trials.values())
    assert [t.status for t in trials] == ["COMPLETED"] * 2
    assert tuner.oracle.controller.num_updates == 4
    best_hp = tuner.get_best_hyperparameters()[0]
    model = tuner.get_best_models()[0]
    probs = model.predict(val[0], verbose=0)
    acc = float(np.mean(probs.argmax(-1) == val[1]))
    # The best model is its path with the supernet's *current* weights; the
    # best trial's score may predate later training (when it is not the
    # last trial), so compare with the path scored now.
    now = tuner.supernet.evaluate_path(best_hp.values, *val)
    assert acc == pytest.approx(now["accuracy"])
    last = trials[-1]
    assert last.score == pytest.approx(
        tuner.supernet.evaluate_path(last.hyperparameters.values, *val)[
            "accuracy"
        ]
    )
    assert set(best_hp.values) >= {"edge_1_0", "edge_3_2"}
    weights = [w.copy() for w in tuner.supernet.get_weights()]
    step = int(tuner.supernet.optimizer.iterations.numpy())
    probs_before = tuner.oracle.controller.probabilities(
        tuner.oracle.controller.trace_from_values(best_hp.values)
    )

    # Resume in a new tuner (fresh supernet and controller objects).
    resumed = _tuner(tmp_path, 3, False)
    assert len(resumed.oracle.trials) == 2
    resumed._load_supernet()
    for a, b in zip(resumed.supernet.get_weights(), weights, strict=True):
        np.testing.assert_array_equal(a, b)
    assert int(resumed.supernet.optimizer.iterations.numpy()) == step
    for a, b in zip(
        resumed.supernet.optimizer.variables,
        tuner.supernet.optimizer.variables,
        strict=True,
    ):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert (
        resumed.supernet._rng.bit_generator.state
        == tuner.supernet._rng.bit_generator.state
    )
    probs_after = resumed.oracle.controller.probabilities(
        resumed.oracle.controller.trace_from_values(best_hp.values)
    )
    for a, b in zip(probs_after, probs_before, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-12)
    resumed.search(x, y, validation_data=val, epochs=1, batch_size=32)
    assert len(resumed.oracle.trials) == 3
    assert int(resumed.supernet.optimizer.iterations.numpy()) == step + 2
    assert resumed.oracle.controller.num_updates == 6


def test_enas_arguments():
    with pytest.raises(ValueError, match="controller_steps"):
        Enas(SPACE, controller_steps=0)
    with pytest.raises(ValueError, match="hypermodel"):
        Enas()
