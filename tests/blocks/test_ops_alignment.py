"""The ops compute what the original DARTS code computes (issue #18).

Fixed weights, impulse and random inputs, against the NumPy references of
`tests/_numpy_darts.py` (symmetric `padding=k // 2` at stride 2, -inf / count-
excluding padding of the pools, batch-norm epsilon 1e-5); and `.keras` files
saved before the alignment still load with their old numerics.
"""

import os

import _numpy_darts as ref
import keras
import numpy as np
import pytest

import keras_nas.blocks.network  # noqa: F401  (registers the layers)
from keras_nas.blocks import ops as nas_ops

DATA = os.path.join(os.path.dirname(os.path.dirname(__file__)), "data")
STRIDE2_OPS = (
    "max_pool_3x3",
    "avg_pool_3x3",
    "skip_connect",
    "sep_conv_3x3",
    "sep_conv_5x5",
    "dil_conv_3x3",
    "dil_conv_5x5",
    "nor_conv_3x3",
    "conv_7x1_1x7",
)


def _np(x):
    return np.asarray(keras.ops.convert_to_numpy(x))


def _centre_kernels(op):
    """Every kernel picks its window's centre pixel (identity channels)."""
    for v in op.weights:
        if not v.path.endswith("kernel"):
            continue
        kh, kw, cin, cout = v.shape
        k = np.zeros(v.shape, "float32")
        if cout == 1 and cin > 1:  # depthwise
            k[kh // 2, kw // 2, :, 0] = 1.0
        else:
            k[kh // 2, kw // 2] = np.eye(cin, cout)
        v.assign(k)


@pytest.mark.parametrize("size", [8, 7])
def test_stride2_ops_centre_their_windows_on_even_pixels(size):
    """An impulse at pixel (2, 2) reaches output (1, 1) only, for every
    stride-2 op (the original's windows are centred on 0, 2, 4, ...)."""
    x = np.zeros((1, size, size, 4), "float32")
    x[0, 2, 2, :] = 1.0
    for name in STRIDE2_OPS:
        op = nas_ops.get_op(name, 4, strides=2)
        op.build(x.shape)
        _centre_kernels(op)
        y = _np(op(x, training=False))
        assert y.shape == (1, 4, 4, 4), name
        hits = {tuple(int(v) for v in p[1:3]) for p in np.argwhere(y > 1e-6)}
        assert hits == {(1, 1)}, (name, hits)
    # Keras' 'same' padding (ops_version=1) pads bottom/right only on even
    # sizes: the max pool's windows start at the even pixels instead.
    old = nas_ops.Pool("max", 3, strides=2, ops_version=1)
    hits = {tuple(int(v) for v in p[1:3]) for p in np.argwhere(_np(old(x)))}
    odd = {(1, 1)}
    assert hits == (odd if size % 2 else {(0, 0), (0, 1), (1, 0), (1, 1)})


@pytest.mark.parametrize("training", [False, True])
@pytest.mark.parametrize("size", [8, 7])
def test_ops_match_the_numpy_reference(size, training):
    rng = np.random.default_rng(size)
    x = rng.normal(size=(2, size, size, 4)).astype("float32")
    for strides in (1, 2):
        for kind, fn in (("max", ref.max_pool), ("avg", ref.avg_pool)):
            op = nas_ops.get_op(f"{kind}_pool_3x3", 4, strides)
            np.testing.assert_allclose(
                _np(op(x)), fn(x, strides), atol=1e-6, err_msg=kind
            )
        for name in ("sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3",
                     "dil_conv_5x5"):  # fmt: skip
            op = nas_ops.get_op(name, 4, strides)
            y = _np(op(x, training=training))
            dws = [_np(d.kernel) for d in op.depthwise]
            pws = [_np(p.kernel) for p in op.pointwise]
            expected = ref.sep_conv(x, dws, pws, training, strides)
            np.testing.assert_allclose(y, expected, atol=2e-5, err_msg=name)
        op = nas_ops.get_op("nor_conv_3x3", 4, strides)
        y = _np(op(x, training=training))
        expected = ref.relu_conv_bn(
            x, _np(op.convs[0].kernel), training, strides
        )
        np.testing.assert_allclose(y, expected, atol=2e-5)
    if size % 2 == 0:  # the original's FactorizedReduce needs even sizes
        op = nas_ops.get_op("skip_connect", 4, 2)
        y = _np(op(x, training=training))
        k1, k2 = _np(op.conv_1.kernel), _np(op.conv_2.kernel)
        expected = ref.factorized_reduce(x, k1, k2, training)
        np.testing.assert_allclose(y, expected, atol=2e-5)


def test_batch_norm_epsilon_initialization_and_config():
    op = nas_ops.SepConv(4, 3, strides=2)
    op.build((1, 8, 8, 6))
    assert all(bn.epsilon == 1e-5 and bn.momentum == 0.9 for bn in op.bns)
    # PyTorch's kaiming_uniform(a=sqrt(5)): |w| <= 1 / sqrt(fan_in), with
    # fan_in = kh * kw for a depthwise kernel (groups = channels).
    dw = _np(op.depthwise[0].kernel)
    assert np.abs(dw).max() <= 1 / 3 + 1e-7 and np.abs(dw).max() > 0.25
    pw = _np(op.pointwise[0].kernel)
    assert np.abs(pw).max() <= 1 / np.sqrt(6) + 1e-7
    config = op.get_config()
    assert config["ops_version"] == 2
    legacy = dict(config)
    legacy.pop("ops_version")
    old = nas_ops.SepConv.from_config(legacy)
    assert old.ops_version == 1 and old.bns[0].epsilon == 1e-3
    with pytest.raises(ValueError, match="ops_version"):
        nas_ops.Pool("max", ops_version=3)


def test_old_keras_files_load_with_their_numerics(tmp_path):
    """A DARTS_V2 network saved by keras-nas before the alignment (no
    `ops_version` in its configs) still computes what it computed."""
    saved = np.load(os.path.join(DATA, "v1_outputs.npz"))
    model = keras.saving.load_model(os.path.join(DATA, "darts_v2_net_v1.keras"))
    assert {layer.ops_version for layer in model.layers
            if hasattr(layer, "ops_version")} == {1}  # fmt: skip
    y = _np(model(saved["x"], training=False))
    np.testing.assert_allclose(y, saved["net"], atol=1e-6)
    # Saved again, it stays version 1.
    path = tmp_path / "again.keras"
    model.save(path)
    again = keras.saving.load_model(path)
    np.testing.assert_allclose(
        _np(again(saved["x"], training=False)), saved["net"], atol=1e-6
    )


def test_initial_values_drawn_on_the_host_keep_keras_distributions():
    """The ops draw their initial values with NumPy (`_HostDraw`): Keras'
    distributions, reproducible under `set_random_seed`, Keras' initializers
    left in the configs."""

    def kernels(version):
        keras.utils.set_random_seed(3)
        op = nas_ops.ReLUConvBN(64, 3, ops_version=version)
        op.build((1, 8, 8, 32))
        return op, _np(op.convs[0].kernel)

    op, w = kernels(2)
    limit = 1 / np.sqrt(3 * 3 * 32)  # PyTorch's kaiming_uniform(a=sqrt(5))
    assert np.abs(w).max() <= limit and np.abs(w).max() > 0.99 * limit
    assert abs(w.mean()) < 0.01 * limit
    assert abs(w.var() / (limit**2 / 3) - 1) < 0.02  # 18,432 values
    np.testing.assert_array_equal(kernels(2)[1], w)
    config = op.convs[0].get_config()["kernel_initializer"]
    assert config["class_name"] == "VarianceScaling"
    assert _np(op.bn.moving_variance).tolist() == [1.0] * 64
    # ops_version=1: Keras' Glorot uniform.
    w1 = kernels(1)[1]
    glorot = np.sqrt(6 / (9 * 32 + 9 * 64))
    assert np.abs(w1).max() <= glorot and np.abs(w1).max() > 0.99 * glorot
    # Two layers built after one another draw different values.
    other = nas_ops.ReLUConvBN(64, 3)
    other.build((1, 8, 8, 32))
    assert not np.array_equal(_np(other.convs[0].kernel), w)
