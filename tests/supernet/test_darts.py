"""Tests of the DARTS supernet (Liu et al., ICLR 2019) on the TF backend.

The JAX backend's steps run in a subprocess (`KERAS_BACKEND=jax`).
"""

import json
import textwrap

import keras
import numpy as np
import pytest

from keras_nas.supernet.darts import (
    DartsSupernet,
    MixedOp,
    SearchCell,
    derive_genotype,
    num_edges,
    search_data,
)

pytestmark = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow",
    reason="TensorFlow-backend tests; JAX runs in a subprocess below",
)

TINY_OPS = ("none", "skip_connect", "max_pool_3x3")


def _data(n=32, shape=(6, 6, 3), classes=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n,) + shape).astype("float32")
    y = (x.mean(axis=(1, 2)).argmax(-1) % classes).astype("int32")
    return x, y


def test_search_cell_has_14_edges_for_4_nodes_and_shapes():
    cell = SearchCell(4, reduction=True, num_nodes=4, ops=TINY_OPS)
    assert len(cell.edges) == num_edges(4) == 14
    w = keras.ops.softmax(keras.ops.zeros((14, len(TINY_OPS))))
    s = keras.ops.ones((2, 6, 6, 5))
    out = cell([s, s], w)
    assert tuple(out.shape) == (2, 3, 3, 16)
    mixed = MixedOp(4, ops=("none", "skip_connect"))
    x = keras.ops.ones((1, 3, 3, 4))
    y = mixed(x, keras.ops.convert_to_tensor([0.25, 0.75]))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(y), 0.75)


def test_invalid_arguments_raise_value_errors():
    with pytest.raises(ValueError, match="order"):
        DartsSupernet((6, 6, 3), 3, filters=2, num_cells=1, order=3)
    with pytest.raises(ValueError, match="ops"):
        MixedOp(4, ops=("none",))
    with pytest.raises(ValueError, match="input_shape"):
        DartsSupernet((6, 6), 3)


def test_mixed_op_weighted_sum_and_its_custom_gradient(monkeypatch):
    """MixedOp's sum (a custom gradient that keeps only the op outputs for
    the backward pass) equals the autodiff of the explicit running sum.
    The op-by-op path, where that sum is used (not the fused edge)."""
    import tensorflow as tf

    from keras_nas.supernet import darts_cells

    monkeypatch.setattr(darts_cells, "FUSED", False)

    ops = ("none", "max_pool_3x3", "skip_connect", "sep_conv_3x3")
    mixed = MixedOp(3, ops=ops)
    x = tf.random.stateless_normal((2, 5, 5, 3), seed=(1, 2))
    mixed.build(x.shape)
    w = tf.constant([0.1, 0.2, 0.3, 0.4])
    with tf.GradientTape() as tape:
        tape.watch([x, w])
        y = mixed(x, w, training=True)
        loss = tf.reduce_sum(y * tf.cos(y))
    gx, gw = tape.gradient(loss, [x, w])
    # Reference: the explicit running sum w_k * op_k(x) (fresh tape).
    with tf.GradientTape() as tape2:
        tape2.watch([x, w])
        ys = [op(x, training=True) for op in mixed.candidates]
        ref = sum(w[k] * o for k, o in zip((1, 2, 3), ys, strict=True))
        ref_loss = tf.reduce_sum(ref * tf.cos(ref))
    rgx, rgw = tape2.gradient(ref_loss, [x, w])
    np.testing.assert_allclose(y.numpy(), ref.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(gx.numpy(), rgx.numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(gw.numpy(), rgw.numpy(), rtol=1e-4, atol=1e-5)
    assert gw.numpy()[0] == 0.0  # `none` contributes nothing


def test_derive_genotype_rules():
    rng = np.random.default_rng(0)
    ops = ("none", "max_pool_3x3", "skip_connect", "sep_conv_3x3")
    for _ in range(20):
        a = rng.normal(size=(2, 14, len(ops)))
        a[..., 0] += 5.0  # `none` is the strongest op everywhere.
        g = derive_genotype(a[0], a[1], ops=ops, num_nodes=4)
        for kind in ("normal", "reduce"):
            nodes = g.nodes(kind)
            assert len(nodes) == 4
            for i, node in enumerate(nodes):
                assert len(node) == 2
                inputs = [j for _, j in node]
                assert len(set(inputs)) == 2
                assert all(0 <= j < i + 2 for j in inputs)
                assert all(op != "none" for op, _ in node)
    # A known case: node 0 prefers sep_conv from input 1, max_pool from 0.
    a = np.zeros((5, 4))
    a[0, 1], a[1, 3] = 2.0, 3.0
    a[2:, 2] = [1.0, 0.5, 4.0]  # node 1 keeps inputs 2 then 0.
    g = derive_genotype(a, a, ops=ops, num_nodes=2)
    assert g.normal == (
        ("sep_conv_3x3", 1),
        ("max_pool_3x3", 0),
        ("skip_connect", 2),
        ("skip_connect", 0),
    )


def _tiny_supernet(order, dtype=None, **kw):
    kw.setdefault("ops", ("none", "skip_connect", "avg_pool_3x3"))
    return DartsSupernet(
        (4, 4, 2),
        3,
        filters=2,
        num_cells=1,
        num_nodes=2,
        order=order,
        seed=3,
        weight_decay=0.0,
        dtype=dtype,
        **kw,
    )


def test_second_order_gradient_matches_finite_differences():
    import tensorflow as tf

    from keras_nas.supernet._darts_math import cross_entropy

    policy = keras.config.dtype_policy()
    keras.config.set_floatx("float64")
    keras.config.set_dtype_policy("float64")
    keras.utils.set_random_seed(0)
    try:
        model = _tiny_supernet(order=2)
        model.compile(optimizer=keras.optimizers.SGD(0.5, momentum=0.9))
        xt, yt = _data(8, (4, 4, 2), seed=1)
        xv, yv = _data(8, (4, 4, 2), seed=2)
        xt, xv = xt.astype("float64"), xv.astype("float64")
        grads = model.arch_gradients((xt, yt), (xv, yv))
        w = model.weight_variables
        w0 = [v.numpy() for v in w]
        xi = 0.5

        def unrolled_val_loss(alpha):
            model.alpha_normal.assign(alpha)
            with tf.GradientTape() as tape:
                loss = cross_entropy(yt, model(xt, training=True))
            g = tape.gradient(loss, [v.value for v in w])
            for v, v0, gv in zip(w, w0, g, strict=True):
                v.assign(v0 - xi * gv)
            val = float(cross_entropy(yv, model(xv, training=True)))
            for v, v0 in zip(w, w0, strict=True):
                v.assign(v0)
            return val

        alpha0 = model.alpha_normal.numpy().copy()
        fd = np.zeros_like(alpha0)
        h = 1e-5
        for idx in np.ndindex(alpha0.shape):
            plus, minus = alpha0.copy(), alpha0.copy()
            plus[idx] += h
            minus[idx] -= h
            fd[idx] = (unrolled_val_loss(plus) - unrolled_val_loss(minus)) / (
                2 * h
            )
        model.alpha_normal.assign(alpha0)
        scale = np.abs(fd).max()
        assert scale > 1e-4
        # eq. 8's finite-difference Hessian-vector product moves the weights
        # by 0.01 (ReLU kinks included), so agreement is to about 1%.
        second_error = np.abs(grads[0] - fd).max()
        assert second_error < 0.03 * scale
        # The first-order gradient misses the unrolled term.
        model.order = 1
        first = model.arch_gradients((xt, yt), (xv, yv))[0]
        assert np.abs(first - fd).max() > 3 * second_error
    finally:
        keras.config.set_floatx("float32")
        keras.config.set_dtype_policy(policy)


def test_alpha_moves_toward_the_useful_op():
    # The cell output reaches the classifier only through its edges, so
    # `skip_connect` (information) beats `none` (zeros) on every edge.
    # How far alpha moves in 6 epochs depends on the initial weights (seeds
    # 0-7: 6-7 of 8 move it by more than 0.1, both with Keras' draws and
    # with the host draws of `_op_numerics._HostDraw`); seed 1 does.
    keras.utils.set_random_seed(1)
    x, y = _data(96, (4, 4, 3), seed=4)
    model = DartsSupernet(
        (4, 4, 3),
        3,
        filters=4,
        num_cells=1,
        num_nodes=2,
        ops=("none", "skip_connect"),
        seed=0,
    )
    model.compile(
        optimizer=keras.optimizers.SGD(0.05, momentum=0.9),
        arch_optimizer=keras.optimizers.Adam(0.05, beta_1=0.5),
        jit_compile=False,
    )
    before = model.arch_weights()["normal"][:, 1]
    data = search_data((x[:48], y[:48]), (x[48:], y[48:]), batch_size=16)
    model.fit(data, epochs=6, verbose=0)
    after = model.arch_weights()["normal"][:, 1]
    assert after.mean() > before.mean() + 0.1
    assert np.sum(after > before) >= len(after) - 1


def test_fit_save_and_load(tmp_path, monkeypatch, order=2):
    x, y = _data(64, (4, 4, 2), seed=5)
    model = _tiny_supernet(order=order)
    model.compile(decay_steps=8, jit_compile=False)
    data = search_data((x[:32], y[:32]), (x[32:], y[32:]), batch_size=8)
    traces = []
    step = model._steps.train_step
    monkeypatch.setattr(
        model._steps,
        "train_step",
        lambda *args: traces.append(1) or step(*args),
    )
    history = model.fit(data, epochs=2, verbose=0).history
    monkeypatch.undo()
    # The graph step is traced once: the optimizers' state exists before
    # (created inside the trace, it made tf.function trace the step twice).
    assert len(traces) == 1
    assert set(history) >= {"loss", "accuracy", "arch_loss", "arch_accuracy"}
    assert all(np.isfinite(v).all() for v in history.values())
    path = str(tmp_path / "supernet.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    assert isinstance(loaded, DartsSupernet) and loaded.order == order
    for a, b in zip(loaded.arch_variables, model.arch_variables, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    np.testing.assert_allclose(
        loaded.predict(x[:8], verbose=0),
        model.predict(x[:8], verbose=0),
        atol=1e-6,
    )
    assert loaded.derive_genotype() == model.derive_genotype()
    assert int(loaded.optimizer.iterations) == int(model.optimizer.iterations)
    # The optimizers' state (built before the trace with one TensorFlow
    # variable name, issue #13) keeps distinct Keras paths and round-trips.
    paths = [v.path for v in model.optimizer.variables]
    assert len(set(paths)) == len(paths)
    for a, b in zip(
        loaded.optimizer.variables, model.optimizer.variables, strict=True
    ):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    loaded.fit(data, epochs=1, verbose=0)
    hp = loaded.derive_hyperparameters()
    assert hp["normal/node1/input1"] in (0, 1, 2)


def test_mixed_float16_second_order_with_xla():
    # Every layer computes in float16 (the model's policy reaches its
    # sublayers), logits and variables stay float32, and the XLA-compiled
    # second-order step trains both alpha and the weights.
    x, y = _data(32, (4, 4, 2), classes=2, seed=6)
    model = DartsSupernet(
        (4, 4, 2),
        2,
        filters=2,
        num_cells=1,
        num_nodes=1,
        ops=("none", "skip_connect", "avg_pool_3x3"),
        order=2,
        seed=0,
        dtype="mixed_float16",
    )
    assert model.stem_conv.compute_dtype == "float16"
    assert model.cells[0].edges[0].candidates[1].compute_dtype == "float16"
    assert model.classifier.compute_dtype == "float32"
    assert {v.dtype for v in model.trainable_variables} == {"float32"}
    model.compile(
        optimizer=keras.optimizers.SGD(0.1, momentum=0.9), jit_compile=True
    )
    assert model(x[:2]).dtype == "float32"
    data = search_data((x[:16], y[:16]), (x[16:], y[16:]), 16, False)
    before = model.evaluate(x[:16], y[:16], verbose=0, return_dict=True)
    alpha = model.alpha_normal.numpy().copy()
    history = model.fit(data, epochs=6, verbose=0).history
    after = model.evaluate(x[:16], y[:16], verbose=0, return_dict=True)
    assert all(np.isfinite(v).all() for v in history.values())
    assert after["loss"] < before["loss"]
    assert np.abs(model.alpha_normal.numpy() - alpha).max() > 0


JAX_SCRIPT = textwrap.dedent(
    """
    import json
    import numpy as np, keras
    from keras_nas.supernet.darts import DartsSupernet, search_data
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 4, 4, 2)).astype("float32")
    y = (x.mean(axis=(1, 2)).argmax(-1)).astype("int32")
    out = {}
    for order, dtype in ((1, "float32"), (2, "float32"),
                         (2, "mixed_bfloat16"), (1, "mixed_float16")):
        m = DartsSupernet((4, 4, 2), 2, filters=2, num_cells=1,
                          num_nodes=2, ops=("none", "skip_connect",
                          "avg_pool_3x3"), order=order, seed=0,
                          dtype=dtype)
        m.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9))
        data = search_data((x[:16], y[:16]), (x[16:], y[16:]),
                           batch_size=16, shuffle=False)
        before = m.evaluate(x[:16], y[:16], verbose=0, return_dict=True)
        a0 = keras.ops.convert_to_numpy(m.alpha_normal).copy()
        m.fit(data, epochs=8, verbose=0)
        after = m.evaluate(x[:16], y[:16], verbose=0, return_dict=True)
        a1 = keras.ops.convert_to_numpy(m.alpha_normal)
        out[f"{order}-{dtype}"] = [before["loss"], after["loss"],
                      float(np.abs(a1 - a0).max())]
        out[f"dtype-{dtype}"] = [m.cells[0].compute_dtype,
                                 str(m(x[:2]).dtype)]
    print("RESULT", json.dumps(out))
    """
)


def test_jax_backend_first_and_second_order_and_mixed_precision(
    run_on_backend,
):
    stdout = run_on_backend(JAX_SCRIPT, "jax", timeout=600)
    line = [s for s in stdout.splitlines() if s.startswith("RESULT")][-1]
    result = json.loads(line.split(" ", 1)[1])
    dtypes = {k: result.pop(k) for k in list(result) if k[:6] == "dtype-"}
    # Mixed policies reach every layer; the logits stay float32.
    assert dtypes["dtype-mixed_bfloat16"] == ["bfloat16", "float32"]
    assert dtypes["dtype-mixed_float16"] == ["float16", "float32"]
    assert len(result) == 4
    for before, after, moved in result.values():
        assert after < before
        assert moved > 0


@pytest.mark.parametrize("name", ["weight_decay", "grad_clip", "tau_min"])
@pytest.mark.parametrize("bad", [-1.0, float("nan"), float("inf"), True, "1"])
def test_non_negative_arguments_are_checked(name, bad):
    with pytest.raises(ValueError, match=rf"`{name}` to be a number in"):
        DartsSupernet((8, 8, 3), 10, filters=2, num_cells=1, **{name: bad})
