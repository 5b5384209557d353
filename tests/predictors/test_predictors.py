"""Encodings and performance predictors (`keras_nas.predictors`)."""

import subprocess
import sys

import keras_tuner
import numpy as np
import pytest
from scipy.stats import kendalltau

from keras_nas.blocks.genotypes import NB201_EDGES
from keras_nas.blocks.registry import NB201_OPS
from keras_nas.predictors import (
    ENCODINGS,
    ArchitectureEncoder,
    GaussianProcessPredictor,
    GradientBoostingPredictor,
    MLPEnsemblePredictor,
)
from keras_nas.spaces import (
    CellSearchSpace,
    ChainSearchSpace,
    NasBench201SearchSpace,
    nb201_hyperparameters_from_genotype,
)
from keras_nas.tuners import _base

PREDICTORS = (
    GaussianProcessPredictor,
    MLPEnsemblePredictor,
    GradientBoostingPredictor,
)
# Small settings: the tests check the interface, not the fit.
SMALL = {
    MLPEnsemblePredictor: {"steps": 40},
    GradientBoostingPredictor: {"num_models": 2, "num_trees": 20},
}


def nb201_space():
    hp = keras_tuner.HyperParameters()
    NasBench201SearchSpace().declare_hyperparameters(hp)
    return hp


def cell_space():
    hp = keras_tuner.HyperParameters()
    CellSearchSpace(
        ops=("sep_conv_3x3", "max_pool_3x3", "skip_connect"), num_nodes=3
    ).declare_hyperparameters(hp)
    return hp


def chain_space():
    hp = keras_tuner.HyperParameters()
    ChainSearchSpace(input_shape=(8, 8, 1)).declare_hyperparameters(hp)
    return hp


def samples(hp, n, seed=0):
    rng = np.random.default_rng(seed)
    return [_base.random_values(hp, rng) for _ in range(n)]


CELL = "|nor_conv_3x3~0|+|none~0|skip_connect~1|+|avg_pool_3x3~0|none~1|nor_conv_1x1~2|"  # noqa: E501


def test_nb201_path_encoding_counts_paths():
    hp = nb201_space()
    values = nb201_hyperparameters_from_genotype(CELL)
    encoder = ArchitectureEncoder(hp, "path")
    assert encoder.size == 4 + 16 + 64  # op sequences of length 1..3
    x = encoder.encode(values)
    on = {encoder.feature_names[i].split(":")[1] for i in np.flatnonzero(x)}
    # Paths 0->3, 0->1->2->3 (0->2 and 1->3 are "none").
    assert on == {"avg_pool_3x3", "nor_conv_3x3>skip_connect>nor_conv_1x1"}


def _nb201_cell(letters):
    # Edge order 1<-0, 2<-0, 2<-1, 3<-0, 3<-1, 3<-2; "-" none, "s" skip,
    # "1"/"3" convolutions, "p" pooling.
    ops = dict(zip("-s13p", NB201_OPS, strict=True))
    names = [f"edge_{to}_{src}" for to, src in NB201_EDGES]
    return {n: ops[c] for n, c in zip(names, letters, strict=True)}


def test_nb201_reduced_path_encoding_drops_identity_ops():
    hp = nb201_space()
    encoder = ArchitectureEncoder(hp, "reduced_path")
    assert encoder.size == 1 + 3 + 9 + 27  # identity path + conv/pool paths
    stuck, optimum = _nb201_cell("3s3-1s"), _nb201_cell("333s31")
    x = encoder.encode(stuck)
    on = {encoder.feature_names[i].split(":")[1] for i in np.flatnonzero(x)}
    # 0->2->3 through two skips is the identity path; 0->1->2->3 loses its
    # last (skip) op.
    assert on == {
        "identity",
        "nor_conv_3x3>nor_conv_1x1",
        "nor_conv_3x3>nor_conv_3x3",
    }
    # Routing the input's skip 0->3 instead of 0->2->3 changes nothing...
    np.testing.assert_array_equal(x, encoder.encode(_nb201_cell("3s3s1s")))
    # ... and the best NAS-Bench-201 cell, 4 edges away, is 1 path away.
    assert encoder.distance(stuck, optimum) == 1.0
    assert ArchitectureEncoder(hp, "path").distance(stuck, optimum) == 5.0
    assert ArchitectureEncoder(hp, "onehot").distance(stuck, optimum) == 4.0


def test_nb201_adjacency_and_onehot():
    hp = nb201_space()
    values = nb201_hyperparameters_from_genotype(CELL)
    adjacency = ArchitectureEncoder(hp, "adjacency")
    x = adjacency.encode(values)
    assert adjacency.size == 6 + 6 * 4
    assert x[:6].sum() == 4  # two "none" edges are absent
    onehot = ArchitectureEncoder(hp, "onehot")
    assert onehot.size == 30 and onehot.encode(values).sum() == 6
    other = dict(values, edge_1_0="avg_pool_3x3")
    assert onehot.distance(values, other) == 1.0
    assert adjacency.distance(values, other) == 1.0  # one op changed
    # Two paths change: 0->3 stays; 0->1->2->3 gets another first op.
    assert ArchitectureEncoder(hp, "path").distance(values, other) == 2.0


def test_cell_space_encodings():
    hp = cell_space()
    values = samples(hp, 1)[0]
    path = ArchitectureEncoder(hp, "path")
    x = path.encode(values)
    # Every intermediate node feeds the output: at least one path per node
    # and cell; the macro choices (num_cells, filters) are one-hot at the end.
    assert x[: path._offset].sum() >= 2 * 3
    assert x[path._offset :].sum() == 2
    adjacency = ArchitectureEncoder(hp, "adjacency")
    edges = adjacency.encode(values)
    assert edges.sum() == 2 * (3 * 2) * 2 + 2  # counts + ops, both cells


def test_onehot_respects_conditional_scopes():
    hp = keras_tuner.HyperParameters()
    hp.Choice("model", ["linear", "mlp"])
    with hp.conditional_scope("model", ["mlp"]):
        hp.Int("units", 8, 64, step=8)
    hp.Float("lr", 1e-4, 1e-1, sampling="log")
    encoder = ArchitectureEncoder(hp)
    linear = encoder.encode({"model": "linear", "units": 64, "lr": 1e-2})
    mlp = encoder.encode({"model": "mlp", "units": 64, "lr": 1e-2})
    names = encoder.feature_names
    assert linear[names.index("units")] == 0  # inactive: ignored
    assert mlp[names.index("units:active")] == 1
    assert mlp[names.index("units")] == pytest.approx(1.0, abs=0.07)
    assert linear[names.index("lr")] == pytest.approx(2 / 3)  # log scale


def test_unknown_encoding_and_space_without_cells():
    with pytest.raises(ValueError, match="encoding='path'"):
        ArchitectureEncoder(chain_space(), "path")
    with pytest.raises(ValueError, match="encoding"):
        ArchitectureEncoder(nb201_space(), "graph")
    with pytest.raises(ValueError, match="values"):
        ArchitectureEncoder(nb201_space()).encode({"edge_1_0": "none"})


@pytest.mark.parametrize(
    "space,encoding",
    [
        (nb201_space, "onehot"),
        (nb201_space, "path"),
        (nb201_space, "adjacency"),
        (cell_space, "path"),
        (cell_space, "reduced_path"),
        (cell_space, "adjacency"),
        (chain_space, "onehot"),
    ],
)
def test_predictor_interface_on_every_encoding(space, encoding):
    hp = space()
    encoder = ArchitectureEncoder(hp, encoding)
    x = encoder.encode_many(samples(hp, 30))
    rng = np.random.default_rng(1)
    weights = rng.normal(size=encoder.size)
    y = x @ weights
    features = y[:, None] + rng.normal(size=(30, 1))  # a zero-cost score
    for cls in PREDICTORS:
        for extra in (None, features):
            model = cls(seed=1, **SMALL.get(cls, {})).fit(
                x[:20], y[:20], None if extra is None else extra[:20]
            )
            mean, std = model.predict(
                x[20:], None if extra is None else extra[20:]
            )
            assert mean.shape == std.shape == (10,)
            assert np.all(np.isfinite(mean)) and np.all(std >= 0)
    again = MLPEnsemblePredictor(seed=1, steps=40).fit(x[:20], y[:20])
    first = MLPEnsemblePredictor(seed=1, steps=40).fit(x[:20], y[:20])
    np.testing.assert_array_equal(again.predict(x)[0], first.predict(x)[0])


def test_gp_recovers_a_smooth_function_of_the_encoding():
    hp = nb201_space()
    encoder = ArchitectureEncoder(hp, "onehot")
    x = encoder.encode_many(samples(hp, 160, seed=3))
    # Smooth in the encoding: a sum of per-decision effects.
    weights = np.random.default_rng(0).normal(size=encoder.size)
    y = x @ weights
    gp = GaussianProcessPredictor(seed=0).fit(x[:120], y[:120])
    mean, std = gp.predict(x[120:])
    assert kendalltau(mean, y[120:])[0] > 0.8
    assert np.sqrt(np.mean((mean - y[120:]) ** 2)) < 0.3 * np.std(y)
    # Uncertain away from the data, sure at it.
    assert np.mean(gp.predict(x[:120])[1]) < np.mean(std)
    sample = gp.sample(x[120:], np.random.default_rng(0))
    assert kendalltau(sample, y[120:])[0] > 0.6


def test_bad_arguments():
    x = np.zeros((3, 4))
    for cls in PREDICTORS:
        with pytest.raises(ValueError, match="encodings"):
            cls().fit(np.zeros((0, 4)), [])
        with pytest.raises(ValueError, match="scores"):
            cls().fit(x, [1.0, float("nan"), 2.0])
        with pytest.raises(ValueError, match="scores"):
            cls().fit(x, [1.0, 2.0])
        with pytest.raises(ValueError, match="fit"):
            cls().predict(x)
        with pytest.raises(ValueError, match="encodings"):
            cls().fit(x, [1.0, 2.0, 3.0]).predict(np.zeros((2, 5)))
        with pytest.raises(ValueError, match="seed"):
            cls(seed="1")
    with pytest.raises(ValueError, match="features"):
        GaussianProcessPredictor().fit(x, [1, 2, 3], features=[[np.inf]] * 3)


def test_encodings_import_no_deep_learning_framework():
    code = (
        "import sys, keras_nas.predictors.encodings, "
        "keras_nas.predictors.models;"
        "print(sorted(m for m in ('tensorflow', 'keras', 'jax', "
        "'keras_tuner') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_encodings_listed():
    assert ENCODINGS == ("onehot", "path", "reduced_path", "adjacency")
