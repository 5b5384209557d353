"""The record of a `keras-nas search`: its directory and what it writes.

`prepare_directory` clears (`--overwrite`) or checks a directory to resume;
`Run` holds one invocation's state and writes `results.json` after every
trial, with the trial lines of the console; `save_best` and `plots` write
the best trial's files and figures. Trials are numbered by keras-tuner's
trial id everywhere (`trial_number`).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import time
from typing import Any

from keras_nas import _project
from keras_nas._cli_env import UsageError
from keras_nas._cli_export import EXPORT_DIR
from keras_nas._cli_show import FILES, describe
from keras_nas._cli_tuners import PROJECT_NAME
from keras_nas._project import ProjectError, open_for_resume
from keras_nas.blocks.genotypes import Genotype, NasBench201Genotype

#: Files of a run (those `show` lists); `--overwrite` removes exactly these
#: (and the tuner's project folder), never anything else in the directory.
ARTEFACTS = FILES

#: Arguments that must match for a directory to be resumed.
RESUME_KEYS = ("space", "tuner", "dataset", "seed", "epochs", "batch_size")


def trial_number(trial_id: str) -> str:
    # keras-tuner's trial id is THE trial number: the same in the console,
    # results.json, `search/trial_<id>` and the TensorBoard run `<id>`.
    return str(trial_id)


def genotype_of(space: Any, values: dict[str, Any]) -> Any:
    to_genotype = getattr(space, "genotype", None)
    if to_genotype is None:
        return None
    try:
        return to_genotype(values)
    except ValueError:
        return None


def summary(space: Any, values: dict[str, Any], width: int = 160) -> str:
    text = describe(values, genotype_of(space, values))
    return text if len(text) <= width else text[: width - 3] + "..."


def write_json(path: str, data: Any) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(data, f, indent=2, default=_json_default)
        f.write("\n")
    os.replace(tmp, path)


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):  # NumPy scalars.
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def prepare_directory(args: argparse.Namespace) -> dict[str, Any] | None:
    """Clears or checks `--directory`; returns previous results to resume."""
    directory, tb = args.directory, getattr(args, "tensorboard", None)
    if os.path.exists(directory) and not os.path.isdir(directory):
        raise UsageError(
            f"--directory {directory!r} exists and is not a directory"
        )
    project = os.path.join(directory, PROJECT_NAME)
    for flag, path in (("--directory", directory), ("--tensorboard", tb)):
        try:
            if path is not None:
                _project.check_writable(path, flag)
        except ProjectError as e:
            raise UsageError(str(e)) from e
    if args.overwrite:
        for name in ARTEFACTS:
            path = os.path.join(directory, name)
            if os.path.isfile(path):
                os.remove(path)
        shutil.rmtree(project, ignore_errors=True)
        shutil.rmtree(os.path.join(directory, EXPORT_DIR), ignore_errors=True)
        return None
    try:
        previous, notes = open_for_resume(directory)
    except ProjectError as e:
        raise UsageError(str(e)) from e
    for note in notes:
        print(note, flush=True)
    if previous is None:
        return None
    old = previous.get("args", {})
    for key in RESUME_KEYS:
        if key in old and old[key] != getattr(args, key):
            flag = "--" + key.replace("_", "-")
            raise UsageError(
                f"--directory {directory!r} holds a search with {flag} "
                f"{old[key]!r} (this run: {getattr(args, key)!r}); pass "
                "--overwrite or another --directory"
            )
    return previous


class Run:
    """State of one `keras-nas search` invocation."""

    def __init__(self, args: argparse.Namespace, previous: dict | None):
        self.args = args
        self.previous = previous or {}
        self.started = time.perf_counter()
        self.trial_seconds: dict[str, float] = dict(
            (t["trial_id"], t["seconds"])
            for t in self.previous.get("trials", [])
            if t.get("seconds") is not None
        )
        self.space = None
        self.tuner = None
        self.strategy = None  # --devices (keras_nas._cli_devices).

    def say(self, text: str) -> None:
        if not self.args.quiet:
            print(text, flush=True)

    def best_trial(self) -> Any:
        oracle = self.tuner.oracle
        ranked = [
            t
            for t in oracle.get_best_trials(len(oracle.trials))
            if not diverged(t)
        ]
        if not ranked:
            return None
        # Ties go to the earliest trial, however the trials were loaded.
        direction = getattr(oracle.objective, "direction", "max")
        sign = -1 if direction == "max" else 1
        return min(ranked, key=lambda t: (sign * t.score, _order(t.trial_id)))

    def announce(self, trial: Any) -> None:
        budget = getattr(self.tuner.oracle, "max_trials", None)
        count = len(self.tuner.oracle.trials)
        of = f"{count}/{budget}" if budget else str(count)
        self.say(
            f"trial {trial_number(trial.trial_id)} ({of}): "
            f"{summary(self.space, trial.hyperparameters.values)}"
        )

    def report(self, trial: Any, seconds: float) -> None:
        self.trial_seconds[trial.trial_id] = round(seconds, 2)
        best = self.best_trial()
        score = "failed" if trial.score is None else f"{trial.score:.4f}"
        if trial.score is not None and diverged(trial):
            score += " (diverged)"
        elif trial.score is None and trial.message:
            score += f" ({trial.message.strip().splitlines()[-1][:120]})"
        best_text = (
            "n/a"
            if best is None
            else f"{best.score:.4f} (trial {trial_number(best.trial_id)})"
        )
        elapsed = time.perf_counter() - self.started
        self.say(
            f"trial {trial_number(trial.trial_id)} done: "
            f"score={score} best={best_text} "
            f"time={seconds:.1f}s elapsed={elapsed:.1f}s"
        )
        self.write_results(status="searching")

    def trials(self) -> list[dict[str, Any]]:
        out = []
        trials = self.tuner.oracle.trials.values()
        for trial in sorted(trials, key=lambda t: _order(t.trial_id)):
            values = dict(trial.hyperparameters.values)
            genotype = genotype_of(self.space, values)
            out.append(
                {
                    "trial_id": trial.trial_id,
                    "status": str(trial.status),
                    "score": trial.score,
                    "seconds": self.trial_seconds.get(trial.trial_id),
                    "hyperparameters": values,
                    "genotype": None
                    if genotype is None
                    else genotype.to_dict(),
                }
            )
        return out

    def write_results(self, status: str, **extra: Any) -> dict[str, Any]:
        best = self.best_trial()
        results = {
            "status": status,
            "args": vars(self.args),
            "objective": "val_accuracy",
            "trials": self.trials(),
            "best": None
            if best is None
            else {
                "trial_id": best.trial_id,
                "score": best.score,
                "hyperparameters": dict(best.hyperparameters.values),
            },
        }
        for key in ("test_accuracy", "test_loss", "timings", "retrained"):
            if key in self.previous:
                results[key] = self.previous[key]
        results.update(extra)
        write_json(os.path.join(self.args.directory, "results.json"), results)
        return results


def diverged(trial: Any) -> bool:
    """Whether a trial failed or ended with a non-finite score or loss."""
    if trial.score is None or not math.isfinite(trial.score):
        return True
    metrics = trial.metrics
    for name in ("loss", "val_loss"):
        if metrics.exists(name):
            value = metrics.get_last_value(name)
            if value is not None and not math.isfinite(value):
                return True
    return False


def _order(trial_id: str) -> tuple[int, str]:
    return (int(trial_id), "") if str(trial_id).isdigit() else (0, trial_id)



def save_best(run: Run, best: Any) -> Any:
    directory = run.args.directory
    values = dict(best.hyperparameters.values)
    write_json(os.path.join(directory, "best_hyperparameters.json"), values)
    genotype = genotype_of(run.space, values)
    if genotype is not None:
        write_json(
            os.path.join(directory, "best_genotype.json"), genotype.to_dict()
        )
    return genotype


def plots(run: Run, genotype: Any) -> None:
    from keras_nas.visualize import draw_genotype, plot_history

    directory = run.args.directory
    plot_history(
        run.tuner,
        path=os.path.join(directory, "history.png"),
        title=f"{run.args.tuner} search on {run.args.dataset}",
    )
    if isinstance(genotype, (Genotype, NasBench201Genotype)):
        # A cell to draw (a MobileNet genotype is a list of blocks: its
        # best_genotype.json says all).
        number = trial_number(run.best_trial().trial_id)
        draw_genotype(
            genotype,
            path=os.path.join(directory, "best_cell.png"),
            title=f"Best cell (trial {number})",
        )


def no_best_message(run: Run) -> str:
    trials = list(run.tuner.oracle.trials.values())
    failed = [t for t in trials if t.score is None]
    text = (
        f"every trial failed or diverged ({len(trials)} trials: "
        f"{len(failed)} failed, {len(trials) - len(failed)} ended with a "
        "non-finite loss or score); nothing to retrain; see "
        f"{os.path.join(run.args.directory, 'results.json')}"
    )
    messages = [t.message for t in failed if t.message]
    if messages:
        last = messages[-1].strip().splitlines()[-1]
        text += f"; last failure: {last[:200]}"
    return text
