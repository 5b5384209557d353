"""The `keras-nas` command.

`keras-nas search` runs an architecture search end to end: load a dataset,
search a space with a tuner (a line per trial and per epoch), retrain the best
architecture from scratch on train + validation data and evaluate it on a
held-out test split. Everything lands in `--directory`:

- `best_model.keras`: the retrained best model,
- `best_genotype.json` (cell spaces) and `best_hyperparameters.json`,
- `results.json`: per-trial scores, the best trial, test accuracy, timings
  and the arguments,
- `history.png` (score per trial and best so far) and `best_cell.png` (the
  best cell drawn as a graph, when the space has genotypes).

With `--tensorboard DIR`, the search is logged to TensorBoard in `DIR`: each
trial's curves, HParams session and architecture (image and text), and a
`search` run with the score per trial, the best so far and the history plot
(`keras_nas.tensorboard.SearchViews`).

A directory that already holds a search is resumed (finished trials are not
run again) unless `--overwrite` is given. Bad input exits with status 2 and
a one-line `error: ...` message. A damaged search directory is refused with
one line naming the file; `keras-nas doctor DIR` repairs it (see
`keras_nas._project` for what the directory holds and its invariants).

Example:

```
keras-nas search                      # digits, cell space, random search
keras-nas search --tuner evolution --max-trials 20 --directory runs/evo
keras-nas search --dataset tfds:fashion_mnist --subset 5000 --image-size 14
python -m keras_nas search --dataset my_data.npz --space chain
keras-nas search --tuner evolution --max-flops 2000000  # FLOPs per example
keras-nas search --tensorboard logs  # then: tensorboard --logdir logs
keras-nas show keras_nas_results     # the trials, best architecture, test
keras-nas export keras_nas_results --format tflite  # or keras, saved_model
```

`show` and `export` live in `keras_nas._cli_show` and `keras_nas._cli_export`;
the quiet start-up (TensorFlow imported with its notices muted, unless
`--verbose`) in `keras_nas._cli_env`.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from keras_nas import _project
from keras_nas._cli_doctor import add_doctor_parser, doctor_command
from keras_nas._cli_env import (
    UsageError,
    import_backend,
    plural,
    quiet_environment,
    quietly,
)
from keras_nas._cli_export import EXPORT_DIR, add_export_parser, export
from keras_nas._cli_show import add_show_parser, describe, show
from keras_nas._project import ProjectError, open_for_resume
from keras_nas._size_checks import check_space_class

PROG = "keras-nas"
PROJECT_NAME = "search"

#: `--space` name -> (module, class).
SPACES: dict[str, tuple[str, str]] = {
    "cell": ("keras_nas.spaces", "CellSearchSpace"),
    "chain": ("keras_nas.spaces", "ChainSearchSpace"),
    "nas-bench-201": ("keras_nas.spaces", "NasBench201SearchSpace"),
}


def _trial_budget(args: argparse.Namespace, space: Any, data: Any) -> tuple:
    return [space], {"max_trials": args.max_trials}


def _hyperband_budget(args: argparse.Namespace, space: Any, data: Any) -> tuple:
    # Hyperband sizes its brackets from the epoch budget, not a trial count.
    return [space], {"max_epochs": args.epochs, "factor": 3}


def _darts_arguments(args: argparse.Namespace, space: Any, data: Any) -> tuple:
    # DARTS trains one supernet over the cell space (a single trial), then
    # the derived cell is retrained at the space's largest size.
    if args.space != "cell":
        raise UsageError(
            f"--tuner darts searches the cell space; got --space {args.space}"
        )
    if not data.is_arrays:
        raise UsageError(
            "--tuner darts needs array data (digits or a .npz file); got "
            f"--dataset {args.dataset}"
        )
    derived = type(space)(
        space.input_shape,
        space.num_classes,
        ops=space.ops,
        num_nodes=space.num_nodes,
        num_cells=max(space.num_cells),
        filters=max(space.filters),
        learning_rate=1e-2,
    )
    return [derived], {
        "filters": min(space.filters),
        "num_cells": max(space.num_cells),
        "batch_size": args.batch_size,
        "jit_compile": _jit_setting(args),
    }


#: Size options of the command -> {space: constructor argument}.
SPACE_OPTIONS: dict[str, dict[str, str]] = {
    "num_nodes": {"cell": "num_nodes"},
    "num_cells": {
        "cell": "num_cells",
        "nas-bench-201": "cells_per_stage",
        "chain": "max_layers",
    },
    "filters": {"cell": "filters", "nas-bench-201": "filters"},
}

#: `--tuner` name -> (module, class, arguments(args, space, data) ->
#: (positional, keyword) constructor arguments besides objective, seed and
#: directory). The one table of every tuner the command offers.
TUNERS: dict[str, tuple[str, str, Callable[..., tuple]]] = {
    "random": ("keras_tuner", "RandomSearch", _trial_budget),
    "bayesian": ("keras_tuner", "BayesianOptimization", _trial_budget),
    "hyperband": ("keras_tuner", "Hyperband", _hyperband_budget),
    "grid": ("keras_tuner", "GridSearch", _trial_budget),
    "evolution": ("keras_nas.tuners", "AgingEvolution", _trial_budget),
    "reinforce": ("keras_nas.tuners", "Reinforce", _trial_budget),
    "mcts": ("keras_nas.tuners", "MonteCarloTreeSearch", _trial_budget),
    "darts": ("keras_nas.tuners", "Darts", _darts_arguments),
    "enas": ("keras_nas.tuners", "Enas", _trial_budget),
    "bo": (
        "keras_nas.tuners",
        "ArchitectureBayesianOptimization",
        _trial_budget,
    ),
    "bananas": ("keras_nas.tuners", "Bananas", _trial_budget),
    "local": ("keras_nas.tuners", "LocalSearch", _trial_budget),
}

#: Files of a run; `--overwrite` removes exactly these (and the tuner's
#: project folder), never anything else in the directory.
ARTEFACTS = (
    "best_model.keras",
    "best_genotype.json",
    "best_hyperparameters.json",
    "results.json",
    "history.png",
    "best_cell.png",
)

#: Arguments that must match for a directory to be resumed.
RESUME_KEYS = ("space", "tuner", "dataset", "seed", "epochs", "batch_size")


# --- Argument parsing --------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    """An `ArgumentParser` whose errors are one line on stderr, status 2."""

    def error(self, message: str):  # noqa: D401 - argparse API
        self.exit(2, f"error: {message} (see `{self.prog} --help`)\n")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(
            f"expected a positive integer, got {text!r}"
        )
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(
            f"expected a non-negative integer, got {text!r}"
        )
    return value


def _seed(text: str) -> int:
    value = _non_negative_int(text)
    if value >= 2**32:  # NumPy and scikit-learn take 32-bit seeds.
        raise argparse.ArgumentTypeError(
            f"expected an integer from 0 to 2**32 - 1, got {text!r}"
        )
    return value


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(
            f"expected a number between 0 and 1, got {text!r}"
        )
    return value


def build_parser() -> argparse.ArgumentParser:
    """The `keras-nas` argument parser."""
    from keras_nas import __version__

    parser = _Parser(
        prog=PROG,
        description="Neural Architecture Search for Keras 3.",
        epilog="`keras-nas COMMAND --help` lists a command's options. Keras "
        "runs on the backend named by KERAS_BACKEND (tensorflow, the default, "
        "jax or torch).",
    )
    parser.add_argument(
        "--version", action="version", version=f"{PROG} {__version__}"
    )
    commands = parser.add_subparsers(
        dest="command", metavar="COMMAND", parser_class=_Parser
    )
    search = commands.add_parser(
        "search",
        help="search an architecture, retrain the best and test it",
        description=(
            "Search a space with a tuner, retrain the best architecture from\n"
            "scratch on train+validation data and evaluate it on a held-out\n"
            "test split. Resumes a search found in --directory."
        ),
        usage="%(prog)s [options]",
        epilog=SEARCH_EPILOG,
        formatter_class=_HelpFormatter,
    )
    data = search.add_argument_group("data")
    space = search.add_argument_group("search space")
    strategy = search.add_argument_group("search strategy")
    estimation = search.add_argument_group(
        "estimation (how each trial is trained and scored)"
    )
    output = search.add_argument_group("output")
    space.add_argument(
        "--space",
        default="cell",
        choices=sorted(SPACES),
        help="search space",
    )
    strategy.add_argument(
        "--tuner",
        default="random",
        choices=sorted(TUNERS),
        help="search strategy",
    )
    data.add_argument(
        "--dataset",
        default="digits",
        help="'digits', 'tfds:NAME' or a .npz file with arrays x and y",
    )
    strategy.add_argument(
        "--max-trials",
        type=_positive_int,
        default=5,
        help="number of architectures to try (hyperband sizes its brackets "
        "from --epochs instead; darts trains one supernet: one trial)",
    )
    estimation.add_argument(
        "--epochs",
        type=_positive_int,
        default=6,
        help="training epochs per trial",
    )
    estimation.add_argument(
        "--retrain-epochs",
        type=_positive_int,
        default=30,
        help="epochs to retrain the best architecture",
    )
    estimation.add_argument(
        "--batch-size", type=_positive_int, default=32, help="batch size"
    )
    output.add_argument(
        "--directory",
        default="keras_nas_results",
        help="where the search and its results are written",
    )
    strategy.add_argument(
        "--seed", type=_seed, default=0, help="random seed (0 to 2**32 - 1)"
    )
    output.add_argument(
        "--overwrite",
        action="store_true",
        help="start afresh instead of resuming the search in --directory",
    )
    data.add_argument(
        "--validation-split",
        type=_fraction,
        default=0.2,
        help="fraction of the data used to score architectures",
    )
    data.add_argument(
        "--test-split",
        type=_fraction,
        default=0.2,
        help="fraction of the data held out for the final test",
    )
    data.add_argument(
        "--subset",
        type=_positive_int,
        default=None,
        help="tfds only: at most this many examples per split",
    )
    data.add_argument(
        "--image-size",
        type=_positive_int,
        default=None,
        help="tfds only: resize images to this side (proxy search)",
    )
    space.add_argument(
        "--num-nodes",
        type=_positive_int,
        default=None,
        help="cell space: intermediate nodes per cell (None: the space's)",
    )
    space.add_argument(
        "--num-cells",
        type=_positive_int,
        default=None,
        help="fix the depth: cells (cell), cells per stage (nas-bench-201) "
        "or most layers (chain); None: searched as the space defines",
    )
    space.add_argument(
        "--filters",
        type=_positive_int,
        default=None,
        help="fix the initial filters (cell, nas-bench-201); None: the space's",
    )
    estimation.add_argument(
        "--max-params",
        type=_positive_int,
        default=None,
        help="reject architectures with more weights than this (built, not "
        "trained; they count as failed trials)",
    )
    estimation.add_argument(
        "--max-flops",
        type=_positive_int,
        default=None,
        help="reject architectures needing more FLOPs per example than this "
        "(2 x MACs + the rest, keras_nas.estimation.count_flops; built, not "
        "trained; they count as failed trials)",
    )
    estimation.add_argument(
        "--xla",
        action="store_true",
        help="TensorFlow backend: let Keras XLA-compile the models (worth it "
        "on GPUs; on CPUs compiling costs more than it saves). JAX always "
        "compiles",
    )
    output.add_argument(
        "--tensorboard",
        metavar="DIR",
        default=None,
        help="log the search to TensorBoard in DIR: trial curves, HParams, "
        "each architecture (image, text), score per trial, best so far and "
        "the history plot (run 'search')",
    )
    output.add_argument(
        "--quiet",
        action="store_true",
        help="print nothing but errors (no header, trial or epoch lines)",
    )
    _add_verbose(output)
    add_show_parser(commands)
    add_export_parser(commands)
    add_doctor_parser(commands)
    return parser


def _add_verbose(group: Any) -> None:
    group.add_argument(
        "--verbose",
        action="store_true",
        help="show TensorFlow's own log lines and warnings",
    )


class _HelpFormatter(
    argparse.ArgumentDefaultsHelpFormatter,
    argparse.RawDescriptionHelpFormatter,
):
    """Shows defaults other than None and False; keeps the line breaks of
    description and epilog."""

    def _get_help_string(self, action: argparse.Action) -> str:
        if action.default in (None, False):
            return action.help or ""
        return super()._get_help_string(action)


SEARCH_EPILOG = """\
files written to --directory:
  best_model.keras           the retrained best model (load it with
                             `import keras_nas` then keras.saving.load_model)
  best_genotype.json         the best cells (cell and nas-bench-201 spaces)
  best_hyperparameters.json  every hyperparameter of the best trial
  results.json               trials, scores, seconds, best trial, test
                             accuracy, timings and these arguments
  history.png                score per trial and best so far
  best_cell.png              the best cell drawn (cell spaces)
  search/                    keras-tuner's project (trial_<id> per trial)
Trials are numbered by keras-tuner's trial id (0, 1, ...; zero-padded to
the width of --max-trials) on the console, in results.json, search/ and
TensorBoard.

backends: Keras runs on the backend named by KERAS_BACKEND: tensorflow
(the default and fastest on CPU), jax or torch, e.g.
  KERAS_BACKEND=jax keras-nas search
The first lines of the output name the backend and its devices.

see also: keras-nas show DIR, keras-nas export DIR --format tflite
"""


# --- Resolution of names ----------------------------------------------------


def _resolve(table: dict[str, tuple], name: str, what: str) -> type:
    if name not in table:
        raise UsageError(
            f"unknown {what} {name!r}; expected one of {sorted(table)}"
        )
    module, attr = table[name][:2]
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as e:
        raise UsageError(
            f"{what} {name!r} is not available in this installation "
            f"({module}.{attr}: {e})"
        ) from e


def _space_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """Constructor arguments of the space from the size options."""
    kwargs = {}
    for option, argument in SPACE_OPTIONS.items():
        value = getattr(args, option)
        if value is None:
            continue
        if args.space not in argument:
            flag = "--" + option.replace("_", "-")
            raise UsageError(
                f"{flag} applies to --space {' or '.join(sorted(argument))}, "
                f"not {args.space!r}"
            )
        kwargs[argument[args.space]] = value
    return kwargs


def _make_space(args: argparse.Namespace, data: Any) -> Any:
    kwargs = _space_kwargs(args)
    cls = _resolve(SPACES, args.space, "space")
    try:
        check_space_class(
            cls, kwargs, data.input_shape, data.num_classes, args.batch_size
        )
        return cls(
            input_shape=data.input_shape,
            num_classes=data.num_classes,
            **kwargs,
        )
    except ValueError as e:
        raise UsageError(f"cannot build the {args.space!r} space: {e}") from e


class _ProgressMixin:
    """Reports each finished trial through `self._report(trial)`.

    Also applies `--xla` to every model the tuner builds: XLA compilation
    of a small cell network costs more CPU time than a whole short trial;
    and rejects models over the `--max-params` / `--max-flops` budget
    before they are trained.
    """

    _report: Callable[[Any], None] | None = None
    _announce: Callable[[Any], None] | None = None
    _jit_compile: bool | str = "auto"
    _max_params: int | None = None
    _max_flops: int | None = None

    def _try_build(self, hp):
        # keras-tuner builds and compiles each trial's model here.
        model = super()._try_build(hp)
        _set_jit(model, self._jit_compile)
        _check_budget(model, self._max_params, self._max_flops)
        return model

    def on_trial_begin(self, trial):
        self._trial_started = time.perf_counter()
        if self._announce is not None:
            self._announce(trial)
        super().on_trial_begin(trial)

    def on_trial_end(self, trial):
        super().on_trial_end(trial)
        seconds = time.perf_counter() - getattr(
            self, "_trial_started", time.perf_counter()
        )
        if self._report is not None:
            self._report(trial, seconds)


def _check_budget(
    model: Any, max_params: int | None, max_flops: int | None
) -> None:
    """Fails the trial of a model over the `--max-params/--max-flops` budget
    (`keras_nas.estimation.check_budget`)."""
    if max_params is None and max_flops is None:
        return
    from keras_nas.estimation.budget import check_budget

    check_budget(
        model,
        max_params,
        max_flops,
        labels={"max_params": "--max-params ", "max_flops": "--max-flops "},
    )


#: Tuners that build every trial's model with `_try_build` (the budget
#: options apply to them).
_BUILDS_TRIALS = frozenset(TUNERS) - {"darts", "enas"}


def _make_tuner(
    args: argparse.Namespace, space: Any, data: Any, report: Callable
) -> Any:
    budget = args.max_params is not None or args.max_flops is not None
    if budget and args.tuner not in _BUILDS_TRIALS:
        raise UsageError(
            "--max-params/--max-flops need a tuner that builds every trial "
            f"({', '.join(sorted(_BUILDS_TRIALS))}); got --tuner {args.tuner}"
        )
    cls = _resolve(TUNERS, args.tuner, "tuner")
    positional, keywords = TUNERS[args.tuner][2](args, space, data)
    from keras_nas.tensorboard import SearchViewsMixin

    # keras-tuner's own tuners get the search views of the keras-nas ones.
    views = () if issubclass(cls, SearchViewsMixin) else (SearchViewsMixin,)
    tuner_cls = type(f"Cli{cls.__name__}", (_ProgressMixin, *views, cls), {})
    try:
        tuner = tuner_cls(
            *positional,
            objective="val_accuracy",
            seed=args.seed,
            directory=args.directory,
            project_name=PROJECT_NAME,
            overwrite=args.overwrite,
            **keywords,
        )
    except ValueError as e:
        raise UsageError(f"cannot build the {args.tuner!r} tuner: {e}") from e
    tuner._report = report
    _project.quiet_failed_trials()
    tuner._jit_compile = _jit_setting(args)
    tuner._max_params = args.max_params
    tuner._max_flops = args.max_flops
    if budget:
        # Rejected architectures are failed trials: they must not stop the
        # search (keras-tuner stops after 3 consecutive failures).
        oracle = tuner.oracle
        oracle.max_consecutive_failed_trials = max(
            oracle.max_consecutive_failed_trials, args.max_trials
        )
    return tuner


def _jit_setting(args: argparse.Namespace) -> bool | str:
    # Only TensorFlow can run compiled without XLA; on JAX, jit is the
    # compiled path, so it stays on.
    import keras

    if args.xla or keras.backend.backend() != "tensorflow":
        return "auto"
    return False


def _set_jit(model: Any, jit_compile: bool | str) -> None:
    if jit_compile != "auto" and hasattr(model, "jit_compile"):
        model.jit_compile = jit_compile


# --- The search command -----------------------------------------------------


def _trial_number(trial_id: str) -> str:
    # keras-tuner's trial id is THE trial number: the same in the console,
    # results.json, `search/trial_<id>` and the TensorBoard run `<id>`.
    return str(trial_id)


def _genotype_of(space: Any, values: dict[str, Any]) -> Any:
    to_genotype = getattr(space, "genotype", None)
    if to_genotype is None:
        return None
    try:
        return to_genotype(values)
    except ValueError:
        return None


def _summary(space: Any, values: dict[str, Any], width: int = 160) -> str:
    text = describe(values, _genotype_of(space, values))
    return text if len(text) <= width else text[: width - 3] + "..."


def _read_json(path: str) -> Any:
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, json.JSONDecodeError):
        return None


def _write_json(path: str, data: Any) -> None:
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


def _prepare_directory(args: argparse.Namespace) -> dict[str, Any] | None:
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


class _Run:
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

    def say(self, text: str) -> None:
        if not self.args.quiet:
            print(text, flush=True)

    def best_trial(self) -> Any:
        oracle = self.tuner.oracle
        ranked = [
            t
            for t in oracle.get_best_trials(len(oracle.trials))
            if not _diverged(t)
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
            f"trial {_trial_number(trial.trial_id)} ({of}): "
            f"{_summary(self.space, trial.hyperparameters.values)}"
        )

    def report(self, trial: Any, seconds: float) -> None:
        self.trial_seconds[trial.trial_id] = round(seconds, 2)
        best = self.best_trial()
        score = "failed" if trial.score is None else f"{trial.score:.4f}"
        if trial.score is not None and _diverged(trial):
            score += " (diverged)"
        elif trial.score is None and trial.message:
            score += f" ({trial.message.strip().splitlines()[-1][:120]})"
        best_text = (
            "n/a"
            if best is None
            else f"{best.score:.4f} (trial {_trial_number(best.trial_id)})"
        )
        elapsed = time.perf_counter() - self.started
        self.say(
            f"trial {_trial_number(trial.trial_id)} done: "
            f"score={score} best={best_text} "
            f"time={seconds:.1f}s elapsed={elapsed:.1f}s"
        )
        self.write_results(status="searching")

    def trials(self) -> list[dict[str, Any]]:
        out = []
        trials = self.tuner.oracle.trials.values()
        for trial in sorted(trials, key=lambda t: _order(t.trial_id)):
            values = dict(trial.hyperparameters.values)
            genotype = _genotype_of(self.space, values)
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
        _write_json(os.path.join(self.args.directory, "results.json"), results)
        return results


def _diverged(trial: Any) -> bool:
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


def _seed_everything(seed: int) -> None:
    import keras

    keras.utils.set_random_seed(seed)


def _load(args: argparse.Namespace) -> Any:
    from keras_nas.data import load_dataset

    try:
        return load_dataset(
            args.dataset,
            validation_split=args.validation_split,
            test_split=args.test_split,
            seed=args.seed,
            batch_size=args.batch_size,
            subset=args.subset,
            image_size=args.image_size,
        )
    except ValueError as e:
        raise UsageError(str(e)) from e


def _retrain(run: _Run, data: Any, best: Any) -> dict[str, Any]:
    args = run.args
    _seed_everything(args.seed)
    model = run.tuner.hypermodel.build(best.hyperparameters.copy())
    _set_jit(model, _jit_setting(args))
    started = time.perf_counter()
    model.fit(
        epochs=args.retrain_epochs,
        verbose=0,
        callbacks=_progress(args),
        **data.fit_kwargs("train+validation", args.batch_size),
    )
    train_seconds = time.perf_counter() - started
    loss, accuracy = _evaluate(model, data, args.batch_size)
    # Saved under another name, then renamed: a kill never leaves half a
    # best_model.keras.
    path = os.path.join(args.directory, "best_model.keras")
    model.save(os.path.join(args.directory, "best_model.tmp.keras"))
    os.replace(os.path.join(args.directory, "best_model.tmp.keras"), path)
    return {
        "test_accuracy": accuracy,
        "test_loss": loss,
        "retrain_seconds": round(train_seconds, 2),
        "num_parameters": int(model.count_params()),
    }


def _evaluate(model: Any, data: Any, batch_size: int) -> tuple[float, float]:
    metrics = model.evaluate(
        verbose=0, return_dict=True, **data.fit_kwargs("test", batch_size)
    )
    accuracy = metrics.get("accuracy")
    if accuracy is None:  # Auxiliary heads prefix the metric names.
        accuracy = next(v for k, v in metrics.items() if "accuracy" in k)
    return float(metrics["loss"]), float(accuracy)


def _save_best(run: _Run, best: Any) -> Any:
    directory = run.args.directory
    values = dict(best.hyperparameters.values)
    _write_json(os.path.join(directory, "best_hyperparameters.json"), values)
    genotype = _genotype_of(run.space, values)
    if genotype is not None:
        _write_json(
            os.path.join(directory, "best_genotype.json"), genotype.to_dict()
        )
    return genotype


def _plots(run: _Run, genotype: Any) -> None:
    from keras_nas.visualize import draw_genotype, plot_history

    directory = run.args.directory
    plot_history(
        run.tuner,
        path=os.path.join(directory, "history.png"),
        title=f"{run.args.tuner} search on {run.args.dataset}",
    )
    if genotype is not None:
        number = _trial_number(run.best_trial().trial_id)
        draw_genotype(
            genotype,
            path=os.path.join(directory, "best_cell.png"),
            title=f"Best cell (trial {number})",
        )


def _search_worker(args: argparse.Namespace) -> int:
    """A worker of a distributed search: runs the trials the chief hands out.

    keras-tuner's `KERASTUNER_*` environment variables make this process a
    worker (see README, "Scaling out"). It never clears `--directory` and
    writes no results: the chief (`KERASTUNER_TUNER_ID=chief`) does, and
    retrains the best architecture once every trial has ended.
    """
    tuner_id = os.environ["KERASTUNER_TUNER_ID"]
    args.overwrite = False  # Only the chief may clear the directory.
    os.makedirs(args.directory, exist_ok=True)
    run = _Run(args, None)
    data = _load(args)
    run.space = _make_space(args, data)
    _seed_everything(args.seed)

    def report(trial: Any, seconds: float) -> None:
        # The chief scores the trial when it ends.
        trial = run.tuner.oracle.get_trial(trial.trial_id)
        score = "failed" if trial.score is None else f"{trial.score:.4f}"
        run.say(
            f"worker {tuner_id}: trial {_trial_number(trial.trial_id)} "
            f"score={score} time={seconds:.1f}s | "
            f"{_summary(run.space, trial.hyperparameters.values)}"
        )

    run.tuner = _make_tuner(args, run.space, data, report)
    run.say(
        f"keras-nas search worker {tuner_id}: chief at "
        f"{os.environ['KERASTUNER_ORACLE_IP']}:"
        f"{os.environ['KERASTUNER_ORACLE_PORT']}, directory {args.directory}"
    )
    run.tuner.search(
        epochs=args.epochs,
        validation_data=data.validation_data(),
        verbose=0,
        callbacks=_callbacks(args),
        **_search_kwargs(data, args.batch_size),
    )
    run.say(f"worker {tuner_id}: no trials left; the chief writes the results")
    return 0


def _is_worker() -> bool:
    # keras-tuner's rule (`keras_tuner.src.distribute.utils`), read here
    # without importing keras-tuner, so that bad options fail fast.
    tuner_id = os.environ.get("KERASTUNER_TUNER_ID", "")
    return "KERASTUNER_ORACLE_IP" in os.environ and "chief" not in tuner_id


def search(args: argparse.Namespace) -> int:
    """Runs `keras-nas search`; returns the exit status."""
    if _is_worker():
        return _search_worker(args)
    previous = _prepare_directory(args)
    os.makedirs(args.directory, exist_ok=True)
    run = _Run(args, previous)
    _space_kwargs(args)  # Bad options fail before any slow import.
    run.say(
        f"keras-nas search: {args.space} space, {args.tuner} tuner, "
        f"directory {args.directory}"
    )
    with quietly(args.verbose):  # tfds imports TensorFlow.
        data = _load(args)
    run.say(import_backend(verbose=args.verbose))
    run.space = _make_space(args, data)
    _seed_everything(args.seed)
    _project.install_atomic_tuner_writes()
    run.tuner = _make_tuner(args, run.space, data, run.report)
    _project.reconcile(run.tuner)
    run.tuner._announce = run.announce
    # Records the arguments now, so an interrupted search can be resumed.
    run.write_results(status="searching")
    _project.save_args(args.directory, vars(args))
    done = sum(
        1 for t in run.tuner.oracle.trials.values() if t.score is not None
    )
    sizes = data.sizes()
    run.say(
        f"dataset {args.dataset} {data.input_shape} "
        f"({data.num_classes} classes"
        + (
            f"; train/val/test {sizes['train']}/{sizes['validation']}/"
            f"{sizes['test']}"
            if data.is_arrays
            else ""
        )
        + ")"
    )
    if done:
        run.say(f"resuming: {done} trial(s) already done")
    search_started = time.perf_counter()
    run.tuner.search(
        epochs=args.epochs,
        validation_data=data.validation_data(),
        verbose=0,
        callbacks=_callbacks(args),
        **_search_kwargs(data, args.batch_size),
    )
    search_seconds = time.perf_counter() - search_started
    best = run.best_trial()
    if best is None:
        run.write_results(status="failed")
        raise UsageError(_no_best_message(run))
    genotype = _save_best(run, best)
    prev = run.previous
    reuse = (
        prev.get("retrained", {}).get("trial_id") == best.trial_id
        and prev.get("retrained", {}).get("retrain_epochs")
        == args.retrain_epochs
        and "test_accuracy" in prev
    )
    model_path = os.path.join(args.directory, "best_model.keras")
    if reuse and _project.file_digest(model_path) != prev["retrained"].get(
        "sha256"
    ):
        reuse = False
        run.say(f"{model_path} is missing, damaged or changed: retraining")
    timings = dict(prev.get("timings", {}))
    timings["search_seconds"] = round(
        timings.get("search_seconds", 0.0) + search_seconds, 2
    )
    if reuse:
        run.say(
            f"best trial {_trial_number(best.trial_id)} unchanged: keeping "
            "the retrained best_model.keras"
        )
        retrained = prev["retrained"]
        test = {"test_accuracy": prev["test_accuracy"]}
        test["test_loss"] = prev.get("test_loss")
    else:
        run.say(
            f"retraining trial {_trial_number(best.trial_id)} from scratch "
            "on train+validation for "
            f"{plural(args.retrain_epochs, 'epoch')}..."
        )
        result = _retrain(run, data, best)
        test = {k: result[k] for k in ("test_accuracy", "test_loss")}
        retrained = {
            "trial_id": best.trial_id,
            "retrain_epochs": args.retrain_epochs,
            "num_parameters": result["num_parameters"],
            "sha256": _project.file_digest(model_path),
        }
        timings["retrain_seconds"] = result["retrain_seconds"]
    timings["total_seconds"] = round(time.perf_counter() - run.started, 2)
    run.write_results(
        status="done", retrained=retrained, timings=timings, **test
    )
    _plots(run, genotype)
    run.say(
        f"best trial {_trial_number(best.trial_id)}: val_accuracy="
        f"{best.score:.4f}, test_accuracy={test['test_accuracy']:.4f}; "
        f"total {timings['total_seconds']:.1f}s; results in {args.directory}"
    )
    return 0


def _no_best_message(run: _Run) -> str:
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


def _callbacks(args: argparse.Namespace) -> list[Any]:
    callbacks = _progress(args)
    if getattr(args, "tensorboard", None) is None:
        return callbacks
    import keras

    return [*callbacks, keras.callbacks.TensorBoard(args.tensorboard)]


def _progress(args: argparse.Namespace) -> list[Any]:
    """A line per epoch, unless `--quiet`."""
    if getattr(args, "quiet", False):
        return []
    from keras_nas._cli_progress import EpochLine

    return [EpochLine()]


def _search_kwargs(data: Any, batch_size: int) -> dict[str, Any]:
    return data.fit_kwargs("train", batch_size)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `keras-nas` command; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.error(f"missing command (choose from {', '.join(COMMANDS)})")
    args.directory = os.path.abspath(args.directory)
    if args.command == "search" and args.tensorboard is not None:
        args.tensorboard = os.path.abspath(args.tensorboard)
    if not getattr(args, "verbose", False):
        quiet_environment()
    try:
        return COMMANDS[args.command](args)
    except UsageError as e:
        message = " ".join(str(e).split())
        print(f"error: {message}", file=sys.stderr)
        return 2
    except OSError as e:
        if e.filename is None:
            raise
        # A file system fault (permissions, disk full): one line.
        reason = e.strerror or type(e).__name__
        print(f"error: {e.filename}: {reason}", file=sys.stderr)
        return 2


#: Subcommand -> function(args) -> exit status.
COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "search": search,
    "show": show,
    "export": export,
    "doctor": doctor_command,
}


if __name__ == "__main__":
    sys.exit(main())
