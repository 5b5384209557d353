"""`keras-nas doctor DIR`: repairs a search directory from its other files.

What the directory holds and its invariants: `keras_nas._project`. A
repair rebuilds what another file still records, keeps each damaged file
as `NAME.damaged`, and changes nothing if any problem cannot be repaired:

- a lost or damaged `trial_<id>/trial.json`: restored from `results.json`,
  or, if no file records its result, a failed placeholder trial keeps the
  id taken (keras-tuner numbers new trials by counting the trial files);
- `oracle.json`: rebuilt from the trial files (keras-tuner's base state,
  for the tuners of `keras_nas._project.REBUILDABLE_ORACLES`; over a fresh
  oracle's state for those of `keras_nas._project.STATEFUL_ORACLES`:
  evolution, MCTS, REINFORCE, local search, BANANAS, BO);
- `tuner0.json`: rewritten (`{}` for every tuner of the command);
- `results.json`: rebuilt from `search/cli_args.json` and the trial files.
"""

from __future__ import annotations

import hashlib
import importlib
import os
from typing import Any

from keras_nas._project import (
    ARGS_COPY,
    FINISHED,
    ORACLE,
    PROJECT_NAME,
    REBUILDABLE_ORACLES,
    RESULTS,
    STATEFUL_ORACLES,
    TRIAL,
    TUNER,
    ProjectError,
    _keep_damaged,
    _order,
    _problems,
    _Project,
    _read_project,
    _remove_tmp_files,
    _space_config,
    _Trial,
    check_project,
    write_json_atomic,
)

__all__ = ["DOCTOR_HELP", "doctor", "repair_project"]

#: What `keras-nas doctor` does (its `--help` description).
DOCTOR_HELP = (
    "Check a keras-nas search directory and repair what its other files "
    "still record: a lost or damaged trial.json (restored from results.json, "
    "or its id kept taken by a failed trial), oracle.json (rebuilt from the "
    "trial files; random, bayesian, grid, evolution, mcts, reinforce, local, "
    "bananas and bo tuners), tuner0.json, results.json "
    "(rebuilt from search/cli_args.json and the trial files). Damaged files "
    "are kept as NAME.damaged. Exits with status 2 and one line if something "
    "cannot be repaired."
)


def repair_project(directory: str) -> list[str]:
    """Repairs what a project directory's other files still record.

    See the module docstring for what is repaired. Damaged files are kept
    as `NAME.damaged`. Nothing is changed if a problem cannot be repaired.

    Args:
        directory: the `--directory` of a `keras-nas search`.

    Returns:
        One line per repair (empty if there was nothing to repair).

    Raises:
        ProjectError: a problem that cannot be repaired (one line).
    """
    if not os.path.isdir(directory):
        raise ProjectError(f"{directory} is not a directory")
    _remove_tmp_files(directory)
    project = _read_project(directory)
    problems = _problems(project)
    for problem in problems:
        if problem.repair is None:
            raise ProjectError(problem.line(directory))
    done = []
    recorded = project.recorded_trials()
    space = _space_config(project)
    # 1. Trial files: damaged ones, and missing ones that the oracle started
    # or that results.json lists as finished.
    started = set()
    if project.oracle is not None:
        started = {str(i) for i in project.oracle["start_order"]}
    lost = {
        i for i, r in recorded.items() if r.get("status") in FINISHED
    } | started
    damaged = {i for i, t in project.trials.items() if t.problem is not None}
    missing = lost - set(project.trials)
    for trial_id in sorted(damaged | missing, key=_order):
        path = project.path(f"trial_{trial_id}", TRIAL)
        state = _trial_state(trial_id, recorded.get(trial_id), space, project)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        _keep_damaged(path)
        write_json_atomic(path, state)
        project.trials[trial_id] = _Trial(trial_id, path, state, None)
        if state["message"].endswith(RESULTS):
            done.append(f"{path}: restored from {RESULTS}")
        else:
            done.append(
                f"{path}: marked failed (its result was lost; the id stays "
                "taken)"
            )
    # 2. The oracle state.
    if project.trials and project.oracle is None:
        path = project.path(ORACLE)
        _keep_damaged(path)
        write_json_atomic(path, _oracle_state(project, space))
        done.append(f"{path}: rebuilt from {len(project.trials)} trial files")
    # 3. The tuner state.
    if project.tuner_problem is not None and project.trials:
        path = project.path(TUNER)
        _keep_damaged(path)
        write_json_atomic(path, {})
        done.append(f"{path}: rewritten (it holds no state)")
    # 4. results.json.
    if project.results is None and project.trials and project.args:
        path = os.path.join(directory, RESULTS)
        _keep_damaged(path)
        write_json_atomic(path, _results(project), indent=2)
        done.append(
            f"{path}: rebuilt from {PROJECT_NAME}/{ARGS_COPY} and the trial "
            "files (the best model will be retrained)"
        )
    return done


def _trial_state(
    trial_id: str,
    record: dict[str, Any] | None,
    space: dict[str, Any],
    project: _Project,
) -> dict[str, Any]:
    values = {}
    status, score = "FAILED", None
    message = (
        "keras-nas doctor: the trial file was lost or damaged and no other "
        "file records its result"
    )
    metrics: dict[str, Any] = {}
    if record is not None and record.get("status") in FINISHED:
        values = dict(record.get("hyperparameters") or {})
        status, score = record["status"], record.get("score")
        message = f"keras-nas doctor: restored from {RESULTS}"
        objective = (project.results or {}).get("objective", "val_accuracy")
        if status == "COMPLETED" and score is not None:
            metrics[objective] = {
                "direction": "max",
                "observations": [{"value": [score], "step": 0}],
            }
    return {
        "trial_id": trial_id,
        "hyperparameters": {"space": space["space"], "values": values},
        "metrics": {"metrics": metrics},
        "score": score,
        "best_step": 0,
        "status": status,
        "message": message,
    }


def _values_hash(values: dict[str, Any]) -> str:
    # As `keras_tuner.Oracle._compute_values_hash`.
    keys = sorted(values.keys())
    text = "".join(f"{str(k)}={str(values[k])}" for k in keys)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def _oracle_state(project: _Project, space: dict[str, Any]) -> dict[str, Any]:
    """keras-tuner's base oracle state, rebuilt from the trial files."""
    args = project.args or {}
    ids = sorted(project.trials, key=_order)
    ended = [i for i in ids if project.trials[i].finished]
    running = [i for i in ids if not project.trials[i].finished]
    id_to_hash = {}
    for trial_id in ids:
        values = project.trials[trial_id].state["hyperparameters"]["values"]
        id_to_hash[trial_id] = _values_hash(values)
    seed = int(args.get("seed", 0))
    state = {
        "ongoing_trials": {},
        "hyperparameters": space,
        "start_order": ids,
        "end_order": ended,
        "run_times": {i: 1 for i in ended},
        "retry_queue": running,
        "seed": seed,
        # Past every seed the lost state could have used for these trials.
        "seed_state": seed + 1000 * (len(ids) + 1),
        "tried_so_far": sorted(set(id_to_hash.values())),
        "id_to_hash": id_to_hash,
        "display": {
            "search_start": None,
            "trial_start": {},
            "trial_number": {},
        },
    }
    state.update(REBUILDABLE_ORACLES.get(args.get("tuner"), {}))
    if args.get("tuner") in STATEFUL_ORACLES:
        fresh = _fresh_oracle_state(args, space, project)
        if "id_to_hash" not in fresh:  # A compact state: rebuilt on load.
            del state["tried_so_far"], state["id_to_hash"]
        state = {**fresh, **state}
    return state


def _fresh_oracle_state(
    args: dict[str, Any], space: dict[str, Any], project: _Project
) -> dict[str, Any]:
    """The state of a new oracle of the search's tuner, as `keras-nas
    search` builds it (objective, `--max-trials`, `--seed`, the space)."""
    keras_tuner = importlib.import_module("keras_tuner")
    module, name = STATEFUL_ORACLES[args["tuner"]]
    cls = getattr(importlib.import_module(module), name)
    objective = (project.results or {}).get("objective", "val_accuracy")
    oracle = cls(
        objective=keras_tuner.Objective(objective, "max"),
        max_trials=int(args.get("max_trials", 5)),
        seed=int(args.get("seed", 0)),
        hyperparameters=keras_tuner.HyperParameters.from_config(space),
    )
    oracle._set_project_dir(project.directory, PROJECT_NAME)
    return oracle.get_state()


def _results(project: _Project) -> dict[str, Any]:
    trials = []
    for trial_id in sorted(project.trials, key=_order):
        state = project.trials[trial_id].state
        trials.append(
            {
                "trial_id": trial_id,
                "status": state["status"],
                "score": state["score"],
                "seconds": None,
                "hyperparameters": state["hyperparameters"]["values"],
                "genotype": None,
            }
        )
    return {
        "status": "searching",
        "args": project.args,
        "objective": "val_accuracy",
        "trials": trials,
        "best": None,
    }


def doctor(directory: str) -> list[str]:
    """`keras-nas doctor DIR`: repairs, then checks; returns lines to show.

    Raises:
        ProjectError: a problem that cannot be repaired.
    """
    done = repair_project(directory)
    remaining = check_project(directory)
    if remaining:
        raise ProjectError(remaining[0].line(directory))
    if not done:
        return [f"{directory}: nothing to repair"]
    return done + [f"{directory}: repaired; resume with the same command"]
