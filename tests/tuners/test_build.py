"""`NasTuner` builds each trial's model after one garbage collection."""

import gc

import keras
import keras_tuner
import pytest

from keras_nas.tuners.evolution import AgingEvolution


def _tuner(tmp_path, build, **kwargs):
    return AgingEvolution(
        build,
        objective="val_loss",
        max_trials=1,
        seed=0,
        directory=str(tmp_path),
        **kwargs,
    )


def _dense(hp):
    model = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(hp.Choice("units", [8]))]
    )
    model.compile(loss="mse")
    return model


def test_one_collection_per_build_and_keras_tuners_checks(tmp_path):
    collections = []

    def count(phase, info):
        if phase == "start" and info["generation"] == 2:
            collections.append(1)

    tuner = _tuner(tmp_path, _dense)
    gc.callbacks.append(count)
    try:
        model = tuner._try_build(keras_tuner.HyperParameters())
    finally:
        gc.callbacks.remove(count)
    assert len(collections) == 1  # keras-tuner's own: two
    assert model.count_params() == 40
    # keras-tuner's checks are kept: the model's size and its type.
    small = _tuner(tmp_path / "small", _dense, max_model_size=39)
    with pytest.raises(keras_tuner.errors.FailedTrialError, match="40"):
        small._try_build(keras_tuner.HyperParameters())
    assert _tuner(tmp_path / "ok", _dense, max_model_size=40)._try_build(
        keras_tuner.HyperParameters()
    )
    wrong = _tuner(tmp_path / "wrong", lambda hp: "a model")
    with pytest.raises(keras_tuner.errors.FatalTypeError, match="str"):
        wrong._try_build(keras_tuner.HyperParameters())


def test_the_keras_distribution_outlives_the_cleared_session(tmp_path):
    # `keras.backend.clear_session` forgets the distribution set for the
    # process; each trial's model must still be built under it (JAX
    # `keras-nas search --devices`).
    seen = []

    def build(hp):
        seen.append(keras.distribution.distribution())
        return _dense(hp)

    distribution = keras.distribution.DataParallel()
    keras.distribution.set_distribution(distribution)
    try:
        tuner = _tuner(tmp_path, build)
        seen.clear()  # keras-tuner builds once when the tuner is made
        tuner._try_build(keras_tuner.HyperParameters())
        assert seen == [distribution]
        assert keras.distribution.distribution() is distribution
    finally:
        keras.distribution.set_distribution(None)
    tuner = _tuner(tmp_path / "none", build)
    seen.clear()
    tuner._try_build(keras_tuner.HyperParameters())
    assert seen == [None]
