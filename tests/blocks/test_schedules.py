import os

import keras
import numpy as np
import pytest

from keras_nas.blocks import genotypes as G
from keras_nas.blocks.cells import Cell
from keras_nas.blocks.schedules import DropPathSchedule, drop_path_variables


def _model(drop_path_rate=0.5):
    inputs = keras.Input((4, 4, 4))
    h = Cell(G.DARTS_V2, "normal", 4, drop_path_rate=drop_path_rate, seed=1)(
        inputs
    )
    h = keras.layers.GlobalAveragePooling2D()(h)
    outputs = keras.layers.Dense(3, activation="softmax")(h)
    return keras.Model(inputs, outputs)


def _data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 4, 4, 4)).astype("float32")
    return x, rng.integers(0, 3, 16)


def test_schedule_changes_the_rate_inside_a_compiled_fit():
    x, y = _data()
    model = _model()
    # Learning rate 0: the weights stay, so the training loss of a (single
    # batch) epoch only depends on the drop-path masks.
    model.compile(
        keras.optimizers.SGD(0.0),
        "sparse_categorical_crossentropy",
        run_eagerly=False,
        jit_compile=False,
    )
    (variable,) = drop_path_variables(model)
    assert float(keras.ops.convert_to_numpy(variable)) == pytest.approx(0.5)
    variable.assign(0.0)
    no_drop = keras.losses.sparse_categorical_crossentropy(
        y, model(x, training=True)
    )
    no_drop = float(np.mean(keras.ops.convert_to_numpy(no_drop)))

    schedule = DropPathSchedule(0.6, epochs=2)
    history = model.fit(
        x,
        y,
        batch_size=16,
        epochs=3,
        shuffle=False,
        verbose=0,
        callbacks=[schedule],
    )
    assert history.history["drop_path_rate"] == pytest.approx([0, 0.3, 0.6])
    losses = history.history["loss"]
    # Epoch 0 has rate 0 (no drop); the traced step must then see the new
    # rates (a rate baked into the trace would repeat the epoch-0 loss).
    assert losses[0] == pytest.approx(no_drop, rel=1e-5)
    assert abs(losses[1] - losses[0]) > 1e-3
    assert abs(losses[2] - losses[1]) > 1e-3
    assert float(keras.ops.convert_to_numpy(variable)) == pytest.approx(0.6)


def test_schedule_inside_a_compiled_fit_on_jax(run_on_backend):
    # JAX's trainer passes the variables into its jitted step as state: the
    # same test in a JAX process.
    code = (
        "import importlib.util, keras\n"
        "assert keras.backend.backend() == 'jax'\n"
        f"spec = importlib.util.spec_from_file_location('t', {__file__!r})\n"
        "t = importlib.util.module_from_spec(spec)\n"
        "spec.loader.exec_module(t)\n"
        "t.test_schedule_changes_the_rate_inside_a_compiled_fit()\n"
        "print('JAX-OK')\n"
    )
    assert "JAX-OK" in run_on_backend(code)


def test_rates_round_trip_and_errors(tmp_path):
    schedule = DropPathSchedule(0.2, epochs=4)
    assert [schedule.rate(e) for e in (0, 2, 4, 9)] == pytest.approx(
        [0.0, 0.1, 0.2, 0.2]
    )
    # The current rate is a weight: it is saved with the model.
    model = _model(0.3)
    schedule.set_model(model)
    schedule.on_epoch_begin(1)
    path = os.path.join(tmp_path, "m.keras")
    model.save(path)
    (loaded,) = drop_path_variables(keras.saving.load_model(path))
    assert float(keras.ops.convert_to_numpy(loaded)) == pytest.approx(0.05)
    # A file saved before the rate was a variable: the configured rate.
    cell = _model(0.3).layers[1]
    cell.load_own_variables({})
    assert float(keras.ops.convert_to_numpy(cell.drop_path_rate_variable)) == (
        pytest.approx(0.3)
    )

    schedule.set_model(_model(0.0))
    with pytest.raises(ValueError, match="drop_path_rate > 0"):
        schedule.on_epoch_begin(0)
    with pytest.raises(ValueError, match="Received: final_rate=1.0"):
        DropPathSchedule(1.0, 10)
    with pytest.raises(ValueError, match="Received: epochs=0"):
        DropPathSchedule(0.2, 0)
