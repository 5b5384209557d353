"""Each DARTS cell's edges as two scans (`_cell_scan.py`): the same values,
and a traced graph that grows with the cells' weights, not their edges.

The scans are off by default (measured trade-off: benchmarks/RESULTS.md);
these tests switch them on.
"""

import json
import textwrap

import keras
import numpy as np
import pytest

from keras_nas.supernet import _cell_scan
from keras_nas.supernet._darts_math import cross_entropy
from keras_nas.supernet.darts import DartsSupernet

pytestmark = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow",
    reason="TensorFlow-backend tests; JAX runs in a subprocess below",
)

OPS = ("none", "max_pool_3x3", "skip_connect", "sep_conv_3x3")


def test_scanned_cells_equal_edge_by_edge_on_tensorflow(monkeypatch):
    import tensorflow as tf

    keras.utils.set_random_seed(0)
    # A normal and a reduction cell, inner edges, PC-DARTS.
    model = DartsSupernet(
        (6, 6, 3), 3, filters=2, num_cells=2, num_nodes=2, ops=OPS,
        partial_channels=2,
    )
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, 6, 6, 3)).astype("float32")
    y = np.array([0, 1, 2, 0], "int32")
    stats = [np.array(v.value) for v in model.non_trainable_variables]
    monkeypatch.setattr(_cell_scan, "ENABLED", True)

    def step():
        with tf.GradientTape() as tape:
            loss = cross_entropy(y, model(x, training=True))
        return loss, tape.gradient(loss, model.trainable_variables)

    results = []
    for traced in (True, False):  # eager: every edge on its own
        for v, value in zip(model.non_trainable_variables, stats, strict=True):
            v.assign(value)
        fn = tf.function(step) if traced else step
        if traced:
            graph = fn.get_concrete_function().graph
            loops = [
                op
                for op in graph.get_operations()
                if op.type in ("While", "StatelessWhile")
            ]
            # 2 cells x 2 scans, forward and gradient.
            assert len(loops) == 8
        loss, grads = fn()
        new = [np.array(v.value) for v in model.non_trainable_variables]
        results.append((float(loss), [np.asarray(g) for g in grads], new))
    (loss_s, grads_s, new_s), (loss_e, grads_e, new_e) = results
    np.testing.assert_allclose(loss_s, loss_e, rtol=1e-6)
    for a, b in zip(grads_s, grads_e, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    for a, b in zip(new_s, new_e, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    moved = zip(new_s, stats, strict=True)
    assert any(not np.allclose(a, b) for a, b in moved)


JAX_SCRIPT = textwrap.dedent(
    """
    import json
    import jax, jax.extend, keras, numpy as np
    from keras_nas.supernet import _cell_scan, _fused_mixed_op
    from keras_nas.supernet._darts_math import cross_entropy
    from keras_nas.supernet.darts import DartsSupernet

    OPS = ("none", "max_pool_3x3", "skip_connect", "sep_conv_3x3")

    def size(jaxpr):
        # Equations as XLA compiles them: a jitted function's body at every
        # call (XLA inlines it), a scan's body once.
        n = 0
        for eqn in jaxpr.eqns:
            n += 1
            for p in eqn.params.values():
                for q in p if isinstance(p, (tuple, list)) else (p,):
                    if isinstance(q, jax.extend.core.ClosedJaxpr):
                        n += size(q.jaxpr)
                    elif isinstance(q, jax.extend.core.Jaxpr):
                        n += size(q)
        return n

    def traced(cells):
        keras.utils.set_random_seed(0)
        m = DartsSupernet((8, 8, 3), 3, filters=2, num_cells=cells, ops=OPS)
        tv = [v.value for v in m.trainable_variables]
        ntv = [v.value for v in m.non_trainable_variables]
        def loss(tv, ntv, x, y):
            logits, ntv = m.stateless_call(tv, ntv, x, training=True)
            return cross_entropy(y, logits), ntv
        x = np.random.default_rng(0).normal(size=(4, 8, 8, 3))
        x, y = x.astype("float32"), np.array([0, 1, 2, 0], "int32")
        fn = jax.value_and_grad(loss, has_aux=True)
        return m, fn, (tv, ntv, x, y)

    _cell_scan.ENABLED = True
    # One op per depthwise convolution (not CPU's shifted slices, whose
    # taps would inflate every edge alike): the count is about the scans.
    _fused_mixed_op.SHIFTED_DEPTHWISE = set()
    sizes = []
    for cells in (2, 4):
        m, fn, args = traced(cells)
        jaxpr = jax.make_jaxpr(fn)(*args).jaxpr
        scans = sum(e.primitive.name == "scan" for e in jaxpr.eqns)
        sizes.append((len(m.variables), size(jaxpr), scans))
    print("RESULT", json.dumps(sizes))
    """
)


def test_jax_scanned_cells_add_their_weights_not_their_edges(run_on_backend):
    stdout = run_on_backend(JAX_SCRIPT, "jax", timeout=600)
    line = [s for s in stdout.splitlines() if s.startswith("RESULT")][-1]
    result = json.loads(line.split(" ", 1)[1])
    scan2, scan4 = result
    extra_weights = scan4[0] - scan2[0]
    assert extra_weights > 100
    # Two scans per cell, forward and backward (jaxpr's top level).
    assert (scan2[2], scan4[2]) == (8, 16)
    # Each extra cell adds its weights' stacking and unstacking and two
    # scan bodies: ~6.3 equations per weight tensor here; with one copy of
    # the edge per edge (scans off; XLA inlines the shared edge function)
    # ~24 (measured: 7,884 more equations for 326 more weight tensors).
    assert scan4[1] - scan2[1] <= 8 * extra_weights
