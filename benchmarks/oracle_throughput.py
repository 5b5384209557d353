"""Trials per second a keras-nas oracle serves as the chief of a search.

Simulates keras-tuner's chief/worker mode with fake trials: every trial
sleeps `--trial-ms` milliseconds and reports a score computed from its
values. The space is `CellSearchSpace`'s (34 hyperparameters: cells,
filters, and the inputs and op of every node of a normal and a reduction
cell).

Two modes, for each multi-trial oracle (AgingEvolution, MCTS, Reinforce,
Bananas, ArchitectureBayesianOptimization, LocalSearch; the one-shot tuners'
oracles serve one trial, or one per ENAS round in one process):

- `grpc`: the chief is a separate process serving the oracle over gRPC on
  loopback (`keras_nas.tuners._distributed.serve_oracle`, as
  `tuner.search()` does on a chief); `--workers` threads of this process
  act as workers, each with its own `LeasedOracleClient` (channel), and
  send what a keras-tuner worker sends per trial: `CreateTrial`,
  `UpdateTrial`, `GetTrial`, `EndTrial`.
- `inprocess`: the same calls made directly on the oracle in this process
  (no gRPC, no sleep), with `--workers` trials running at any time: the
  chief's bookkeeping alone.

Printed: trials/s overall and per window of `--window` trials (how the rate
changes as the search grows), the chief's CPU milliseconds per trial in each
window (process CPU time, all threads: what a loaded machine disturbs least),
the size of `oracle.json` at the end and, for `grpc`, the chief's total CPU
time (with its start-up). keras-tuner writes `oracle.json` (and the
trial's `trial.json`) when a trial is created and when it ends.

Usage:

    python benchmarks/oracle_throughput.py --mode grpc --state both
    python benchmarks/oracle_throughput.py --mode both --trials 2000
    python benchmarks/oracle_throughput.py --oracles mcts --mode inprocess
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import threading
import time

os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras_tuner  # noqa: E402
from keras_tuner.engine import trial as trial_module  # noqa: E402

from keras_nas.spaces.cell_space import CellSearchSpace  # noqa: E402
from keras_nas.tuners._oracle import SharedSpaceHyperParameters  # noqa: E402
from keras_nas.tuners._persistence import ResumableOracle  # noqa: E402
from keras_nas.tuners.bananas import Bananas  # noqa: E402
from keras_nas.tuners.bayesian import (  # noqa: E402
    ArchitectureBayesianOptimization,
)
from keras_nas.tuners.evolution import AgingEvolution  # noqa: E402
from keras_nas.tuners.local_search import LocalSearch  # noqa: E402
from keras_nas.tuners.mcts import MonteCarloTreeSearch  # noqa: E402
from keras_nas.tuners.reinforce import Reinforce  # noqa: E402

TUNERS = {
    "evolution": AgingEvolution,
    "mcts": MonteCarloTreeSearch,
    "reinforce": Reinforce,
    "bananas": Bananas,
    "bo": ArchitectureBayesianOptimization,
    "local": LocalSearch,
}


def space() -> keras_tuner.HyperParameters:
    hp = keras_tuner.HyperParameters()
    CellSearchSpace(
        input_shape=(32, 32, 3), num_classes=10
    ).declare_hyperparameters(hp)
    return hp


def fake_score(values: dict) -> float:
    """A deterministic score in [0, 1) from the values."""
    text = json.dumps(values, sort_keys=True)
    return (sum(map(ord, text)) % 1000) / 1000.0


class _FakeTuner:
    """Mixin: `run_trial` is never called on the chief."""

    def run_trial(self, trial, *args, **kwargs):
        raise RuntimeError("the chief runs no trials")


def make_tuner(algo: str, directory: str, max_trials: int, seed: int = 1):
    cls = type(f"Fake{TUNERS[algo].__name__}", (_FakeTuner, TUNERS[algo]), {})
    return cls(
        objective=keras_tuner.Objective("score", "max"),
        max_trials=max_trials,
        seed=seed,
        hyperparameters=space(),
        directory=directory,
        project_name=algo,
        overwrite=True,
    )


def _windows(times: list[float], start: float, window: int) -> list[float]:
    """Trials/s in consecutive windows of `window` ended trials."""
    times = sorted(times)
    rates, previous = [], start
    for end in range(window, len(times) + 1, window):
        now = times[end - 1]
        rates.append(window / max(now - previous, 1e-9))
        previous = now
    return rates


def _oracle_json_kib(directory: str, algo: str) -> float:
    path = os.path.join(directory, algo, "oracle.json")
    return os.path.getsize(path) / 1024.0


# --- in process --------------------------------------------------------------


def run_inprocess(algo, trials, workers, window, directory, state):
    _bookkeeping(state)
    # No heartbeats here: a slow oracle must not count the simulated
    # running trials as lost (`keras_nas.tuners._leases`).
    os.environ["KERASNAS_WORKER_TIMEOUT"] = "86400"
    tuner = make_tuner(algo, directory, trials)
    oracle = tuner.oracle
    oracle.verbose = 0
    marks = _record_cpu(oracle, window)
    ended, running = [], []
    start = time.perf_counter()
    cpu = time.process_time()
    next_worker = 0
    while True:
        while len(running) < workers:
            tuner_id = f"w{next_worker}"
            next_worker += 1
            trial = oracle.create_trial(tuner_id)
            if trial.status != trial_module.TrialStatus.RUNNING:
                break
            running.append(trial)
        if not running:
            break
        trial = running.pop(0)
        values = trial.hyperparameters.values
        oracle.update_trial(trial.trial_id, {"score": fake_score(values)})
        oracle.get_trial(trial.trial_id)
        trial.status = trial_module.TrialStatus.COMPLETED
        oracle.end_trial(trial)
        ended.append(time.perf_counter())
    wall = time.perf_counter() - start
    return {
        "mode": "inprocess",
        "oracle": algo,
        "state": state,
        "trials": len(ended),
        "wall_s": wall,
        "cpu_s": time.process_time() - cpu,
        "trials_per_s": len(ended) / wall,
        "window_trials_per_s": _windows(ended, start, window),
        "cpu_ms_per_trial": _cpu_ms_per_trial(marks, window),
        "oracle_json_kib": _oracle_json_kib(directory, algo),
    }


# --- over gRPC ---------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _bookkeeping(state: str) -> None:
    """keras-nas' bookkeeping (compact) or keras-tuner's own (full)."""
    compact = state == "compact"
    ResumableOracle.compact_state = compact
    if compact:
        ResumableOracle._check_consecutive_failures = _CHECK
        SharedSpaceHyperParameters.copy = _COPY
    else:
        ResumableOracle._check_consecutive_failures = (
            keras_tuner.Oracle._check_consecutive_failures
        )
        SharedSpaceHyperParameters.copy = keras_tuner.HyperParameters.copy


_CHECK = ResumableOracle._check_consecutive_failures
_COPY = SharedSpaceHyperParameters.copy


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _record_cpu(oracle, window: int) -> list[float]:
    """Records the process' CPU time every `window` ended trials."""
    marks = [_cpu_s()]
    end_trial = oracle.end_trial

    def recording_end_trial(trial):
        end_trial(trial)
        if len(oracle.end_order) % window == 0:
            marks.append(_cpu_s())

    oracle.end_trial = recording_end_trial
    return marks


def _cpu_ms_per_trial(marks: list[float], window: int) -> list[float]:
    pairs = zip(marks[:-1], marks[1:], strict=True)
    return [1000.0 * (b - a) / window for a, b in pairs]


def serve(algo, directory, trials, state, window) -> None:
    """The chief (a subprocess): serves until the search is over."""
    _bookkeeping(state)
    tuner = make_tuner(algo, directory, trials)
    marks = _record_cpu(tuner.oracle, window)
    print(json.dumps({"ready": True}), flush=True)
    tuner.search(verbose=0)
    print(
        json.dumps(
            {
                "chief_cpu_s": _cpu_s(),
                "cpu_ms_per_trial": _cpu_ms_per_trial(marks, window),
            }
        )
    )


def _worker(client, tuner_id, trial_s, ended, errors):
    try:
        while True:
            trial = client.create_trial(tuner_id)
            if trial.status == trial_module.TrialStatus.STOPPED:
                return
            if trial.status != trial_module.TrialStatus.RUNNING:
                continue  # IDLE: the client waited already.
            time.sleep(trial_s)
            score = fake_score(trial.hyperparameters.values)
            client.update_trial(trial.trial_id, {"score": score})
            client.get_trial(trial.trial_id)
            trial.status = trial_module.TrialStatus.COMPLETED
            client.end_trial(trial)
            ended.append(time.perf_counter())
    except Exception as e:  # reported by the main thread
        errors.append(repr(e))


def run_grpc(algo, trials, workers, window, directory, trial_ms, state):
    port = _free_port()
    env = dict(os.environ)
    env.update(
        KERASTUNER_TUNER_ID="chief",
        KERASTUNER_ORACLE_IP="127.0.0.1",
        KERASTUNER_ORACLE_PORT=str(port),
    )
    chief = subprocess.Popen(
        [sys.executable, __file__, "--serve", algo, directory]
        + [str(trials), state, str(window)],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert json.loads(chief.stdout.readline())["ready"]
    local = make_tuner(algo, tempfile.mkdtemp(dir=directory), trials).oracle
    os.environ.update(
        KERASTUNER_TUNER_ID="bench",
        KERASTUNER_ORACLE_IP="127.0.0.1",
        KERASTUNER_ORACLE_PORT=str(port),
    )
    # Imported here: only this mode needs the worker client.
    from keras_nas.tuners._distributed import LeasedOracleClient

    clients = [LeasedOracleClient(local) for _ in range(workers)]
    ended, errors = [], []
    threads = [
        threading.Thread(
            target=_worker,
            args=(c, f"w{i}", trial_ms / 1000.0, ended, errors),
        )
        for i, c in enumerate(clients)
    ]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    out, _ = chief.communicate(timeout=600)
    if errors or chief.returncode != 0:
        raise RuntimeError(f"errors={errors[:3]} chief={chief.returncode}")
    chief = json.loads(out.strip().splitlines()[-1])
    return {
        "mode": "grpc",
        "oracle": algo,
        "state": state,
        "workers": workers,
        "trial_ms": trial_ms,
        "trials": len(ended),
        "wall_s": wall,
        "chief_cpu_s": chief["chief_cpu_s"],
        "trials_per_s": len(ended) / wall,
        "window_trials_per_s": _windows(ended, start, window),
        "cpu_ms_per_trial": chief["cpu_ms_per_trial"],
        "oracle_json_kib": _oracle_json_kib(directory, algo),
    }


def _report(result: dict) -> None:
    windows = " ".join(f"{r:.0f}" for r in result["window_trials_per_s"])
    cpu = " ".join(f"{c:.1f}" for c in result["cpu_ms_per_trial"])
    extra = (
        f"chief cpu {result['chief_cpu_s']:.1f} s"
        if "chief_cpu_s" in result
        else f"cpu {result['cpu_s']:.1f} s"
    )
    print(
        f"{result['mode']:9s} {result['oracle']:9s} {result['state']:7s} "
        f"{result['trials']} trials in {result['wall_s']:.1f} s: "
        f"{result['trials_per_s']:.1f} trials/s ({extra}); "
        f"per window: {windows} trials/s, {cpu} CPU ms/trial; oracle.json "
        f"{result['oracle_json_kib']:.0f} KiB",
        flush=True,
    )


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=32)
    parser.add_argument("--trial-ms", type=float, default=10.0)
    parser.add_argument("--window", type=int, default=250)
    parser.add_argument("--oracles", default="evolution,mcts,reinforce")
    parser.add_argument(
        "--mode", choices=["grpc", "inprocess", "both"], default="both"
    )
    parser.add_argument(
        "--state",
        choices=["full", "compact", "both"],
        default="compact",
        help="keras-tuner's bookkeeping (full: oracle.json with every "
        "value hash, every ended trial scanned for a failure streak, the "
        "space copied through its config per trial), keras-nas' (compact: "
        "`ResumableOracle.compact_state`, last trials scanned, "
        "`SharedSpaceHyperParameters.copy`), or both, interleaved",
    )
    parser.add_argument("--json", help="write the results to this file")
    parser.add_argument("--serve", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        algo, directory, trials, state, window = args.serve
        serve(algo, directory, int(trials), state, int(window))
        return
    results = []
    modes = ["inprocess", "grpc"] if args.mode == "both" else [args.mode]
    states = ["full", "compact"] if args.state == "both" else [args.state]
    runs = [
        (algo, mode, state)
        for algo in args.oracles.split(",")
        for mode in modes
        for state in states
    ]
    for algo, mode, state in runs:
        with tempfile.TemporaryDirectory() as directory:
            common = (algo, args.trials, args.workers, args.window, directory)
            if mode == "inprocess":
                result = run_inprocess(*common, state)
            else:
                result = run_grpc(*common, args.trial_ms, state)
        _report(result)
        results.append(result)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
