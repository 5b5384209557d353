"""AutoGAN generator cells, generator and discriminator (blocks/gan.py)."""

import itertools

import keras
import numpy as np
import pytest

from keras_nas.blocks.gan import (
    CONV_TYPES,
    NORMS,
    UPSAMPLE_MODES,
    GeneratorCell,
    build_discriminator,
    build_generator,
    max_generator_cells,
)


def _x(shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


@pytest.mark.parametrize(
    "upsample,norm,conv_type,shortcut",
    list(itertools.product(UPSAMPLE_MODES, NORMS, CONV_TYPES, (True, False))),
)
def test_cell_shapes_for_every_choice(upsample, norm, conv_type, shortcut):
    cell = GeneratorCell(
        6, upsample, norm, conv_type, shortcut, skips=(True, False, True)
    )
    # Skip features of three earlier cells at 2x2, 4x4 and 8x8: upsampled
    # x4, x2 and x1 to the 8x8 output; the second one is off.
    inputs = [
        _x((2, 4, 4, 5)),
        _x((2, 2, 2, 6), 1),
        _x((2, 4, 4, 6), 2),
        _x((2, 8, 8, 6), 3),
    ]
    out, feature = cell(inputs, training=True)
    assert tuple(out.shape) == (2, 8, 8, 6)
    assert tuple(feature.shape) == (2, 8, 8, 6)
    assert cell.compute_output_shape([i.shape for i in inputs]) == [
        (2, 8, 8, 6),
        (2, 8, 8, 6),
    ]
    assert np.all(np.isfinite(keras.ops.convert_to_numpy(out)))
    # Weights: the shortcut and the active skips only.
    names = {w.path.split("/")[-2] for w in cell.weights}
    assert ("shortcut_conv" in names) == shortcut
    assert {"skip0_conv", "skip2_conv"} <= names
    assert "skip1_conv" not in names
    assert ("up" in names) == (upsample == "deconv")


def test_skip_and_shortcut_change_the_output():
    x, f = _x((1, 4, 4, 4)), _x((1, 4, 4, 4), 1)
    plain = GeneratorCell(4, shortcut=False, skips=(False,))
    plain([x, f])
    for kwargs in ({"shortcut": True}, {"skips": (True,)}):
        cell = GeneratorCell(
            4, **({"shortcut": False, "skips": (False,)} | kwargs)
        )
        cell([x, f])
        # Same weights for the shared layers: only the extra path differs.
        for layer in ("conv1", "conv2", "norm1", "norm2"):
            for a, b in zip(
                getattr(cell, layer).weights,
                getattr(plain, layer).weights,
                strict=True,
            ):
                a.assign(b)
        a = keras.ops.convert_to_numpy(plain([x, f])[0])
        b = keras.ops.convert_to_numpy(cell([x, f])[0])
        assert not np.allclose(a, b)


def test_pre_activation_normalizes_the_input():
    # Pre-activation: norm -> ReLU -> up -> conv. With an all-negative input
    # and no norm, the first conv sees zeros; post-activation does not.
    x = -np.abs(_x((1, 2, 2, 3))) - 1.0
    pre = GeneratorCell(3, norm="none", conv_type="pre", shortcut=False)
    _, feature = pre(x)
    bias = keras.ops.convert_to_numpy(pre.conv1.bias)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(feature), np.broadcast_to(bias, (1, 4, 4, 3))
    )


def test_cell_rejects_bad_arguments():
    with pytest.raises(ValueError, match="upsample"):
        GeneratorCell(4, upsample="cubic")
    with pytest.raises(ValueError, match="norm"):
        GeneratorCell(4, norm="layer")
    with pytest.raises(ValueError, match="conv_type"):
        GeneratorCell(4, conv_type="mid")
    with pytest.raises(ValueError, match="shortcut"):
        GeneratorCell(4, shortcut=1)
    with pytest.raises(ValueError, match="skips"):
        GeneratorCell(4, skips="yes")
    with pytest.raises(ValueError, match="filters"):
        GeneratorCell(0)
    with pytest.raises(ValueError, match="skip features"):
        GeneratorCell(4, skips=(True,))(_x((1, 2, 2, 4)))
    with pytest.raises(ValueError, match="power of two"):
        GeneratorCell(4, skips=(True,))([_x((1, 4, 4, 4)), _x((1, 3, 3, 4))])


def test_generator_shapes_and_keras_round_trip(tmp_path):
    cells = [
        {"upsample": "deconv", "norm": "instance"},
        {"upsample": "bilinear", "conv_type": "pre", "skips": [True]},
        {"norm": "none", "shortcut": False, "skips": [True, True]},
    ]
    g = build_generator((8, 8, 1), cells, filters=8, latent_dim=16)
    z = _x((3, 16))
    images = keras.ops.convert_to_numpy(g(z))
    assert images.shape == (3, 8, 8, 1)
    assert np.all(np.abs(images) <= 1.0)
    path = str(tmp_path / "generator.keras")
    g.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(loaded(z)), images, atol=1e-6
    )
    assert loaded.get_layer("cell2").skips == (True, True)
    assert loaded.get_layer("cell0").upsample == "deconv"


def test_generator_sizes_to_the_images():
    g = build_generator((12, 4, 3), [{}, {}], filters=4, latent_dim=8)
    assert g.get_layer("bottom").output.shape[1:] == (3, 1, 4)
    assert g.output.shape[1:] == (12, 4, 3)
    assert max_generator_cells((8, 8, 1)) == 3
    assert max_generator_cells((12, 4, 3)) == 2
    with pytest.raises(ValueError, match="between 1 and 2"):
        build_generator((12, 4, 3), [{}, {}, {}])
    with pytest.raises(ValueError, match="at most 0 entries"):
        build_generator((8, 8, 1), [{"skips": [True]}])
    with pytest.raises(ValueError, match="keys from"):
        build_generator((8, 8, 1), [{"kernel": 5}])
    with pytest.raises(ValueError, match="image_shape"):
        build_generator((8, 8), [{}])


@pytest.mark.parametrize("spectral_norm", [True, False])
def test_discriminator(spectral_norm, tmp_path):
    d = build_discriminator((8, 8, 1), filters=4, spectral_norm=spectral_norm)
    x = _x((5, 8, 8, 1))
    assert tuple(d(x).shape) == (5, 1)
    wrapped = any(
        isinstance(layer, keras.layers.SpectralNormalization)
        for layer in d.layers
    )
    assert wrapped == spectral_norm
    path = str(tmp_path / "d.keras")
    d.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(loaded(x)),
        keras.ops.convert_to_numpy(d(x)),
        atol=1e-5,
    )
