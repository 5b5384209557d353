"""Tests of the piecewise compiled step of `OneShotSupernet` (cell space).

The step runs in Python over one compiled function per kind of layer
(`_one_shot_tensorflow.piece_caller`), made when the kind is first sampled.
"""

import gc
import logging
import weakref

import keras
import numpy as np
import pytest
import tensorflow as tf
from _one_shot_testing import TINY
from _one_shot_testing import data as _data

from keras_nas.blocks.pool_ops import Identity
from keras_nas.spaces import CellSearchSpace
from keras_nas.supernet import _one_shot_chain_tensorflow as chain
from keras_nas.supernet import _one_shot_groups as groups
from keras_nas.supernet import _one_shot_tensorflow as tf_step
from keras_nas.supernet import one_shot
from keras_nas.supernet.one_shot import OneShotSupernet

# Shapes no other test uses: its kinds of layer are made here first.
ODD = CellSearchSpace(
    input_shape=(6, 6, 2),
    num_classes=3,
    ops=("none", "skip_connect", "avg_pool_3x3", "sep_conv_3x3"),
    num_nodes=2,
    num_cells=3,
    filters=3,
)


_TF_ONLY = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow", reason="TensorFlow's step"
)


@pytest.fixture(autouse=True)
def _seeded():
    """Seeded initial weights (here, and in the scripts run on another
    backend). The comparisons hold to float32 rounding only while rounding
    moves no max pooling's winner and no ReLU's sign: a near tie routes a
    gradient elsewhere, an O(1) difference. Unseeded weights met one about
    once in ten draws (JAX pieces vs eager step; benchmarks/RESULTS.md,
    "Merged tree checks (2026-12-05 m")."""
    keras.utils.set_random_seed(0)


def _optimizer():
    return keras.optimizers.SGD(0.1, momentum=0.9, weight_decay=1e-3)


def _traces() -> int:
    return sum(
        fn.experimental_get_tracing_count() for fn in tf_step.pieces().values()
    )


def _kinds() -> set:
    return set(tf_step.pieces())


@_TF_ONLY
def test_first_step_compiles_only_the_sampled_kinds():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 6, 6, 2)).astype("float32")
    y = rng.integers(0, 3, size=32).astype("int32")
    net = OneShotSupernet(ODD, seed=0)
    net.compile(optimizer=_optimizer())
    before = _kinds()
    net.fit(x[:16], y[:16], epochs=1, batch_size=16, verbose=0)  # one step
    assert net._train_mode == "compiled" and net._pieces
    # Run without automatic garbage collections (keras_nas/_gc.py).
    assert net.train_function.called and gc.isenabled()
    first = _kinds() - before
    # Only the layers the path runs (but the identity) have pieces: at
    # most one per such layer, of their classes.
    path = net.last_path
    layers = [
        layer
        for layer in net.topology.run_layers(path)
        if type(layer) is not Identity
    ]
    assert 0 < len(first) <= len(layers)
    assert {key[0] for key in first} <= {type(layer) for layer in layers}
    # Until every kind is sampled; then an epoch compiles nothing.
    seen = first
    for _ in range(10):
        net.fit(x, y, epochs=2, batch_size=4, verbose=0)
        now, seen = seen, _kinds() - before
        if now == seen:
            break
    assert len(seen) > len(first)
    traces = _traces()
    net.fit(x, y, epochs=1, batch_size=4, verbose=0)
    assert _kinds() - before == seen
    assert _traces() == traces  # no piece traced again
    # Keras' metrics, listed without its walk over the layers.
    assert net.metrics == keras.Model.metrics.fget(net)
    assert [m.name for m in net.metrics] == ["loss", "compile_metrics"]
    # Shape inference (`fit`'s symbolic build) gets the output's spec.
    with keras.SymbolicScope():
        out = net(x[:5], training=False)
    assert tuple(out.shape) == (5, 3) and out.dtype == net(x[:5]).dtype


@pytest.mark.parametrize("sampler", [None, "fair"])
def test_piecewise_step_equals_the_switch_step(sampler, monkeypatch):
    """Same seed: the same paths, and after each step the same weights,
    batch-norm statistics and optimizer state as the traced switch step
    (which equals the eager step: test_one_shot, test_one_shot_fair)."""
    x, y = _data(32)
    nets = []
    for pieces in (True, False):
        monkeypatch.setattr(one_shot, "PIECEWISE", ("cell",) if pieces else ())
        net = OneShotSupernet(TINY, seed=0, sampler=sampler)
        net.compile(optimizer=_optimizer())
        if nets:
            net.set_weights(nets[0].get_weights())
        nets.append(net)
    piecewise, switch = nets

    def state(model):
        stats = [v for v in model.non_trainable_variables if "moving" in v.path]
        return model.trainable_variables + stats + model.optimizer.variables

    for _ in range(2):
        for net, pieces in ((piecewise, True), (switch, False)):
            monkeypatch.setattr(
                one_shot, "PIECEWISE", ("cell",) if pieces else ()
            )
            net.fit(x, y, epochs=1, batch_size=32, verbose=0)
            assert net._pieces == pieces
        assert piecewise.last_paths == switch.last_paths
        for a, b in zip(state(piecewise), state(switch), strict=True):
            np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-5)


POOLS = CellSearchSpace(
    input_shape=(8, 8, 2),
    num_classes=3,
    ops=(
        "none",
        "skip_connect",
        "max_pool_3x3",
        "avg_pool_3x3",
        "sep_conv_3x3",
    ),
    num_nodes=2,
    num_cells=3,
    filters=3,
)


@_TF_ONLY
@pytest.mark.parametrize("sampler", [None, "fair"])
def test_tf_chained_backward_equals_the_tape(sampler, monkeypatch):
    """TF: the piecewise step's backward pass chained by hand (pools and
    the head's pooling as pieces, the loss and metrics as functions) ==
    the pieces under a `tf.GradientTape` (`CHAINED = False`): the same
    paths, weights, statistics and optimizer state, to float32 rounding
    (the gradients of a value used several times are summed in another
    order)."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(32, 8, 8, 2)).astype("float32")
    y = rng.integers(0, 3, size=32).astype("int32")
    nets = []
    for _ in range(2):
        net = OneShotSupernet(POOLS, seed=0, sampler=sampler)
        net.compile(
            optimizer=keras.optimizers.SGD(
                0.1, momentum=0.9, weight_decay=1e-3, global_clipnorm=0.5
            )
        )
        if nets:
            net.set_weights(nets[0].get_weights())
        nets.append(net)
    for _ in range(2):
        for net, chained in zip(nets, (True, False), strict=True):
            monkeypatch.setattr(tf_step, "CHAINED", chained)
            history = net.fit(
                x, y, epochs=1, batch_size=16, shuffle=False, verbose=0
            )
            assert net._pieces
        assert nets[0].last_paths == nets[1].last_paths
        states = [
            n.trainable_variables
            + n.non_trainable_variables
            + n.optimizer.variables
            for n in nets
        ]
        for a, b in zip(*states, strict=True):
            np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-6)
    assert np.isfinite(history.history["loss"][0])
    # The pieces connected to the output ran as TensorFlow's forward and
    # backward pairs (not as a tape's fallback; 0: never differentiated).
    records = groups._RECORDS[tf_step._HandlePiece]
    pairs = [
        entry[2]
        for layer, record in records.items()
        if layer in nets[0]._sublayers()[0]
        for entry in record.concrete.values()
        if entry[2] != 0
    ]
    assert pairs and all(isinstance(p, chain.Pair) for p in pairs)


@_TF_ONLY
def test_tf_step_functions_follow_compile():
    """TF: the piecewise step's loss and metrics functions are traced
    again after `compile` (new metrics, loss and optimizer)."""
    rng = np.random.default_rng(2)
    x = rng.normal(size=(16, 8, 8, 2)).astype("float32")
    y = rng.integers(0, 3, size=16).astype("int32")
    net = OneShotSupernet(POOLS, seed=0)
    net.compile(optimizer=_optimizer())
    history = net.fit(x, y, batch_size=16, epochs=1, verbose=0)
    assert set(history.history) == {"loss", "accuracy"}
    top2 = keras.metrics.SparseTopKCategoricalAccuracy(k=2, name="top2")
    net.compile(optimizer=_optimizer(), metrics=[top2])
    history = net.fit(x, y, batch_size=16, epochs=1, verbose=0)
    assert net._pieces and set(history.history) == {"loss", "top2"}
    assert net.optimizer.iterations.numpy() == 1


# The scripts run on another backend (`run_on_backend`) start seeded
# (`_seeded`) and compare their nets' weights, statistics and optimizer
# state with `same_state`.
SCRIPT_START = """
import keras, numpy as np
keras.utils.set_random_seed(0)

def same_state(nets):
    states = [
        net.trainable_variables + net.non_trainable_variables
        + net.optimizer.variables for net in nets]
    for a, b in zip(*states, strict=True):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-5)
"""

CHAINED = (
    SCRIPT_START
    + """
from keras_nas.supernet import _one_shot_jax as steps
from keras_nas.supernet.one_shot import OneShotSupernet
from keras_nas.blocks.pool_ops import Identity
from keras_nas.spaces import CellSearchSpace
space = CellSearchSpace(
    input_shape=(8, 8, 1), num_classes=4, num_nodes=1, num_cells=3,
    filters=4, ops=("none", "skip_connect", "sep_conv_3x3"))
rng = np.random.default_rng(0)
x = rng.normal(size=(32, 8, 8, 1)).astype("float32")
y = rng.integers(0, 4, size=32).astype("int32")
nets = []
for chained in (True, False):
    net = OneShotSupernet(space, seed=0)
    net.compile(optimizer=keras.optimizers.SGD(
        0.1, momentum=0.9, weight_decay=1e-3, global_clipnorm=0.5))
    if nets:
        net.set_weights(nets[0].get_weights())
    nets.append(net)
for _ in range(2):
    for net, chained in zip(nets, (True, False)):
        steps.CHAINED = chained
        net.fit(x, y, epochs=1, batch_size=32, verbose=0)
    assert nets[0].last_path == nets[1].last_path
    same_state(nets)
print("CHAINED_OK")
"""
)


def test_jax_chained_gradients_equal_jax_value_and_grad(run_on_backend):
    """JAX: the piecewise step's backward pass chained by hand (with the
    separable convolutions' shifted slices and the update per layer) ==
    `jax.value_and_grad` over the pieces (`_one_shot_jax.CHAINED =
    False`): the same weights, statistics and optimizer state."""
    assert "CHAINED_OK" in run_on_backend(CHAINED, "jax", timeout=600)


PYTHON_PATHS = (
    SCRIPT_START
    + """
from keras_nas.supernet.one_shot import OneShotSupernet
from keras_nas.spaces import CellSearchSpace
space = CellSearchSpace(
    input_shape=(8, 8, 1), num_classes=4, num_nodes=2, num_cells=3,
    filters=4, ops=("none", "skip_connect", "max_pool_3x3", "sep_conv_3x3"))
rng = np.random.default_rng(0)
x = rng.normal(size=(32, 8, 8, 1)).astype("float32")
y = rng.integers(0, 4, size=32).astype("int32")
nets = []
for step in ("auto", "eager"):
    net = OneShotSupernet(space, seed=0)
    net.compile(optimizer=keras.optimizers.SGD(
        0.1, momentum=0.9, nesterov=True), step=step)
    if nets:
        net.set_weights(nets[0].get_weights())
    # The same Python-drawn paths for both (as ENAS' controller).
    net.sampler = lambda rng, net=net: net.sample_values(rng)
    nets.append(net)
for _ in range(2):
    for net in nets:
        net.fit(x, y, epochs=1, batch_size=16, shuffle=False, verbose=0)
        assert net._train_mode == "eager"
    assert nets[0]._pieces and not nets[1]._pieces
    assert nets[0].last_path == nets[1].last_path
    assert nets[0].run_eagerly and nets[1].run_eagerly
    same_state(nets)
print("PYTHON_PATHS_OK")
"""
)


def test_jax_python_sampler_runs_on_the_pieces(run_on_backend):
    """JAX: a Python sampler's paths (ENAS' controller) train on the
    piecewise step's pieces with `step="auto"`: the same paths, weights,
    statistics and optimizer state as the eager step (`step="eager"`)."""
    assert "PYTHON_PATHS_OK" in run_on_backend(PYTHON_PATHS, "jax", timeout=600)


@_TF_ONLY
def test_tf_python_sampler_runs_on_the_pieces(monkeypatch):
    """TF: a Python sampler's paths (ENAS' controller) train on the
    piecewise step's pieces with `step="auto"`: the same paths, weights,
    statistics and optimizer state as the eager step (`step="eager"`), to
    float32 rounding, without a retracing warning; with `PYTHON_PATHS`
    off, `step="auto"` is the eager step again (bitwise)."""
    messages = []

    class Handler(logging.Handler):
        def emit(self, record):
            messages.append(record.getMessage())

    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 8, 8, 2)).astype("float32")
    y = rng.integers(0, 3, size=32).astype("int32")
    nets = []
    for step in ("auto", "eager", "auto"):
        net = OneShotSupernet(POOLS, seed=0)
        net.compile(
            optimizer=keras.optimizers.SGD(0.1, momentum=0.9, nesterov=True),
            step=step,
        )
        if nets:
            net.set_weights(nets[0].get_weights())
        # The same Python-drawn paths for all (as ENAS' controller).
        net.sampler = lambda rng, net=net: net.sample_values(rng)
        nets.append(net)
    pieces, eager, off = nets  # `off`: run with PYTHON_PATHS off
    handler = Handler()
    tf.get_logger().addHandler(handler)
    try:
        for _ in range(2):
            for net in nets:
                monkeypatch.setattr(tf_step, "PYTHON_PATHS", net is not off)
                net.fit(x, y, epochs=1, batch_size=16, shuffle=False, verbose=0)
                assert net._train_mode == "eager" and net.run_eagerly
            assert pieces._pieces and not eager._pieces and not off._pieces
            assert pieces.last_path == eager.last_path == off.last_path
            states = [
                n.trainable_variables
                + n.non_trainable_variables
                + n.optimizer.variables
                for n in nets
            ]
            for a, b, c in zip(*states, strict=True):
                np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-5)
                np.testing.assert_array_equal(c.numpy(), b.numpy())
    finally:
        tf.get_logger().removeHandler(handler)
    assert not [m for m in messages if "retracing" in m]
    # The pieces' net never ran a layer as the eager step's function.
    assert pieces not in tf_step._CALLERS and eager in tf_step._CALLERS


def test_the_path_functions_hold_the_supernet_weakly():
    # `evaluate_path`'s traced forward is cached by the supernet, weakly:
    # the cached function must not keep it (nor its variables) alive.
    net = OneShotSupernet(TINY, seed=0)
    for training in (True, False):
        tf_step.indexed_function(net, training)
    ref = weakref.ref(net)
    del net
    gc.collect()
    assert ref() is None


PIECES = """
import jax, jax.numpy as jnp, keras, numpy as np
from keras_nas._backend import variable_creation_scope
from keras_nas.blocks.conv_ops import FactorizedReduce, ReLUConvBN, SepConv
from keras_nas.supernet import _one_shot_pieces_jax as pieces
from keras_nas.supernet._one_shot_chain_jax import _backward
initialize = keras.Variable._initialize_with_initializer
with variable_creation_scope():  # zeros and ones from NumPy, no compile
    v = keras.Variable(initializer="zeros", shape=(3, 5), dtype="float32")
    w = keras.Variable(initializer="ones", shape=(7, 2), dtype="float32")
assert keras.Variable._initialize_with_initializer == initialize
assert np.all(v.numpy() == 0) and np.all(w.numpy() == 1)
rng = np.random.default_rng(0)
x = jnp.asarray(rng.normal(size=(4, 6, 6, 4)).astype("float32"))
sep, sep2 = SepConv(4, 3), SepConv(4, 3)
layers = [sep, sep2, SepConv(4, 5, strides=2), ReLUConvBN(4, 1),
          FactorizedReduce(4)]
for layer in layers:
    layer.build(x.shape)
units = pieces.units(sep)
assert len(units) == 2 and pieces.units(sep2)[0] is not units[0]
fns = [pieces.function(u, x, True) for u in units + pieces.units(sep2)]
assert all(fn is fns[0] for fn in fns)  # one kind: one compile
for layer in layers[2:]:
    def keras_call(values, x):
        mapping = list(zip(layer.trainable_variables, values))
        with keras.StatelessScope(state_mapping=mapping) as scope:
            y = layer(x, training=True)
        return y, [scope.get_current_value(v)
                   for v in layer.non_trainable_variables]
    values = [v.value for v in layer.trainable_variables]
    y, vjp_fn, stats = jax.vjp(keras_call, values, x, has_aux=True)
    stats = dict(zip(map(id, layer.non_trainable_variables), stats))
    out, chain = x, []
    for unit in pieces.units(layer):
        t = [v.value for v in unit.trainable_variables]
        n = [v.value for v in unit.non_trainable_variables]
        out, new, pullback = pieces.function(unit, out, True)(t, n, out)
        for v, value in zip(unit.non_trainable_variables, new):
            np.testing.assert_allclose(value, stats[id(v)], atol=2e-5)
        chain.append((unit, pullback))
    np.testing.assert_allclose(out, y, atol=2e-5)
    dy = jnp.asarray(rng.normal(size=y.shape).astype("float32"))
    d_values, d_x = vjp_fn(dy)
    g, grads = dy, {}
    for unit, pullback in reversed(chain):
        d_t, g, _ = _backward(pullback, g, jnp.zeros((), "float32"))
        grads.update(zip(map(id, unit.trainable_variables), d_t))
    np.testing.assert_allclose(g, d_x, atol=2e-4)
    for v, d in zip(layer.trainable_variables, d_values):
        np.testing.assert_allclose(grads[id(v)], d, atol=2e-4)
print("PIECES_OK")
"""


def test_jax_pieces_equal_the_layers_calls(run_on_backend):
    """JAX: a stride-1 `SepConv`'s two repeats and those of another such
    layer share one compiled piece; a strided `SepConv` (per repeat),
    `ReLUConvBN` and `FactorizedReduce` (their batch norms' lean backward
    pass) give the outputs, moving statistics and gradients of JAX's
    differentiation of their Keras calls; constant-initialized variables
    made in `variable_creation_scope` hold their values."""
    assert "PIECES_OK" in run_on_backend(PIECES, "jax", timeout=300)
