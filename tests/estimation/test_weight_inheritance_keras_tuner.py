"""The keras-tuner internals `WeightInheritance.estimate` relies on.

keras-tuner has no public API for the pieces of `Tuner.run_trial` that
`WeightInheritance` repeats around the inherited weights (see the comment in
`keras_nas/estimation/weight_inheritance.py`). This pins what it assumes of
them, so that a keras-tuner upgrade that changes them fails here, by name.
"""

import os

import keras
import keras_tuner
import numpy as np
import pytest
from keras_tuner.src.engine import tuner_utils

from keras_nas.estimation._protocol import best_epoch_metrics

# A tiny model and one batch: tracing costs more than running.
pytestmark = pytest.mark.usefixtures("eager_functions")


def _build(hp):
    model = keras.Sequential(
        [
            keras.Input((4,)),
            keras.layers.Dense(hp.Choice("units", [3, 5]), activation="relu"),
            keras.layers.Dense(2, activation="softmax"),
        ]
    )
    model.compile(
        optimizer="sgd",
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def test_private_tuner_methods_weight_inheritance_uses(tmp_path):
    tuner = keras_tuner.RandomSearch(
        _build,
        objective="val_accuracy",
        max_trials=1,
        seed=0,
        optimizer=keras.optimizers.Adam(0.01),  # a tuner-level override
        max_model_size=1000,
        directory=str(tmp_path),
    )
    trial = tuner.oracle.create_trial("tuner0")

    # `_try_build`: the hypermodel's model with the tuner's compile
    # overrides and size limit (`hypermodel.build` alone applies neither).
    model = tuner._try_build(trial.hyperparameters)
    assert isinstance(model, keras.Model)
    assert isinstance(model.optimizer, keras.optimizers.Adam)
    assert not isinstance(
        tuner.hypermodel.build(trial.hyperparameters).optimizer,
        keras.optimizers.Adam,
    )

    # `_deepcopy_callbacks` copies; `_configure_tensorboard_dir` gives a
    # TensorBoard callback its per-trial log dir (and adds the HParams one).
    logs = str(tmp_path / "logs")
    given = [keras.callbacks.TensorBoard(logs)]
    callbacks = tuner._deepcopy_callbacks(given)
    assert callbacks[0] is not given[0] and given[0].log_dir == logs
    tuner._configure_tensorboard_dir(callbacks, trial, 0)
    assert callbacks[0].log_dir == os.path.join(
        logs, trial.trial_id, "execution0"
    )
    assert len(callbacks) == 2

    # `SaveBestEpoch` writes the best epoch's weights to
    # `_get_checkpoint_fname`, the file `load_model` (hence
    # `get_best_models`) reads.
    path = tuner._get_checkpoint_fname(trial.trial_id)
    assert os.path.dirname(path) == tuner.get_trial_dir(trial.trial_id)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 4)).astype("float32")
    y = (x[:, 0] > 0).astype("int32")
    save = tuner_utils.SaveBestEpoch(tuner.oracle.objective, path)
    history = model.fit(
        x, y, validation_data=(x, y), epochs=1, callbacks=[save], verbose=0
    )
    assert os.path.exists(path)
    loaded = tuner.load_model(trial)
    for a, b in zip(loaded.weights, model.weights, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    history.history = {
        "val_accuracy": [0.5, 0.75, 0.25],
        "loss": [3.0, 2.0, 1.0],
    }
    # `WeightInheritance` reports the best epoch with our NaN-safe
    # `best_epoch_metrics`, which agrees with keras-tuner's
    # `convert_to_metrics_dict` on finite histories.
    metrics = best_epoch_metrics(history.history, tuner.oracle.objective)
    assert metrics == {"val_accuracy": 0.75, "loss": 2.0}
    assert metrics == tuner_utils.convert_to_metrics_dict(
        history, tuner.oracle.objective
    )
