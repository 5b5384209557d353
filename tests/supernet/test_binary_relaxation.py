"""The binary (ProxylessNAS) relaxation of `DartsSupernet` on the DARTS and
NAS-Bench-201 cells (issue 15), TF backend; the JAX step and the `.keras`
round trip in a new process are in test_relaxations.py's JAX check."""

import keras
import numpy as np
import pytest

from keras_nas.blocks import ops as nas_ops
from keras_nas.spaces import NasBench201SearchSpace
from keras_nas.supernet import binary_gates, relaxations
from keras_nas.supernet.darts import DartsSupernet, MixedOp, search_data
from keras_nas.supernet.darts_derive import derive_genotype, softmax
from keras_nas.supernet.darts_nb201 import derive_nb201_genotype

pytestmark = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow",
    reason="TensorFlow-backend tests; JAX runs in test_relaxations.py",
)

OPS4 = ("none", "skip_connect", "sep_conv_3x3", "dil_conv_3x3")


def _data(n=4, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 6, 6, 3)).astype("float32")
    return x, (np.arange(n) % 3).astype("int32")


def _tiny(**kwargs):
    return DartsSupernet(
        (6, 6, 3), 3, filters=4, num_cells=1, num_nodes=2, seed=3,
        ops=OPS4[1:], relaxation="binary", **kwargs,
    )  # fmt: skip


def test_binary_edge_output_is_the_sampled_op_output():
    """A one-hot runs that op alone; the architecture pass's `(2, ops)`
    one-hots return the active op's output (the inactive gate is 0)."""
    x = np.random.default_rng(1).normal(size=(2, 5, 5, 4)).astype("float32")
    edge = MixedOp(4, ops=OPS4, relaxation="binary")
    edge.build(x.shape)
    direct = {
        k: keras.ops.convert_to_numpy(edge.candidates[k - 1](x))
        for k in (1, 2, 3)
    }
    eye = np.eye(4, dtype="float32")
    for k in (1, 2, 3):
        out = keras.ops.convert_to_numpy(edge(x, eye[k]))
        np.testing.assert_allclose(out, direct[k], atol=1e-6)
    out = keras.ops.convert_to_numpy(edge(x, eye[[2, 3]]))
    np.testing.assert_allclose(out, direct[2], atol=1e-6)
    out = keras.ops.convert_to_numpy(edge(x, eye[[0, 1]]))  # none active
    np.testing.assert_allclose(out, 0.0, atol=1e-7)


def test_binary_runs_sampled_ops_only_and_alpha_gets_the_pair_gradient(
    monkeypatch,
):
    """Op executions counted (a TF variable bumped in each op's call, so
    only a branch that runs counts): 5 edges -> 5 ops in the weights pass,
    10 in the architecture pass. The alpha gradient is finite, nonzero at
    exactly the two sampled paths of every edge and opposite there (a
    softmax of two logits), zero elsewhere."""
    import tensorflow as tf

    from keras_nas.supernet import _darts_graph

    # Edge functions traced with the counting ops die with this test.
    monkeypatch.setattr(_darts_graph, "_FUNCTIONS", {})
    counter = tf.Variable(0, dtype="int64")
    for cls in (nas_ops.Identity, nas_ops.SepConv):  # DilConv: SepConv's
        original = vars(cls)["call"]

        def counted(self, *args, _original=original, **kwargs):
            counter.assign_add(1)
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(cls, "call", counted)
    model = _tiny()
    x, _ = _data()
    model(x, training=True)
    assert int(counter.numpy()) == 5
    seed, draw = relaxations.read_noise(model)
    assert int(draw) == 1
    counter.assign(0)
    alphas = relaxations.alpha_variables(model)
    pairs = [
        keras.ops.convert_to_numpy(p)
        for p in relaxations.binary_pairs(alphas, seed, draw)
    ]
    watched = model.alpha_normal.value  # one cell: a normal one
    with tf.GradientTape() as tape:
        tape.watch(watched)
        logits = model(x, training=True, arch_pass=True)
        loss = keras.ops.mean(keras.ops.square(logits))
    g = tape.gradient(loss, watched).numpy()
    assert int(counter.numpy()) == 10
    assert int(model.binary_draws.numpy()) == 2
    assert np.all(np.isfinite(g))
    for row, (a, b) in zip(g, pairs[0], strict=True):
        assert a != b and row[a] != 0
        np.testing.assert_allclose(row[a], -row[b], rtol=1e-4)
        others = [k for k in range(len(row)) if k not in (a, b)]
        assert np.all(row[others] == 0)


def test_binary_step_rescales_the_pair_and_derives_both_spaces():
    """One first-order step (no alpha decay): in every edge only the two
    sampled logits move, the probabilities of the other paths stay; the
    traced samplers draw from softmax(alpha); derive_genotype is the
    argmax rule on both the DARTS and the NAS-Bench-201 cells."""
    x, y = _data()
    model = _tiny(arch_weight_decay=0.0)
    model.compile(run_eagerly=True)
    seed, draw = relaxations.read_noise(model)
    before = model.alpha_normal.numpy().copy()
    pairs = keras.ops.convert_to_numpy(
        relaxations.binary_pairs([model.alpha_normal], seed, draw)[0]
    )
    model.fit(search_data((x, y), (x, y), 4, shuffle=False), verbose=0)
    after = model.alpha_normal.numpy()
    p0, p1 = softmax(before), softmax(after)
    for e, pair in enumerate(pairs):
        others = [k for k in range(before.shape[1]) if k not in pair]
        assert np.all(after[e, others] == before[e, others])
        assert not np.allclose(after[e, pair], before[e, pair])
        np.testing.assert_allclose(p1[e, others], p0[e, others], rtol=1e-5)
    assert model.derive_genotype() == derive_genotype(
        after, model.alpha_reduce.numpy(), ops=model.candidate_ops,
        num_nodes=2,
    )  # fmt: skip
    # Gumbel-top-2 draws: the active path's frequencies are those of the
    # paper's sampler (two paths without replacement from p, the active
    # one from the softmax of their two logits).
    p = np.array([0.6, 0.3, 0.1])
    expected = np.zeros(3)
    for i in range(3):
        for j in set(range(3)) - {i}:
            pair = p[i] * p[j] / (1 - p[i])
            expected[i] += pair * p[i] / (p[i] + p[j])
            expected[j] += pair * p[j] / (p[i] + p[j])
    logits = np.log(p[None]).astype("float32")
    hits = np.zeros(3)
    for d in range(400):
        u = relaxations.hash_uniform(0, d, (1, 3))
        ua = relaxations.hash_uniform(0, d, (1,), stream=2)
        pair = binary_gates.pair_from_noise(logits, u, ua)
        hits[int(keras.ops.convert_to_numpy(pair)[0, 0])] += 1
    np.testing.assert_allclose(hits / 400, expected, atol=0.06)
    # NAS-Bench-201 cells: the argmax op of every edge, none allowed.
    space = NasBench201SearchSpace((6, 6, 3), 3, filters=2, cells_per_stage=1)
    nb201 = DartsSupernet.from_space(space, relaxation="binary", seed=0)
    alpha = np.zeros((6, 5), "float32")
    alpha[:, 2] = 1.0
    alpha[4, 0] = 3.0
    nb201.alpha_normal.assign(alpha)
    assert nb201.derive_genotype() == derive_nb201_genotype(alpha)
    assert nb201.derive_genotype().ops[4] == "none"
    assert tuple(nb201(x, training=True, arch_pass=True).shape) == (4, 3)
    with pytest.raises(ValueError, match="order=2"):
        _tiny(order=2)


@pytest.mark.usefixtures("eager_functions")
def test_darts_tuner_searches_the_nb201_space_with_binary_gates(tmp_path):
    import json

    from keras_nas.tuners import Darts

    x, y = _data(4)
    space = NasBench201SearchSpace((6, 6, 3), 3, filters=2, cells_per_stage=1)
    tuner = Darts(
        space, relaxation="binary", batch_size=4, seed=0, jit_compile=False,
        directory=str(tmp_path), project_name="nb201",
    )  # fmt: skip
    assert tuner.supernet_config["search_space"] == "nb201"
    tuner.search(x, y, validation_data=(x, y), epochs=1, verbose=0)
    hp = tuner.get_best_hyperparameters()[0].values
    derived = tuner.supernet.derive_genotype()
    assert space.genotype(hp) == derived
    with open(tuner.alpha_history_path) as f:
        (record,) = json.load(f)
    assert set(record) >= {"normal", "genotype"} and "reduce" not in record
    assert int(tuner.supernet.binary_draws.numpy()) == 2  # 1 step: 2 passes
    model = tuner.get_best_models()[0]
    assert tuple(model(x).shape) == (4, 3)
