"""The project directory of `keras-nas search`, kept as a small database.

`keras-nas search --directory DIR` writes:

- `DIR/results.json` (ours, atomic): `status` (`"searching"`, then
  `"done"`), `args` (the command's arguments), `trials` (id, status, score,
  hyperparameter values of every trial), `best`, and once done `retrained`
  (with the SHA-256 of `best_model.keras`), test scores and timings. It is
  written before the search starts, and after every trial.
- `DIR/search/` (keras-tuner's project; `install_atomic_tuner_writes` makes
  its JSON writes atomic): `oracle.json` (the oracle's state: trial order,
  values tried, seed state), `tuner0.json` (the tuner's state: `{}` for every
  tuner the command offers), `trial_<id>/trial.json` (one trial: values,
  metrics, score, status), `trial_<id>/checkpoint.weights.h5` and
  `build_config.json` (not needed to resume: the best model is retrained),
  `cli_args.json` (a copy of `args`, to rebuild `results.json`).
- Once done: `best_model.keras`, `best_hyperparameters.json`,
  `best_genotype.json` (cell spaces), `history.png`, `best_cell.png`.

Invariants checked before a search resumes (`open_for_resume`):

1. `results.json` is a JSON object with `args`; if it is missing, there is
   no finished trial in `search/` (else the run is refused: nothing that
   holds a finished trial is ever overwritten).
2. Every `trial_<id>/trial.json` is a readable trial whose `trial_id` is
   `<id>`.
3. If `search/` holds trials, `oracle.json` is a readable oracle state and
   every trial id it started has its `trial.json`, so keras-tuner never
   hands out the id of a finished trial again (it numbers new trials by
   counting the trial files).
4. Every trial `results.json` lists as finished has its `trial.json`.

States a crash leaves are not errors: a run killed before its first trial
finished starts afresh; a missing `tuner0.json` (killed between keras-tuner's
two saves) is rewritten, as it holds no state; leftover `*.tmp` files of an
atomic write are removed. Anything else is refused with one line naming the
file and the way out: `keras-nas doctor DIR` (`keras_nas._doctor`), which
rebuilds what the other files still record (a `trial.json` from
`results.json`, `oracle.json` from the trial files for the random and
bayesian tuners, `results.json` from `cli_args.json` and the trials) and
keeps a trial id it cannot restore taken by a failed placeholder trial; or
`--overwrite`. Damaged files are kept next to the repaired ones as
`NAME.damaged`.

This module reads and writes JSON only; it imports neither TensorFlow nor
keras-tuner (except `install_atomic_tuner_writes` and `reconcile`).
"""

from __future__ import annotations

import dataclasses
import glob
import hashlib
import json
import os
import re
import shutil
import warnings
from typing import Any

__all__ = [
    "ProjectError",
    "Problem",
    "check_project",
    "check_writable",
    "file_digest",
    "install_atomic_tuner_writes",
    "quiet_failed_trials",
    "open_for_resume",
    "reconcile",
    "save_args",
    "write_json_atomic",
]

PROJECT_NAME = "search"
RESULTS = "results.json"
ORACLE = "oracle.json"
TUNER = "tuner0.json"
ARGS_COPY = "cli_args.json"
TRIAL = "trial.json"
#: Trial statuses that mean the trial will not run again.
FINISHED = ("COMPLETED", "FAILED")
#: Tuners whose oracle state is keras-tuner's base state (plus constructor
#: defaults): `keras-nas doctor` can rebuild their `oracle.json`.
REBUILDABLE_ORACLES = {
    "random": {},
    "grid": {},  # keras-tuner's GridSearchOracle saves only the base state.
    "bayesian": {"num_initial_points": None, "alpha": 1e-4, "beta": 2.6},
}
#: Tuners whose oracle keeps more than keras-tuner's base state: `keras-nas
#: doctor` rebuilds their `oracle.json` as the state of a fresh oracle of
#: this class (the command's settings, its seeded RNG) over the base state
#: rebuilt from the trial files. What the oracle derives from its trials
#: comes back when it loads them (aging evolution's population and history
#: are the trials in end order, MCTS rebuilds its tree, BANANAS and the
#: architecture BO refit their surrogate on the trials); what only the lost
#: file held starts afresh (the RNG stream, REINFORCE's controller weights,
#: local search's current walk), so the resumed search differs from an
#: uninterrupted one but repeats no trial and loses none.
STATEFUL_ORACLES = {
    "evolution": ("keras_nas.tuners.evolution", "AgingEvolutionOracle"),
    "mcts": ("keras_nas.tuners.mcts", "MonteCarloTreeSearchOracle"),
    "reinforce": ("keras_nas.tuners.reinforce", "ReinforceOracle"),
    "local": ("keras_nas.tuners.local_search", "LocalSearchOracle"),
    "bananas": ("keras_nas.tuners.bananas", "BananasOracle"),
    "bo": (
        "keras_nas.tuners.bayesian",
        "ArchitectureBayesianOptimizationOracle",
    ),
}
_TRIAL_DIR = re.compile(r"^trial_(.+)$")


class ProjectError(ValueError):
    """A project directory that cannot be resumed as it is (one line)."""


@dataclasses.dataclass
class Problem:
    """One broken invariant of a project directory.

    Attributes:
        path: the file concerned.
        what: what is wrong with it (`"is missing"`, ...).
        repair: what `keras-nas doctor` does about it, or `None` if it
            cannot repair it.
    """

    path: str
    what: str
    repair: str | None = None

    def line(self, directory: str) -> str:
        """The one-line message: the file, the fault and the way out."""
        if self.repair is not None:
            way = (
                f"run `keras-nas doctor {directory}` to {self.repair}, or "
                "pass --overwrite to start afresh"
            )
        else:
            way = "pass --overwrite to start afresh (or restore the file)"
        return f"{self.path} {self.what}; {way}"


# --- Files -------------------------------------------------------------------


def write_json_atomic(path: str, data: Any, **dump_kwargs: Any) -> None:
    """Writes `data` as JSON through a temporary file and a rename."""
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(data, f, **dump_kwargs)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _read_json(path: str) -> tuple[Any, str | None]:
    """`(value, None)`, or `(None, what is wrong)` naming no file."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        return None, "is missing"
    except OSError as e:
        return None, f"cannot be read ({e.strerror or type(e).__name__})"
    if not raw.strip():
        return None, "is empty"
    try:
        return json.loads(raw.decode("utf-8")), None
    except UnicodeDecodeError:
        return None, "is damaged (not UTF-8 text)"
    except json.JSONDecodeError as e:
        return None, f"is damaged (not valid JSON: {e.msg}, byte {e.pos})"
    except RecursionError:
        return None, "is damaged (JSON nested too deeply)"


def file_digest(path: str) -> str | None:
    """SHA-256 of a file, or `None` if it cannot be read."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    except OSError:
        return None
    return digest.hexdigest()


def check_writable(path: str, flag: str) -> None:
    """Creates directory `path` if needed and checks that files can be
    written in it; raises `ProjectError` naming `flag` and the reason."""
    if os.path.exists(path) and not os.path.isdir(path):
        raise ProjectError(f"{flag} {path!r} exists and is not a directory")
    probe = os.path.join(path, f".keras_nas_probe_{os.getpid()}.tmp")
    try:
        os.makedirs(path, exist_ok=True)
        with open(probe, "w") as f:
            f.write("")
        os.remove(probe)
    except OSError as e:
        reason = e.strerror or type(e).__name__
        raise ProjectError(
            f"{flag} {path!r} cannot be written ({reason})"
        ) from e


def quiet_failed_trials() -> None:
    """Stops keras-tuner printing a traceback for every failed trial (the
    trial keeps it in its `message`; the command prints its last line)."""
    from keras_tuner.src import config

    config.DEBUG = False
    # keras-tuner's metrics of a trial whose loss is NaN throughout.
    warnings.filterwarnings("ignore", message="All-NaN axis encountered")


def save_args(directory: str, args: dict[str, Any]) -> None:
    """Keeps a copy of the command's arguments in the tuner's project."""
    path = os.path.join(directory, PROJECT_NAME)
    os.makedirs(path, exist_ok=True)
    write_json_atomic(os.path.join(path, ARGS_COPY), args, indent=2)


def reconcile(tuner: Any) -> list[str]:
    """Makes a reloaded tuner's oracle agree with its trial files.

    keras-nas oracles do it when they reload; keras-tuner's own do not (a
    trial created or ended just before a kill would be skipped or rerun).
    """
    from keras_nas.tuners import _persistence

    repaired = _persistence.reconcile_trials(tuner.oracle)
    if repaired:
        tuner.oracle.save()
    return repaired


def install_atomic_tuner_writes() -> None:
    """Makes keras-tuner write its JSON files atomically (temp + rename).

    keras-tuner writes `oracle.json`, `tuner0.json` and each `trial.json`
    with a plain write: a kill in the middle leaves a truncated file. After
    this call (for the rest of the process; `keras-nas search` calls it)
    they are written to a temporary file, then renamed.
    """
    from keras_tuner.src import utils as kt_utils

    original = kt_utils.save_json
    if getattr(original, "_keras_nas_atomic", False):
        return

    def save_json(path, obj):
        if "://" in str(path):  # Remote (gfile) paths: keras-tuner's own.
            return original(path, obj)
        text = json.dumps(obj)
        tmp = f"{path}.tmp"
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, path)
        return text

    save_json._keras_nas_atomic = True
    kt_utils.save_json = save_json


# --- Reading a project ------------------------------------------------------


@dataclasses.dataclass
class _Trial:
    trial_id: str
    path: str
    state: dict[str, Any] | None
    problem: str | None

    @property
    def finished(self) -> bool:
        return self.state is not None and self.state.get("status") in FINISHED


@dataclasses.dataclass
class _Project:
    directory: str
    results: Any = None
    results_problem: str | None = None
    args_copy: Any = None
    oracle: Any = None
    oracle_problem: str | None = None
    tuner_problem: str | None = None
    trials: dict[str, _Trial] = dataclasses.field(default_factory=dict)

    @property
    def project_dir(self) -> str:
        return os.path.join(self.directory, PROJECT_NAME)

    def path(self, *names: str) -> str:
        return os.path.join(self.project_dir, *names)

    @property
    def args(self) -> dict[str, Any] | None:
        for source in (self.results, self.args_copy):
            if isinstance(source, dict):
                args = source.get("args", source)
                if isinstance(args, dict) and args:
                    return args
        return None

    def finished_ids(self) -> list[str]:
        return sorted(
            (t.trial_id for t in self.trials.values() if t.finished),
            key=_order,
        )

    def recorded_trials(self) -> dict[str, dict[str, Any]]:
        """Trials `results.json` lists, by id."""
        trials = (
            self.results.get("trials")
            if isinstance(self.results, dict)
            else None
        )
        if not isinstance(trials, list):
            return {}
        return {
            str(t["trial_id"]): t
            for t in trials
            if isinstance(t, dict) and "trial_id" in t
        }


def _order(trial_id: str) -> tuple[int, str]:
    return (int(trial_id), "") if trial_id.isdigit() else (1 << 62, trial_id)


def _read_project(directory: str) -> _Project:
    project = _Project(directory)
    project.results, project.results_problem = _read_json(
        os.path.join(directory, RESULTS)
    )
    if project.results_problem is None and not (
        isinstance(project.results, dict)
        and isinstance(project.results.get("args"), dict)
    ):
        project.results = None
        project.results_problem = "is damaged (not a keras-nas results file)"
    project.args_copy, _ = _read_json(project.path(ARGS_COPY))
    if not os.path.isdir(project.project_dir):
        return project
    for trial_dir in sorted(os.listdir(project.project_dir)):
        match = _TRIAL_DIR.match(trial_dir)
        full = project.path(trial_dir)
        if match is None or not os.path.isdir(full):
            continue
        trial_id = match.group(1)
        path = os.path.join(full, TRIAL)
        state, problem = _read_json(path)
        if problem == "is missing":
            continue  # Created just before a kill; checked via the oracle.
        if problem is None:
            problem = _trial_state_problem(state, trial_id)
        if problem is not None:
            state = None
        project.trials[trial_id] = _Trial(trial_id, path, state, problem)
    oracle_path = project.path(ORACLE)
    if os.path.exists(oracle_path) or project.trials:
        project.oracle, project.oracle_problem = _read_json(oracle_path)
        if project.oracle_problem is None:
            project.oracle_problem = _oracle_state_problem(project.oracle)
        if project.oracle_problem is not None:
            project.oracle = None
    tuner, project.tuner_problem = _read_json(project.path(TUNER))
    if project.tuner_problem is None and not isinstance(tuner, dict):
        project.tuner_problem = "is damaged (not a JSON object)"
    return project


def _trial_state_problem(state: Any, trial_id: str) -> str | None:
    keys = ("trial_id", "hyperparameters", "metrics", "score", "status")
    if not isinstance(state, dict) or any(k not in state for k in keys):
        return "is damaged (not a keras-tuner trial)"
    if str(state["trial_id"]) != trial_id:
        return (
            f"is damaged (holds trial_id {state['trial_id']!r}, its folder "
            f"says {trial_id!r})"
        )
    values = state["hyperparameters"]
    if not isinstance(values, dict) or not isinstance(
        values.get("values"), dict
    ):
        return "is damaged (no hyperparameter values)"
    return None


def _oracle_state_problem(state: Any) -> str | None:
    keys = ("start_order", "end_order", "ongoing_trials", "hyperparameters")
    if not isinstance(state, dict) or any(k not in state for k in keys):
        return "is damaged (not a keras-tuner oracle state)"
    for key in ("start_order", "end_order"):
        if not isinstance(state[key], list):
            return f"is damaged ({key} is not a list)"
    return None


# --- Checks -----------------------------------------------------------------


def check_project(directory: str) -> list[Problem]:
    """The broken invariants of a project directory (see the module doc).

    Crash states that a resume handles by itself (see `open_for_resume`)
    are not problems.

    Args:
        directory: the `--directory` of a `keras-nas search`.

    Returns:
        A list of `Problem`s, empty if the search can be resumed.
    """
    return _problems(_read_project(directory))


def _problems(project: _Project) -> list[Problem]:
    problems = []
    tuner_name = (project.args or {}).get("tuner")
    finished = project.finished_ids()
    damaged = [t for t in project.trials.values() if t.problem is not None]
    if project.results_problem is not None and (finished or damaged):
        path = os.path.join(project.directory, RESULTS)
        count = f"{len(finished)} finished trial(s)"
        what = f"{project.results_problem} and {PROJECT_NAME}/ holds {count}"
        if project.args_copy is not None:
            problems.append(
                Problem(
                    path,
                    what,
                    f"rebuild it from {PROJECT_NAME}/{ARGS_COPY} and the "
                    "trial files",
                )
            )
        else:
            problems.append(Problem(path, what))
    recorded = project.recorded_trials()
    for trial in sorted(damaged, key=lambda t: _order(t.trial_id)):
        problems.append(
            Problem(trial.path, trial.problem, _trial_repair(trial, recorded))
        )
    if project.trials and project.oracle_problem is not None:
        path = project.path(ORACLE)
        what, repair = project.oracle_problem, None
        if tuner_name in REBUILDABLE_ORACLES or tuner_name in STATEFUL_ORACLES:
            repair = "rebuild it from the trial files"
        else:
            what += (
                f" (keras-nas doctor cannot rebuild the {tuner_name} tuner's "
                "state from the trial files; the finished trials are listed "
                f"in {RESULTS})"
            )
        problems.append(Problem(path, what, repair))
    started = []
    if project.oracle is not None:
        started = [str(i) for i in project.oracle["start_order"]]
    for trial_id in started:
        if trial_id in project.trials:
            continue
        trial = _Trial(
            trial_id, project.path(f"trial_{trial_id}", TRIAL), None, None
        )
        problems.append(
            Problem(
                trial.path,
                f"is missing (trial {trial_id} was started by the oracle)",
                _trial_repair(trial, recorded),
            )
        )
    for trial_id, record in sorted(
        recorded.items(), key=lambda i: _order(i[0])
    ):
        if trial_id in project.trials or trial_id in started:
            continue
        if record.get("status") not in FINISHED:
            continue
        path = project.path(f"trial_{trial_id}", TRIAL)
        problems.append(
            Problem(
                path,
                f"is missing ({RESULTS} lists trial {trial_id} as finished)",
                f"restore trial {trial_id} from {RESULTS}",
            )
        )
    if problems and not _space_config(project)["space"]:
        # No oracle or trial file left to say what the search space is.
        for problem in problems:
            if problem.path.endswith((TRIAL, ORACLE)):
                problem.repair = None
                problem.what += " (and no file records the search space)"
    return problems


def _trial_repair(trial: _Trial, recorded: dict[str, dict]) -> str:
    record = recorded.get(trial.trial_id)
    if record is not None and record.get("status") in FINISHED:
        return f"restore trial {trial.trial_id} from {RESULTS}"
    return (
        f"mark trial {trial.trial_id} failed (its id stays taken; its result "
        "is not recorded anywhere else)"
    )


def open_for_resume(directory: str) -> tuple[dict[str, Any] | None, list]:
    """Checks a project directory before a search resumes in it.

    Handles the states a crash leaves (a run killed before its first trial
    finished: the partial `search/` folder is removed; a missing
    `tuner0.json`: rewritten; leftover `*.tmp` files: removed) and refuses
    the rest.

    Args:
        directory: the `--directory` of a `keras-nas search`.

    Returns:
        `(results, notes)`: the previous `results.json` (or `None` to start
        afresh) and what was done, as lines to show.

    Raises:
        ProjectError: one line naming the file and the way out.
    """
    notes = _remove_tmp_files(directory)
    project = _read_project(directory)
    problems = _problems(project)
    if problems:
        raise ProjectError(problems[0].line(directory))
    if project.results is None:
        results = os.path.join(directory, RESULTS)
        if project.results_problem != "is missing":
            _keep_damaged(results)  # Never silently overwritten.
            notes.append(
                f"{results} {project.results_problem}: kept as "
                f"{RESULTS}.damaged"
            )
        if os.path.isdir(project.project_dir):
            shutil.rmtree(project.project_dir)
            notes.append(
                f"{project.project_dir} held no finished trial and no "
                f"readable {RESULTS}: starting afresh"
            )
        return None, notes
    notes += _rewrite_tuner_state(project)
    return project.results, notes


def _remove_tmp_files(directory: str) -> list[str]:
    patterns = (
        os.path.join(directory, "*.tmp"),
        os.path.join(directory, "best_model.tmp.keras"),
        os.path.join(directory, PROJECT_NAME, "*.tmp"),
        os.path.join(directory, PROJECT_NAME, "trial_*", "*.tmp"),
    )
    for pattern in patterns:
        for path in glob.glob(pattern):
            os.remove(path)
    return []


def _rewrite_tuner_state(project: _Project) -> list[str]:
    # keras-tuner restarts from zero without `tuner0.json` (it then
    # overwrites the trials); every tuner of the command saves `{}` there.
    if project.tuner_problem is None or project.oracle is None:
        return []
    path = project.path(TUNER)
    _keep_damaged(path)
    write_json_atomic(path, {})
    return [f"{path} {project.tuner_problem}: rewritten (it holds no state)"]


# --- Shared with the repairs (keras_nas._doctor) ----------------------------


def _keep_damaged(path: str) -> None:
    if os.path.exists(path):
        os.replace(path, f"{path}.damaged")


def _space_config(project: _Project) -> dict[str, Any]:
    """The hyperparameter space (keras-tuner config) the files still hold."""
    if isinstance(project.oracle, dict):
        config = project.oracle.get("hyperparameters")
        if isinstance(config, dict) and "space" in config:
            return {"space": config["space"], "values": {}}
    for trial in sorted(
        project.trials.values(), key=lambda t: _order(t.trial_id), reverse=True
    ):
        if trial.state is not None:
            space = trial.state["hyperparameters"].get("space", [])
            return {"space": space, "values": {}}
    return {"space": [], "values": {}}
