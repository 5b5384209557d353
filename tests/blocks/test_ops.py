import os

import keras
import numpy as np
import pytest

from keras_nas.blocks import ops as blocks_ops
from keras_nas.blocks import registry
from keras_nas.blocks.ops import get_op, register_op

BUILTIN = tuple(
    dict.fromkeys(registry.DARTS_OPS + registry.NB201_OPS + registry.EXTRA_OPS)
)


def _x(n, c=6, batch=2, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(batch, n, n, c)).astype("float32")


@pytest.mark.parametrize("strides", [1, 2])
@pytest.mark.parametrize("name", BUILTIN)
def test_every_op_shape_matches_compute_output_shape(name, strides):
    for n in (8, 7):
        op = get_op(name, 6, strides)
        y = op(_x(n))
        expected = op.compute_output_shape((2, n, n, 6))
        assert tuple(y.shape) == expected
        size = -(-n // strides)
        assert expected == (2, size, size, 6)


def test_registry_filled_on_import():
    for name in BUILTIN:
        assert name in registry._FACTORIES


@pytest.mark.parametrize(
    "name,strides,cls",
    [
        ("skip_connect", 1, blocks_ops.Identity),
        ("skip_connect", 2, blocks_ops.FactorizedReduce),
        ("none", 2, blocks_ops.Zero),
        ("sep_conv_3x3", 1, blocks_ops.SepConv),
        ("dil_conv_5x5", 2, blocks_ops.DilConv),
        ("nor_conv_1x1", 1, blocks_ops.ReLUConvBN),
        ("conv_7x1_1x7", 2, blocks_ops.ReLUConvBN),
        ("avg_pool_3x3", 2, blocks_ops.Pool),
    ],
)
def test_op_classes(name, strides, cls):
    assert type(get_op(name, 4, strides)) is cls


def test_zero_outputs_zeros():
    y = get_op("none", 4, 2)(_x(5, c=4))
    assert tuple(y.shape) == (2, 3, 3, 4)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(y), 0.0)


def test_identity_and_pool_values():
    x = _x(4, c=3)
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(get_op("skip_connect", 3)(x)), x
    )
    y = keras.ops.convert_to_numpy(get_op("max_pool_3x3", 3)(x))
    assert np.all(y >= x)


def test_factorized_reduce_odd_sizes():
    layer = blocks_ops.FactorizedReduce(7)
    for n in (7, 5, 1):
        half = -(-n // 2)
        assert tuple(layer(_x(n, c=3)).shape) == (2, half, half, 7)


@pytest.mark.parametrize(
    "layer",
    [
        blocks_ops.ReLUConvBN(4, 3, strides=2, dilation_rate=2, affine=False),
        blocks_ops.ReLUConvBN(4, 7, factorized=True),
        blocks_ops.SepConv(4, 5, strides=2),
        blocks_ops.DilConv(4, 3, strides=2),
        blocks_ops.FactorizedReduce(4, affine=False),
        blocks_ops.Zero(2),
        blocks_ops.Identity(),
        blocks_ops.Pool("avg", 3, strides=2),
    ],
    ids=lambda layer: type(layer).__name__,
)
def test_config_round_trip_same_outputs(layer):
    x = _x(7, c=4)
    y = layer(x)
    clone = type(layer).from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    clone(x)
    clone.set_weights(layer.get_weights())
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(clone(x)),
        keras.ops.convert_to_numpy(y),
        atol=1e-5,
    )


def test_op_saves_and_loads_in_keras_file(tmp_path):
    inputs = keras.Input((7, 7, 4))
    x = get_op("sep_conv_3x3", 4, 2)(inputs)
    x = get_op("skip_connect", 4, 2)(x)
    x = get_op("dil_conv_3x3", 4, 1)(x)
    model = keras.Model(inputs, x)
    path = os.path.join(tmp_path, "ops.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    xs = _x(7, c=4)
    np.testing.assert_allclose(
        model.predict(xs, verbose=0), loaded.predict(xs, verbose=0), atol=1e-5
    )


def test_get_op_errors():
    with pytest.raises(ValueError, match="Received: name='nope'"):
        get_op("nope", 4)
    with pytest.raises(ValueError, match="Received: strides=3"):
        get_op("sep_conv_3x3", 4, strides=3)
    with pytest.raises(ValueError, match="Received: filters=0"):
        get_op("sep_conv_3x3", 0)


def test_register_op_custom_and_overwrite():
    def factory(filters, strides, affine):
        return keras.layers.Conv2D(filters, 3, strides=strides, padding="same")

    name = "test_plain_conv_3x3"
    try:
        register_op(name, factory)
        assert name in registry.known_ops()
        assert registry.is_known_op(name)
        op = get_op(name, 4, strides=2)
        assert tuple(op(_x(8, c=4)).shape) == (2, 4, 4, 4)
        with pytest.raises(ValueError, match="already registered"):
            register_op(name, factory)
        register_op(name, factory, overwrite=True)
        with pytest.raises(ValueError, match="already registered"):
            register_op("sep_conv_3x3", factory)
        with pytest.raises(ValueError, match="Received: factory="):
            register_op("other", 3)
    finally:
        registry._FACTORIES.pop(name, None)


def test_batch_norm_statistics_converge_quickly():
    # Momentum 0.9 (as DARTS/NB201): after a hundred training steps the
    # inference-mode output matches the training-mode one.
    keras.utils.set_random_seed(0)
    layer = get_op("nor_conv_3x3", 4)
    x = _x(6, c=4) * 0.1 + 2.0
    for _ in range(100):
        train = layer(x, training=True)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(layer(x, training=False)),
        keras.ops.convert_to_numpy(train),
        atol=0.1,
    )
