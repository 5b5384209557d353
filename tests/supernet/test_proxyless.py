"""ProxylessNAS: binary path gates on the MobileNet space, the latency
term, derivation, saving, determinism and argument checks."""

import gc
import json
import subprocess
import sys
import weakref

import keras
import numpy as np
import pytest
from _latency_testing import fake_table, tiny_space

from keras_nas.spaces import MobileNetSearchSpace
from keras_nas.supernet import _proxyless_tensorflow, binary_gates, search_data
from keras_nas.supernet.proxyless import ProxylessSupernet
from keras_nas.tuners import Proxyless

# One or two steps per model: tracing each layer's tf.function would cost
# more than running it (the benchmark and the CLI run the traced calls).
pytestmark = pytest.mark.usefixtures("eager_functions")


def batch(n=16, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 8, 8, 1)).astype("float32")
    return x, rng.integers(0, 10, n)


def data(n=16):
    (xt, yt), (xv, yv) = batch(n, 0), batch(n, 1)
    return (xt, yt), (xv, yv)


def values(variables):
    return [np.array(keras.ops.convert_to_numpy(v)) for v in variables]


def test_weight_step_runs_and_trains_only_the_sampled_path():
    # No weight decay: a weight moves only if its gradient is not zero.
    model = ProxylessSupernet(tiny_space(), weight_decay=0.0, seed=0)
    model.compile()
    calls = []
    for b, block in enumerate(model.mixed_blocks):
        for layer in block.candidates:

            def counted(*args, _call=layer.call, _key=(b, layer.name), **kw):
                calls.append(_key)
                return _call(*args, **kw)

            layer.call = counted
    path = (0, 2, 1)  # block 1 skipped ("zero")
    for a, k in zip(model.arch_variables, path, strict=True):
        a.assign(30.0 * np.eye(a.shape[0])[k])  # the draw is this path
    assert model.sample_path() == path
    model.warmup_steps = 1  # no architecture step: the weights only
    before = values(model.weight_variables)
    model.train_batch(data())
    assert calls == [(0, "mbconv_3x3_e3"), (2, "mbconv_5x5_e3")]
    on_path = {id(v) for v in model.path_weight_variables(path)}
    for v, old in zip(model.weight_variables, before, strict=True):
        moved = not np.array_equal(keras.ops.convert_to_numpy(v), old)
        assert moved == (id(v) in on_path), v.path


def test_arch_gradient_reaches_exactly_the_two_sampled_paths():
    model = ProxylessSupernet(tiny_space(), seed=0)
    model.compile()
    x, y = batch()
    pairs = ((1, 0), (2, 1), (0, 1))
    grads, used = model.arch_gradients(x, y, pairs)
    assert used == pairs
    for g, (a, b) in zip(grads, pairs, strict=True):
        assert np.all(np.isfinite(g))
        assert g[a] != 0 and g[b] != 0
        # Two-path softmax: the estimator moves the pair in opposite ways.
        np.testing.assert_allclose(g[a], -g[b], rtol=1e-5)
        others = [k for k in range(len(g)) if k not in (a, b)]
        assert np.all(g[others] == 0)
    # The estimator written out (gate gradients -> logits) has this form.
    est = binary_gates.gate_gradient(np.zeros(3), (1, 0), (0.3, -0.2))
    np.testing.assert_allclose(est, [-0.125, 0.125, 0.0])


def test_latency_gradient_matches_the_table():
    space = tiny_space()
    table = fake_table(space)
    model = ProxylessSupernet(space, latency_table=table, seed=0)
    model.compile()
    rng = np.random.default_rng(3)
    for a in model.arch_variables:
        a.assign(rng.normal(size=a.shape))
    x, y = batch()
    pairs = model.sample_pairs()
    plain, _ = model.arch_gradients(x, y, pairs)
    model.latency_weight = 0.5
    with_latency, _ = model.arch_gradients(x, y, pairs)
    lat = table.block_latencies("median_ms")
    probs = model.probabilities()
    expected = sum(float(p @ v) for p, v in zip(probs, lat, strict=True))
    np.testing.assert_allclose(
        float(keras.ops.convert_to_numpy(model.expected_latency())),
        table.fixed_latency() + expected, rtol=1e-5,
    )  # fmt: skip
    for g0, g1, p, v in zip(plain, with_latency, probs, lat, strict=True):
        analytic = 0.5 * p * (v - p @ v)  # d/d alpha of sum(p * latency)
        np.testing.assert_allclose(g1 - g0, analytic, rtol=1e-4, atol=1e-6)


def test_arch_step_keeps_the_other_paths_probabilities():
    model = ProxylessSupernet(tiny_space(), seed=0)
    model.compile()
    pairs = model.sample_pairs()  # what the step draws
    before = model.probabilities()
    model.train_batch(data())
    after = model.probabilities()
    for p0, p1, pair in zip(before, after, pairs, strict=True):
        assert not np.allclose(p0, p1)
        others = [k for k in range(len(p0)) if k not in pair]
        np.testing.assert_allclose(p1[others], p0[others], rtol=1e-5)


def test_compiled_step_equals_the_eager_step_and_traces_once():
    # `fit` runs one compiled step (tf.function / jit), traced once; the
    # same step run eagerly gives the same variables (float32 round-off).
    import tensorflow as tf

    tf.config.run_functions_eagerly(False)  # the fixture's eager off here
    space = MobileNetSearchSpace(
        (8, 8, 1), 10, stem_filters=8, stages=((8, 1, 1),),
        kernel_sizes=(3,), expansions=(3,),
    )  # fmt: skip
    states, traces = [], []
    for eager in (True, False):
        keras.utils.set_random_seed(1)
        model = ProxylessSupernet(space, warmup_steps=1, seed=3)
        model.compile(run_eagerly=eager)
        calls = []
        step = model.train_batch
        model.train_batch = lambda d, s=step, c=calls: c.append(1) or s(d)
        per_epoch = keras.callbacks.LambdaCallback(
            on_epoch_end=lambda epoch, logs, c=calls: traces.append(len(c))
        )
        data = search_data(*data_set(), batch_size=8, seed=0)
        model.fit(data, epochs=2, verbose=0, callbacks=[per_epoch])
        states.append(values(model.variables))
        assert int(keras.ops.convert_to_numpy(model.path_draws)) == 4
    # Eagerly the step runs per batch; compiled it is traced in epoch 1
    # only (both epochs: 2 batches of 8 + 8).
    assert traces == [2, 4, 1, 1]
    for u, v in zip(*states, strict=True):
        np.testing.assert_allclose(u, v, rtol=1e-5, atol=1e-5)
    # An architecture step happened (warm-up of one step).
    assert any(np.any(u != 0) for u in values(model.arch_variables))


def data_set(n=16):
    (xt, yt), (xv, yv) = batch(n, 0), batch(n, 1)
    return (xt, yt), (xv, yv)


# `fit`'s jitted step on JAX: traced once; each step's sampled path (one
# block: the MBConv or "zero") decides whether the MBConv's variables move
# (the masked update); after the warm-up the path logits move too.
JAX_COMPILED_STEP = """
import json, keras, numpy as np
from keras_nas.spaces import MobileNetSearchSpace
from keras_nas.supernet import ProxylessSupernet, search_data
from keras_nas.supernet import _proxyless_paths as paths
space = MobileNetSearchSpace(
    (8, 8, 1), 10, stem_filters=8, stages=((8, 1, 1),),
    kernel_sizes=(3,), expansions=(3,))
rng = np.random.default_rng(0)
x = rng.normal(size=(16, 8, 8, 1)).astype("float32")
y = rng.integers(0, 10, 16)
keras.utils.set_random_seed(1)
model = ProxylessSupernet(space, warmup_steps=2, seed=3)
model.compile()
calls = []
step = model.train_batch
model.train_batch = lambda d: calls.append(1) or step(d)
block = model.mixed_blocks[0]
op = block.op_layer(block.choices.index("mbconv_3x3_e3"))
def state():
    return [keras.ops.convert_to_numpy(v).copy() for v in op.variables] + [
        keras.ops.convert_to_numpy(model.arch_variables[0]).copy()]
rows, before = [], [state()]
def on_epoch_end(epoch, logs):
    draw = int(keras.ops.convert_to_numpy(model.path_draws)) - 1
    path = int(keras.ops.convert_to_numpy(paths.draw_path(model, draw)[0]))
    now = state()
    rows.append([block.choices[path],
                 any(np.any(u != v) for u, v in zip(now[:-1], before[-1])),
                 bool(np.any(now[-1] != before[-1][-1]))])
    before.append(now)
data = search_data((x[:8], y[:8]), (x[8:], y[8:]), 8, seed=0)
model.fit(data, epochs=4, verbose=0, callbacks=[
    keras.callbacks.LambdaCallback(on_epoch_end=on_epoch_end)])
print("RESULT " + json.dumps({
    "backend": keras.backend.backend(), "traces": len(calls), "rows": rows}))
"""


def test_jax_compiled_step_traces_once_and_masks_the_update(run_on_backend):
    stdout = run_on_backend(JAX_COMPILED_STEP, "jax", timeout=300)
    line = [s for s in stdout.splitlines() if s.startswith("RESULT")][-1]
    result = json.loads(line.split(" ", 1)[1])
    assert result["backend"] == "jax"
    assert result["traces"] == 1  # 4 epochs of one batch, one jit trace
    rows = result["rows"]
    # The MBConv's variables (weights, batch-norm statistics) move exactly
    # in the steps whose sampled path runs it.
    assert [moved for _, moved, _ in rows] == [
        op == "mbconv_3x3_e3" for op, _, _ in rows
    ]
    assert {op for op, _, _ in rows} == {"mbconv_3x3_e3", "zero"}
    # Two warm-up steps, then an architecture step in every step.
    assert [alpha for _, _, alpha in rows] == [False, False, True, True]


def test_derive_genotype_and_hyperparameters():
    space = tiny_space()
    model = ProxylessSupernet(space, seed=0)
    for a, best in zip(model.arch_variables, (1, 2, 0), strict=True):
        a.assign(np.eye(a.shape[0])[best])
    genotype = model.derive_genotype()
    assert genotype.ops == ("mbconv_5x5_e3", "zero", "mbconv_3x3_e3")
    hp = model.derive_hyperparameters()
    assert space.genotype(hp) == genotype
    # The derived network is what `call` runs: block 1 is skipped.
    x, _ = batch(4)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(model(x)),
        keras.ops.convert_to_numpy(model.forward_path(x, (1, 2, 0))),
        rtol=1e-6,
    )
    assert model.latency_table is None
    with pytest.raises(ValueError, match="latency_table"):
        model.predicted_latency()


def test_seeded_runs_repeat():
    def run():
        keras.utils.set_random_seed(7)
        model = ProxylessSupernet(tiny_space(), seed=5)
        model.compile()
        model.fit(data_set(), epochs=1, verbose=0)
        return values(model.arch_variables), model.sample_path()

    def data_set():
        return search_data(*data(), batch_size=8, seed=0)

    (a1, p1), (a2, p2) = run(), run()
    assert p1 == p2
    for u, v in zip(a1, a2, strict=True):
        np.testing.assert_array_equal(u, v)
    assert any(np.any(u != 0) for u in a1)


def test_save_and_load_in_a_new_process(tmp_path):
    space = tiny_space()
    model = ProxylessSupernet(
        space, latency_table=fake_table(space), latency_weight=0.1, seed=1
    )
    model.compile()
    model.train_batch(data())
    path = str(tmp_path / "proxyless.keras")
    model.save(path)
    x, _ = batch(4)
    np.save(tmp_path / "x.npy", x)
    expected = keras.ops.convert_to_numpy(model(x))
    code = (
        "import sys, numpy as np, keras_nas, keras\n"
        f"m = keras.saving.load_model({path!r})\n"
        f"x = np.load({str(tmp_path / 'x.npy')!r})\n"
        f"np.save({str(tmp_path / 'y.npy')!r}, "
        "keras.ops.convert_to_numpy(m(x)))\n"
        "print(' '.join(m.derive_genotype().ops))\n"
        "print(type(m.optimizer).__name__, m.latency_weight,"
        " m.sample_path())\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.strip().splitlines()
    assert lines[0] == " ".join(model.derive_genotype().ops)
    # The sampler's state was saved: the next path is the one we draw.
    assert lines[1] == f"BilevelOptimizer 0.1 {model.sample_path()}"
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), expected, 1e-5)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"latency_weight": -1.0}, "latency_weight"),
        ({"latency_weight": 0.5}, "latency_weight"),  # no table
        ({"latency_statistic": "max_ms"}, "latency_statistic"),
        ({"warmup_steps": -1}, "warmup_steps"),
        ({"seed": "x"}, "seed"),
        ({"grad_clip": float("nan")}, "grad_clip"),
        ({"latency_table": "t.json"}, "latency_table"),
    ],
)
def test_bad_arguments_raise(kwargs, name):
    with pytest.raises(ValueError, match=f"Received: {name}="):
        ProxylessSupernet(tiny_space(), **kwargs)


def test_bad_space_and_table_raise():
    with pytest.raises(ValueError, match="Received: space="):
        ProxylessSupernet("mobilenet")
    other = MobileNetSearchSpace(
        (8, 8, 1), 10, stem_filters=8, stages=((8, 1, 1),),
        kernel_sizes=(3,), expansions=(3,),
    )  # fmt: skip
    with pytest.raises(ValueError, match="same space"):
        ProxylessSupernet(tiny_space(), latency_table=fake_table(other))


def test_proxyless_tuner_reports_the_derived_architecture(tmp_path):
    space = tiny_space()
    tuner = Proxyless(
        space, batch_size=8, seed=0, directory=str(tmp_path), overwrite=True
    )
    (x, y), (xv, yv) = data()
    tuner.search(x, y, validation_data=(xv, yv), epochs=1, verbose=0)
    hp = tuner.get_best_hyperparameters()[0]
    assert space.genotype(hp) == tuner.supernet.derive_genotype()
    with pytest.raises(ValueError, match="Received: hypermodel="):
        Proxyless("mobilenet", directory=str(tmp_path))


def test_the_cached_layer_calls_hold_their_layers_weakly():
    if keras.backend.backend() != "tensorflow":
        pytest.skip("the TensorFlow step's cache")
    layer = keras.layers.Dense(2)
    fn = _proxyless_tensorflow.layer_caller(layer)
    assert fn(np.ones((1, 3), "float32")).shape == (1, 2)
    ref = weakref.ref(layer)
    del layer, fn
    gc.collect()
    assert ref() is None
