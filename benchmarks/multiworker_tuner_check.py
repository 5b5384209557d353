"""keras-tuner's chief/worker mode with a `MirroredStrategy` per worker.

TensorFlow backend. This process starts, on loopback, a chief and
`--workers` worker processes of this script (keras-tuner's
`KERASTUNER_TUNER_ID`, `KERASTUNER_ORACLE_IP` and `KERASTUNER_ORACLE_PORT`,
a port from the OS). Every process builds the same `AgingEvolution` search
of a tiny `CellSearchSpace` (1 cell, 2 nodes, 4 filters; 192 + 64 digits
images, 1 epoch, global batch 64, `max_trials` 6); each worker passes
`distribution_strategy=tf.distribute.MirroredStrategy` over its 2 logical
CPUs (`tf.config.set_logical_device_configuration`), so keras-tuner builds
and fits each of its trials' models in that strategy's scope; the chief
only serves the oracle. Each worker logs, per trial, its start, the
number of replicas `fit` ran on (read in a callback from the model's
`distribute_strategy`), the type of the model's variables and its end.

Checked and printed as one JSON line: every trial the chief knows ended
`COMPLETED` and started and ended exactly once over all workers, exactly
`max_trials` trials, every fit on 2 replicas with `MirroredVariable`s, and
the exit status of every process.

Usage:

    python benchmarks/multiworker_tuner_check.py /tmp/cluster
    python benchmarks/multiworker_tuner_check.py /tmp/cluster --workers 2
"""

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import time

os.environ["KERAS_BACKEND"] = "tensorflow"

import tensorflow as tf  # noqa: E402

tf.config.set_logical_device_configuration(
    tf.config.list_physical_devices("CPU")[0],
    [tf.config.LogicalDeviceConfiguration()] * 2,
)

import keras  # noqa: E402

from keras_nas.data import load_digits_arrays  # noqa: E402
from keras_nas.spaces import CellSearchSpace  # noqa: E402
from keras_nas.tuners import AgingEvolution  # noqa: E402

MAX_TRIALS = 6
LOG = "trials.log"
CURRENT = {}  # this process's running trial (callbacks are deep-copied)


def _log(directory, **record):
    record["time"] = time.time()
    with open(os.path.join(directory, LOG), "a") as f:
        f.write(json.dumps(record) + "\n")


class LoggedEvolution(AgingEvolution):
    """`AgingEvolution` that logs each trial it runs (start and end)."""

    def run_trial(self, trial, *args, **kwargs):
        record = {"trial": trial.trial_id, "tuner": self.tuner_id}
        _log(self.project_dir, event="start", **record)
        CURRENT.update(record, directory=self.project_dir)
        result = super().run_trial(trial, *args, **kwargs)
        _log(self.project_dir, event="end", **record)
        return result


class Replicas(keras.callbacks.Callback):
    """Logs the replicas and variable type of each trial's `fit`."""

    def on_train_begin(self, logs=None):
        _log(
            CURRENT["directory"],
            event="fit",
            trial=CURRENT["trial"],
            tuner=CURRENT["tuner"],
            replicas=self.model.distribute_strategy.num_replicas_in_sync,
            variable=type(self.model.weights[0].value).__name__,
        )


def _tuner(directory, strategy):
    space = CellSearchSpace(
        input_shape=(8, 8, 1), num_classes=10, num_cells=1, filters=4,
        num_nodes=2,
    )  # fmt: skip
    return LoggedEvolution(
        space, max_trials=MAX_TRIALS, population_size=3, sample_size=2,
        objective="val_accuracy", seed=1, directory=directory,
        project_name="search", distribution_strategy=strategy,
    )  # fmt: skip


def _role(directory, role):
    """The chief or a worker (`KERASTUNER_*` set by the launcher)."""
    x, y = load_digits_arrays()
    x, y = x[:256], y[:256].astype("int32")
    strategy = None
    if role == "worker":
        strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    tuner = _tuner(directory, strategy)
    tuner.search(
        x[:192], y[:192], validation_data=(x[192:], y[192:]), epochs=1,
        batch_size=64, verbose=0, callbacks=[Replicas()],
    )  # fmt: skip
    if role == "chief":
        trials = tuner.oracle.trials.values()
        print(json.dumps({t.trial_id: t.status for t in trials}), flush=True)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch(directory, workers):
    shutil.rmtree(directory, ignore_errors=True)
    os.makedirs(directory)
    env = {k: v for k, v in os.environ.items() if "KERASTUNER" not in k}
    env.update(
        KERASTUNER_ORACLE_IP="127.0.0.1",
        KERASTUNER_ORACLE_PORT=str(_free_port()),
        TF_CPP_MIN_LOG_LEVEL="3",
    )
    ids = ["chief"] + [f"worker{i}" for i in range(workers)]
    t0 = time.time()
    procs = {}
    for tuner_id in ids:
        role = "chief" if tuner_id == "chief" else "worker"
        procs[tuner_id] = subprocess.Popen(
            [sys.executable, __file__, directory, "--role", role],
            env=dict(env, KERASTUNER_TUNER_ID=tuner_id),
            stdout=subprocess.PIPE,
            stderr=open(os.path.join(directory, f"{tuner_id}.err"), "w"),
            text=True,
        )
    while procs["chief"].poll() is None:  # a failed worker stops all
        if any(procs[p].poll() not in (None, 0) for p in ids[1:]):
            procs["chief"].kill()
        time.sleep(1)
    out = {p: procs[p].communicate(timeout=3600)[0] for p in ids}
    wall = time.time() - t0
    status = json.loads(out["chief"].strip().splitlines()[-1])
    with open(os.path.join(directory, "search", LOG)) as f:
        log = [json.loads(line) for line in f if line.strip()]
    starts = [r["trial"] for r in log if r["event"] == "start"]
    ends = [r["trial"] for r in log if r["event"] == "end"]
    fits = [r for r in log if r["event"] == "fit"]
    per_worker = {}
    for r in log:
        if r["event"] == "end":
            per_worker[r["tuner"]] = per_worker.get(r["tuner"], 0) + 1
    report = {
        "exit_codes": {p: procs[p].returncode for p in ids},
        "trials": len(status),
        "max_trials": MAX_TRIALS,
        "all_completed": all(s == "COMPLETED" for s in status.values()),
        "each_started_once": sorted(starts) == sorted(status),
        "each_ended_once": sorted(ends) == sorted(status),
        "trials_per_worker": per_worker,
        "fit_replicas": sorted({r["replicas"] for r in fits}),
        "fit_variables": sorted({r["variable"] for r in fits}),
        "fits": len(fits),
        "wall_seconds": round(wall, 1),
    }
    print(json.dumps(report))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("directory")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--role", choices=("chief", "worker"))
    args = parser.parse_args(argv)
    if args.role:
        _role(args.directory, args.role)
    else:
        _launch(args.directory, args.workers)


if __name__ == "__main__":
    main()
