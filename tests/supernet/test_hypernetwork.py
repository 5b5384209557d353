"""Tests of the SMASH hypernetwork (`keras_nas.supernet.HyperNetwork`)."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_nas.spaces import NasBench201SearchSpace
from keras_nas.supernet.hypernetwork import HyperCell, HyperNetwork

SPACE = NasBench201SearchSpace(
    input_shape=(8, 8, 1), num_classes=3, filters=4, cells_per_stage=1
)
CONVS = "|nor_conv_3x3~0|+|nor_conv_1x1~0|nor_conv_3x3~1|+|skip_connect~0|none~1|avg_pool_3x3~2|"  # noqa: E501
# Same op as CONVS on edge 1<-0, different elsewhere; no 1x1 conv at all.
OTHER = "|nor_conv_3x3~0|+|none~0|skip_connect~1|+|avg_pool_3x3~0|none~1|nor_conv_3x3~2|"  # noqa: E501


def _data(n, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 8, 8, 1)).astype("float32")
    y = np.digitize(x[:, 2:6, 2:6].mean(axis=(1, 2, 3)), [-0.1, 0.1])
    return x, y.astype("int32")


def test_generated_weights_have_the_architectures_shapes_and_differ():
    net = HyperNetwork(SPACE, seed=0)
    first = net.generated_weights(CONVS)
    other = net.generated_weights(OTHER)
    # Three conv edges in CONVS, two in OTHER, in each of the three cells.
    assert len(first) == 9 and len(other) == 6
    for (cell, edge, op), kernel in {**first, **other}.items():
        c = {"stage0_cell0": 4, "stage1_cell0": 8, "stage2_cell0": 16}[cell]
        k = 3 if op == "nor_conv_3x3" else 1
        assert kernel.shape == (k, k, c, c), (cell, edge, op)
        assert np.all(np.isfinite(kernel))
    assert ("stage1_cell0", "2<-0", "nor_conv_1x1") in first
    assert ("stage1_cell0", "3<-2", "nor_conv_3x3") in other
    # The same op on the same edge gets other weights in another
    # architecture: the kernels depend on the whole encoding.
    key = ("stage0_cell0", "1<-0", "nor_conv_3x3")
    assert not np.allclose(first[key], other[key])
    # ...and the same architecture always gets the same weights.
    np.testing.assert_array_equal(first[key], net.generated_weights(CONVS)[key])
    with pytest.raises(ValueError, match="space"):
        HyperNetwork(object())
    with pytest.raises(ValueError, match="filters"):
        HyperCell(0)


def test_gradients_reach_the_hypernetwork_through_generated_weights(tmp_path):
    net = HyperNetwork(SPACE, seed=0)
    x, y = _data(16)
    code = np.tile(net.encode(OTHER)[None], (16, 1))
    variables = net.trainable_variables
    with tf.GradientTape() as tape:
        probs = net((x, code), training=True)
        loss = keras.losses.sparse_categorical_crossentropy(y, probs)
        loss = tf.reduce_mean(loss)
    grads = dict(
        zip(
            [v.path for v in variables],
            tape.gradient(loss, variables),
            strict=True,
        )
    )

    def norm(suffix):
        found = [g for path, g in grads.items() if path.endswith(suffix)]
        assert found, suffix
        return sum(float(tf.norm(g)) for g in found if g is not None)

    # The 3x3 generator and the edge embedding get gradients; OTHER has no
    # 1x1 conv, so the 1x1 generator gets none.
    assert norm("stage0_cell0/nor_conv_3x3_generator") > 0
    assert norm("stage2_cell0/embedding") > 0
    assert norm("stage0_cell0/nor_conv_1x1_generator") == 0

    # A .keras file round-trips (registered classes, same predictions).
    net.save(tmp_path / "h.keras")
    loaded = keras.saving.load_model(tmp_path / "h.keras")
    assert isinstance(loaded, HyperNetwork)
    np.testing.assert_allclose(
        loaded.predict_architecture(OTHER, x),
        net.predict_architecture(OTHER, x),
        atol=1e-6,
    )


def test_scoring_without_training_and_exact_resume(tmp_path):
    x, y = _data(48)
    first = HyperNetwork(SPACE, seed=3)
    # Scoring a candidate trains nothing and changes no weight.
    before = first.evaluate_architecture(CONVS, x, y, batch_size=48)
    weights = [v.numpy().copy() for v in first.weights]
    assert first.evaluate_architecture(CONVS, x, y, batch_size=48) == before
    for v, w in zip(first.weights, weights, strict=True):
        np.testing.assert_array_equal(v.numpy(), w)
    first.compile(optimizer=keras.optimizers.Adam(1e-2))
    traces, step = [], first.train_step
    first.train_step = lambda *args: traces.append(1) or step(*args)
    first.train(x, y, epochs=2, batch_size=16)
    assert len(traces) == 1  # the state is built before the trace
    del first.train_step
    after = first.evaluate_architecture(CONVS, x, y, batch_size=48)
    assert after["loss"] < before["loss"]
    # Another candidate, never trained as such, is scored too.
    assert first.evaluate_architecture(OTHER, x, y, batch_size=48) != after
    first.save_state(str(tmp_path / "h"))
    state = json.loads((tmp_path / "h" / "hypernetwork.json").read_text())
    assert state["trained_epochs"] == 2
    resumed = HyperNetwork.load_state(str(tmp_path / "h"))
    assert resumed.trained_epochs == 2
    assert resumed.optimizer.iterations.numpy() == 6
    # The third epoch, uninterrupted and resumed from the files: same
    # architectures, image order and optimizer state, so same weights.
    first.train(x, y, epochs=1, batch_size=16)
    resumed.train(x, y, epochs=1, batch_size=16)
    for a, b in zip(first.weights, resumed.weights, strict=True):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="save_state"):
        HyperNetwork.load_state(str(tmp_path / "missing"))
