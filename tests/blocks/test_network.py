import os
import textwrap

import keras
import numpy as np
import pytest

from keras_nas.blocks import genotypes as G
from keras_nas.blocks.cells import Cell, NasBench201Cell
from keras_nas.blocks.network import (
    AuxiliaryHead,
    NetworkFromGenotype,
    ResNetBasicBlock,
    build_nb201_network,
    build_network,
)

NB201 = (
    "|nor_conv_3x3~0|+|nor_conv_1x1~0|avg_pool_3x3~1|"
    "+|skip_connect~0|nor_conv_3x3~1|none~2|"
)


def _x(shape, batch=4, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(size=(batch, *shape)).astype("float32")


def _np(x):
    return keras.ops.convert_to_numpy(x)


def _cells(model):
    return [layer for layer in model.layers if isinstance(layer, Cell)]


@pytest.mark.parametrize(
    "genotype", [G.DARTS_V1, G.DARTS_V2, G.NASNET_A, G.AMOEBANET_A]
)
def test_published_genotypes_build_networks(genotype):
    model = build_network(genotype, (8, 8, 1), 10, filters=4, num_cells=3)
    assert model.output_shape == (None, 10)
    probs = _np(model(_x((8, 8, 1), batch=2)))
    np.testing.assert_allclose(probs.sum(axis=-1), 1.0, rtol=1e-5)


@pytest.mark.parametrize(
    "num_cells,kinds",
    [
        (1, ["reduce"]),
        (2, ["reduce", "reduce"]),
        (3, ["normal", "reduce", "reduce"]),
        (5, ["normal", "reduce", "normal", "reduce", "normal"]),
    ],
)
def test_reduction_positions(num_cells, kinds):
    model = build_network(
        G.DARTS_V2, (8, 8, 1), 10, filters=4, num_cells=num_cells
    )
    cells = _cells(model)
    assert [c.kind for c in cells] == kinds
    filters = [c.filters for c in cells]
    expected, f = [], 4
    for kind in kinds:
        f *= 2 if kind == "reduce" else 1
        expected.append(f)
    assert filters == expected
    # The cell after a reduction gets reduction_prev=True.
    for prev, cell in zip(cells, cells[1:], strict=False):
        assert cell.reduction_prev == (prev.kind == "reduce")


def test_tiny_input_skips_reductions_of_1x1_maps():
    model = build_network(G.DARTS_V2, (2, 2, 1), 3, filters=4, num_cells=3)
    # 2x2 -> 1x1 at cell 1; cell 2 would reduce a 1x1 map: normal instead.
    assert [c.kind for c in _cells(model)] == ["normal", "reduce", "normal"]
    assert _np(model(_x((2, 2, 1)))).shape == (4, 3)


def test_network_round_trip(tmp_path):
    model = build_network(
        G.DARTS_V2, (8, 8, 1), 10, filters=4, num_cells=3, name="darts"
    )
    assert model.name == "darts"
    assert NetworkFromGenotype is build_network
    x = _x((8, 8, 1), batch=8)
    path = os.path.join(tmp_path, "net.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(_np(model(x)), _np(loaded(x)), atol=1e-5)


def test_auxiliary_head_outputs_and_round_trip(tmp_path):
    model = build_network(
        G.DARTS_V2,
        (8, 8, 1),
        10,
        filters=4,
        num_cells=2,
        auxiliary=True,
        drop_path_rate=0.2,
    )
    assert sorted(model.output_names) == ["auxiliary", "predictions"]
    model.compile(
        optimizer="adam",
        loss={
            "predictions": "sparse_categorical_crossentropy",
            "auxiliary": "sparse_categorical_crossentropy",
        },
        loss_weights={"predictions": 1.0, "auxiliary": 0.4},
        metrics={"predictions": ["accuracy"]},
        jit_compile=False,
    )
    x, y = _x((8, 8, 1), batch=8), np.arange(8) % 10
    logs = model.train_on_batch(
        x, {"predictions": y, "auxiliary": y}, return_dict=True
    )
    assert "predictions_accuracy" in logs and np.isfinite(logs["loss"])
    out = model(x)
    assert set(out) == {"predictions", "auxiliary"}
    assert tuple(out["auxiliary"].shape) == (8, 10)
    path = os.path.join(tmp_path, "aux.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    again = loaded(x)
    for key in out:
        np.testing.assert_allclose(_np(out[key]), _np(again[key]), atol=1e-5)


@pytest.mark.parametrize("size", [8, 5, 2, 1])
def test_auxiliary_head_small_maps(size):
    head = AuxiliaryHead(3)
    y = head(_x((size, size, 4), batch=2))
    assert tuple(y.shape) == (2, 3) == head.compute_output_shape((2, size))
    clone = AuxiliaryHead.from_config(head.get_config())
    assert clone.num_classes == 3


def test_nb201_network_round_trip(tmp_path):
    model = build_nb201_network(
        NB201, (7, 7, 1), 5, filters=4, cells_per_stage=1, name="nb201"
    )
    cells = [
        layer for layer in model.layers if isinstance(layer, NasBench201Cell)
    ]
    assert [c.filters for c in cells] == [4, 8, 16]
    assert model.output_shape == (None, 5)
    x = _x((7, 7, 1))
    path = os.path.join(tmp_path, "nb201.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(_np(model(x)), _np(loaded(x)), atol=1e-5)


def test_resnet_basic_block():
    for strides, channels, size in ((2, 8, 4), (1, 8, 7), (1, 4, 7)):
        block = ResNetBasicBlock(8, strides=strides)
        y = block(_x((7, 7, channels), batch=2))
        assert tuple(y.shape) == (2, size, size, 8)
        assert block.compute_output_shape((2, 7, 7, channels)) == y.shape
        config = block.get_config()
        assert ResNetBasicBlock.from_config(config).get_config() == config


def test_network_argument_errors():
    with pytest.raises(ValueError, match="Received: input_shape="):
        build_network(G.DARTS_V2, (8, 8), 10)
    with pytest.raises(ValueError, match="Received: num_classes=1"):
        build_network(G.DARTS_V2, (8, 8, 1), 1)
    with pytest.raises(ValueError, match="Received: num_cells=0"):
        build_network(G.DARTS_V2, (8, 8, 1), 10, num_cells=0)
    with pytest.raises(ValueError, match="Received: input_shape="):
        build_network(G.DARTS_V2, (None, 8, 1), 10, auxiliary=True)
    with pytest.raises(ValueError, match="Received: cells_per_stage=0"):
        build_nb201_network(NB201, (8, 8, 1), 10, cells_per_stage=0)


def test_jax_backend_smoke(run_on_backend):
    code = textwrap.dedent(
        """
        import numpy as np, keras
        assert keras.backend.backend() == "jax"
        from keras_nas.blocks import (
            DARTS_V2, build_network, build_nb201_network)
        x = np.random.rand(4, 8, 8, 1).astype("float32")
        m = build_network(DARTS_V2, (8, 8, 1), 3, filters=4, num_cells=2,
                          drop_path_rate=0.2)
        assert m.predict(x, verbose=0).shape == (4, 3)
        n = build_nb201_network(("nor_conv_3x3",) * 6, (8, 8, 1), 3,
                                filters=4, cells_per_stage=1)
        assert keras.ops.convert_to_numpy(n(x)).shape == (4, 3)
        print("JAX-OK")
        """
    )
    assert "JAX-OK" in run_on_backend(code)


def test_unknown_spatial_size():
    model = build_network(
        G.DARTS_V2, (None, None, 1), 3, filters=4, num_cells=2
    )
    for n in (9, 4):
        assert _np(model(_x((n, n, 1), batch=2))).shape == (2, 3)
