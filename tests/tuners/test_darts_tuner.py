"""End-to-end test of the `Darts` tuner on scikit-learn digits."""

import json
import os

import keras
import numpy as np
import pytest
from sklearn.datasets import load_digits

from keras_nas.blocks.genotypes import Genotype
from keras_nas.spaces.cell_space import (
    CellSearchSpace,
    genotype_from_hyperparameters,
)
from keras_nas.tuners import Darts

pytestmark = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow",
    reason="uses the TensorBoard writer of TensorFlow",
)


def test_darts_search_on_digits_retrains_to_90_percent(tmp_path):
    keras.utils.set_random_seed(0)
    digits = load_digits()
    x = (digits.images / 16.0).reshape(-1, 8, 8, 1).astype("float32")
    y = digits.target.astype("int32")
    order = np.random.default_rng(0).permutation(len(x))
    x, y = x[order], y[order]
    x_train, y_train = x[:1400], y[:1400]
    x_test, y_test = x[1400:], y[1400:]

    space = CellSearchSpace(
        (8, 8, 1),
        10,
        ops=("max_pool_3x3", "skip_connect", "sep_conv_3x3"),
        num_nodes=2,
        num_cells=2,
        filters=8,
        learning_rate=1e-2,
    )
    tuner = Darts(
        space,
        filters=4,
        num_cells=2,
        batch_size=64,
        jit_compile=False,
        seed=0,
        directory=str(tmp_path),
        project_name="darts",
    )
    log_dir = str(tmp_path / "tb")
    tuner.search(
        x_train[:700],
        y_train[:700],
        validation_data=(x_train[700:], y_train[700:]),
        epochs=2,
        callbacks=[keras.callbacks.TensorBoard(log_dir)],
        verbose=0,
    )

    # Alpha history: one record per epoch, softmax rows sum to one.
    with open(tuner.alpha_history_path) as f:
        history = json.load(f)
    assert [r["epoch"] for r in history] == [1, 2]
    normal = np.asarray(history[-1]["normal"])
    assert normal.shape == (5, 4)
    np.testing.assert_allclose(normal.sum(axis=1), 1.0, rtol=1e-6)
    events = [
        name
        for _, _, files in os.walk(os.path.join(log_dir, "darts"))
        for name in files
        if "tfevents" in name
    ]
    assert events

    # The derived genotype is the single best trial, as space values.
    assert len(tuner.oracle.trials) == 1
    hp = tuner.get_best_hyperparameters()[0]
    genotype = genotype_from_hyperparameters(hp.values)
    derived = tuner.supernet.derive_genotype()
    assert genotype == derived
    assert Genotype.from_dict(history[-1]["genotype"]) == derived
    assert "none" not in {op for op, _ in genotype.normal + genotype.reduce}
    assert hp.get("filters") == 8 and hp.get("num_cells") == 2

    # Retrained from scratch, the discrete network classifies digits.
    model = tuner.retrain(
        x_train, y_train, epochs=8, batch_size=64, verbose=0
    )
    _, accuracy = model.evaluate(x_test, y_test, verbose=0)
    assert accuracy >= 0.90
    best = tuner.get_best_models()[0]
    probs = best.predict(x_test[:4], verbose=0)
    np.testing.assert_allclose(probs.sum(axis=-1), 1.0, rtol=1e-5)
    _, best_accuracy = best.evaluate(x_test, y_test, verbose=0)
    assert best_accuracy == pytest.approx(accuracy, abs=1e-6)
