import functools
import json
import os
import textwrap

import _oracle_testing
import keras
import keras_tuner
import numpy as np
import pytest
from _oracle_testing import (
    OBJ,
    STATUS,
    choice_space,
    conditional_space,
    make_oracle,
    mixed_score,
    small_space,
    tiny_digits_search,
)

from keras_nas.tuners import _base
from keras_nas.tuners import controller as ctrl
from keras_nas.tuners.reinforce import Reinforce, ReinforceOracle


def mixed_space():
    hp = choice_space(3)
    hp.Int("units", 8, 64, step=8)
    hp.Int("width", 1, 1000)
    hp.Float("lr", 1e-4, 1e-1, sampling="log")
    hp.Boolean("bn")
    hp.Fixed("fixed", 3)
    return hp


make = functools.partial(make_oracle, ReinforceOracle, max_trials=100)
# Only `end_trial` saves (it learns before keras-tuner saves the state).
drive = functools.partial(_oracle_testing.drive, save=False)


def test_same_seed_same_trials(tmp_path):
    runs = [
        drive(
            make(tmp_path, f"r{i}", mixed_space(), seed=s),
            mixed_score,
            25,
        )
        for i, s in enumerate((3, 3, 4))
    ]
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]


def test_values_are_legal_and_active_only(tmp_path):
    hp = mixed_space()
    for values in drive(make(tmp_path, space=hp, seed=1), mixed_score, 30):
        assert values["fixed"] == 3
        assert values["units"] in range(8, 65, 8)
        assert 1 <= values["width"] <= 1000
        assert isinstance(values["width"], int)
        assert 1e-4 <= values["lr"] <= 1e-1
        assert set(values) == {h.name for h in hp.space}


def test_conditional_space(tmp_path):
    hp = conditional_space()
    oracle = make(tmp_path, space=hp, seed=2)
    seen = drive(oracle, lambda v: float(v["model"] == "mlp"), 40)
    models = {v["model"] for v in seen}
    assert models == {"linear", "mlp", "cnn"}
    for v in seen:
        active = {h.name for h in _base.active_decisions(hp, v)}
        assert set(v) == active
        assert ("layers" in v) == (v["model"] == "mlp")
        assert ("kernel" in v) == (v["model"] == "cnn")
        trace = oracle.controller.trace_from_values(v)
        assert [name for name, _ in trace] == [
            h.name for h in _base.active_decisions(hp, v)
        ]


def test_no_duplicates_and_stops_when_exhausted(tmp_path):
    oracle = make(tmp_path, space=small_space(), seed=5, max_trials=40)
    seen = drive(oracle, lambda v: float(v["x"] == 2), 40)
    keys = [json.dumps(v, sort_keys=True) for v in seen]
    assert len(seen) == 18  # 3 * 3 * 2 points, then STOPPED.
    assert len(set(keys)) == 18


def test_learns_on_toy_reward(tmp_path):
    oracle = make(tmp_path, space=mixed_space(), seed=7, max_trials=200)
    seen = drive(oracle, mixed_score, 120)
    scores = [mixed_score(v) for v in seen]
    assert np.mean(scores[-30:]) > np.mean(scores[:30]) + 1.0
    # The best op became the most likely one.
    probs = oracle.controller.probabilities(
        oracle.controller.trace_from_values(seen[-1])
    )[0]
    assert int(np.argmax(probs)) == 3 and probs[3] > 0.5


@pytest.mark.parametrize("kind", ["factorized", "lstm"])
def test_controller_probability_of_best_choice_rises(kind):
    hp = keras_tuner.HyperParameters()
    hp.Choice("op", ["a", "b", "c", "d"])
    hp.Boolean("flag")
    c = ctrl.get_controller(kind, hp, learning_rate=0.05, seed=1)
    rng = np.random.default_rng(0)
    best = [["op", 2], ["flag", 1]]
    before = c.probabilities(best)[0][2]
    for _ in range(60):
        values, trace = c.sample(rng)
        c.update([trace], [1.0 if values["op"] == "c" else 0.0])
    after = c.probabilities(best)[0][2]
    assert before == pytest.approx(0.25, abs=0.05)
    assert after > 0.6
    assert c.baseline is not None and c.num_updates == 60


@pytest.mark.parametrize("kind", ["factorized", "lstm"])
def test_controller_batched_update(kind):
    # Several traces in one update (ENAS' `controller_batch > 1`): the
    # embedding gradients of the LSTM are summed over the traces.
    hp = keras_tuner.HyperParameters()
    hp.Choice("op", ["a", "b", "c"])
    hp.Int("units", 1, 3)
    c = ctrl.get_controller(kind, hp, learning_rate=0.1, seed=3)
    rng = np.random.default_rng(1)
    best = [["op", 1], ["units", 0]]
    before = c.probabilities(best)[0][1]
    for _ in range(15):
        batch = [c.sample(rng) for _ in range(4)]
        rewards = [1.0 if v["op"] == "b" else 0.0 for v, _ in batch]
        c.update([t for _, t in batch], rewards)
    assert c.num_updates == 15
    assert c.probabilities(best)[0][1] > before


def test_factorized_gradient_is_exact():
    hp = keras_tuner.HyperParameters()
    hp.Choice("op", ["a", "b", "c"])
    c = ctrl.FactorizedController(
        hp, entropy_weight=0.3, temperature=2.0, normalize_advantage=False
    )
    c.logits["op"] = np.array([0.3, -1.0, 0.5])
    captured = {}
    c._optimizer.step = lambda params, grads: captured.update(grads)
    c._update([[["op", 1]]], np.array([1.7]))

    def objective(z):
        p = np.exp(z / 2.0) / np.exp(z / 2.0).sum()
        return 1.7 * np.log(p[1]) - 0.3 * np.sum(p * np.log(p))

    z, eps = c.logits["op"], 1e-6
    numeric = [
        (objective(z + eps * e) - objective(z - eps * e)) / (2 * eps)
        for e in np.eye(3)
    ]
    np.testing.assert_allclose(captured["op"], numeric, rtol=1e-5)


@pytest.mark.parametrize("kind", ["factorized", "lstm"])
def test_controller_save_load_round_trip(tmp_path, kind):
    # The LSTM compiles one gradient function per decision structure.
    hp = conditional_space() if kind == "factorized" else small_space()
    a = ctrl.get_controller(kind, hp, seed=3)
    rng = np.random.default_rng(1)
    for _ in range(5):
        values, trace = a.sample(rng)
        a.update([trace], [float(values.get("dropout", values.get("z")))])
    path = str(tmp_path / "c.bin")
    a.save(path)
    b = ctrl.get_controller(kind, hp, seed=99)
    b.load(path)
    assert b.baseline == a.baseline and b.num_updates == a.num_updates
    r1, r2 = np.random.default_rng(5), np.random.default_rng(5)
    for _ in range(3):
        (va, ta), (vb, tb) = a.sample(r1), b.sample(r2)
        assert va == vb
        a.update([ta], [0.5])
        b.update([tb], [0.5])
    trace = a.trace_from_values(va)
    pairs = zip(a.probabilities(trace), b.probabilities(trace), strict=True)
    for pa, pb in pairs:
        np.testing.assert_allclose(pa, pb, rtol=1e-5, atol=1e-6)
    assert a.get_config()["kind"] == kind


def test_visited_tree_restricts_sampling():
    hp = small_space()
    c = ctrl.FactorizedController(hp)
    tree = ctrl.VisitedTree()
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(18):
        values, _ = c.sample(rng, tree)
        key = json.dumps(values, sort_keys=True)
        assert key not in seen
        seen.add(key)
        c.visit(tree, values)
    assert tree.full


def test_oracle_state_round_trip_resumes_exactly(tmp_path):
    ref = make(tmp_path, "ref", mixed_space(), seed=11)
    expected = drive(ref, mixed_score, 20)

    first = make(tmp_path, "run", mixed_space(), seed=11)
    assert drive(first, mixed_score, 12) == expected[:12]
    files = os.listdir(os.path.join(tmp_path, "run"))
    assert [f for f in files if f.startswith("reinforce_controller_")] == [
        "reinforce_controller_12.bin"
    ]
    state = json.loads(json.dumps(first.get_state()))
    assert state["controller_version"] == 12

    second = make(tmp_path, "run", mixed_space(), seed=999)
    second.reload()
    assert second.get_state()["rng"] == state["rng"]
    assert drive(second, mixed_score, 8) == expected[12:]


def test_failed_and_nan_trials_do_not_update(tmp_path):
    oracle = make(tmp_path, space=small_space(), seed=1)
    trial = oracle.create_trial("tuner0")
    trial.status = STATUS.FAILED
    oracle.end_trial(trial)
    trial = oracle.create_trial("tuner0")
    oracle.update_trial(trial.trial_id, {"score": float("nan")})
    trial.status = STATUS.COMPLETED
    oracle.end_trial(trial)
    assert oracle._controller_version == 0
    drive(oracle, lambda v: 1.0, 3)
    assert oracle.controller.num_updates == 3


def test_min_objective_maximizes_negative_score(tmp_path):
    oracle = make(
        tmp_path,
        "min",
        mixed_space(),
        objective=keras_tuner.Objective("loss", "min"),
        max_trials=200,
        seed=3,
    )
    seen = []
    for _ in range(100):
        trial = oracle.create_trial("t")
        v = trial.hyperparameters.values
        seen.append(mixed_score(v))
        oracle.update_trial(trial.trial_id, {"loss": -mixed_score(v)})
        trial.status = STATUS.COMPLETED
        oracle.end_trial(trial)
    assert np.mean(seen[-25:]) > np.mean(seen[:25]) + 1.0


def test_argument_errors():
    with pytest.raises(ValueError, match="controller"):
        ReinforceOracle(objective=OBJ, controller="gru")
    with pytest.raises(ValueError, match="baseline_decay"):
        ReinforceOracle(objective=OBJ, baseline_decay=1.0)
    with pytest.raises(ValueError, match="learning_rate"):
        ReinforceOracle(objective=OBJ, learning_rate=0.0)
    with pytest.raises(ValueError, match="max_resamples"):
        ReinforceOracle(objective=OBJ, max_resamples=0)


def test_lstm_controller_rejects_other_backends(monkeypatch):
    monkeypatch.setattr(keras.backend, "backend", lambda: "torch")
    with pytest.raises(ValueError, match="backend='torch'"):
        ctrl.LSTMController(small_space())


def test_lstm_controller_on_jax_backend(tmp_path, run_on_backend):
    script = textwrap.dedent(
        """
        import keras, keras_tuner, numpy as np
        from keras_nas.tuners import controller as ctrl
        assert keras.backend.backend() == "jax"
        hp = keras_tuner.HyperParameters()
        hp.Choice("op", ["a", "b", "c", "d"])
        hp.Boolean("flag")
        c = ctrl.LSTMController(hp, learning_rate=0.05, seed=1)
        rng = np.random.default_rng(0)
        for _ in range(40):
            v, t = c.sample(rng)
            c.update([t], [1.0 if v["op"] == "c" else 0.0])
        p = c.probabilities([["op", 2], ["flag", 0]])[0][2]
        assert p > 0.5, p
        c.save(PATH)
        d = ctrl.LSTMController(hp, seed=2)
        d.load(PATH)
        q = d.probabilities([["op", 2], ["flag", 0]])[0][2]
        assert abs(p - q) < 1e-6, (p, q)
        print("OK")
        """
    ).replace("PATH", repr(str(tmp_path / "c.bin")))
    assert "OK" in run_on_backend(script, timeout=600)


@pytest.mark.usefixtures("eager_functions")  # 1 epoch: tracing costs more
def test_tiny_real_search_on_digits(tmp_path, digits):
    tuner = tiny_digits_search(Reinforce, tmp_path, digits)
    trials = tuner.oracle.trials.values()
    assert len(trials) == 3
    assert all(t.status == STATUS.COMPLETED for t in trials)
    assert tuner.oracle.controller.num_updates == 3
    best = tuner.get_best_hyperparameters()[0]
    assert best.values["units"] in (8, 16)


def test_decisions_encode_every_hyperparameter_type():
    hp = keras_tuner.HyperParameters()
    hp.Int("log_int", 1, 4, sampling="log")
    hp.Int("step_int", 2, 64, step=2, sampling="log")
    hp.Float("step_float", 0.1, 0.5, step=0.1)
    hp.Int("big_int", 0, 10)
    hp.Float("lr", 1e-4, 1e-1, sampling="log")
    c = ctrl.FactorizedController(hp, max_bins=10)
    sizes = {name: d.size for name, d in c.decisions.items()}
    assert sizes == {
        "log_int": 4,
        "step_int": 6,
        "step_float": 5,
        "big_int": 10,
        "lr": 10,
    }
    assert [c.decisions["log_int"].value(i, None) for i in range(4)] == [
        1,
        2,
        3,
        4,
    ]
    rng = np.random.default_rng(0)
    for _ in range(50):
        values, trace = c.sample(rng)
        assert c.trace_from_values(values) == trace
        assert 0 <= values["big_int"] <= 10


def test_lstm_numpy_sampling_matches_keras_loss():
    from keras import ops

    hp = conditional_space()
    c = ctrl.LSTMController(hp, entropy_weight=0.0, seed=4)
    values, trace = c.sample(np.random.default_rng(2))
    probs = c.probabilities(trace)
    logp = sum(np.log(p[i]) for p, (_, i) in zip(probs, trace, strict=True))
    loss = c._loss_fn(tuple(name for name, _ in trace))(
        [v.value for v in c.vars.values()],
        np.asarray([i for _, i in trace], dtype="int32"),
        1.0,
    )
    assert float(ops.convert_to_numpy(loss)) == pytest.approx(-logp, abs=1e-4)
