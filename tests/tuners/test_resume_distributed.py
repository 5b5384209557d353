"""Crash-resume and keras-tuner distributed mode for every search strategy.

(a) A search runs in a subprocess that is SIGKILLed while a trial runs; the
    search is then started again with `overwrite=False`. No completed trial is
    lost or run again, the search ends with exactly `max_trials` trials, and
    the algorithm continues from its saved state: trials and final oracle
    state equal those of an uninterrupted search with the same seed.
(b) keras-tuner's distributed mode on loopback: a chief process (gRPC oracle
    server) and two worker processes; every trial runs once, `max_trials` is
    respected and no point is proposed twice.

Training is faked (`_fake_search.py`: the score is a function of the values),
so the time went to starting Python processes: they are all started together
by a module fixture, as forks of one process that imported keras-tuner, Keras
and JAX once (`tests/_fork_server.py`).
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import _fake_search  # noqa: E402
import _fork_server  # noqa: E402

pytest.importorskip("grpc")

ALGOS = list(_fake_search.ALGOS)
ALGOS_CLASSES = list(_fake_search.ALGOS.values())
SCRIPT = os.path.join(HERE, "_fake_search.py")
TIMEOUT = 300  # generous: only reached on a very loaded machine


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _spawn(forker, args, directory, **env):
    out = os.path.join(directory, f"{args[2]}_{len(os.listdir(directory))}.out")
    open(out, "w").close()  # before the next name is counted
    return forker.spawn("_fake_search", args, out, **env)


def _forker(directory):
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("KERASTUNER")
    }
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    # The fake searches need no TensorFlow; JAX's Keras imports faster.
    env["KERAS_BACKEND"] = "jax"
    return _fork_server.Forker(
        ["_fake_search", *(m for m, _ in ALGOS_CLASSES)],
        directory,
        env,
        path=[HERE],
    )


def _wait_for(predicate, what, procs=()):
    deadline = time.time() + TIMEOUT
    while not predicate():
        for p in procs:
            assert p.poll() is None or predicate(), f"process died: {what}"
        assert time.time() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _read_log(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def _trials(project_dir):
    out = {}
    for name in os.listdir(project_dir):
        path = os.path.join(project_dir, name, "trial.json")
        if name.startswith("trial_") and os.path.exists(path):
            with open(path) as f:
                state = json.load(f)
            out[state["trial_id"]] = state
    return out


@pytest.fixture(scope="module")
def launched(tmp_path_factory):
    """Starts every subprocess of the module at once."""
    forker = _forker(str(tmp_path_factory.mktemp("forker")))
    procs = {}
    for algo in ALGOS:
        kill_dir = str(tmp_path_factory.mktemp(f"kill_{algo}"))
        procs[("kill", algo)] = (
            kill_dir,
            [
                _spawn(
                    forker,
                    [algo, kill_dir, "search", "search", _fake_search.BLOCK_AT],
                    kill_dir,
                )
            ],
        )
        dist_dir = str(tmp_path_factory.mktemp(f"dist_{algo}"))
        env = {
            "KERASTUNER_ORACLE_IP": "127.0.0.1",
            "KERASTUNER_ORACLE_PORT": str(_free_port()),
        }
        group = [
            _spawn(
                forker,
                [algo, dist_dir, "dist", "chief"],
                dist_dir,
                KERASTUNER_TUNER_ID="chief",
                **env,
            )
        ]
        for i in range(2):
            group.append(
                _spawn(
                    forker,
                    [algo, dist_dir, "dist", "worker"],
                    dist_dir,
                    KERASTUNER_TUNER_ID=f"tuner{i}",
                    **env,
                )
            )
        procs[("dist", algo)] = (dist_dir, group)
    yield procs
    for _, group in procs.values():
        for p in group:
            if p.poll() is None:
                os.kill(p.pid, signal.SIGKILL)
                p.wait()
    forker.close()


def _comparable_state(oracle):
    state = json.loads(json.dumps(oracle.get_state()))
    state.pop("display", None)
    state["tried_so_far"] = sorted(oracle._tried_so_far)
    state["id_to_hash"] = dict(oracle._id_to_hash)
    return state


@pytest.mark.parametrize("algo", ALGOS)
def test_resume_after_sigkill(launched, algo, tmp_path):
    directory, (proc,) = launched[("kill", algo)]
    log = os.path.join(directory, "search.log")
    block = _fake_search.BLOCK_AT

    def blocked():
        return any(
            r["event"] == "start" and r["id"] == block for r in _read_log(log)
        )

    _wait_for(blocked, f"{algo} to reach trial {block}", [proc])
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()

    project = os.path.join(directory, "search")
    before = _trials(project)
    done_before = {i for i, t in before.items() if t["status"] == "COMPLETED"}
    assert done_before == {f"{i:02d}" for i in range(int(block))}
    assert before[block]["status"] == "RUNNING"
    first_log = _read_log(log)

    # Restart with overwrite=False, in this process.
    resumed = _fake_search.make_tuner(algo, directory, "search")
    resumed.search(log=log, verbose=0)
    second_log = _read_log(log)[len(first_log) :]

    after = _trials(project)
    assert len(after) == _fake_search.MAX_TRIALS
    assert all(t["status"] == "COMPLETED" for t in after.values())
    # No completed trial ran again; the killed one ran (to its end) once.
    restarted = {r["id"] for r in second_log if r["event"] == "start"}
    assert not restarted & done_before
    ends = [r["id"] for r in first_log + second_log if r["event"] == "end"]
    assert sorted(ends) == sorted(after)
    # Nothing lost: the completed trials kept their values and scores.
    for trial_id in done_before:
        assert (
            after[trial_id]["hyperparameters"]["values"]
            == (before[trial_id]["hyperparameters"]["values"])
        )
        assert after[trial_id]["score"] == before[trial_id]["score"]

    # The algorithm continued from its state: same trials and same final
    # state as an uninterrupted search with the same seed.
    reference = _fake_search.make_tuner(
        algo, str(tmp_path), "reference", overwrite=True
    )
    reference.search(log=str(tmp_path / "ref.log"), verbose=0)
    ref_trials = _trials(os.path.join(str(tmp_path), "reference"))
    for trial_id, trial in ref_trials.items():
        assert (
            trial["hyperparameters"]["values"]
            == (after[trial_id]["hyperparameters"]["values"])
        ), trial_id
    assert _comparable_state(resumed.oracle) == _comparable_state(
        reference.oracle
    )


@pytest.mark.parametrize("algo", ALGOS)
def test_distributed_chief_and_two_workers(launched, algo):
    directory, (chief, *workers) = launched[("dist", algo)]
    ready = [os.path.join(directory, f"ready_tuner{i}") for i in range(2)]
    _wait_for(
        lambda: all(os.path.exists(r) for r in ready),
        f"{algo} workers to start",
        workers,
    )
    with open(os.path.join(directory, "go"), "w"):
        pass
    for worker in workers:
        worker.wait(timeout=TIMEOUT)
        assert worker.returncode == 0
    # keras-tuner's chief may sleep before it exits; its state is on disk.
    try:
        chief.wait(timeout=2)
    except subprocess.TimeoutExpired:
        os.kill(chief.pid, signal.SIGKILL)
        chief.wait()

    trials = _trials(os.path.join(directory, "dist"))
    assert len(trials) == _fake_search.MAX_TRIALS
    assert all(t["status"] == "COMPLETED" for t in trials.values())
    values = [
        json.dumps(t["hyperparameters"]["values"], sort_keys=True)
        for t in trials.values()
    ]
    assert len(set(values)) == len(values)
    records = _read_log(os.path.join(directory, "dist.log"))
    starts = [r["id"] for r in records if r["event"] == "start"]
    ends = [r["id"] for r in records if r["event"] == "end"]
    assert sorted(starts) == sorted(ends) == sorted(trials)
    # Both workers took part, and each trial ran on exactly one of them.
    assert {r["tuner"] for r in records} == {"tuner0", "tuner1"}
