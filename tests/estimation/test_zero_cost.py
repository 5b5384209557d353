"""Tests of the zero-cost proxies and the `ZeroCost` estimator."""

import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
from _estimation_testing import NB201, evolution, wrapped_random_search

from keras_nas.blocks.genotypes import NasBench201Genotype
from keras_nas.blocks.network import build_nb201_network
from keras_nas.estimation.zero_cost import (
    ZERO_COST_PROXIES,
    ZeroCost,
    naswot_kernel,
    zero_cost_score,
)

CONV = ("nor_conv_3x3",) * 6
SKIP = ("skip_connect",) * 6
NONE = ("none",) * 6


def _softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _nb201(ops, filters=4, seed=0):
    keras.utils.set_random_seed(seed)
    return build_nb201_network(
        NasBench201Genotype(ops),
        (8, 8, 1),
        3,
        filters=filters,
        cells_per_stage=1,
    )


def _data(n=16, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 8, 8, 1)).astype("float32")
    return x, rng.integers(0, 3, size=n).astype("int32")


def test_grad_norm_snip_fisher_match_the_analytic_gradient():
    rng = np.random.default_rng(0)
    model = keras.Sequential(
        [keras.Input((3,)), keras.layers.Dense(4, activation="softmax")]
    )
    w = rng.normal(size=(3, 4))
    b = rng.normal(size=4)
    model.set_weights([w, b])
    x = rng.normal(size=(5, 3)).astype("float32")
    y = np.array([0, 1, 2, 3, 1])
    p = _softmax(x @ w + b)
    grad = x.T @ (p - np.eye(4)[y]) / len(x)  # d mean-CE / d kernel.
    # The bias (rank 1) is excluded, as are normalization parameters.
    np.testing.assert_allclose(
        zero_cost_score(model, x, y, "grad_norm"),
        np.linalg.norm(grad),
        rtol=1e-4,
    )
    np.testing.assert_allclose(
        zero_cost_score(model, x, np.eye(4)[y], "snip"),  # one-hot labels
        np.abs(w * grad).sum(),
        rtol=1e-4,
    )
    # fisher: per output unit, 0.5 * mean_n (a * dL/da)^2, a = the logits.
    z = x @ w + b
    dz = (p - np.eye(4)[y]) / len(x)
    np.testing.assert_allclose(
        zero_cost_score(model, x, y, "fisher"),
        (0.5 * np.mean((z * dz) ** 2, axis=0)).sum(),
        rtol=1e-4,
    )


def test_multi_output_models_score_their_main_output():
    rng = np.random.default_rng(2)
    inputs = keras.Input((3,))
    main = keras.layers.Dense(4, activation="softmax")
    aux = keras.layers.Dense(4, activation="softmax")
    model = keras.Model(
        inputs, {"predictions": main(inputs), "auxiliary": aux(inputs)}
    )
    single = keras.Model(inputs, main(inputs))
    x = rng.normal(size=(6, 3)).astype("float32")
    y = rng.integers(0, 4, size=6)
    for proxy in ("grad_norm", "fisher", "jacob_cov", "synflow"):
        np.testing.assert_allclose(
            zero_cost_score(model, x, y, proxy),
            zero_cost_score(single, x, y, proxy),
            rtol=1e-6,
            err_msg=proxy,
        )


def test_synflow_of_a_two_layer_net_is_the_analytic_path_sum():
    rng = np.random.default_rng(1)
    model = keras.Sequential(
        [
            keras.Input((3,)),
            keras.layers.Dense(4, activation="relu"),
            keras.layers.BatchNormalization(),
            keras.layers.Dense(2, activation="softmax"),
        ]
    )
    w1, b1 = rng.normal(size=(3, 4)), rng.normal(size=4)
    w2, b2 = rng.normal(size=(4, 2)), rng.normal(size=2)
    # A batch norm far from the identity: synflow removes it anyway.
    bn = [np.full(4, 5.0), np.full(4, 2.0), np.full(4, 3.0), np.full(4, 4.0)]
    weights = [w1, b1, *bn, w2, b2]
    model.set_weights(weights)
    w1, b1, *_, w2, b2 = [w.astype("float64") for w in model.get_weights()]
    a1, a2 = np.abs(w1), np.abs(w2)
    h = a1.sum(axis=0) + np.abs(b1)  # all-ones input, |weights|
    # R = sum(h @ a2) + sum|b2|; score = sum |w * dR/dw| over the kernels.
    expected = (a1 * a2.sum(axis=1)).sum() + (h[:, None] * a2).sum()
    score = zero_cost_score(model, proxy="synflow")
    np.testing.assert_allclose(score, expected, rtol=1e-10)  # float64
    for before, after in zip(weights, model.get_weights(), strict=True):
        np.testing.assert_array_equal(after, before.astype("float32"))


def test_naswot_kernel_is_the_hamming_kernel_of_relu_codes():
    codes = [np.array([[1.0, -1.0, 2.0], [3.0, 1.0, 0.0]])]
    np.testing.assert_array_equal(naswot_kernel(codes), [[3, 1], [1, 3]])

    model = keras.Sequential(
        [
            keras.Input((2,)),
            keras.layers.Dense(3, activation="relu", use_bias=False),
            keras.layers.Dense(2, activation="softmax"),
        ]
    )
    w1 = np.array([[1.0, -1.0, 1.0], [1.0, 1.0, -1.0]])
    model.set_weights([w1, np.ones((3, 2)), np.zeros(2)])
    x = np.array([[1.0, 0.5], [-1.0, 2.0], [2.0, -3.0]], "float32")
    c = (x @ w1 > 0).astype(float)  # [1,0,1], [1,1,0], [0,0,1]
    hamming = np.abs(c[:, None] - c[None]).sum(-1)
    kernel = 3 - hamming
    np.testing.assert_allclose(
        zero_cost_score(model, x, proxy="naswot"),
        np.log(np.linalg.det(kernel)),
        rtol=1e-10,
    )
    # Identical codes: a rank-one kernel, the worst score.
    same = np.array([[1.0, 0.5], [2.0, 1.0], [3.0, 1.5]], "float32")
    assert zero_cost_score(model, same, proxy="naswot") == -np.inf


def test_jacob_cov_of_a_linear_model():
    # Every example has the same Jacobian: the correlation matrix is all
    # ones, eigenvalues n and 0 (n - 1 times).
    model = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(3, activation="softmax")]
    )
    x = np.random.default_rng(0).normal(size=(5, 4)).astype("float32")
    k = 1e-5
    expected = -(np.log(5 + k) + 1 / (5 + k)) - 4 * (np.log(k) + 1 / k)
    np.testing.assert_allclose(
        zero_cost_score(model, x, proxy="jacob_cov"), expected, rtol=1e-6
    )


def test_conv_cell_beats_degenerate_cells_and_state_is_kept():
    x, y = _data()
    scores = {}
    for name, ops in (("conv", CONV), ("skip", SKIP), ("none", NONE)):
        model = _nb201(ops)
        before = [w.copy() for w in model.get_weights()]
        scores[name] = {
            p: zero_cost_score(model, x, y, p) for p in ZERO_COST_PROXIES
        }
        for b, a in zip(before, model.get_weights(), strict=True):
            np.testing.assert_array_equal(a, b)  # BN statistics included
    for proxy in ZERO_COST_PROXIES:
        # The all-"none" cell disconnects the input: nothing flows.
        assert scores["conv"][proxy] > scores["none"][proxy], proxy
    assert scores["none"]["synflow"] == 0.0
    assert scores["none"]["naswot"] == -np.inf
    for proxy in ("grad_norm", "snip", "synflow", "naswot"):
        assert scores["conv"][proxy] > scores["skip"][proxy], proxy


def test_errors():
    model = _nb201(CONV)
    with pytest.raises(ValueError, match="proxy"):
        zero_cost_score(model, proxy="flops")
    with pytest.raises(ValueError, match="Received: y=None"):
        zero_cost_score(model, _data()[0], proxy="snip")
    with pytest.raises(ValueError, match="Received: x=None"):
        zero_cost_score(model, proxy="naswot")
    linear = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="ReLU"):
        zero_cost_score(linear, np.ones((2, 2)), proxy="naswot")
    with pytest.raises(ValueError, match="batch_size"):
        ZeroCost(batch_size=0)


def test_tuner_search_with_zero_cost_trains_nothing(tmp_path, monkeypatch):
    def no_fit(*args, **kwargs):
        raise AssertionError("a zero-cost search must not train")

    monkeypatch.setattr(keras.Model, "fit", no_fit)
    space = NB201
    x, y = _data(48)
    estimator = ZeroCost(proxy=("naswot", "grad_norm"), batch_size=16)
    assert estimator.objective.name == "zero_cost_naswot"
    tuner = evolution(
        space,
        tmp_path,
        estimator,
        objective=estimator.objective,
        max_trials=6,
        population_size=3,
        sample_size=2,
        seed=0,
        project_name="zc",
    )
    tuner.search(x, y)
    trials = list(tuner.oracle.trials.values())
    assert len(trials) == 6
    assert all(t.status == "COMPLETED" for t in trials)
    assert estimator.num_estimates == 6
    best = tuner.oracle.get_best_trials(1)[0]
    keras.utils.set_random_seed(0)
    model = space.build(best.hyperparameters)
    bx, by = estimator.batches(x, y)[0]
    np.testing.assert_allclose(
        best.score, zero_cost_score(model, bx, by, "naswot"), rtol=1e-6
    )
    grad_norm = best.metrics.get_last_value("zero_cost_grad_norm")
    np.testing.assert_allclose(
        grad_norm, zero_cost_score(model, bx, by, "grad_norm"), rtol=1e-4
    )

    # keras-tuner's own tuners through `wrap`.
    synflow = ZeroCost("synflow")
    wrapped = wrapped_random_search(
        synflow,
        space,
        tmp_path,
        objective=synflow.objective,
        max_trials=2,
        seed=0,
        project_name="rs",
    )
    wrapped.search(x, y)
    assert len(wrapped.oracle.trials) == 2
    assert wrapped.oracle.get_best_trials(1)[0].score > 0

    # The default objective is not a zero-cost metric: a clear error.
    bad = evolution(
        space, tmp_path, ZeroCost(), max_trials=1, seed=0, project_name="bad"
    )
    with pytest.raises(ValueError, match="zero_cost_synflow"):
        bad.run_trial(bad.oracle.create_trial("t"), x, y)


_BACKEND_SCRIPT = textwrap.dedent(
    """
    import json
    import keras
    import numpy as np
    from keras_nas.estimation.zero_cost import (
        ZERO_COST_PROXIES, zero_cost_score)

    L = keras.layers
    model = keras.Sequential([
        keras.Input((8, 8, 1)), L.Conv2D(4, 3, padding="same"),
        L.BatchNormalization(), L.ReLU(), L.AveragePooling2D(2),
        L.Conv2D(4, 3, activation="relu"), L.GlobalAveragePooling2D(),
        L.Dense(3, activation="softmax")])
    rng = np.random.default_rng(0)
    model.set_weights([
        np.ones(w.shape) if "variance" in v.path
        else 0.5 * rng.normal(size=w.shape)
        for v, w in zip(model.weights, model.get_weights())])
    x = rng.normal(size=(12, 8, 8, 1)).astype("float32")
    y = rng.integers(0, 3, size=12)
    SCORES = {p: zero_cost_score(model, x, y, p) for p in ZERO_COST_PROXIES}
    print(json.dumps(SCORES))
    """
)


def test_jax_backend_agrees_with_tensorflow():
    # Same model and weights: JAX in a subprocess, TensorFlow here.
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu")
    proc = subprocess.Popen(
        [sys.executable, "-c", _BACKEND_SCRIPT],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert keras.backend.backend() == "tensorflow"
    namespace = {}
    exec(_BACKEND_SCRIPT, namespace)
    tf_scores = namespace["SCORES"]
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    jax_scores = json.loads(out.strip().splitlines()[-1])
    for proxy in ZERO_COST_PROXIES:
        assert np.isfinite(tf_scores[proxy]), proxy
        np.testing.assert_allclose(
            jax_scores[proxy], tf_scores[proxy], rtol=2e-3, err_msg=proxy
        )
