"""`keras-nas show DIR`: a finished (or running) search at a glance.

Reads only `results.json` (and lists the files next to it): the trials as a
table, the best architecture and the figures of the run. It imports neither
Keras nor TensorFlow, so it answers at once.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from collections.abc import Mapping
from typing import Any

from keras_nas._cli_env import UsageError, plural
from keras_nas.blocks.genotypes import Genotype, NasBench201Genotype

DEFAULT_DIRECTORY = "keras_nas_results"

#: Files a search writes, in the order `show` lists them.
FILES = (
    "best_model.keras",
    "best_genotype.json",
    "best_hyperparameters.json",
    "results.json",
    "history.png",
    "best_cell.png",
)


def add_show_parser(commands: Any) -> None:
    """Adds the `show` subcommand to the `keras-nas` subparsers."""
    parser = commands.add_parser(
        "show",
        help="show a search: trials, best architecture, test accuracy",
        description=(
            "Show the search in DIR (its results.json): every trial as a "
            "table, the best architecture and the figures of the run. "
            "Works while the search is still running."
        ),
    )
    parser.add_argument(
        "directory",
        metavar="DIR",
        nargs="?",
        default=DEFAULT_DIRECTORY,
        help=f"the --directory of the search (default: {DEFAULT_DIRECTORY})",
    )


def describe(values: Mapping[str, Any], genotype: Any = None) -> str:
    """One line for an architecture: macro values, then the genotype (or
    every hyperparameter when there is no genotype)."""
    macro = [
        f"{k}={values[k]}" for k in ("num_cells", "filters") if k in values
    ]
    if genotype is not None:
        return " ".join(macro + [str(genotype)])
    return " ".join(
        f"{k}={v}" for k, v in values.items() if not k.startswith("tuner/")
    )


def genotype_from_dict(data: Any) -> Any:
    """The `Genotype` or `NasBench201Genotype` of a `to_dict()`, or None."""
    if not isinstance(data, Mapping):
        return None
    cls = NasBench201Genotype if set(data) == {"ops"} else Genotype
    try:
        return cls.from_dict(data)
    except ValueError:
        return None


def read_results(directory: str) -> dict[str, Any]:
    """`DIR/results.json`, or a `UsageError` saying why it cannot be read."""
    path = os.path.join(directory, "results.json")
    if not os.path.isdir(directory):
        raise UsageError(f"no such directory: {directory!r}")
    try:
        with open(path) as f:
            results = json.load(f)
    except FileNotFoundError as e:
        raise UsageError(
            f"{directory!r} holds no results.json: not a keras-nas search "
            "directory (write one with `keras-nas search --directory DIR`)"
        ) from e
    except (OSError, json.JSONDecodeError) as e:
        raise UsageError(f"cannot read {path!r}: {e}") from e
    if not isinstance(results, dict):
        raise UsageError(f"{path!r} is not a keras-nas results file")
    return results


def _number(value: Any, digits: int = 4) -> str:
    if isinstance(value, int | float):
        return f"{value:.{digits}f}"
    return "-"


def _table(rows: list[list[str]], width: int) -> list[str]:
    """Left-aligned columns; the last column is cut to fit `width`."""
    sizes = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    lines = []
    for row in rows:
        cells = [c.ljust(s) for c, s in zip(row, sizes, strict=False)]
        line = "  ".join([*cells, row[-1]])
        if len(line) > width:
            line = line[: max(width - 3, 0)] + "..."
        lines.append(line)
    return lines


def format_results(results: Mapping[str, Any], width: int = 100) -> str:
    """The text `keras-nas show` prints for a `results.json`."""
    args = results.get("args", {})
    objective = results.get("objective", "score")
    trials = results.get("trials", [])
    out = [
        f"search in {args.get('directory', '?')}: {results.get('status')}",
        f"{args.get('space', '?')} space, {args.get('tuner', '?')} tuner, "
        f"dataset {args.get('dataset', '?')}, seed {args.get('seed', '?')}, "
        f"{plural(args.get('epochs', 0), 'epoch')} per trial; "
        f"{plural(len(trials), 'trial')}",
        "",
    ]
    rows = [["trial", "status", objective, "seconds", "architecture"]]
    for trial in trials:
        genotype = genotype_from_dict(trial.get("genotype"))
        rows.append(
            [
                str(trial.get("trial_id")),
                str(trial.get("status", "")),
                _number(trial.get("score")),
                _number(trial.get("seconds"), 1),
                describe(trial.get("hyperparameters", {}), genotype),
            ]
        )
    out += _table(rows, width) if trials else ["(no trial yet)"]
    out += [""] + _best_lines(results, objective)
    out += _retrained_lines(results)
    timings = results.get("timings") or {}
    if timings:
        out.append(
            "timings: "
            + ", ".join(
                f"{key.removesuffix('_seconds')} {value:.1f}s"
                for key, value in timings.items()
                if isinstance(value, int | float)
            )
        )
    return "\n".join(out)


def _best_lines(results: Mapping[str, Any], objective: str) -> list[str]:
    best = results.get("best")
    if not best:
        return ["best: none yet"]
    trial_id = best.get("trial_id")
    values = best.get("hyperparameters", {})
    genotype = next(
        (
            genotype_from_dict(t.get("genotype"))
            for t in results.get("trials", [])
            if t.get("trial_id") == trial_id
        ),
        None,
    )
    score = _number(best.get("score"))
    lines = [f"best: trial {trial_id}, {objective} {score}"]
    if genotype is None:
        lines.append(f"  {describe(values)}")
        return lines
    macro = " ".join(
        f"{k}={values[k]}" for k in ("num_cells", "filters") if k in values
    )
    if macro:
        lines.append(f"  {macro}")
    lines += [f"  {part.strip()}" for part in str(genotype).split(";")]
    return lines


def _retrained_lines(results: Mapping[str, Any]) -> list[str]:
    if "test_accuracy" not in results:
        return []
    retrained = results.get("retrained") or {}
    epochs = retrained.get("retrain_epochs")
    text = f"retrained trial {retrained.get('trial_id', '?')}"
    if epochs is not None:
        text += f" for {plural(epochs, 'epoch')} on train+validation"
    text += f": test_accuracy {_number(results['test_accuracy'])}"
    if results.get("test_loss") is not None:
        text += f", test_loss {_number(results['test_loss'])}"
    if retrained.get("num_parameters") is not None:
        text += f", {retrained['num_parameters']:,} parameters"
    return [text]


def show(args: argparse.Namespace) -> int:
    """Runs `keras-nas show`; returns the exit status."""
    results = read_results(args.directory)
    # Cut to the terminal's width; whole lines when piped (grep, files).
    tty = sys.stdout.isatty()
    width = max(shutil.get_terminal_size().columns, 60) if tty else 10**6
    print(format_results(results, width=width))
    present = [
        name
        for name in FILES
        if os.path.exists(os.path.join(args.directory, name))
    ]
    print(f"files in {args.directory}: {', '.join(present)}")
    return 0
