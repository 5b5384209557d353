"""Graph layers: math against NumPy, padding, permutations, saving, JAX."""

import keras
import numpy as np
import pytest

from keras_nas.blocks import graph
from keras_nas.estimation import count_flops, count_macs, count_params

RNG = np.random.default_rng(0)
N, F, U = 5, 3, 4


def tiny_graph(batch=2, nodes=N, features=F, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(batch, nodes, features)).astype("float32")
    a = np.triu(rng.random((batch, nodes, nodes)) < 0.5, k=1)
    a = (a | a.transpose(0, 2, 1)).astype("float32")
    a[:, 0, :] = a[:, :, 0] = 0.0  # node 0 isolated (real: x != 0)
    return x, a


def pad(x, a, extra):
    b, n, f = x.shape
    xp = np.zeros((b, n + extra, f), "float32")
    ap = np.zeros((b, n + extra, n + extra), "float32")
    xp[:, :n], ap[:, :n, :n] = x, a
    return xp, ap


def numpy(t):
    return keras.ops.convert_to_numpy(t)


def weights(layer):
    return {w.path.split("/")[-1]: numpy(w) for w in layer.weights}


# NumPy references, one graph at a time ------------------------------------


def ref_gcn(layer, x, a):
    w = weights(layer)
    ah = a + np.eye(len(a))
    d = ah.sum(1) ** -0.5
    return (d[:, None] * ah * d[None, :]) @ x @ w["kernel"] + w["bias"]


def ref_sage(layer, x, a):
    w = weights(layer)
    deg = a.sum(1, keepdims=True)
    mean = np.where(deg > 0, a @ x / np.maximum(deg, 1), 0)
    return x @ w["self_kernel"] + mean @ w["neighbor_kernel"] + w["bias"]


def ref_gin(layer, x, a):
    w = weights(layer)
    h = (1 + w["epsilon"]) * x + a @ x
    h = np.maximum(h @ w["kernel_1"] + w["bias_1"], 0)
    return h @ w["kernel_2"] + w["bias_2"]


def ref_gat(layer, x, a):
    w = weights(layer)
    heads = []
    for k in range(layer.heads):
        h = x @ w["kernel"][:, k, :]
        e = (h @ w["attention_target"][k])[:, None] + (
            h @ w["attention_source"][k]
        )[None, :]
        e = np.where(e > 0, e, 0.2 * e)
        nbr = (a + np.eye(len(a))) > 0
        e = np.where(nbr, e, -np.inf)
        alpha = np.exp(e - e.max(1, keepdims=True))
        alpha /= alpha.sum(1, keepdims=True)
        heads.append(alpha @ h)
    return np.concatenate(heads, -1) + w["bias"]


CASES = {
    "gcn": (lambda: graph.GCNConv(U), ref_gcn),
    "sage": (lambda: graph.GraphSAGEConv(U), ref_sage),
    "gin": (lambda: graph.GINConv(U, epsilon=0.3), ref_gin),
    "gat": (lambda: graph.GATConv(U, heads=2), ref_gat),
}


def randomize(layer):
    for w in layer.weights:
        w.assign(RNG.normal(size=w.shape).astype("float32") * 0.5)


@pytest.mark.parametrize("name", sorted(CASES))
def test_layer_matches_numpy_reference(name):
    make, ref = CASES[name]
    layer = make()
    x, a = tiny_graph()
    layer([x, a])
    randomize(layer)
    out = numpy(layer([x, a]))
    assert out.shape == layer.compute_output_shape([x.shape, a.shape])
    for b in range(len(x)):
        np.testing.assert_allclose(
            out[b], ref(layer, x[b], a[b]), rtol=1e-4, atol=1e-4
        )


@pytest.mark.parametrize("name", sorted(CASES))
def test_padding_and_permutation(name):
    layer = CASES[name][0]()
    x, a = tiny_graph()
    out = numpy(layer([x, a]))
    randomize(layer)
    out = numpy(layer([x, a]))
    # Padding: same rows for real nodes, zeros for padded ones, with the
    # derived mask and with an explicit one.
    xp, ap = pad(x, a, 3)
    mask = np.pad(np.ones(x.shape[:2], "float32"), ((0, 0), (0, 3)))
    for inputs in ([xp, ap], [xp, ap, mask]):
        padded = numpy(layer(inputs))
        np.testing.assert_allclose(padded[:, :N], out, rtol=1e-5, atol=1e-5)
        assert np.all(padded[:, N:] == 0)
    # Permutation equivariance.
    perm = RNG.permutation(N)
    permuted = numpy(layer([x[:, perm], a[:, perm][:, :, perm]]))
    np.testing.assert_allclose(permuted, out[:, perm], rtol=1e-5, atol=1e-5)


def test_padded_nodes_behind_explicit_mask_do_not_leak():
    # Padded nodes with garbage features and edges, hidden by the mask.
    x, a = tiny_graph()
    xp, ap = pad(x, a, 2)
    xp[:, N:] = 5.0
    ap[:, N:, :] = ap[:, :, N:] = 1.0
    mask = np.pad(np.ones(x.shape[:2], "float32"), ((0, 0), (0, 2)))
    for make, _ in CASES.values():
        layer = make()
        ref = numpy(layer([x, a]))
        out = numpy(layer([xp, ap, mask]))
        np.testing.assert_allclose(out[:, :N], ref, rtol=1e-5, atol=1e-5)


def test_readout_math_padding_and_permutation():
    x, _ = tiny_graph()
    x[:, 1] = 0.0  # a real node with zero features: needs the mask
    mask = np.ones(x.shape[:2], "float32")
    xp = np.pad(x, ((0, 0), (0, 2), (0, 0)))
    mp = np.pad(mask, ((0, 0), (0, 2)))
    expected = {"mean": x.mean(1), "max": x.max(1), "sum": x.sum(1)}
    perm = RNG.permutation(N)
    for mode, value in expected.items():
        layer = graph.GraphReadout(mode)
        np.testing.assert_allclose(numpy(layer([x, mask])), value, 1e-5)
        np.testing.assert_allclose(numpy(layer([xp, mp])), value, 1e-5)
        np.testing.assert_allclose(
            numpy(layer([x[:, perm], mask])), value, 1e-5
        )
    # Without a mask, all-zero rows are padding; an empty graph gives 0.
    x2 = -np.abs(tiny_graph(seed=1)[0])  # no zero rows
    x2p = np.pad(x2, ((0, 0), (0, 2), (0, 0)))
    np.testing.assert_allclose(
        numpy(graph.GraphReadout("max")(x2p)), x2.max(1), 1e-6
    )
    empty = np.zeros((1, 3, 2), "float32")
    assert np.all(numpy(graph.GraphReadout("max")(empty)) == 0)
    assert np.all(numpy(graph.GraphReadout("mean")(empty)) == 0)


def small_model():
    x_in = keras.Input((None, F))
    a_in = keras.Input((None, None))
    mask = graph.NodeMask()([x_in, a_in])
    h = x_in
    for conv in graph.GRAPH_CONVS:
        h = graph.get_graph_conv(conv, 4, activation="relu", heads=2)(
            [h, a_in, mask]
        )
    out = graph.GraphReadout("max")([h, mask])
    return keras.Model([x_in, a_in], keras.layers.Dense(3)(out))


def test_model_saves_and_loads(tmp_path):
    model = small_model()
    x, a = tiny_graph()
    ref = numpy(model([x, a]))
    path = str(tmp_path / "gnn.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(numpy(loaded([x, a])), ref, 1e-5, 1e-5)
    gat = [layer for layer in loaded.layers if "gat" in layer.name][0]
    assert (gat.heads, gat.units, gat.output_units) == (2, 2, 4)
    # Padding invariance of the whole network.
    xp, ap = pad(x, a, 4)
    np.testing.assert_allclose(numpy(loaded([xp, ap])), ref, 1e-5, 1e-5)


def test_hardware_costs_are_counted():
    x_in, a_in = keras.Input((N, F)), keras.Input((N, N))
    model = keras.Model([x_in, a_in], graph.GCNConv(U)([x_in, a_in]))
    assert count_macs(model) == N * F * U + N * N * U
    assert count_params(model) == F * U + U
    expected = {
        "sage": N * N * F + 2 * N * F * U,
        "gin": N * N * F + N * F * U + N * U * U,
        "gat": N * F * U + 2 * N * U + N * N * U,  # 2 heads of U // 2
    }
    for conv, macs in expected.items():
        layer = graph.get_graph_conv(conv, U, heads=2)
        model = keras.Model([x_in, a_in], layer([x_in, a_in]))
        assert count_macs(model) == macs, conv
        assert count_flops(model) > 2 * macs, conv


def test_errors_name_the_argument():
    with pytest.raises(ValueError, match="units"):
        graph.GCNConv(0)
    with pytest.raises(ValueError, match="mode"):
        graph.GraphReadout("median")
    with pytest.raises(ValueError, match="conv"):
        graph.get_graph_conv("cheb", 4)
    with pytest.raises(ValueError, match=r"\[x, a\]"):
        graph.GCNConv(4)(np.zeros((1, 3, 2), "float32"))


def test_jax_backend_matches_reference(run_on_backend):
    code = """
import numpy as np, keras
from keras_nas.blocks import graph
x = np.random.default_rng(1).normal(size=(1, 4, 2)).astype("float32")
a = np.array([[[0, 1, 0, 0], [1, 0, 1, 0], [0, 1, 0, 0], [0, 0, 0, 0]]],
             "float32")
xp = np.pad(x, ((0, 0), (0, 2), (0, 0)))
ap = np.pad(a, ((0, 0), (0, 2), (0, 2)))
for conv in graph.GRAPH_CONVS:
    layer = graph.get_graph_conv(conv, 4, heads=2, activation="tanh")
    out = keras.ops.convert_to_numpy(layer([x, a]))
    padded = keras.ops.convert_to_numpy(layer([xp, ap]))
    assert np.allclose(padded[:, :4], out, atol=1e-5), conv
    assert np.all(padded[:, 4:] == 0), conv
layer = graph.GCNConv(3, use_bias=False)
out = keras.ops.convert_to_numpy(layer([x, a]))[0]
ah = a[0] + np.eye(4)
d = ah.sum(1) ** -0.5
ref = (d[:, None] * ah * d[None]) @ x[0] @ keras.ops.convert_to_numpy(
    layer.kernel)
assert np.allclose(out, ref, atol=1e-5)
print(keras.backend.backend())
"""
    assert run_on_backend(code).strip() == "jax"
