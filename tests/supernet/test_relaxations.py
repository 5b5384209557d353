"""Tests of the GDAS and PC-DARTS relaxations of `DartsSupernet` and of its
NAS-Bench-201 cell space (issue 15), on the TF backend; the JAX step runs
in a subprocess (for GDAS and the binary relaxation, whose other tests are
in test_binary_relaxation.py)."""

import textwrap

import keras
import numpy as np
import pytest

from keras_nas.blocks import ops as nas_ops
from keras_nas.blocks.genotypes import NasBench201Genotype
from keras_nas.spaces import NasBench201SearchSpace
from keras_nas.supernet import relaxations
from keras_nas.supernet.darts import DartsSupernet, MixedOp, search_data
from keras_nas.supernet.darts_derive import derive_genotype
from keras_nas.supernet.darts_nb201 import derive_nb201_genotype

pytestmark = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow",
    reason="TensorFlow-backend tests; JAX runs in a subprocess below",
)

# One class per op, each defining its own `call` (counted below).
OPS3 = ("skip_connect", "sep_conv_3x3", "dil_conv_3x3")


def _data(n=4, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 6, 6, 3)).astype("float32")
    return x, (np.arange(n) % 3).astype("int32")


def _tiny(**kwargs):
    kwargs.setdefault("num_cells", 1)
    kwargs.setdefault("ops", OPS3)
    return DartsSupernet(
        (6, 6, 3), 3, filters=4, num_nodes=2, seed=3, **kwargs
    )


def _grads(model, x):
    import tensorflow as tf

    variables = [v.value for v in model.arch_variables]
    with tf.GradientTape() as tape:
        logits = model(x, training=True)
        loss = keras.ops.mean(keras.ops.square(logits))
    grads = tape.gradient(
        loss, variables, unconnected_gradients=tf.UnconnectedGradients.ZERO
    )
    names = [v.name for v in model.arch_variables]
    return {n: g.numpy() for n, g in zip(names, grads, strict=True)}


def test_gumbel_runs_one_op_per_edge_and_alpha_gets_gradients(monkeypatch):
    """Counts op executions (a TF variable bumped inside each op's call, so
    only the branch that runs counts): 5 edges -> 5 ops per forward under
    GDAS, 15 under the softmax; the straight-through gradient reaches every
    entry of alpha, finite. The softmax edges run op by op here (the fused
    edge computes the candidates without calling them)."""
    import tensorflow as tf

    from keras_nas.supernet import darts_cells

    monkeypatch.setattr(darts_cells, "FUSED", False)
    counter = tf.Variable(0, dtype="int64")
    for cls in (nas_ops.Identity, nas_ops.SepConv, nas_ops.DilConv):
        if "call" not in vars(cls):
            continue
        original = vars(cls)["call"]

        def counted(self, *args, _original=original, **kwargs):
            counter.assign_add(1)
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(cls, "call", counted)
    x, _ = _data()
    counts = {}
    for relaxation in ("softmax", "gumbel"):
        model = _tiny(relaxation=relaxation)
        counter.assign(0)
        grads = _grads(model, x)
        counts[relaxation] = int(counter.numpy())
    assert counts == {"softmax": 15, "gumbel": 5}
    g = grads["alpha_normal"]
    assert np.all(np.isfinite(g)) and np.all(g != 0), g
    assert int(model.gumbel_draws.numpy()) == 1


def test_gumbel_sample_is_one_hot_with_the_soft_gradient():
    a = keras.ops.convert_to_tensor(np.array([[0.3, -0.2, 0.1]], "float32"))
    u = relaxations.hash_uniform(7, 0, (1, 3))
    u_np = keras.ops.convert_to_numpy(u)
    assert np.all((u_np > 0) & (u_np < 1))
    assert not np.allclose(u_np, relaxations.hash_uniform(7, 1, (1, 3)))
    hard = keras.ops.convert_to_numpy(relaxations.gumbel_hard(a, 0.5, u))
    np.testing.assert_allclose(np.sort(hard[0]), [0, 0, 1], atol=1e-6)
    tau = relaxations.temperature(np.array([0, 2, 4, 9]), 5, 10.0, 0.1)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(tau), [10, 5.05, 0.1, 0.1], rtol=1e-6
    )
    with pytest.raises(ValueError, match="relaxation=.bogus"):
        _tiny(relaxation="bogus")
    with pytest.raises(ValueError, match="partial_channels=3"):
        _tiny(partial_channels=3)


def test_partial_channels_shapes_and_shuffle_cover_the_full_width():
    """K=4 on 8 channels: the op sees 2; after the shuffle the output holds
    every input channel once (skip_connect), the mixed ones at 0 and 4."""
    x = np.broadcast_to(np.arange(8, dtype="float32"), (2, 5, 5, 8))
    op = MixedOp(8, ops=("skip_connect",), partial_channels=4)
    y = keras.ops.convert_to_numpy(op(x, keras.ops.ones((1,))))
    assert y.shape == (2, 5, 5, 8)
    np.testing.assert_array_equal(y[0, 0, 0], [0, 2, 4, 6, 1, 3, 5, 7])
    reduce = MixedOp(8, strides=2, ops=("sep_conv_3x3",), partial_channels=4)
    out = reduce(x, keras.ops.ones((1,)))
    assert tuple(out.shape) == (2, 3, 3, 8)
    assert reduce.candidates[0].compute_output_shape((2, 5, 5, 2))[-1] == 2
    assert reduce.compute_output_shape((2, 5, 5, 8)) == (2, 3, 3, 8)


def test_edge_betas_get_gradients_and_weigh_the_derivation():
    model = _tiny(partial_channels=2, num_cells=2)
    grads = _grads(model, _data()[0])
    assert set(grads) == {
        "alpha_normal", "alpha_reduce", "beta_normal", "beta_reduce"
    }
    for name in ("beta_normal", "beta_reduce"):
        assert np.all(np.isfinite(grads[name])) and np.any(grads[name] != 0)
    # The derivation multiplies each edge's op weights by its beta weight.
    ops = ("none", "skip_connect", "sep_conv_3x3")
    alpha = np.zeros((5, 3))
    alpha[0, 2] = 2.0  # node 0: edge 0 (input 0) strongest by alpha
    alpha[2, 1] = 1.0  # node 1: edge from input 0 via skip_connect
    plain = derive_genotype(alpha, alpha, ops=ops, num_nodes=2)
    assert plain.normal[0] == ("sep_conv_3x3", 0)
    scale = np.array([0.05, 0.95, 0.2, 0.4, 0.4])
    weighted = derive_genotype(
        alpha, alpha, ops=ops, num_nodes=2, edge_weights_normal=scale
    )
    assert weighted.normal[0][1] == 1  # input 1 first under the betas
    # Node 1 keeps 2 of its 3 inputs: 0 and 1 by alpha, 1 and 2 by both.
    assert {j for _, j in plain.normal[2:]} == {0, 1}
    assert {j for _, j in weighted.normal[2:]} == {1, 2}
    assert weighted.reduce == plain.reduce


def test_nb201_supernet_derives_the_argmax_op_per_edge_none_allowed():
    alpha = np.zeros((6, 5))
    alpha[:, 3] = 1.0  # nor_conv_3x3
    alpha[1, 0] = 5.0  # edge 2<-0: none
    alpha[5, 1] = 5.0  # edge 3<-2: skip_connect
    g = derive_nb201_genotype(alpha)
    assert g == NasBench201Genotype(
        ("nor_conv_3x3", "none", "nor_conv_3x3", "nor_conv_3x3",
         "nor_conv_3x3", "skip_connect")
    )
    space = NasBench201SearchSpace((6, 6, 3), 3, filters=4, cells_per_stage=1)
    model = DartsSupernet.from_space(
        space, relaxation="gumbel", anneal_steps=3, seed=0
    )
    assert model.search_space == "nb201" and model.num_cells == 3
    assert [v.name for v in model.arch_variables] == ["alpha_normal"]
    assert tuple(model.alpha_normal.shape) == (6, 5)
    logits = model(_data()[0], training=True)
    assert tuple(logits.shape) == (4, 3)
    model.alpha_normal.assign(alpha)
    assert model.derive_genotype() == g
    hp = model.derive_hyperparameters()
    assert hp["edge_2_0"] == "none" and hp["edge_3_2"] == "skip_connect"
    with pytest.raises(ValueError, match="num_cells=4"):
        DartsSupernet((6, 6, 3), 3, filters=4, num_cells=4,
                      search_space="nb201")


_JAX_RESUME = """
import json, sys
import numpy as np
import keras, keras_nas
from keras_nas.supernet.darts import search_data
model = keras.saving.load_model({path!r})
before = (float(model.gumbel_tau.numpy()), int(model.gumbel_draws.numpy()),
          int(model.optimizer.iterations.numpy()))
data = np.load({data!r})
batches = search_data((data["x"], data["y"]), (data["x"], data["y"]), 4,
                      shuffle=False)
logs = model.fit(batches, epochs=1, verbose=0).history
binary = keras.saving.load_model({binary!r})
b_draws = int(binary.binary_draws.numpy())
b_logs = binary.fit(batches, epochs=1, verbose=0).history
print(json.dumps({{"before": before,
                  "tau": float(model.gumbel_tau.numpy()),
                  "draws": int(model.gumbel_draws.numpy()),
                  "loss": logs["loss"][-1],
                  "alpha": np.asarray(model.alpha_normal.numpy()).tolist(),
                  "binary": [b_draws, int(binary.binary_draws.numpy()),
                             b_logs["loss"][-1], b_logs["arch_loss"][-1],
                             np.asarray(binary.alpha_normal).tolist()]}}))
"""


def test_gumbel_search_saves_resumes_the_anneal_and_matches_jax(
    tmp_path, run_on_backend
):
    """Two steps, save; a fresh JAX process loads the file (importing only
    keras and keras_nas), finds the temperature, draw counter and step, and
    takes the third step: the same loss, temperature and alpha as the TF
    process taking it (the noise is a counter-based hash, the same on both
    backends)."""
    import json

    x, y = _data()
    model = DartsSupernet(
        (6, 6, 3), 3, filters=2, num_cells=1, num_nodes=1, seed=3,
        ops=("skip_connect", "avg_pool_3x3", "sep_conv_3x3"),
        relaxation="gumbel", anneal_steps=5,
    )
    model.compile(run_eagerly=True)
    batches = search_data((x, y), (x, y), 4, shuffle=False)
    model.fit(batches, epochs=2, verbose=0)
    tau_after_two = float(model.gumbel_tau.numpy())
    assert tau_after_two == pytest.approx(10 - 9.9 / 4)  # step 1 of 0..4
    path = str(tmp_path / "gdas.keras")
    model.save(path)
    np.savez(tmp_path / "data.npz", x=x, y=y)
    logs = model.fit(batches, epochs=1, verbose=0).history
    # The binary (ProxylessNAS) relaxation: one step, saved, the next step
    # here and in the JAX process (the same hash draws, the same pairs).
    binary = DartsSupernet(
        (6, 6, 3), 3, filters=2, num_cells=1, num_nodes=1, seed=3,
        ops=("skip_connect", "avg_pool_3x3", "sep_conv_3x3"),
        relaxation="binary",
    )
    binary.compile(run_eagerly=True)
    binary.fit(batches, epochs=1, verbose=0)
    binary_path = str(tmp_path / "binary.keras")
    binary.save(binary_path)
    b_logs = binary.fit(batches, epochs=1, verbose=0).history
    out = run_on_backend(
        textwrap.dedent(
            _JAX_RESUME.format(
                path=path,
                data=str(tmp_path / "data.npz"),
                binary=binary_path,
            )
        )
    )
    jax = json.loads(out.strip().splitlines()[-1])
    assert jax["before"] == [pytest.approx(tau_after_two), 4, 2]
    assert jax["tau"] == pytest.approx(10 - 2 * 9.9 / 4)
    assert jax["tau"] == pytest.approx(float(model.gumbel_tau.numpy()))
    assert jax["draws"] == int(model.gumbel_draws.numpy()) == 6
    assert jax["loss"] == pytest.approx(logs["loss"][-1], rel=1e-4)
    np.testing.assert_allclose(
        jax["alpha"], model.alpha_normal.numpy(), atol=1e-6
    )
    b_before, b_draws, b_loss, b_arch_loss, b_alpha = jax["binary"]
    assert (b_before, b_draws) == (2, int(binary.binary_draws.numpy())) == (
        2, 4
    )
    assert b_loss == pytest.approx(b_logs["loss"][-1], rel=1e-4)
    assert b_arch_loss == pytest.approx(b_logs["arch_loss"][-1], rel=1e-4)
    np.testing.assert_allclose(b_alpha, binary.alpha_normal.numpy(), atol=1e-6)
