"""Tests of strictly fair supernet training (FairNAS, `sampler="fair"`)."""

import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf
from _one_shot_testing import NB201, TINY
from _one_shot_testing import data as _data

from keras_nas.spaces import CellSearchSpace
from keras_nas.supernet import _one_shot_indexed as indexed
from keras_nas.supernet import _one_shot_tensorflow as tf_step
from keras_nas.supernet import one_shot
from keras_nas.supernet.one_shot import OneShotSupernet

MIRRORED = CellSearchSpace(
    input_shape=(8, 8, 1),
    num_classes=4,
    ops=("none", "skip_connect", "max_pool_3x3", "sep_conv_3x3"),
    num_nodes=3,
    num_cells=3,
    filters=4,
    search_reduction=False,
)


@pytest.mark.parametrize(
    "space", [NB201, TINY, MIRRORED], ids=["nb201", "cell", "mirrored"]
)
def test_every_op_of_every_slot_is_on_exactly_one_path(space):
    net = OneShotSupernet(space, sampler="fair", seed=0)
    m = indexed.num_fair_paths(net)
    assert m == len(net.space_ops)
    sizes = indexed.slot_sizes(net)
    seen = set()
    for _ in range(20):
        paths = np.asarray(net._sample_indices())
        assert paths.shape == (m, len(sizes))
        for slot, size in enumerate(sizes):
            assert sorted(paths[:, slot] % m) == list(range(m))
            assert (paths[:, slot] < size).all()
        seen.add(paths.tobytes())
        if space is MIRRORED:  # the reduction cell repeats the normal one
            half = len(sizes) // 2
            np.testing.assert_array_equal(paths[:, :half], paths[:, half:])
        # Every row is a valid path of the supernet.
        for row in paths:
            path = indexed.indices_path(net, row)
            np.testing.assert_array_equal(net.path_indices(path), row)
    assert len(seen) == 20  # a new draw every step
    np.testing.assert_array_equal(np.asarray(net._last_indices), paths[-1])
    assert net.last_paths == []  # (before any training step)


def test_fair_gradient_is_the_sum_of_the_single_path_gradients():
    """TensorFlow, run eagerly: the loop over the m paths sums exactly the
    m single-path gradients (and averages the losses)."""
    net = OneShotSupernet(NB201, sampler="fair", seed=0)
    net.compile(optimizer="sgd")
    x, y = _data(32)
    paths = net._sample_indices()
    loss, _, grads = tf_step.fair_gradients(net, x, y, None, paths)
    losses, total = [], None
    for row in np.asarray(paths):
        path = indexed.indices_path(net, row)
        variables = net.trainable_variables
        with tf.GradientTape() as tape:
            y_pred = net(x, training=True, path=path)
            single = keras.losses.sparse_categorical_crossentropy(y, y_pred)
            single = tf.reduce_mean(single)
        g = tape.gradient(single, variables)
        g = [
            tf.zeros_like(v.value) if d is None else d
            for v, d in zip(variables, g, strict=True)
        ]
        losses.append(float(single))
        total = (
            g
            if total is None
            else [a + b for a, b in zip(total, g, strict=True)]
        )
    assert float(loss) == pytest.approx(np.mean(losses), rel=1e-5)
    for v, a, b in zip(net.trainable_variables, grads, total, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5, err_msg=v.path)
    # Only the variables of the m paths have a gradient.
    moved = {
        id(v)
        for v, g in zip(net.trainable_variables, grads, strict=True)
        if np.any(np.asarray(g) != 0)
    }
    union = set()
    for row in np.asarray(paths):
        path = indexed.indices_path(net, row)
        union |= {id(v) for v in net.path_trainable_variables(path)}
    assert moved and moved <= union


def test_compiled_fair_step_updates_exactly_the_union_of_the_paths(monkeypatch):
    """`fit` (graph mode, one while loop over the paths): one optimizer
    update with the summed gradients; variables on none of the m paths
    (cut off by `none` ops) keep their values and optimizer slots."""
    # The switch step (the cell space trains piecewise by default:
    # test_one_shot_pieces.py checks that it equals this one).
    monkeypatch.setattr(one_shot, "PIECEWISE", ())
    x, y = _data(32)

    def optimizer():
        return keras.optimizers.SGD(0.1, momentum=0.9, weight_decay=1e-3)

    net = OneShotSupernet(TINY, sampler="fair", seed=0)
    net.compile(optimizer=optimizer())
    ref = OneShotSupernet(TINY, sampler="fair", seed=0)
    ref.compile(optimizer=optimizer())
    ref.optimizer.build(ref.trainable_variables)
    ref.set_weights(net.get_weights())
    stats = [v for v in net.non_trainable_variables if "moving" in v.path]
    before = [v.numpy().copy() for v in net.trainable_variables + stats]
    traces, step = [], net.train_step
    net.train_step = lambda *args: traces.append(1) or step(*args)
    net.fit(x, y, epochs=1, batch_size=32, verbose=0)  # one step
    assert net._train_mode == "compiled"
    assert len(traces) == 1  # the state is built before the trace
    paths = net.last_paths
    assert len(paths) == 3 and net.last_path == paths[-1]
    union = set()
    for path in paths:
        union |= {id(v) for v in net.path_trainable_variables(path)}
    assert union < {id(v) for v in net.trainable_variables}  # `none` cuts
    # (A variable on a path may still get a zero gradient, e.g. behind a
    # node fed only by `none` ops; only the union may move.)
    moved = {
        id(v)
        for v, old in zip(net.trainable_variables, before, strict=False)
        if not np.array_equal(v.numpy(), old)
    }
    assert moved and moved <= union
    slots = indexed.optimizer_slots(net.optimizer, net.trainable_variables)
    for v, v_slots in zip(net.trainable_variables, slots, strict=True):
        for slot in v_slots:
            assert id(v) in union or not np.any(slot.numpy() != 0)
    # The same step eagerly on the same paths: same weights, BN statistics
    # and optimizer state.
    idx = tf.constant(np.stack([ref.path_indices(p) for p in paths]))
    tf_step.apply_fair_gradients(ref, x, y, None, idx)
    ref_stats = [v for v in ref.non_trainable_variables if "moving" in v.path]
    for a, b in zip(
        net.trainable_variables + stats + net.optimizer.variables,
        ref.trainable_variables + ref_stats + ref.optimizer.variables,
        strict=True,
    ):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=2e-5)


def test_fair_sampler_arguments_and_config(tmp_path):
    with pytest.raises(ValueError, match="sampler"):
        OneShotSupernet(TINY, sampler="greedy")
    net = OneShotSupernet(TINY, sampler="fair", seed=0)
    assert net.get_config()["sampler"] == "fair"
    clone = OneShotSupernet.from_config(net.get_config())
    assert clone._fair and clone._fair_indices.shape == (3, 4)
    net.compile(optimizer="sgd", step="eager")
    x, y = _data(8)
    with pytest.raises(ValueError, match="step"):
        net.fit(x, y, epochs=1, verbose=0)
    plain = OneShotSupernet(TINY, seed=0)
    plain.sampler = "fair"  # fairness must be chosen at construction
    plain.compile(optimizer="sgd")
    with pytest.raises(ValueError, match="sampler"):
        plain.fit(x, y, epochs=1, verbose=0)
    # "uniform" is the default SPOS sampling, compiled step.
    uniform = OneShotSupernet(TINY, sampler="uniform", seed=0)
    assert uniform._wanted_mode() == "compiled" and not uniform._fair


def test_jax_fair_step(run_on_backend):
    """The jitted JAX step (one `lax.scan` over the paths): with SGD at
    learning rate 1 and zero initial momentum, the update of one step is
    minus the summed gradient, which must equal the sum of the m
    single-path gradients; nothing off the m paths moves."""
    code = textwrap.dedent(
        """
        import numpy as np, keras, jax
        assert keras.backend.backend() == "jax"
        from keras_nas.spaces import CellSearchSpace
        from keras_nas.supernet import OneShotSupernet
        from keras_nas.supernet import _one_shot_indexed as indexed
        tiny = CellSearchSpace(
            input_shape=(8, 8, 1), num_classes=3, num_nodes=1, num_cells=3,
            ops=("none", "skip_connect", "dil_conv_3x3"), filters=4)
        rng = np.random.default_rng(0)
        x = rng.normal(size=(32, 8, 8, 1)).astype("float32")
        y = (x.mean(axis=(1, 2, 3)) > 0).astype("int32")
        net = OneShotSupernet(tiny, sampler="fair", seed=0)
        net.compile(optimizer=keras.optimizers.SGD(1.0, momentum=0.9))
        tv = [np.array(v.value) for v in net.trainable_variables]
        ntv = [np.array(v.value) for v in net.non_trainable_variables]
        net.fit(x, y, epochs=1, batch_size=32, verbose=0)
        assert net._train_mode == "compiled" and net.jit_compile
        paths = net.last_paths
        assert len(paths) == 3, paths
        union = set()
        for p in paths:
            union |= {id(v) for v in net.path_trainable_variables(p)}
        update = [np.array(old) - np.array(v.value)
                  for v, old in zip(net.trainable_variables, tv)]
        moved = {id(v) for v, u in zip(net.trainable_variables, update)
                 if np.any(u)}
        assert moved and moved <= union
        slots = indexed.optimizer_slots(net.optimizer,
                                        net.trainable_variables)
        for v, v_slots in zip(net.trainable_variables, slots):
            for slot in v_slots:
                assert id(v) in union or not np.any(np.array(slot.value))

        def total(tv):
            out = 0.0
            for p in paths:
                yp, _ = net.stateless_call(tv, ntv, x, training=True, path=p)
                out += keras.ops.mean(
                    keras.losses.sparse_categorical_crossentropy(y, yp))
            return out

        grads = jax.jit(jax.grad(total))(tv)
        for v, u, g in zip(net.trainable_variables, update, grads):
            np.testing.assert_allclose(u, np.array(g), atol=2e-5,
                                       err_msg=v.path)
        print("JAX_OK")
        """
    )
    assert "JAX_OK" in run_on_backend(code, "jax", timeout=600)
