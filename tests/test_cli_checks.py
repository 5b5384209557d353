"""Input, size and outcome checks of `keras-nas search` (issue 11).

Each bad input must end in exit status 2 and one line `error: ...` that
says what was found, before any training. These run `keras_nas.cli.main`
in the test process (the subprocess path is covered by test_cli.py and
test_faults.py); a failed or diverged search is checked the same way.
"""

import json
import math
import types

import numpy as np
import pytest

from keras_nas import _cli_results, _doctor, _size_checks, cli
from keras_nas import _project as project
from keras_nas.data import load_dataset


@pytest.fixture(scope="module")
def digits():
    from sklearn.datasets import load_digits

    data = load_digits()
    return data.images[:200] / 16.0, data.target[:200]


def _bad_npz(tmp_path, digits, case):
    x, y = digits
    x, y = x.copy(), y.copy()
    path = tmp_path / f"{case}.npz"
    if case == "nan":
        x[5, 0, 0] = np.nan
    elif case == "inf":
        x[7, 1, 1] = -np.inf
    elif case == "1e38":
        x[9, 2, 2] = 1e38
    elif case == "3 samples":
        x, y = x[:3], y[:3]
    elif case == "label 10**6":
        y[0] = 10**6
    elif case == "complex":
        x = x.astype(complex)
    elif case == "empty":
        x, y = x[:0], y[:0]
    elif case == "labels from 1":
        y = y + 1
    elif case == "one class":
        y = np.zeros_like(y)
    elif case == "float labels":
        y = y.astype(float)
    if case == ".npy renamed":
        np.save(tmp_path / "a.npy", x)
        (tmp_path / "a.npy").rename(path)
    else:
        np.savez(path, x=x, y=y)
    return str(path)


BAD_DATA = {
    "nan": "1 non-finite values (nan) in 1 examples, the first at index 5",
    "inf": "(-inf)",
    "1e38": "max |x| = 1e+38",
    "3 samples": "with 3 examples; class 0 has 1",
    "label 10**6": "label 1000000 (1000001 classes)",
    "complex": "x.dtype=complex128 (complex)",
    "empty": "x.shape=(0, 8, 8, 1)",
    ".npy renamed": "(a .npy file: one array)",
    "labels from 1": "no example of class 0",
    "one class": "at least 2 classes",
    "float labels": "y.dtype=float64",
}


def _error_line(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("error: ")
    return err[0]


@pytest.mark.parametrize("case", sorted(BAD_DATA))
def test_bad_data_is_refused_before_training(case, digits, tmp_path, capsys):
    path = _bad_npz(tmp_path, digits, case)
    directory = tmp_path / "run"
    argv = ["search", "--dataset", path, "--directory", str(directory)]
    status = cli.main(argv)
    assert status == 2
    assert BAD_DATA[case] in _error_line(capsys)
    assert not (directory / "results.json").exists()


def test_split_too_small_for_the_classes(digits, tmp_path):
    # 3 examples of each of 10 classes: a 20% validation split gets 6.
    x, y = digits
    keep = np.concatenate([np.flatnonzero(y == c)[:3] for c in range(10)])
    path = str(tmp_path / "thirty.npz")
    np.savez(path, x=x[keep], y=y[keep])
    with pytest.raises(ValueError, match="the validation split gets 6"):
        load_dataset(path)


OPTIONS = {
    # Over keras-nas' limits: refused by the parser, before any import.
    "filters 10**9": (["--filters", "1000000000"], "up to 65536"),
    "num-nodes 10**6": (["--num-nodes", "1000000"], "up to 64"),
    "num-cells 10**5": (["--num-cells", "100000"], "up to 1024"),
    # Within the limits, over the memory: refused before building.
    "sizes over memory": (
        ["--filters", "65536", "--num-cells", "1024", "--num-nodes", "64"],
        "weights",
    ),
    "seed 2**32": (["--seed", "4294967296"], "2**32 - 1"),
    "directory in /proc": (["--directory", "/proc/x"], "'/proc/x' cannot"),
    "tensorboard is a file": (["--tensorboard", "{file}"], "not a directory"),
}


@pytest.mark.parametrize("case", sorted(OPTIONS))
def test_bad_options_are_one_line(case, tmp_path, capsys):
    options, expected = OPTIONS[case]
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    options = [o.format(file=a_file) for o in options]
    argv = ["search", "--directory", str(tmp_path / "run"), *options]
    if case.startswith(("seed", "filters", "num-")):
        with pytest.raises(SystemExit) as stop:
            cli.main(argv)
        status = stop.value.code
    else:
        status = cli.main(argv)
    assert status == 2
    line = _error_line(capsys)
    assert expected in line
    if "weights" in expected or "layers" in expected:
        assert "of memory available" in line


def test_size_estimate_against_the_memory_available():
    options = {
        "num_nodes": 4,
        "num_cells": (2, 3),
        "filters": (8, 16),
    }
    small = _size_checks.estimate(
        "CellSearchSpace", options, (8, 8, 1), 10, 32
    )
    assert 0 < small["bytes"] < 100 * 2**20
    # The same space is refused when less than its bound is available.
    with pytest.raises(ValueError, match="needs at least"):
        _size_checks.check_space_size(
            "CellSearchSpace",
            options,
            (8, 8, 1),
            10,
            32,
            available=small["bytes"] - 1,
        )
    assert _size_checks.available_memory() > 0
    nb201 = _size_checks.estimate(
        "NasBench201SearchSpace",
        {"filters": 16, "cells_per_stage": 5},
        (32, 32, 3),
        10,
        32,
    )
    assert nb201["layers"] == 90
    # Before the data is loaded: the sizes not given at their smallest, a
    # 1x1x1 input: a lower bound of the space on any data.
    for name, given, full in (
        ("CellSearchSpace", {"filters": 16}, {**options, "filters": 16}),
        (
            "NasBench201SearchSpace",
            {"cells_per_stage": 5},
            {"filters": 16, "cells_per_stage": 5},
        ),
    ):
        early = _size_checks.check_sizes_early(name, given, 32)
        found = _size_checks.estimate(name, full, (8, 8, 1), 10, 32)
        assert 0 < early["bytes"] <= found["bytes"]
    assert _size_checks.check_sizes_early("GraphSearchSpace", {}, 32) is None


def _trial(trial_id, score, loss=1.0, status="COMPLETED"):
    from keras_tuner.engine import trial as trial_module

    trial = trial_module.Trial(None, trial_id=trial_id, status=status)
    trial.score = score
    trial.metrics.register("val_loss", direction="min")
    trial.metrics.update("val_loss", loss)
    if score is None:
        trial.message = "Traceback ...\nValueError: boom"
    return trial


def _run_with(trials, tmp_path):
    oracle = types.SimpleNamespace(
        trials={t.trial_id: t for t in trials},
        objective=types.SimpleNamespace(direction="max"),
        get_best_trials=lambda n: trials[:n],
    )
    args = types.SimpleNamespace(directory=str(tmp_path), quiet=True)
    run = _cli_results.Run(args, None)
    run.tuner = types.SimpleNamespace(oracle=oracle)
    return run


def test_diverged_and_failed_trials_are_never_the_best(tmp_path):
    trials = [
        _trial("0", 0.9, loss=math.nan),
        _trial("1", None, status="FAILED"),
        _trial("2", 0.5),
        _trial("3", 0.5),
    ]
    assert _cli_results.diverged(trials[0]) and _cli_results.diverged(trials[1])
    assert not _cli_results.diverged(trials[2])
    # Ties go to the earliest trial.
    assert _run_with(trials, tmp_path).best_trial().trial_id == "2"
    run = _run_with(trials[:2], tmp_path)
    assert run.best_trial() is None
    message = _cli_results.no_best_message(run)
    assert "every trial failed or diverged (2 trials: 1 failed, 1 ended" in (
        message
    )
    assert "last failure: ValueError: boom" in message


def test_every_trial_failing_is_one_line(tmp_path, capsys, monkeypatch):
    # --max-params 1 fails every trial (keras-tuner then returned a failed
    # trial with score None, and the progress line raised a TypeError).
    from keras_tuner.src import config, utils

    monkeypatch.setattr(config, "DEBUG", config.DEBUG)
    monkeypatch.setattr(utils, "save_json", utils.save_json)
    directory = tmp_path / "run"
    status = cli.main(
        [
            "search", "--directory", str(directory), "--max-trials", "2",
            "--epochs", "1", "--num-nodes", "1", "--num-cells", "1",
            "--filters", "4", "--max-params", "1", "--quiet",
        ]
    )  # fmt: skip
    assert status == 2
    line = _error_line(capsys)
    assert "every trial failed or diverged (2 trials: 2 failed" in line
    assert "Over budget" in line and "--max-params 1" in line
    with open(directory / "results.json") as f:
        assert json.load(f)["status"] == "failed"


def test_unrepairable_problems_say_so(tmp_path):
    # results.json lost and no copy of the arguments: only --overwrite.
    trial = tmp_path / "search" / "trial_0"
    trial.mkdir(parents=True)
    (trial / "trial.json").write_text(
        json.dumps(
            {
                "trial_id": "0",
                "hyperparameters": {"space": [], "values": {"a": 1}},
                "metrics": {"metrics": {}},
                "score": 0.5,
                "status": "COMPLETED",
            }
        )
    )
    (tmp_path / "search" / "oracle.json").write_text("{")
    problems = project.check_project(str(tmp_path))
    assert [p.repair for p in problems] == [None, None]
    assert "results.json is missing" in problems[0].line(str(tmp_path))
    assert "pass --overwrite" in problems[0].line(str(tmp_path))
    with pytest.raises(project.ProjectError, match="results.json"):
        _doctor.repair_project(str(tmp_path))
    # Nothing was changed.
    assert (tmp_path / "search" / "oracle.json").read_text() == "{"
