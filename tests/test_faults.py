"""Fault injection: `keras-nas search` killed, its files damaged, read-only.

Every case runs the command in a subprocess, as a user meets it, and checks:
exit status 0 or 2, no traceback, a one-line error naming the file, and no
finished trial lost or changed. One real search (killed with SIGKILL at a
seeded random point, then resumed) makes the project every other case
damages a copy of.
"""

import ctypes
import json
import os
import random
import re
import shutil
import signal
import stat
import subprocess
import sys
import time
import zipfile

import numpy as np
import pytest

from keras_nas import _project as project

# Another seed moves the kill point: KERAS_NAS_FAULT_SEED=7 pytest ...
SEED = int(os.environ.get("KERAS_NAS_FAULT_SEED", "1"))
# TensorFlow's C++ log lines at start-up (absl), not the command's output.
TF_LOG = re.compile(r"^([IWEF]\d{4} |WARNING: All log messages before)")
TINY = [
    "--max-trials", "2", "--epochs", "1", "--retrain-epochs", "1",
    "--num-nodes", "1", "--num-cells", "1", "--filters", "4",
    "--batch-size", "32", "--seed", "1",
]  # fmt: skip


def _command(*args):
    return [sys.executable, "-m", "keras_nas", *args]


def _env():
    return dict(os.environ, KERAS_BACKEND="tensorflow")


def _run(*args, preexec_fn=None, timeout=300):
    return subprocess.run(
        _command(*args),
        capture_output=True,
        text=True,
        env=_env(),
        timeout=timeout,
        preexec_fn=preexec_fn,
    )


def _search_args(data, directory, *extra):
    directory_args = ["--directory", directory]
    return ["search", "--dataset", data, *directory_args, *TINY, *extra]


def _one_error_line(out):
    """The single `error: ...` line of a refused run."""
    assert out.returncode == 2, out.stdout + out.stderr[-3000:]
    assert "Traceback" not in out.stdout + out.stderr
    lines = [
        ln
        for ln in out.stderr.strip().splitlines()
        if not TF_LOG.match(ln)
    ]
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


def _finished_trials(directory):
    """trial_id -> (status, score, values) of every finished trial file."""
    found = {}
    root = os.path.join(directory, "search")
    for name in os.listdir(root):
        path = os.path.join(root, name, "trial.json")
        if not name.startswith("trial_") or not os.path.isfile(path):
            continue
        with open(path) as f:
            state = json.load(f)
        if state["status"] in ("COMPLETED", "FAILED"):
            found[state["trial_id"]] = (
                state["status"],
                state["score"],
                state["hyperparameters"]["values"],
            )
    return found


@pytest.fixture(scope="module")
def tiny_npz(tmp_path_factory):
    from sklearn.datasets import load_digits

    digits = load_digits()
    path = tmp_path_factory.mktemp("data") / "digits150.npz"
    x = (digits.images[:150] * 255 / 16).astype("uint8")
    np.savez(path, x=x, y=digits.target[:150])
    return str(path)


@pytest.fixture(scope="module")
def killed_then_resumed(tiny_npz, tmp_path_factory):
    """A search killed with SIGKILL at a seeded random point, then resumed.

    The kill point: a seeded random delay after a seeded choice among the
    start line, the lines that end the first and second trials and the
    retraining line (so during the first trial, the second, the retraining
    or the end).
    """
    rng = random.Random(SEED)
    marker = rng.choice(
        ["keras-nas search:", "trial 0 done", "trial 1 done", "retraining"]
    )
    delay = rng.uniform(0.0, 2.0)
    directory = str(tmp_path_factory.mktemp("killed") / "run")
    args = _search_args(tiny_npz, directory)
    stderr = open(os.path.join(os.path.dirname(directory), "stderr"), "w")
    process = subprocess.Popen(
        _command(*args),
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
        env=_env(),
    )
    seen = []
    for line in process.stdout:
        seen.append(line)
        if line.startswith(marker):
            time.sleep(delay)
            break
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    stderr.close()
    at_kill = _finished_trials(directory)
    resumed = _run(*args)
    return {
        "directory": directory,
        "args": args,
        "marker": marker,
        "at_kill": at_kill,
        "killed_output": "".join(seen),
        "resumed": resumed,
    }


def test_sigkill_at_a_random_point_then_resume(killed_then_resumed):
    run = killed_then_resumed
    out = run["resumed"]
    assert out.returncode == 0, out.stdout + out.stderr[-3000:]
    assert "Traceback" not in out.stdout + out.stderr
    finished = _finished_trials(run["directory"])
    assert sorted(finished) == ["0", "1"]
    for trial_id, before in run["at_kill"].items():
        assert finished[trial_id] == before, trial_id
    with open(os.path.join(run["directory"], "results.json")) as f:
        results = json.load(f)
    assert results["status"] == "done"
    assert [t["trial_id"] for t in results["trials"]] == ["0", "1"]
    for trial in results["trials"]:
        assert trial["score"] == finished[trial["trial_id"]][1]
    # Trials finished before the kill did not run again.
    again = [ln for ln in out.stdout.splitlines() if " done: " in ln]
    assert len(again) == 2 - len(run["at_kill"])


@pytest.fixture()
def finished(killed_then_resumed, tmp_path):
    """A copy of the finished project, and its finished trials."""
    directory = str(tmp_path / "run")
    shutil.copytree(killed_then_resumed["directory"], directory)
    args = list(killed_then_resumed["args"])
    args[args.index("--directory") + 1] = directory
    return directory, args, _finished_trials(directory)


def _damage(path, fault):
    rng = random.Random(f"{SEED}{path}{fault}")
    if fault == "deleted":
        if os.path.isdir(os.path.dirname(path)) and path.endswith(
            "trial.json"
        ):
            shutil.rmtree(os.path.dirname(path))
        else:
            os.remove(path)
    elif fault == "truncated":
        with open(path, "rb") as f:
            data = f.read()
        with open(path, "wb") as f:
            f.write(data[: len(data) // 2])
    elif fault == "garbage":
        with open(path, "wb") as f:
            f.write(bytes(rng.randrange(256) for _ in range(300)))
    elif fault == "wrong JSON":
        with open(path, "w") as f:
            json.dump([1, 2, 3], f)


#: Files whose damage a resume refuses, naming them; `doctor` repairs all.
REFUSED = [
    "results.json",
    "search/oracle.json",
    "search/trial_1/trial.json",
]
FAULTS = ["deleted", "truncated", "garbage", "wrong JSON"]


@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize("name", REFUSED)
def test_damaged_file_is_refused_then_repaired_by_doctor(
    finished, name, fault
):
    directory, args, trials = finished
    path = os.path.join(directory, name)
    _damage(path, fault)
    line = _one_error_line(_run(*args))
    assert path in line
    assert f"keras-nas doctor {directory}" in line and "--overwrite" in line

    doctor = _run("doctor", directory)
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    assert "Traceback" not in doctor.stdout + doctor.stderr
    assert path in doctor.stdout
    assert project.check_project(directory) == []
    assert _finished_trials(directory) == trials  # Nothing lost or changed.
    if fault != "deleted":  # The damaged file is kept for the user.
        assert os.path.isfile(f"{path}.damaged")


def _set_tuner(directory, tuner):
    """Makes `directory` a search of `tuner` (its trial files fit any)."""
    for name in ("results.json", os.path.join("search", "cli_args.json")):
        with open(os.path.join(directory, name)) as f:
            data = json.load(f)
        (data["args"] if "args" in data else data)["tuner"] = tuner
        with open(os.path.join(directory, name), "w") as f:
            json.dump(data, f)


def test_doctor_rebuilds_the_oracle_of_stateful_tuners(
    tiny_npz, tmp_path, monkeypatch
):
    # oracle.json lost: the oracle's own state (population, tree,
    # controller, surrogate) is rebuilt over keras-tuner's base state from
    # the trial files, then the search resumes without repeating or losing
    # a trial. In the test process (TensorFlow already imported), and the
    # other tuners on copies of the evolution search, to stay cheap.
    import keras_tuner
    from keras_tuner.src import config, utils

    from keras_nas import _doctor, cli

    monkeypatch.setattr(config, "DEBUG", config.DEBUG)
    monkeypatch.setattr(utils, "save_json", utils.save_json)
    directory = str(tmp_path / "run")
    args = _search_args(tiny_npz, directory, "--tuner", "evolution")
    assert cli.main([*args, "--quiet"]) == 0
    trials = _finished_trials(directory)
    assert sorted(trials) == ["0", "1"]
    path = os.path.join(directory, "search", "oracle.json")
    with open(path) as f:
        saved = json.load(f)
    for tuner, module, name in sorted(
        (t, *v) for t, v in project.STATEFUL_ORACLES.items()
    ):
        copy = str(tmp_path / tuner)
        shutil.copytree(directory, copy)
        copy_path = os.path.join(copy, "search", "oracle.json")
        _set_tuner(copy, tuner)
        os.remove(copy_path)
        (problem,) = project.check_project(copy)
        line = problem.line(copy)
        assert copy_path in line and f"keras-nas doctor {copy}" in line
        lines = _doctor.doctor(copy)
        assert lines[0] == f"{copy_path}: rebuilt from 2 trial files", tuner
        with open(copy_path) as f:
            rebuilt = json.load(f)
        for key in ("start_order", "end_order", "seed"):
            assert rebuilt[key] == saved[key], (tuner, key)
        assert project.check_project(copy) == []
        if tuner == "evolution":
            assert set(rebuilt) == set(saved)  # Every key the oracle loads.
            continue
        # The tuner's oracle loads it and hands out a new trial, not one of
        # the finished ones.
        oracle_class = getattr(__import__(module, fromlist=[name]), name)
        oracle = oracle_class(
            objective=keras_tuner.Objective("val_accuracy", "max"),
            max_trials=3,
            seed=1,
        )
        oracle._set_project_dir(copy, "search")
        oracle.reload()
        trial = oracle.create_trial("tuner0")
        assert trial.trial_id == "2", tuner
        done = [t[2] for t in trials.values()]
        assert trial.hyperparameters.values not in done, tuner

    # The evolution search resumes: one more trial, the others unchanged.
    os.remove(path)
    assert _doctor.doctor(directory)[0].startswith(f"{path}: rebuilt")
    assert cli.main([*args, "--max-trials", "3", "--quiet"]) == 0
    after = _finished_trials(directory)
    assert sorted(after) == ["0", "1", "2"]
    assert {k: after[k] for k in trials} == trials  # Nothing changed.
    assert after["2"][2] not in [t[2] for t in trials.values()]


def test_doctor_says_what_to_do_when_it_cannot_rebuild_an_oracle(finished):
    # Hyperband's brackets live only in oracle.json: one line, the way out.
    directory, _, trials = finished
    _set_tuner(directory, "hyperband")
    path = os.path.join(directory, "search", "oracle.json")
    os.remove(path)
    line = _one_error_line(_run("doctor", directory))
    assert path in line
    assert "cannot rebuild the hyperband tuner's state" in line
    assert "restore the file" in line and "--overwrite" in line
    assert _finished_trials(directory) == trials


def test_lost_search_folder_is_refused_even_by_doctor(finished):
    # results.json still lists the trials, but nothing records the space:
    # only --overwrite (or the folder restored), and doctor changes nothing.
    directory, args, _ = finished
    shutil.rmtree(os.path.join(directory, "search"))
    before = sorted(os.listdir(directory))
    for command in (args, ["doctor", directory]):
        line = _one_error_line(_run(*command))
        assert os.path.join(directory, "search", "trial_0") in line
        assert "--overwrite" in line and "keras-nas doctor" not in line
    assert sorted(os.listdir(directory)) == before


def test_crash_states_and_a_lost_trial_folder_then_more_trials(finished):
    # trial_0's folder deleted (keras-tuner would hand its id out again,
    # then fail with a KeyError): refused, repaired by doctor. Then, in one
    # resume with a larger budget, the states a crash leaves: tuner0.json
    # lost (killed between keras-tuner's two saves; keras-tuner would
    # restart from zero over the trials), a truncated best model (was kept
    # as "unchanged"), a garbage argument copy, a leftover temporary file.
    directory, args, trials = finished
    shutil.rmtree(os.path.join(directory, "search", "trial_0"))
    line = _one_error_line(_run(*args))
    assert os.path.join(directory, "search", "trial_0", "trial.json") in line
    assert _run("doctor", directory).returncode == 0
    _damage(os.path.join(directory, "search", "tuner0.json"), "deleted")
    _damage(os.path.join(directory, "best_model.keras"), "truncated")
    _damage(os.path.join(directory, "search", "cli_args.json"), "garbage")
    tmp = os.path.join(directory, "search", "oracle.json.tmp")
    with open(tmp, "w") as f:
        f.write("{half")
    more = list(args)
    more[more.index("--max-trials") + 1] = "3"
    out = _run(*more)
    assert out.returncode == 0, out.stdout + out.stderr[-3000:]
    assert "Traceback" not in out.stdout + out.stderr
    assert "tuner0.json is missing: rewritten" in out.stdout
    new = [ln for ln in out.stdout.splitlines() if ln.startswith("trial")]
    assert len(new) == 2 and new[0].startswith("trial 2 (3/3)")
    assert new[1].startswith("trial 2 done:")
    now = _finished_trials(directory)
    assert sorted(now) == ["0", "1", "2"]  # A new id, none reused.
    for trial_id, before in trials.items():
        assert now[trial_id] == before
    assert not os.path.exists(tmp)
    # The model file is whole and is the one results.json describes.
    assert "unchanged" not in out.stdout
    path = os.path.join(directory, "best_model.keras")
    assert zipfile.is_zipfile(path)
    with open(os.path.join(directory, "results.json")) as f:
        results = json.load(f)
    assert results["retrained"]["sha256"] == project.file_digest(path)
    assert [t["trial_id"] for t in results["trials"]] == ["0", "1", "2"]


def _drop_file_privileges():
    """preexec_fn: no longer bypass file permissions (root without
    CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH and CAP_FOWNER: the interpreter,
    under /root, stays readable, which the nobody user cannot do)."""
    libc = ctypes.CDLL(None, use_errno=True)
    for capability in (1, 2, 3):
        if libc.prctl(24, capability, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def test_read_only_directory_as_a_non_root_user(finished):
    directory, args, trials = finished
    preexec = _drop_file_privileges if os.geteuid() == 0 else None
    probe = subprocess.run(
        ["sh", "-c", f"touch {directory}/probe"], preexec_fn=preexec
    )
    assert probe.returncode == 0
    os.remove(os.path.join(directory, "probe"))
    for root, dirs, files in os.walk(directory):
        for name in dirs + files + [""]:
            path = os.path.join(root, name)
            os.chmod(path, os.stat(path).st_mode & ~0o222)
    try:
        for extra in ([], ["--overwrite"]):
            out = _run(*args, *extra, preexec_fn=preexec)
            line = _one_error_line(out)
            assert directory in line and "cannot be written" in line
        doctor = _run("doctor", directory, preexec_fn=preexec)
        assert doctor.returncode == 0, doctor.stderr
        assert "nothing to repair" in doctor.stdout
    finally:
        for root, dirs, files in os.walk(directory):
            for name in dirs + files + [""]:
                path = os.path.join(root, name)
                os.chmod(path, os.stat(path).st_mode | stat.S_IWUSR)
    assert _finished_trials(directory) == trials


def test_kill_before_the_first_results_starts_afresh(tmp_path):
    # keras-tuner's folder exists (a trial was running), results.json is
    # half written (by an older version: it is written atomically now).
    directory = tmp_path / "run"
    trial = directory / "search" / "trial_0"
    trial.mkdir(parents=True)
    (directory / "search" / "oracle.json").write_text(
        json.dumps(
            {
                "ongoing_trials": {"tuner0": "0"},
                "start_order": ["0"],
                "end_order": [],
                "hyperparameters": {"space": [], "values": {}},
            }
        )
    )
    (trial / "trial.json").write_text(
        json.dumps(
            {
                "trial_id": "0",
                "hyperparameters": {"space": [], "values": {}},
                "metrics": {"metrics": {}},
                "score": None,
                "status": "RUNNING",
            }
        )
    )
    (directory / "results.json").write_text('{"status": "sear')
    previous, notes = project.open_for_resume(str(directory))
    assert previous is None
    assert "results.json is damaged" in notes[0]
    assert "starting afresh" in notes[1]
    assert not (directory / "search").exists()
    # A damaged file is never silently overwritten.
    assert (directory / "results.json.damaged").read_text().startswith("{")
