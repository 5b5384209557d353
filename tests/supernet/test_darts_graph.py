"""The traced DARTS pass reuses one function per kind of edge.

A cell added to the supernet must add to the traced graph only the reads,
gradients and updates of its weights (a few graph ops per weight tensor),
not another copy of every candidate op's forward and backward graph.
"""

import gc
import weakref

import keras
import numpy as np
import pytest

from keras_nas.supernet import _darts_graph, _darts_tensorflow
from keras_nas.supernet._darts_math import cross_entropy
from keras_nas.supernet.darts import DartsSupernet

pytestmark = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow",
    reason="counts the ops of a TensorFlow graph",
)

OPS = ("none", "max_pool_3x3", "skip_connect", "sep_conv_3x3")


def _traced_pass(num_cells):
    import tensorflow as tf

    from keras_nas.supernet import _darts_tensorflow

    model = DartsSupernet(
        (8, 8, 3), 3, filters=2, num_cells=num_cells, ops=OPS, order=1
    )
    x, y = tf.zeros((4, 8, 8, 3)), tf.zeros((4,), tf.int32)
    traced = tf.function(
        lambda x, y: _darts_tensorflow._pass(model, x, y, "aw")
    ).get_concrete_function(x, y)
    graph = traced.graph.as_graph_def()
    kinds = {
        (c.filters, e.strides, c.reduction, c.reduction_prev)
        for c in model.cells
        for e in c.edges
    }
    return model, graph, kinds, traced


def test_extra_cells_add_their_weights_not_their_ops():
    small, g2, kinds2, _ = _traced_pass(2)
    big, g4, kinds4, traced = _traced_pass(4)
    extra_weights = len(big.variables) - len(small.variables)
    extra_ops = len(g4.node) - len(g2.node)
    assert extra_weights > 100
    # Each edge's function reads its weights and updates its batch-norm
    # statistics itself: captures, gradient sums, call plumbing are left,
    # ~3.8 ops per weight tensor here (values passed in and statistics
    # assigned outside: ~5.6; inline tracing, one graph copy per edge: ~30).
    assert extra_ops <= 4.5 * extra_weights, (extra_ops, extra_weights)
    # One forward, one forward-for-gradient and one backward function per
    # kind of edge (input shape and stride), whatever the number of edges.
    assert len(g2.library.function) <= 3 * len(kinds2)
    assert len(g4.library.function) <= 3 * len(kinds4)
    assert 3 * len(kinds4) < sum(len(c.edges) for c in big.cells)
    # The traced pass computes what the layers compute eagerly.
    x = np.random.default_rng(0).normal(size=(4, 8, 8, 3)).astype("float32")
    y = np.zeros((4,), "int32")
    graph_loss = float(traced(x, y)[0])
    eager_loss = float(cross_entropy(y, big(x, training=True)))
    np.testing.assert_allclose(graph_loss, eager_loss, rtol=1e-5)


def test_calls_from_inside_a_shared_function_run_the_layer_directly():
    x = keras.ops.zeros((1, 4, 4, 2))
    assert _darts_graph.enabled(x)
    _darts_graph._LOCAL.inside = True
    try:
        assert not _darts_graph.enabled(x)
    finally:
        _darts_graph._LOCAL.inside = False


def _step_graph(num_cells, order=2, seed=0):
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    model = DartsSupernet(
        (8, 8, 3), 3, filters=2, num_cells=num_cells, ops=OPS, order=order
    )
    model.compile()
    model.optimizer.build(model.trainable_variables)
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(4, 8, 8, 3)).astype(keras.config.floatx())
    y = rng.integers(0, 3, size=(4,)).astype("int32")
    data = ((x, y), (x[::-1], y[::-1]))
    step = tf.function(model.train_step)
    graph = step.get_concrete_function(data).graph.as_graph_def()
    return model, graph, step, data


def _state(model):
    return [np.asarray(v) for v in model.variables + model.optimizer.variables]


def test_the_steps_per_tensor_work_runs_in_shared_functions():
    from collections import Counter

    from keras_nas.supernet._weight_update_tensorflow import by_layer

    small, g2, _, _ = _step_graph(2)
    big, g4, _, _ = _step_graph(4)
    ops2 = Counter(n.op for n in g2.node)
    ops4 = Counter(n.op for n in g4.node)
    # The second-order step's weight moves and the weights' update (reads,
    # assignments, the fused momentum kernel) run inside functions called
    # once per layer: their op counts do not grow with the cells (before:
    # one read, assignment or update per tensor and move).
    assert ops4["ResourceApplyMomentum"] == 0
    for op in ("ReadVariableOp", "AssignVariableOp"):
        assert ops4[op] == ops2[op], (op, ops2[op], ops4[op])
    extra_tensors = len(big.weight_variables) - len(small.weight_variables)
    extra_layers = len(by_layer(big.weight_variables)) - len(
        by_layer(small.weight_variables)
    )
    extra_ops = (len(g4.node) - ops4["Placeholder"]) - (
        len(g2.node) - ops2["Placeholder"]
    )
    assert extra_tensors > 100
    # ~16 ops per extra layer here (calls of the passes' edges, their
    # gradients, the moves and the update); per tensor it was ~9.
    assert extra_ops <= 20 * extra_layers, (extra_ops, extra_layers)
    assert extra_ops < 2 * extra_tensors, (extra_ops, extra_tensors)


@pytest.mark.parametrize("order", [1, 2])
def test_the_traced_step_computes_the_eager_step(order):
    # First order in float32: the fused update (clip, decay, momentum).
    # Second order in float64, where the finite-difference term is not
    # lost in rounding: the unrolled step's weight moves per layer.
    policy = keras.config.dtype_policy()
    if order == 2:
        keras.config.set_dtype_policy("float64")
    try:
        traced, _, step, data = _step_graph(2, order)
        eager, _, _, _ = _step_graph(2, order)
        step(data)
        eager.train_step(data)
        tol = {"rtol": 1e-4, "atol": 1e-6} if order == 1 else {"rtol": 1e-9}
        for a, b in zip(_state(traced), _state(eager), strict=True):
            np.testing.assert_allclose(a, b, **tol)
    finally:
        keras.config.set_dtype_policy(policy)


def test_fit_traces_one_function_per_step_as_keras_steps():
    # `fit` runs the step as one tf.function of the iterator (Keras nests
    # a tf.function of the step in one of the iterator: every variable
    # captured twice). It trains as Keras' own train function does (here
    # its loop of steps_per_execution=2 steps).
    from tensorflow.python.eager.polymorphic_function import (
        tracing_compilation,
    )

    from keras_nas.supernet.darts import search_data

    rng = np.random.default_rng(3)
    x = rng.normal(size=(16, 8, 8, 3)).astype("float32")
    y = rng.integers(0, 3, size=(16,)).astype("int32")
    data = search_data(
        (x[:8], y[:8]), (x[8:], y[8:]), batch_size=4, shuffle=False
    )
    states, traced = [], {}
    trace = tracing_compilation.trace_function
    for per_execution in (1, 2):
        keras.utils.set_random_seed(0)
        model = DartsSupernet(
            (8, 8, 3), 3, filters=2, num_cells=2, ops=OPS, order=1
        )
        model.compile(jit_compile=False, steps_per_execution=per_execution)
        names = traced[per_execution] = []

        def recorded(*args, names=names, **kwargs):
            options = kwargs.get("tracing_options") or args[2]
            names.append(options.name)
            return trace(*args, **kwargs)

        tracing_compilation.trace_function = recorded
        try:
            model.fit(data, epochs=1, verbose=0)
        finally:
            tracing_compilation.trace_function = trace
        states.append(_state(model))
        # The first call traced without automatic garbage collections
        # (keras_nas/_gc.py); the collector is back on.
        assert model.train_function.called and gc.isenabled()
    # (trace_function is called on every call: it looks up the cache)
    steps = {n for n in traced[1] if "step_on" in n}
    assert steps == {"one_step_on_iterator"}, steps
    keras_steps = {n for n in traced[2] if "step_on" in n}
    assert keras_steps == {"multi_step_on_iterator", "one_step_on_data"}
    for a, b in zip(*states, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_the_traced_passes_hold_the_model_weakly():
    # The second order's per-model pass functions (`_traced_pass`) are
    # cached by the model, weakly: the cached function must not keep it.
    model = DartsSupernet((8, 8, 3), 3, filters=2, num_cells=2, ops=OPS)
    for groups in ("w", "a", "aw"):
        _darts_tensorflow._traced_pass(model, groups)
    ref = weakref.ref(model)
    del model
    gc.collect()
    assert ref() is None
