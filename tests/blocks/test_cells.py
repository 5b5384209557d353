import os
import warnings

import keras
import numpy as np
import pytest

from keras_nas.blocks import genotypes as G
from keras_nas.blocks.cells import (
    Cell,
    NasBench201Cell,
    NormalCell,
    ReductionCell,
)
from keras_nas.blocks.ops import FactorizedReduce, ReLUConvBN

NB201 = (
    "|nor_conv_3x3~0|+|nor_conv_1x1~0|avg_pool_3x3~1|"
    "+|skip_connect~0|nor_conv_3x3~1|none~2|"
)
PUBLISHED = {
    "DARTS_V1": G.DARTS_V1,
    "DARTS_V2": G.DARTS_V2,
    "NASNET_A": G.NASNET_A,
    "AMOEBANET_A": G.AMOEBANET_A,
}


def _x(n, c, batch=2, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(batch, n, n, c)).astype("float32")


def _np(x):
    return keras.ops.convert_to_numpy(x)


def _round_trip(model, tmp_path, x):
    path = os.path.join(tmp_path, "model.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(_np(model(x)), _np(loaded(x)), atol=1e-5)
    return loaded


@pytest.mark.parametrize("name", sorted(PUBLISHED))
@pytest.mark.parametrize("kind", ["normal", "reduce"])
def test_published_genotype_cells(name, kind):
    genotype = PUBLISHED[name]
    _, concat = genotype.cell(kind)
    for n in (8, 7):
        cell = Cell(genotype, kind, filters=4)
        shapes = [(2, n, n, 6), (2, n, n, 5)]
        y = cell([_x(n, 6), _x(n, 5)])
        assert tuple(y.shape) == cell.compute_output_shape(shapes)
        size = -(-n // 2) if kind == "reduce" else n
        assert tuple(y.shape) == (2, size, size, 4 * len(concat))


def test_single_input_and_reduction_prev():
    g = G.DARTS_V2
    cell = NormalCell(g, filters=4)
    assert tuple(cell(_x(8, 3)).shape) == (2, 8, 8, 16)
    assert isinstance(cell.preprocess0, ReLUConvBN)
    # s0 at twice the resolution of s1 (previous cell was a reduction).
    prev = NormalCell(g, filters=4, reduction_prev=True)
    y = prev([_x(7, 3), _x(4, 5)])
    assert tuple(y.shape) == (2, 4, 4, 16)
    assert isinstance(prev.preprocess0, FactorizedReduce)
    # A spatial mismatch is detected without the flag too.
    auto = NormalCell(g, filters=4)
    auto([_x(8, 3), _x(4, 5)])
    assert isinstance(auto.preprocess0, FactorizedReduce)
    with pytest.raises(ValueError, match="spatial size"):
        NormalCell(g, filters=4)([_x(8, 3), _x(3, 5)])


def test_cell_argument_errors():
    with pytest.raises(ValueError, match="Received: kind='big'"):
        Cell(G.DARTS_V2, "big", 4)
    with pytest.raises(ValueError, match="Received: drop_path_rate=1.5"):
        Cell(G.DARTS_V2, "normal", 4, drop_path_rate=1.5)
    with pytest.raises(ValueError, match="Received: genotype=3"):
        Cell(3, "normal", 4)
    reduce_inputs = G.Genotype(
        normal=[("skip_connect", 0), ("skip_connect", 1)],
        reduce=[("max_pool_3x3", 0), ("max_pool_3x3", 1)],
        reduce_concat=(1, 2),
    )
    with pytest.raises(ValueError, match="reduce_concat"):
        ReductionCell(reduce_inputs, 4)
    with pytest.raises(ValueError, match="Received: kind='normal'"):
        ReductionCell(G.DARTS_V2, 4, kind="normal")


def test_cell_accepts_dict_and_json_genotypes():
    g = G.DARTS_V1
    for form in (g.to_dict(), g.to_json()):
        assert Cell(form, "normal", 4).genotype == g


def test_get_config_round_trip():
    cells = [
        Cell(G.NASNET_A, "reduce", 4, reduction_prev=True, drop_path_rate=0.2),
        NormalCell(G.DARTS_V2, 6, seed=3),
        ReductionCell(G.AMOEBANET_A, 4),
        NasBench201Cell(NB201, 4),
    ]
    for cell in cells:
        config = cell.get_config()
        clone = type(cell).from_config(config)
        assert clone.get_config() == config
        assert clone.genotype == cell.genotype
    assert "kind" not in cells[1].get_config()


def test_cells_in_functional_model_round_trip(tmp_path):
    g = G.DARTS_V2
    inputs = keras.Input((8, 8, 3))
    s0 = s1 = keras.layers.Conv2D(6, 3, padding="same")(inputs)
    s0, s1 = s1, NormalCell(g, 4)([s0, s1])
    s0, s1 = s1, ReductionCell(g, 8)([s0, s1])
    s0, s1 = s1, Cell(g, "normal", 8, reduction_prev=True)([s0, s1])
    x = keras.layers.GlobalAveragePooling2D()(s1)
    outputs = keras.layers.Dense(3, activation="softmax")(x)
    model = keras.Model(inputs, outputs)
    assert model.output_shape == (None, 3)
    _round_trip(model, tmp_path, _x(8, 3, batch=4))


def test_cells_in_sequential_model_round_trip(tmp_path):
    model = keras.Sequential(
        [
            keras.Input((8, 8, 2)),
            keras.layers.Conv2D(4, 3, padding="same"),
            NasBench201Cell(NB201, 4),
            NormalCell(G.DARTS_V1, 4),
            ReductionCell(G.DARTS_V1, 4),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(3, activation="softmax"),
        ]
    )
    assert model.layers[3].output.shape == (None, 4, 4, 16)
    x = _x(8, 2, batch=8)
    _round_trip(model, tmp_path, x)


def test_drop_path_only_in_training():
    cell = Cell(G.DARTS_V2, "normal", 4, drop_path_rate=0.5, seed=1)
    x = _x(8, 4, batch=16)
    a = _np(cell([x, x], training=False))
    np.testing.assert_array_equal(a, _np(cell([x, x], training=False)))
    np.testing.assert_array_equal(a, _np(cell([x, x])))
    t1 = _np(cell([x, x], training=True))
    t2 = _np(cell([x, x], training=True))
    assert np.abs(t1 - t2).max() > 1e-3
    # Without drop-path, training outputs are deterministic.
    plain = Cell(G.DARTS_V2, "normal", 4)
    np.testing.assert_array_equal(
        _np(plain([x, x], training=True)), _np(plain([x, x], training=True))
    )


def test_drop_path_skips_identity():
    # Node 2 = skip(0) + skip(1): nothing to drop.
    g = G.Genotype(
        normal=[("skip_connect", 0), ("skip_connect", 1)],
        reduce=[("max_pool_3x3", 0), ("max_pool_3x3", 1)],
    )
    cell = Cell(g, "normal", 4, drop_path_rate=0.9, seed=0)
    x = _x(4, 4, batch=8)
    np.testing.assert_array_equal(
        _np(cell([x, x], training=True)), _np(cell([x, x], training=True))
    )


def test_nb201_cell_forms_and_values():
    ops = G.NasBench201Genotype.from_string(NB201)
    for form in (ops, NB201, list(ops.ops), ops.to_dict()):
        cell = NasBench201Cell(form, 4)
        assert cell.genotype == ops
        y = cell(_x(7, 4))
        assert tuple(y.shape) == cell.compute_output_shape((2, 7, 7, 4))
        assert tuple(y.shape) == (2, 7, 7, 4)
    # Only skip connections: node1 = x, node2 = 2x, node3 = x + x + 2x = 4x.
    skip = NasBench201Cell(("skip_connect",) * 6, 3)
    x = _x(4, 3)
    np.testing.assert_allclose(_np(skip(x)), 4 * x, rtol=1e-6)
    zero = NasBench201Cell(("none",) * 6, 3)
    np.testing.assert_array_equal(_np(zero(x)), 0.0)


def test_nb201_cell_errors():
    with pytest.raises(ValueError, match="channels"):
        NasBench201Cell(NB201, 4)(_x(4, 3))
    with pytest.raises(ValueError, match="Received: text="):
        NasBench201Cell("|nor_conv_3x3~0|", 4)
    with pytest.raises(ValueError, match="Received: ops="):
        NasBench201Cell(("nor_conv_3x3",) * 5, 4)


def test_cell_with_registered_custom_op_round_trip(tmp_path):
    from keras_nas.blocks import registry
    from keras_nas.blocks.ops import register_op

    def factory(filters, strides, affine):
        return keras.layers.Conv2D(filters, 3, strides=strides, padding="same")

    name = "test_cell_conv_3x3"
    register_op(name, factory)
    try:
        g = G.Genotype(
            normal=[(name, 0), ("skip_connect", 1)],
            reduce=[(name, 0), ("max_pool_3x3", 1)],
        )
        inputs = keras.Input((6, 6, 4))
        x = NormalCell(g, 4)(inputs)
        x = ReductionCell(g, 4)([inputs, x])
        model = keras.Model(inputs, x)
        assert model.output_shape == (None, 3, 3, 4)
        _round_trip(model, tmp_path, _x(6, 4))
        # The file holds the op's name only: a new process must register
        # the op again before loading.
        path = os.path.join(tmp_path, "model.keras")
        registry._FACTORIES.pop(name)
        with pytest.raises(Exception, match="also before loading a saved"):
            keras.saving.load_model(path)
        register_op(name, factory)
        assert keras.saving.load_model(path).output_shape == (None, 3, 3, 4)
    finally:
        registry._FACTORIES.pop(name, None)


def _fit_warns_of_no_missing_gradient(*models, x):
    y = np.arange(len(x)) % 2
    for m in models:
        m.compile("adam", keras.losses.SparseCategoricalCrossentropy(True))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            m.fit(x, y, epochs=1, batch_size=len(x), verbose=0)
        messages = [str(w.message) for w in caught]
        assert not [m for m in messages if "Gradients do not exist" in m]


def test_nb201_cell_builds_no_unused_edge_and_trains_without_warnings():
    # Edge 1<-0 feeds node 1, which reaches the output only through `none`
    # edges: no op is built for it. The second cell's output ignores its
    # input (node 1 is zeros), yet the layers before it get a gradient.
    dead = ("nor_conv_1x1", "nor_conv_3x3", "none", "skip_connect", "none",
            "nor_conv_1x1")
    cut = ("none", "none", "none", "none", "nor_conv_1x1", "none")

    def model(**kwargs):
        x = keras.Input((5, 5, 1))
        h = keras.layers.Conv2D(4, 1, name="stem")(x)
        h = NasBench201Cell(dead, 4, name="dead", **kwargs)(h)
        h = NasBench201Cell(cut, 4, name="cut", **kwargs)(h)
        h = keras.layers.GlobalAveragePooling2D()(h)
        return keras.Model(x, keras.layers.Dense(2, name="head")(h))

    pruned, kept = model(), model(keep_unused_edges=True)
    cell = pruned.get_layer("dead")
    assert cell.used_edges == (False, True, False, True, False, True)
    assert cell.edge_ops[0] is None and cell.edge_ops[2] is None
    unused = kept.get_layer("dead").edge_ops[0].count_params()
    assert kept.count_params() - pruned.count_params() == unused + sum(
        op.count_params()
        for op, used in zip(
            kept.get_layer("cut").edge_ops, (0, 0, 0, 0, 1, 0), strict=True
        )
        if not used
    )
    # Same function: give the used ops of both the same weights.
    for name in ("stem", "dead", "cut", "head"):
        a, b = pruned.get_layer(name), kept.get_layer(name)
        if name in ("dead", "cut"):
            for op_a, op_b in zip(a.edge_ops, b.edge_ops, strict=True):
                if op_a is not None:
                    op_b.set_weights(op_a.get_weights())
        else:
            b.set_weights(a.get_weights())
    x = _x(5, 1, batch=8)
    np.testing.assert_allclose(_np(pruned(x)), _np(kept(x)), atol=1e-6)
    # A config saved before `keep_unused_edges` builds all six ops.
    config = kept.get_layer("dead").get_config()
    del config["keep_unused_edges"]
    assert NasBench201Cell.from_config(config).keep_unused_edges
    _fit_warns_of_no_missing_gradient(pruned, kept, x=x)


def test_cell_builds_nothing_unused_and_trains_without_warnings():
    # No op reads input 0; node 3 sums `none` ops only (zeros). The reduce
    # cell's output reads no input at all.
    g = G.Genotype(
        normal=[("sep_conv_3x3", 1), ("skip_connect", 1), ("none", 2),
                ("none", 0)],
        normal_concat=[2, 3],
        reduce=[("none", 0), ("none", 1)],
        reduce_concat=[2],
    )

    def model(**kwargs):
        x = keras.Input((6, 6, 1))
        h = keras.layers.Conv2D(4, 1, name="stem")(x)
        h = Cell(g, "normal", filters=4, name="normal", **kwargs)(h)
        h = Cell(g, "reduce", filters=4, name="reduce", **kwargs)(h)
        h = keras.layers.Flatten()(h)
        return keras.Model(x, keras.layers.Dense(2, name="head")(h))

    pruned, kept = model(), model(keep_unused_edges=True)
    normal = pruned.get_layer("normal")
    assert normal.preprocess0 is None and normal.edge_ops[2:] == [None, None]
    assert pruned.get_layer("reduce").preprocess1 is None
    for name in ("stem", "normal", "head"):
        a, b = pruned.get_layer(name), kept.get_layer(name)
        pairs = [(a, b)]
        if name == "normal":
            pairs = [
                (a.preprocess1, b.preprocess1),
                (a.edge_ops[0], b.edge_ops[0]),
            ]
        for la, lb in pairs:
            lb.set_weights(la.get_weights())
    x = _x(6, 1, batch=8)
    np.testing.assert_allclose(_np(pruned(x)), _np(kept(x)), atol=1e-6)
    assert kept.count_params() > pruned.count_params()
    config = normal.get_config()
    del config["keep_unused_edges"]
    assert Cell.from_config(config).keep_unused_edges
    _fit_warns_of_no_missing_gradient(pruned, kept, x=x)
