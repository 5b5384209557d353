"""Tests of the single-path one-shot supernet (SPOS / ENAS shared weights)."""

import logging
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf
from _one_shot_testing import NB201, TINY
from _one_shot_testing import data as _data

from keras_nas.blocks.genotypes import NB201_EDGES, Genotype
from keras_nas.spaces import CellSearchSpace
from keras_nas.supernet import _one_shot_indexed as indexed
from keras_nas.supernet import _one_shot_tensorflow as tf_step
from keras_nas.supernet import one_shot
from keras_nas.supernet.one_shot import OneShotSupernet

CELLS = CellSearchSpace(
    input_shape=(8, 8, 1),
    num_classes=4,
    ops=("skip_connect", "sep_conv_3x3", "max_pool_3x3"),
    num_nodes=2,
    num_cells=3,
    filters=4,
)
# With `none` (liveness) and several inputs per node.
CELLS_NONE = CellSearchSpace(
    input_shape=(8, 8, 1),
    num_classes=4,
    ops=("none", "skip_connect", "sep_conv_3x3", "max_pool_3x3"),
    num_nodes=2,
    num_cells=3,
    filters=4,
)


def _values_nb201(ops):
    names = [
        "edge_1_0",
        "edge_2_0",
        "edge_2_1",
        "edge_3_0",
        "edge_3_1",
        "edge_3_2",
    ]
    return dict(zip(names, ops, strict=False))


@pytest.fixture(scope="module")
def nb201_net():
    x, y = _data()
    net = OneShotSupernet(NB201, seed=1)
    net.compile(
        optimizer=keras.optimizers.SGD(0.05, momentum=0.9), step="eager"
    )
    net.fit(x, y, epochs=1, batch_size=32, verbose=0)
    return net


def test_same_op_same_edge_shares_variables_across_paths(nb201_net):
    a = _values_nb201(["nor_conv_3x3"] * 6)
    b = _values_nb201(
        [
            "nor_conv_3x3",
            "skip_connect",
            "nor_conv_1x1",
            "nor_conv_3x3",
            "avg_pool_3x3",
            "skip_connect",
        ]
    )
    ids_a = {id(v) for v in nb201_net.path_trainable_variables(a)}
    ids_b = {id(v) for v in nb201_net.path_trainable_variables(b)}
    layer = nb201_net.op_layer(0, 0, "nor_conv_3x3")  # cell 0, edge 1<-0
    shared = {id(v) for v in layer.trainable_variables}
    assert shared and shared <= ids_a and shared <= ids_b
    other = nb201_net.op_layer(0, 1, "nor_conv_3x3")  # edge 2<-0, in a only
    assert {id(v) for v in other.trainable_variables} <= ids_a - ids_b
    # Different cells have their own weights.
    assert nb201_net.op_layer(1, 0, "nor_conv_3x3") is not layer


def test_cell_space_sharing_and_genotype_input():
    net = OneShotSupernet(CELLS, seed=0)
    g = Genotype(
        normal=[
            ("sep_conv_3x3", 0),
            ("skip_connect", 1),
            ("sep_conv_3x3", 2),
            ("max_pool_3x3", 0),
        ],
        reduce=[
            ("max_pool_3x3", 0),
            ("sep_conv_3x3", 1),
            ("sep_conv_3x3", 0),
            ("sep_conv_3x3", 2),
        ],
    )
    values = CELLS.hyperparameters(g, num_cells=3, filters=4)
    assert net._to_path(g) == net._to_path(values)
    layer = net.op_layer(0, 0, 0, "sep_conv_3x3")
    ids = {id(v) for v in net.path_trainable_variables(g)}
    assert {id(v) for v in layer.trainable_variables} <= ids
    with pytest.raises(ValueError, match="Expected a path"):
        net._to_path(
            Genotype(
                normal=[("dil_conv_3x3", 0), ("none", 1)],
                reduce=[("dil_conv_3x3", 0), ("none", 1)],
            )
        )


@pytest.mark.parametrize("space", [NB201, CELLS], ids=["nb201", "cell"])
def test_only_sampled_path_gets_gradients(space):
    x, y = _data(32)
    net = OneShotSupernet(space, seed=3)
    net.compile(
        optimizer=keras.optimizers.SGD(0.1, momentum=0.9, weight_decay=1e-3),
        step="eager",
    )
    net.fit(x, y, epochs=1, batch_size=32, verbose=0)  # builds everything
    for seed in range(2):
        values = net.sample_values(np.random.default_rng(seed))
        path = net._to_path(values)
        # Gradients over *all* variables: exactly the path's are connected.
        with tf.GradientTape() as tape:
            loss = keras.losses.sparse_categorical_crossentropy(
                y, net(x, training=True, path=path)
            )
        grads = tape.gradient(loss, net.trainable_variables)
        on_path = {id(v) for v in net.path_trainable_variables(path)}
        connected = {
            id(v)
            for v, g in zip(net.trainable_variables, grads, strict=False)
            if g is not None
        }
        assert connected == on_path
        # One training step changes the path's variables and nothing else
        # (no momentum or weight-decay drift, optimizer slots untouched).
        before = [v.numpy().copy() for v in net.trainable_variables]
        slots = [v.numpy().copy() for v in net.optimizer.variables]
        net.sampler = lambda rng, values=values: values
        net.fit(x, y, epochs=1, batch_size=32, verbose=0)
        net.sampler = None
        for v, old in zip(net.trainable_variables, before, strict=False):
            assert (id(v) in on_path) == (not np.array_equal(v.numpy(), old))
        changed_slots = sum(
            not np.array_equal(v.numpy(), old)
            for v, old in zip(net.optimizer.variables, slots, strict=False)
        )
        # iterations + one momentum slot per path variable.
        assert changed_slots == 1 + len(on_path)


@pytest.mark.parametrize("space", [NB201, CELLS], ids=["nb201", "cell"])
def test_evaluate_path_equals_extracted_model(space):
    x, y = _data(96)
    net = OneShotSupernet(space, seed=0)
    net.compile(optimizer=keras.optimizers.Adam(0.01), step="eager")
    net.fit(x, y, epochs=1, batch_size=48, verbose=0)
    values = net.sample_values(np.random.default_rng(5))
    for k in (0, 2):
        kw = dict(bn_recalibration_batches=k, train_data=(x, y), batch_size=32)
        score = net.evaluate_path(values, x[:48], y[:48], **kw)
        model = net.extract(values, **kw)
        probs = keras.ops.convert_to_numpy(model(x[:48], training=False))
        if not k:
            expected = net.predict_path(values, x[:48])
            np.testing.assert_allclose(probs, expected, atol=1e-6)
        acc = float(np.mean(np.argmax(probs, -1) == y[:48]))
        assert acc == pytest.approx(score["accuracy"])
        loss = keras.losses.sparse_categorical_crossentropy(y[:48], probs)
        assert float(np.mean(loss)) == pytest.approx(score["loss"], rel=1e-4)
    # Evaluating (with recalibration) leaves the supernet unchanged.
    before = [v.numpy().copy() for v in net.variables]
    net.evaluate_path(values, x, y, bn_recalibration_batches=2, train_data=x)
    assert all(
        np.array_equal(v.numpy(), b)
        for v, b in zip(net.variables, before, strict=True)
    )
    # The extracted model owns copies of the weights.
    for v in model.weights:
        v.assign(keras.ops.zeros(v.shape))
    assert all(
        np.array_equal(v.numpy(), b)
        for v, b in zip(net.variables, before, strict=True)
    )


def test_sampler_controls_training_paths_and_config_roundtrip(tmp_path):
    x, y = _data(64)
    fixed = _values_nb201(["skip_connect"] * 3 + ["nor_conv_1x1"] * 3)
    calls = []

    class Sampler:
        def sample(self, rng):
            calls.append(1)
            return fixed, "trace"

    net = OneShotSupernet(NB201, sampler=Sampler(), seed=0)
    net.compile()
    net.fit(x, y, epochs=1, batch_size=16, verbose=0)
    assert len(calls) == 4 and net.last_values == fixed
    assert net.last_trace == "trace"
    path = str(tmp_path / "supernet.keras")
    net.save(path)
    clone = keras.saving.load_model(path)
    assert isinstance(clone, OneShotSupernet)
    np.testing.assert_allclose(
        clone.predict_path(fixed, x), net.predict_path(fixed, x), atol=1e-6
    )
    with pytest.raises(ValueError, match="search_space"):
        OneShotSupernet(
            search_space="chain", input_shape=(8, 8, 1), num_classes=2
        )


def test_jax_backend_smoke(run_on_backend):
    code = textwrap.dedent(
        """
        import numpy as np, keras
        assert keras.backend.backend() == "jax"
        from keras_nas.spaces import NasBench201SearchSpace
        from keras_nas.supernet import OneShotSupernet
        space = NasBench201SearchSpace(input_shape=(8, 8, 1), num_classes=3,
                                       filters=4, cells_per_stage=1)
        rng = np.random.default_rng(0)
        x = rng.normal(size=(32, 8, 8, 1)).astype("float32")
        y = (x.mean(axis=(1, 2, 3)) > 0).astype("int32")
        net = OneShotSupernet(space, seed=0)
        net.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9),
                    step="eager")
        values = net.sample_values(np.random.default_rng(1))
        net.sampler = lambda rng: values
        on_path = {id(v) for v in net.path_trainable_variables(values)}
        before = [np.array(v.value) for v in net.trainable_variables]
        hist = net.fit(x, y, epochs=1, batch_size=16, verbose=0)
        assert np.isfinite(hist.history["loss"]).all()
        for v, old in zip(net.trainable_variables, before):
            changed = not np.array_equal(np.array(v.value), old)
            assert changed == (id(v) in on_path), v.path

        # The compiled (jitted, lax.switch) step on a small cell space.
        from keras_nas.spaces import CellSearchSpace
        from keras_nas.supernet import _one_shot_indexed as indexed
        tiny = CellSearchSpace(
            input_shape=(8, 8, 1), num_classes=3, num_nodes=1, num_cells=3,
            ops=("none", "skip_connect", "dil_conv_3x3"), filters=4)
        net = OneShotSupernet(tiny, seed=0)
        net.compile(optimizer=keras.optimizers.SGD(
            0.1, momentum=0.9, weight_decay=1e-3))
        moving = [v for v in net.non_trainable_variables if "moving" in v.path]
        before = [np.array(v.value) for v in net.trainable_variables + moving]
        net.fit(x, y, epochs=1, batch_size=32, verbose=0)
        assert net._train_mode == "compiled" and net.jit_compile
        path = net.last_path
        on_path = {id(v) for v in net.path_trainable_variables(path)}
        for v, old in zip(net.trainable_variables, before):
            changed = not np.array_equal(np.array(v.value), old)
            assert changed == (id(v) in on_path), (v.path, path)
        # Batch-norm statistics updated inside the taken branches.
        stats = [not np.array_equal(np.array(v.value), old)
                 for v, old in zip(moving, before[-len(moving):])]
        assert any(stats) and not all(stats), path
        slots = indexed.optimizer_slots(net.optimizer, net.trainable_variables)
        for v, v_slots in zip(net.trainable_variables, slots):
            for slot in v_slots:
                moved = bool(np.any(np.array(slot.value) != 0))
                assert moved == (id(v) in on_path), (slot.path, path)
        values = net.sample_values(np.random.default_rng(3))
        s = net.evaluate_path(values, x, y, bn_recalibration_batches=1,
                              train_data=x)
        child = net.extract(values, bn_recalibration_batches=1, train_data=x)
        p = np.asarray(child(x, training=False))
        acc = float(np.mean(p.argmax(-1) == y))
        assert abs(acc - s["accuracy"]) < 1e-9, (acc, s)
        # The piecewise step's caches hold the supernet weakly.
        import gc, weakref
        ref = weakref.ref(net)
        del net, child
        gc.collect()
        assert ref() is None, "the supernet outlived its last reference"
        print("JAX_OK")
        """
    )
    assert "JAX_OK" in run_on_backend(code, "jax", timeout=600)


def _reference_live_layers(net, path):
    """The layers a Python path trains, by a direct reading of the network
    (independent of the topologies' liveness): a layer is live when the
    path runs it and its output reaches the classifier."""
    live = set(net.head)
    if net.search_space == "nb201":
        flowing = True
        cells = len(net.op_layers) // (6 * len(net.space_ops))
        per_stage = cells // 3
        for cell in reversed(range(cells)):
            node_live = {3: flowing}
            for node in (2, 1, 0):
                node_live[node] = any(
                    src == node and op != "none" and node_live[to]
                    for (to, src), op in zip(NB201_EDGES, path, strict=True)
                )
            for e, ((to, _), op) in enumerate(
                zip(NB201_EDGES, path, strict=True)
            ):
                if node_live[to] and op != "none":
                    live.add(net.op_layer(cell, e, op))
            flowing = node_live[0]
            if cell % per_stage == 0 and cell and flowing:
                live.add(net.cell_layers[cell // per_stage - 1])
        stem = flowing
    else:
        n = len(net.cell_layers) // 2
        reductions = {n // 3, 2 * n // 3}
        pre_live = {}
        for cell in reversed(range(n)):
            out_live = (
                cell == n - 1
                or pre_live.get((cell + 1, 1), False)
                or pre_live.get((cell + 2, 0), False)
            )
            used = set()
            pairs = path[1 if cell in reductions else 0]
            for k, (op, src) in enumerate(pairs):
                if out_live and op != "none":
                    used.add(src)
                    live.add(net.op_layer(cell, k // 2, src, op))
            for k in (0, 1):
                pre_live[(cell, k)] = k in used
                if k in used:
                    live.add(net.cell_layers[2 * cell + k])
        stem = pre_live[(0, 0)] or pre_live[(0, 1)]
        stem = stem or pre_live.get((1, 0), False)
    if stem:
        live.update(net.stem)
    return {id(v) for layer in live for v in layer.trainable_variables}


@pytest.mark.parametrize("space", [NB201, CELLS_NONE], ids=["nb201", "cell"])
def test_path_tensors_match_python_paths(space):
    """The integer encoding, the in-graph liveness masks and the branch
    dispatch agree with the Python paths."""
    net = OneShotSupernet(space, seed=0)
    x, _ = _data(8)
    for seed in range(25):
        values = net.sample_values(np.random.default_rng(seed))
        path = net._to_path(values)
        idx = net.path_indices(values)
        assert indexed.indices_path(net, idx) == path
        # In-graph masks (a path tensor) == the Python path's variables
        # == a direct reading of the network.
        masks = indexed.variable_masks(net, tf.constant(idx))
        trained = {
            id(v)
            for v, m in zip(net.trainable_variables, masks, strict=True)
            if bool(np.asarray(m))
        }
        on_path = {id(v) for v in net.path_trainable_variables(path)}
        assert trained == on_path == _reference_live_layers(net, path)
        if seed < 2:  # Branch dispatch (run eagerly) == the Python path.
            expected = net(x, training=False, path=path)
            for dispatch in (tf_step.switch, tf_step.grouped_switch):
                out = indexed.forward(net, x, idx, False, dispatch)
                np.testing.assert_allclose(out, expected, atol=1e-6)
    # In-graph SPOS sampling covers every candidate of every slot.
    draws = np.stack([net._sample_indices().numpy() for _ in range(300)])
    sizes = indexed.slot_sizes(net)
    half = len(sizes) // 2
    for slot, size in enumerate(sizes):
        if space is NB201 or slot < half:  # (reduce slots: searched too)
            assert set(draws[:, slot]) == set(range(size))


def test_compiled_step_equals_eager_step_on_the_sampled_path(
    tmp_path, monkeypatch
):
    """`fit` (compiled, graph mode) samples a path in the step and updates
    exactly what the eager step updates on that path: same variables, same
    batch-norm statistics, same optimizer slots; nothing off the path moves
    (momentum and weight decay included)."""
    # The switch step (the cell space trains piecewise by default:
    # test_one_shot_pieces.py checks that it equals this one).
    monkeypatch.setattr(one_shot, "PIECEWISE", ())
    x, y = _data(32)

    def optimizer():
        return keras.optimizers.SGD(0.1, momentum=0.9, weight_decay=1e-3)

    net = OneShotSupernet(TINY, seed=0)
    net.compile(optimizer=optimizer())
    ref = OneShotSupernet(TINY, seed=0)
    ref.compile(optimizer=optimizer(), step="eager")
    ref.set_weights(net.get_weights())

    def state(model):
        stats = [v for v in model.non_trainable_variables if "moving" in v.path]
        return model.trainable_variables + stats + model.optimizer.variables

    paths, traces, step = [], [], net.train_step
    net.train_step = lambda *args: traces.append(1) or step(*args)
    for _ in range(3):
        before = [v.numpy().copy() for v in net.trainable_variables]
        net.fit(x, y, epochs=1, batch_size=32, verbose=0)  # one step
        assert net._train_mode == "compiled"
        # Traced once: the state is built before (BUILD_BEFORE_TRACE).
        assert len(traces) == 1
        path = net.last_path
        paths.append(path)
        on_path = {id(v) for v in net.path_trainable_variables(path)}
        for v, old in zip(net.trainable_variables, before, strict=True):
            assert (id(v) in on_path) == (not np.array_equal(v.numpy(), old))
        values = TINY.hyperparameters(
            Genotype(normal=path[0], reduce=path[1]), num_cells=3, filters=4
        )
        ref.sampler = lambda rng, values=values: values
        ref.fit(x, y, epochs=1, batch_size=32, verbose=0)
        assert ref._train_mode == "eager"
        for a, b in zip(state(net), state(ref), strict=True):
            np.testing.assert_allclose(a.numpy(), b.numpy(), atol=2e-5)
    assert len(set(paths)) > 1  # the step draws a new path every batch
    # Compiled evaluation (one trace for all paths) == the extracted model.
    values = net.sample_values(np.random.default_rng(1))
    kw = dict(bn_recalibration_batches=2, train_data=x, batch_size=16)
    score = net.evaluate_path(values, x, y, **kw)
    probs = keras.ops.convert_to_numpy(net.extract(values, **kw)(x))
    assert score["accuracy"] == pytest.approx(
        float(np.mean(np.argmax(probs, -1) == y))
    )
    np.testing.assert_allclose(
        net.predict_path(values, x),
        net(x, training=False, path=net._to_path(values)),
        atol=1e-6,
    )
    # A compiled-trained supernet still saves and loads.
    file = str(tmp_path / "compiled.keras")
    net.save(file)
    clone = keras.saving.load_model(file)
    for a, b in zip(clone.variables, net.variables, strict=True):
        # (The path sampler's seed state included: the supernet saves it.)
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=b.path)
    with pytest.raises(ValueError, match="sampler"):
        net.compile(step="compiled")
        net.sampler = lambda rng: values
        net.fit(x, y, epochs=1, batch_size=32, verbose=0)


def test_predict_path_short_last_batch_keeps_one_compiled_shape():
    x, _ = _data(40)
    net = OneShotSupernet(NB201, seed=0)
    net.compile()
    values = net.sample_values(np.random.default_rng(3))
    # 40 = 16 + 16 + 8: the short batch is padded to 16, not traced again.
    parts = net.predict_path(values, x, batch_size=16)
    net.predict_path(values, x[:25], batch_size=16)
    fn = tf_step.indexed_function(net, False)
    assert fn.experimental_get_tracing_count() == 1
    whole = net.predict_path(values, x, batch_size=40)
    assert parts.shape == whole.shape == (40, NB201.num_classes)
    np.testing.assert_allclose(parts, whole, atol=1e-5)


def test_eager_path_functions_trace_once_per_mode_without_warning():
    """The eager step and per-path evaluation run every layer as its own
    `tf.function`: traced once per `training` value with the batch size
    left unknown (short last batches run the same graph), and counted
    apart by TensorFlow's frequent-retracing detector (no "triggered
    tf.function retracing" warning, as the ENAS search printed)."""
    messages = []

    class Handler(logging.Handler):
        def emit(self, record):
            messages.append(record.getMessage())

    handler = Handler()
    tf.get_logger().addHandler(handler)
    try:
        x, y = _data(40)  # batches of 16, 16 and 8
        net = OneShotSupernet(TINY, seed=0)
        net.compile(optimizer=keras.optimizers.SGD(0.1), step="eager")
        net.fit(x, y, epochs=1, batch_size=16, verbose=0)
        rng = np.random.default_rng(0)
        for _ in range(3):
            values = net.sample_values(rng)
            probs = net.predict_path(values, x, batch_size=16)
            whole = net.predict_path(values, x, batch_size=40)
            np.testing.assert_allclose(probs, whole, rtol=1e-5, atol=1e-6)
            net.evaluate_path(values, x, y, batch_size=16)
    finally:
        tf.get_logger().removeHandler(handler)
    assert not [m for m in messages if "retracing" in m]
    functions = list(tf_step._CALLERS[net].values())
    assert functions
    assert {fn.tracing_count() for fn in functions} <= {1, 2}
