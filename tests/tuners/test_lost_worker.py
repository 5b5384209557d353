"""A worker lost mid-trial in keras-tuner's chief/worker mode (#11, #17).

(a) On loopback: a chief and four worker processes; one worker is SIGKILLed
    while it runs a trial. Its trial is run again by another worker after
    the worker timeout, every trial completes exactly once, `max_trials` is
    respected, and the chief and the other workers exit by themselves.
(b) In process, with a clock passed in: a trial lost more often than
    `max_retries_per_trial + 1` fails; a late report of a trial that another
    worker completed is dropped; idle workers are forgotten.

Training is faked (the score is a function of the values), so the time went
to starting the five Python processes, which run at the same time: they are
forks of one process that imported keras-tuner, Keras and JAX once
(`tests/_fork_server.py`).
"""

import json
import os
import signal
import socket
import sys
import time

import keras_tuner
import pytest
from keras_tuner.engine import trial as trial_module

from keras_nas.tuners import _leases
from keras_nas.tuners.evolution import AgingEvolutionOracle

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import _fake_search  # noqa: E402
import _fork_server  # noqa: E402
import _lost_worker_search  # noqa: E402

TIMEOUT = 300  # generous: only reached on a very loaded machine
WORKER_TIMEOUT = 3  # seconds without news before a worker counts as lost


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _read_log(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def _wait_for(predicate, what, procs):
    deadline = time.time() + TIMEOUT
    while not predicate():
        for p in procs:
            assert p.poll() is None, f"a process died waiting for {what}"
        assert time.time() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_worker_killed_mid_trial(tmp_path):
    directory = str(tmp_path)
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("KERASTUNER")
    }
    env.update(
        KERASTUNER_ORACLE_IP="127.0.0.1",
        KERASTUNER_ORACLE_PORT=str(_free_port()),
        KERASNAS_WORKER_TIMEOUT=str(WORKER_TIMEOUT),
        KERAS_BACKEND="jax",  # No TensorFlow needed; JAX imports faster.
        TF_CPP_MIN_LOG_LEVEL="3",
    )
    roles = [("chief", "chief")] + [
        (f"tuner{i}", "victim" if i == 3 else "worker") for i in range(4)
    ]
    statuses = tmp_path / "forker"
    statuses.mkdir()
    forker = _fork_server.Forker(
        ["_lost_worker_search"], str(statuses), env, path=[HERE]
    )
    procs = {}
    try:
        for tuner_id, role in roles:
            out = os.path.join(directory, f"{tuner_id}.out")
            procs[tuner_id] = forker.spawn(
                "_lost_worker_search",
                [role, directory],
                out,
                KERASTUNER_TUNER_ID=tuner_id,
            )
        chief, victim = procs["chief"], procs["tuner3"]
        workers = [procs[f"tuner{i}"] for i in range(3)]

        def victim_trial():
            names = [n for n in os.listdir(directory) if "victim_" in n]
            return names[0][len("victim_") :] if names else None

        _wait_for(victim_trial, "the victim's trial", procs.values())
        with open(os.path.join(directory, "go"), "w"):
            pass
        log = os.path.join(directory, "search.log")
        _wait_for(
            lambda: sum(r["event"] == "end" for r in _read_log(log)) >= 2,
            "two trials to end",
            procs.values(),
        )
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait()
        lost = victim_trial()

        # Everyone else exits by itself: no trial is left running forever.
        for proc in [*workers, chief]:
            proc.wait(timeout=TIMEOUT)
            assert proc.returncode == 0
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
        forker.close()

    project = os.path.join(directory, "search")
    trials = {}
    for name in os.listdir(project):
        path = os.path.join(project, name, "trial.json")
        if name.startswith("trial_") and os.path.exists(path):
            with open(path) as f:
                trials[name[len("trial_") :]] = json.load(f)
    assert len(trials) == _lost_worker_search.MAX_TRIALS
    assert all(t["status"] == "COMPLETED" for t in trials.values())
    values = {
        json.dumps(t["hyperparameters"]["values"], sort_keys=True)
        for t in trials.values()
    }
    assert len(values) == len(trials)
    with open(os.path.join(project, "oracle.json")) as f:
        state = json.load(f)
    assert sorted(state["end_order"]) == sorted(trials)
    assert state["lost_trials"] == {lost: 1}

    records = _read_log(os.path.join(directory, "search.log"))
    ends = [r["id"] for r in records if r["event"] == "end"]
    assert sorted(ends) == sorted(trials)  # each completed exactly once
    starts = [(r["id"], r["tuner"]) for r in records if r["event"] == "start"]
    assert sorted(i for i, _ in starts) == sorted([*trials, lost])
    rerun = [t for i, t in starts if i == lost]
    assert rerun[0] == "tuner3" and rerun[1] != "tuner3"
    with open(os.path.join(directory, "chief.out")) as f:
        chief_out = f.read()
    assert f"'tuner3' sent no news for {WORKER_TIMEOUT} s" in chief_out
    assert "Traceback" not in chief_out


class _Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


@pytest.fixture
def clock(monkeypatch):
    clock = _Clock()
    monkeypatch.setattr(_leases, "_clock", clock)
    monkeypatch.setenv(_leases.WORKER_TIMEOUT_ENV, "10")
    return clock


def _oracle(tmp_path, max_retries_per_trial=0):
    oracle = AgingEvolutionOracle(
        objective=keras_tuner.Objective("score", "max"),
        max_trials=4,
        population_size=2,
        seed=1,
        hyperparameters=_fake_search.space(),
        max_retries_per_trial=max_retries_per_trial,
    )
    oracle._set_project_dir(str(tmp_path), "p")
    oracle.verbose = 0
    return oracle


def _end(oracle, trial):
    values = trial.hyperparameters.values
    oracle.update_trial(trial.trial_id, {"score": _fake_search.score(values)})
    trial.status = trial_module.TrialStatus.COMPLETED
    if oracle.accept_end_report(trial.trial_id):
        oracle.end_trial(trial)


def test_lost_trial_retries_then_fails(tmp_path, clock):
    oracle = _oracle(tmp_path, max_retries_per_trial=1)
    first = oracle.create_trial("a")
    clock.now += 10
    assert oracle.expire_lost_workers() == []
    for _ in range(2):
        clock.now += 1
        assert oracle.expire_lost_workers() == [first.trial_id]
        assert oracle.tuner_ids == set()
        again = oracle.create_trial("b")
        assert again.trial_id == first.trial_id
        clock.now += 10
    clock.now += 1
    assert oracle.expire_lost_workers() == [first.trial_id]
    assert oracle.trials[first.trial_id].status == "FAILED"
    assert "lost 3 times" in oracle.trials[first.trial_id].message
    assert oracle.end_order == [first.trial_id]
    assert oracle.get_state()["lost_trials"] == {first.trial_id: 3}
    with open(os.path.join(str(tmp_path), "p", "oracle.json")) as f:
        assert json.load(f)["lost_trials"] == {first.trial_id: 3}
    # A late report of a failed trial is dropped.
    assert not oracle.accept_end_report(first.trial_id)
    assert oracle.create_trial("b").trial_id != first.trial_id


def test_late_report_and_idle_workers(tmp_path, clock):
    oracle = _oracle(tmp_path)
    trials = [oracle.create_trial(t) for t in ("a", "b", "c", "d")]
    clock.now += 6
    oracle.get_trial(trials[1].trial_id)  # b's heartbeat
    for trial in trials[2:]:
        _end(oracle, trial)
    # Every trial is created: a free worker waits instead of stopping.
    idle = oracle.create_trial("c")
    assert idle.status == "IDLE" and "c" in oracle.tuner_ids
    clock.now += 4
    assert oracle.expire_lost_workers() == []
    clock.now += 1
    assert oracle.expire_lost_workers() == [trials[0].trial_id]
    assert "a" not in oracle.tuner_ids and "b" in oracle.tuner_ids
    rerun = oracle.create_trial("c")
    assert rerun.trial_id == trials[0].trial_id
    _end(oracle, rerun)
    # a was only slow: its report comes late and is dropped.
    trials[0].status = trial_module.TrialStatus.COMPLETED
    assert not oracle.accept_end_report(trials[0].trial_id)
    assert oracle.end_order.count(trials[0].trial_id) == 1
    # d asked last long ago: forgotten as idle; b and c are still heard.
    oracle.get_trial(trials[1].trial_id)
    assert oracle.create_trial("c").status == "IDLE"
    clock.now += 10.5
    oracle.get_trial(trials[1].trial_id)
    assert oracle.create_trial("c").status == "IDLE"
    assert oracle.tuner_ids == {"b", "c"}
    _end(oracle, trials[1])
    assert oracle.create_trial("c").status == "STOPPED"
    assert oracle.create_trial("b").status == "STOPPED"
    assert oracle.tuner_ids == set()
    assert sorted(oracle.end_order) == sorted(t.trial_id for t in trials)


def test_worker_timeout_env(monkeypatch):
    monkeypatch.delenv(_leases.WORKER_TIMEOUT_ENV, raising=False)
    assert _leases.worker_timeout() == 60
    monkeypatch.setenv(_leases.WORKER_TIMEOUT_ENV, "2.5")
    assert _leases.worker_timeout() == 2.5
    for bad in ("0", "-1", "x", "inf"):
        monkeypatch.setenv(_leases.WORKER_TIMEOUT_ENV, bad)
        with pytest.raises(ValueError, match="KERASNAS_WORKER_TIMEOUT="):
            _leases.worker_timeout()
