"""What `keras-nas search` runs: its tables of spaces and tuners, and how it
builds them from the command's arguments.

`SPACES` and `TUNERS` are the one list of what `--space` and `--tuner`
offer; `make_space` checks the sizes against memory before building;
`make_tuner` wraps the tuner class so that each trial is announced and
reported, `--xla` applies and models over `--max-params/--max-flops` fail
their trial before training. Nothing here imports Keras at module level.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import time
from collections.abc import Callable
from typing import Any

from keras_nas import _project
from keras_nas._cli_env import UsageError
from keras_nas._size_checks import check_sizes_early, check_space_class

#: keras-tuner's project folder inside `--directory`.
PROJECT_NAME = "search"

#: `--space` name -> (module, class).
SPACES: dict[str, tuple[str, str]] = {
    "cell": ("keras_nas.spaces", "CellSearchSpace"),
    "chain": ("keras_nas.spaces", "ChainSearchSpace"),
    "nas-bench-201": ("keras_nas.spaces", "NasBench201SearchSpace"),
    "mobilenet": ("keras_nas.spaces", "MobileNetSearchSpace"),
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
            f"--tuner {args.tuner} searches the cell space; got --space "
            f"{args.space}"
        )
    if not data.is_arrays:
        raise UsageError(
            f"--tuner {args.tuner} needs array data (digits or a .npz file); "
            "got "
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
        "jit_compile": jit_setting(args),
    }


def _proxyless_arguments(args: argparse.Namespace, space: Any, data: Any):
    # ProxylessNAS trains one binary-gated supernet over the MobileNet space
    # (a single trial). A positive --latency-weight adds the expected
    # latency to the architecture loss, from a latency table measured on
    # this machine at the first trial (kept in the project directory). On
    # the cell space: the DARTS supernet's binary relaxation
    # (`_tuner_class`), without a latency term.
    if args.space == "cell":
        if getattr(args, "latency_weight", None):
            raise UsageError(
                "--latency-weight needs --space mobilenet (its latency "
                "table is per MobileNet block); got --space cell"
            )
        return _relaxed(relaxation="binary")(args, space, data)
    if args.space != "mobilenet" or not data.is_arrays:
        raise UsageError(
            "--tuner proxyless searches --space mobilenet or cell with array "
            f"data; got --space {args.space} --dataset {args.dataset}"
        )
    keywords = {"batch_size": args.batch_size}
    weight = getattr(args, "latency_weight", None)
    if weight:
        keywords.update(latency_table="measure", latency_weight=weight)
    return [space], keywords
def _relaxed(**relaxation: Any) -> Callable[..., tuple]:
    """`_darts_arguments` plus a relaxation of the DARTS supernet."""

    def arguments(args: argparse.Namespace, space: Any, data: Any) -> tuple:
        positional, keywords = _darts_arguments(args, space, data)
        return positional, {**keywords, **relaxation}

    return arguments


#: Size options of the command -> {space: constructor argument}.
SPACE_OPTIONS: dict[str, dict[str, str]] = {
    "num_nodes": {"cell": "num_nodes"},
    "num_cells": {
        "cell": "num_cells",
        "nas-bench-201": "cells_per_stage",
        "chain": "max_layers",
    },
    "filters": {
        "cell": "filters",
        "nas-bench-201": "filters",
        "mobilenet": "stem_filters",
    },
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
    "gdas": ("keras_nas.tuners", "Darts", _relaxed(relaxation="gumbel")),
    "pc-darts": ("keras_nas.tuners", "Darts", _relaxed(partial_channels=4)),
    "enas": ("keras_nas.tuners", "Enas", _trial_budget),
    "proxyless": ("keras_nas.tuners", "Proxyless", _proxyless_arguments),
    "bo": (
        "keras_nas.tuners",
        "ArchitectureBayesianOptimization",
        _trial_budget,
    ),
    "bananas": ("keras_nas.tuners", "Bananas", _trial_budget),
    "local": ("keras_nas.tuners", "LocalSearch", _trial_budget),
}


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


def space_kwargs(args: argparse.Namespace) -> dict[str, Any]:
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


def check_sizes(args: argparse.Namespace) -> None:
    """Refuses the size options before any slow import: they must apply to
    `--space`, and the smallest model with them must fit in memory. Also
    refuses a tuner's own option given to another tuner."""
    if getattr(args, "latency_weight", None) is not None and (
        args.tuner != "proxyless"
    ):
        raise UsageError(
            "--latency-weight applies to --tuner proxyless; got --tuner "
            f"{args.tuner}"
        )
    kwargs = space_kwargs(args)
    try:
        check_sizes_early(SPACES[args.space][1], kwargs, args.batch_size)
    except ValueError as e:
        raise UsageError(f"cannot build the {args.space!r} space: {e}") from e


def make_space(args: argparse.Namespace, data: Any) -> Any:
    kwargs = space_kwargs(args)
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
        # keras-tuner builds and compiles each trial's model here (after
        # one garbage collection, not keras-tuner's two).
        from keras_nas.tuners._build import build_trial_model

        model = build_trial_model(self, hp)
        set_jit(model, self._jit_compile)
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
_BUILDS_TRIALS = frozenset(TUNERS) - {"darts", "enas", "proxyless"}


def make_tuner(
    args: argparse.Namespace,
    space: Any,
    data: Any,
    report: Callable,
    strategy: Any = None,
) -> Any:
    budget = args.max_params is not None or args.max_flops is not None
    if budget and args.tuner not in _BUILDS_TRIALS:
        raise UsageError(
            "--max-params/--max-flops need a tuner that builds every trial "
            f"({', '.join(sorted(_BUILDS_TRIALS))}); got --tuner {args.tuner}"
        )
    # --tuner proxyless on the cell space is the Darts tuner (binary gates).
    cell = args.tuner == "proxyless" and args.space == "cell"
    cls = _resolve(TUNERS, "darts" if cell else args.tuner, "tuner")
    positional, keywords = TUNERS[args.tuner][2](args, space, data)
    if strategy is not None:  # --devices: keras-tuner's own argument.
        keywords["distribution_strategy"] = strategy
    from keras_nas.tensorboard import SearchViewsMixin

    # keras-tuner's own tuners get the search views of the keras-nas ones.
    views = () if issubclass(cls, SearchViewsMixin) else (SearchViewsMixin,)
    tuner_cls = type(f"Cli{cls.__name__}", (_ProgressMixin, *views, cls), {})
    try:
        # keras-tuner prints "Reloading Tuner from ..." on a resume; the
        # command says "resuming: N trial(s) already done" instead.
        with contextlib.redirect_stdout(io.StringIO()):
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
    tuner._jit_compile = jit_setting(args)
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


def jit_setting(args: argparse.Namespace) -> bool | str:
    # Only TensorFlow can run compiled without XLA; on JAX, jit is the
    # compiled path, so it stays on.
    import keras

    if args.xla or keras.backend.backend() != "tensorflow":
        return "auto"
    return False


def set_jit(model: Any, jit_compile: bool | str) -> None:
    if jit_compile != "auto" and hasattr(model, "jit_compile"):
        model.jit_compile = jit_compile
