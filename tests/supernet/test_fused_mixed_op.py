"""The fused MixedOp computes what the ops compute one by one.

`keras_nas/supernet/_fused_mixed_op.py` evaluates the DARTS candidates of an
edge with a few stacked ops, reading the same per-op variables; outputs,
gradients (weights and alpha) and batch-norm moving statistics must equal
the op-by-op evaluation to float32 rounding, on TensorFlow and JAX.
"""

import json
import textwrap

import keras
import numpy as np
import pytest

from keras_nas.blocks import registry
from keras_nas.supernet import _fused_mixed_op, darts_cells
from keras_nas.supernet.darts import DartsSupernet
from keras_nas.supernet.darts_cells import MixedOp

pytestmark = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow",
    reason="TensorFlow tapes and graphs; JAX runs in a subprocess",
)


def _run(op, x, w, training, fused, monkeypatch):
    """Output, gradients of (w, weights) and new moving statistics."""
    import tensorflow as tf

    monkeypatch.setattr(darts_cells, "FUSED", fused)
    before = [v.numpy() for v in op.non_trainable_variables]
    with tf.GradientTape() as tape:
        tape.watch(w)
        y = op._call_ops(x, w, training=training)
        loss = tf.reduce_sum(y * tf.sin(y))
    grads = tape.gradient(loss, [w] + op.trainable_variables)
    stats = [v.numpy() for v in op.non_trainable_variables]
    for v, value in zip(op.non_trainable_variables, before, strict=True):
        v.assign(value)
    return y.numpy(), [g.numpy() for g in grads], stats


@pytest.mark.parametrize("strides", [1, 2])
def test_fused_equals_per_op_outputs_gradients_and_statistics(
    strides, monkeypatch
):
    import tensorflow as tf

    op = MixedOp(3, strides, registry.DARTS_OPS)
    rng = np.random.default_rng(strides)
    x = tf.constant(rng.normal(size=(2, 5, 5, 3)).astype("float32"))
    w = tf.constant(rng.dirichlet(np.ones(8)).astype("float32"))
    op.build(x.shape)
    plan = _fused_mixed_op.plan(op)
    # Every candidate but `none` is fused: sep convs, dil convs, pools,
    # skip (FactorizedReduce at stride 2, identity at stride 1).
    assert [len(g.members) for g in plan.groups] == [2, 2]
    assert len(plan.pools) == 2
    assert (plan.reduce is None) == (strides == 1)
    assert (plan.identity is None) == (strides == 2)
    for training in (True, False):
        fused = _run(op, x, w, training, True, monkeypatch)
        per_op = _run(op, x, w, training, False, monkeypatch)
        np.testing.assert_allclose(fused[0], per_op[0], rtol=1e-5, atol=1e-5)
        for a, b in zip(fused[1], per_op[1], strict=True):
            scale = np.abs(b).max() + 1e-6
            np.testing.assert_allclose(a / scale, b / scale, atol=2e-5)
        for a, b in zip(fused[2], per_op[2], strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
        moved = any(
            not np.array_equal(a, v.numpy())
            for a, v in zip(fused[2], op.non_trainable_variables, strict=True)
        )
        assert moved == training  # moving statistics updated in training
    assert fused[1][0][0] == 0.0  # `none` gets no gradient


def test_what_cannot_be_fused_runs_op_by_op():
    x_shape = (1, 4, 4, 2)
    for ops, version in [
        (("none", "skip_connect"), 2),  # nothing normalized to stack
        (("sep_conv_3x3", "nor_conv_3x3"), 2),  # an op outside the plan
        (("sep_conv_3x3", "max_pool_3x3"), 1),  # older numerics
    ]:
        op = MixedOp(2, 1, ops, ops_version=version)
        op.build(x_shape)
        assert _fused_mixed_op.plan(op) is None, ops


# Graph ops every evaluation holds alike: variable captures, reads and
# moving-statistics updates, constants.
PLUMBING = {"Const", "Placeholder", "ReadVariableOp", "AssignVariableOp"}
PLUMBING |= {"Identity", "NoOp"}


@pytest.mark.parametrize("strides", [1, 2])
def test_fused_edge_graph_is_small(strides):
    """Forward + backward of one default edge: half the computing ops."""
    import tensorflow as tf

    op = MixedOp(4, strides, registry.DARTS_OPS)
    op.build((2, 6, 6, 4))
    x = tf.zeros((2, 6, 6, 4))
    w = tf.fill((8,), 0.125)

    def count(fused):
        def step(x, w):
            with tf.GradientTape() as tape:
                tape.watch(w)
                y = op._call_ops(x, w, training=True)
            return tape.gradient(y, [w] + op.trainable_variables)

        darts_cells.FUSED = fused
        try:
            graph = tf.function(step).get_concrete_function(x, w).graph
        finally:
            darts_cells.FUSED = True
        nodes = graph.as_graph_def().node
        return len(nodes), sum(n.op not in PLUMBING for n in nodes)

    (fused, fused_compute), (per_op, per_op_compute) = count(1), count(0)
    # Measured (stride 1 / 2): 537 / 585 graph ops fused, 218 / 237 of them
    # computing; op by op 781 / 920 and 414 / 483.
    assert fused < 0.75 * per_op, (fused, per_op)
    assert fused_compute < 260 < 400 < per_op_compute, (
        fused_compute,
        per_op_compute,
    )


def test_supernet_saves_and_loads_with_the_same_weights(tmp_path):
    ops = ("none", "max_pool_3x3", "skip_connect", "sep_conv_3x3")
    model = DartsSupernet(
        (4, 4, 2), 3, filters=2, num_cells=1, num_nodes=2, ops=ops, seed=0
    )
    x = np.random.default_rng(0).normal(size=(4, 4, 4, 2)).astype("float32")
    assert _fused_mixed_op.plan(model.cells[0].edges[0]) is not None
    expected = model.predict(x, verbose=0)
    darts_cells.FUSED = False
    try:
        per_op = model.predict(x, verbose=0)
    finally:
        darts_cells.FUSED = True
    np.testing.assert_allclose(expected, per_op, rtol=1e-5, atol=1e-6)
    path = str(tmp_path / "fused.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    assert len(loaded.weights) == len(model.weights)
    np.testing.assert_allclose(
        loaded.predict(x, verbose=0), expected, rtol=1e-6, atol=1e-6
    )


JAX_SCRIPT = textwrap.dedent(
    """
    import contextlib, json
    import jax, keras, numpy as np
    from keras_nas.blocks import registry
    from keras_nas.supernet import _darts_graph, darts_cells
    from keras_nas.supernet.darts_cells import MixedOp

    _darts_graph.ENABLED = False  # each variant traced afresh below

    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 5, 5, 3)).astype("float32")
    w = rng.dirichlet(np.ones(8)).astype("float32")
    errors = []
    for strides in (2, 1):  # the input's gradient too (chained cells)
        op = MixedOp(3, strides, registry.DARTS_OPS)
        op.build((2, 5, 5, 3))
        tv = [v.value for v in op.trainable_variables]
        ntv = [v.value for v in op.non_trainable_variables]

        def loss(tv, w, x):
            y, new = op.stateless_call(tv, ntv, x, w, training=True)
            return keras.ops.sum(y * keras.ops.sin(y)), (y, new)

        out = {}
        # Fused with the depthwise convolutions as shifted slices (as in
        # the piecewise step on the CPU), fused, op by op.
        for variant in ("shifted", "fused", "per-op"):
            darts_cells.FUSED = variant != "per-op"
            grad = jax.jit(jax.grad(loss, argnums=(0, 1, 2), has_aux=True))
            with _darts_graph.piecewise() if variant == "shifted" else (
                contextlib.nullcontext()
            ):
                (gt, gw, gx), (y, new) = grad(tv, w, x)
            out[variant] = [np.asarray(a) for a in [y, gw, gx, *gt, *new]]
        errors += [
            float(np.abs(a - b).max() / (np.abs(b).max() + 1e-6))
            for variant in ("shifted", "fused")
            for a, b in zip(out[variant], out["per-op"])
        ]
    # Max pooling as shifted windows: ties (rounded inputs) send the
    # gradient to the first maximum of a window, as XLA's own gradient.
    from keras_nas.blocks.pool_ops import Pool
    from keras_nas.supernet import _fused_mixed_op

    for strides in (1, 2):
        x = np.round(rng.normal(size=(2, 6, 6, 3))).astype("float32")
        up = rng.normal(size=(2, 6 // strides, 6 // strides, 3))
        pool = Pool("max", 3, strides)
        a, b = (
            jax.value_and_grad(lambda x: keras.ops.sum(f(x) * up))(x)
            for f in (
                pool.call,
                lambda x: _fused_mixed_op._shifted_max_pool(x, 3, strides),
            )
        )
        errors += [float(np.abs(u - v).max()) for u, v in zip(a, b)]
    print("RESULT", json.dumps(errors))
    """
)


def test_fused_equals_per_op_on_jax(run_on_backend):
    stdout = run_on_backend(JAX_SCRIPT, "jax")
    line = [s for s in stdout.splitlines() if s.startswith("RESULT")][-1]
    errors = json.loads(line.split(" ", 1)[1])
    assert len(errors) > 20
    assert max(errors) < 5e-5, errors
