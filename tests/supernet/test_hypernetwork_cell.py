"""The SMASH hypernetwork on the DARTS cell space (`HyperDartsCell`)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_nas.estimation.hypernetwork_scores import HyperNetworkScores
from keras_nas.spaces import CellSearchSpace
from keras_nas.supernet.hypernetwork import HyperNetwork
from keras_nas.supernet.hypernetwork_cell import generated_parts
from keras_nas.tuners.evolution import AgingEvolution

OPS = ("skip_connect", "dil_conv_3x3", "max_pool_3x3")
# One reduction cell of two nodes: inputs read at stride 2 (the cell's
# inputs) and 1 (node 2).
SPACE = CellSearchSpace(
    (8, 8, 1), 3, ops=OPS, num_nodes=2, num_cells=1, filters=4
)
PATH = (
    (("dil_conv_3x3", 0), ("skip_connect", 1),
     ("max_pool_3x3", 2), ("dil_conv_3x3", 2)),
    (("skip_connect", 0), ("dil_conv_3x3", 1),
     ("dil_conv_3x3", 2), ("skip_connect", 0)),
)  # fmt: skip


def _data(n, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 8, 8, 1)).astype("float32")
    y = np.digitize(x[:, 2:6, 2:6].mean(axis=(1, 2, 3)), [-0.1, 0.1])
    return x, y.astype("int32")


def test_cell_hypernetwork_generates_trains_scores_and_saves(tmp_path):
    net = HyperNetwork(SPACE, seed=0)
    assert net.path(net.genotype(PATH)) == PATH
    code = net.encode(PATH)
    assert code.shape == (2 * 3 * (2 + 2 + 3 + 3),) and code.sum() == 8
    weights = net.generated_weights(PATH)
    # 8 filters; every chosen dil_conv has a depthwise and a pointwise
    # kernel, a strided skip two factorized-reduce kernels.
    shapes = {k: v.shape for k, v in weights.items()}
    assert shapes[("cell0_reduce", "3<-2", "dil_conv_3x3/depthwise0")] == (
        3, 3, 8, 1)  # fmt: skip
    assert shapes[("cell0_reduce", "2<-0", "skip_connect/reduce_b")] == (
        1, 1, 8, 4)  # fmt: skip
    assert len(weights) == 2 + 2 + 2 + 2
    other = net.generated_weights(
        (PATH[0], PATH[1][:3] + (("max_pool_3x3", 1),))
    )
    key = ("cell0_reduce", "2<-1", "dil_conv_3x3/pointwise0")
    assert not np.allclose(weights[key], other[key])  # Whole encoding.

    x, y = _data(16)
    variables = net.trainable_variables
    with tf.GradientTape() as tape:
        probs = net((x, np.tile(code[None], (16, 1))), training=True)
        loss = tf.reduce_mean(
            keras.losses.sparse_categorical_crossentropy(y, probs)
        )
    grads = dict(zip([v.path for v in variables], tape.gradient(
        loss, variables, unconnected_gradients="zero"), strict=True))

    def norm(suffix):
        found = [g for p, g in grads.items() if p.endswith(suffix)]
        assert found, suffix
        return sum(float(tf.norm(g)) for g in found)

    # The chosen ops' generators learn (the normal-cell slots of PATH are
    # not used: the only cell reduces).
    assert norm("cell0_reduce/dil_conv_3x3_depthwise0_generator") > 0
    assert norm("cell0_reduce/skip_connect_reduce_a_generator") > 0
    assert norm("cell0_reduce/embedding") > 0 and norm("cell0_reduce/pre1") > 0
    # max_pool_3x3 has no kernel; sep_conv is not in OPS.
    assert not any("max_pool" in p or "sep_conv" in p for p in grads)

    # Trains with Keras' compiled step, scores any tuner's candidates.
    net.compile(optimizer=keras.optimizers.Adam(1e-2))
    # Training samples architectures: the loss of the data it trained on
    # (not of other data, after 4 steps) goes down for PATH too.
    train = _data(64, 1)
    before = net.evaluate_architecture(PATH, *train)
    net.train(*train, epochs=2, batch_size=32)
    assert net.evaluate_architecture(PATH, *train)["loss"] < before["loss"]
    estimator = HyperNetworkScores(net, batch_size=32)
    tuner = AgingEvolution(
        SPACE, objective="val_accuracy", max_trials=4, population_size=2,
        sample_size=2, estimator=estimator, seed=0, directory=str(tmp_path),
    )  # fmt: skip
    tuner.search(x, y, validation_data=(x, y))
    assert len(tuner.oracle.trials) == 4 and estimator.num_estimates >= 2

    net.save(tmp_path / "h.keras")
    loaded = keras.saving.load_model(tmp_path / "h.keras")
    np.testing.assert_allclose(
        loaded.predict_architecture(PATH, x),
        net.predict_architecture(PATH, x),
        atol=1e-5,
    )
    with pytest.raises(ValueError, match="conv_7x1_1x7"):
        generated_parts("conv_7x1_1x7", 4)
    with pytest.raises(ValueError, match="search_space"):
        HyperNetwork(input_shape=(8, 8, 1), num_classes=3, search_space="x")
