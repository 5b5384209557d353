"""The options of `keras-nas search`, in groups (data, search space, search
strategy, estimation, output), and the help that names the files written
and the backends."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from typing import Any

from keras_nas._cli_tuners import SPACES, TUNERS
from keras_nas._validation import MAX_CELLS, MAX_FILTERS, MAX_NODES

PROG = "keras-nas"


class Parser(argparse.ArgumentParser):
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


def devices_option(text: str) -> int | str:
    """`--devices` value: a positive integer, `all` or `cpu`."""
    if text in ("all", "cpu"):
        return text
    try:
        return _positive_int(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"expected a positive integer, 'all' or 'cpu', got {text!r}"
        ) from None


def _size(maximum: int) -> Callable[[str], int]:
    """A positive integer up to `maximum`: a size refused before anything
    is imported or built (`--num-nodes 1000000` used to hang at start)."""

    def size(text: str) -> int:
        value = _positive_int(text)
        if value > maximum:
            raise argparse.ArgumentTypeError(
                f"expected a positive integer up to {maximum}, the most "
                f"keras-nas builds, got {text!r}"
            )
        return value

    return size


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


def _non_negative_number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0.0 <= value < math.inf:
        raise argparse.ArgumentTypeError(
            f"expected a non-negative number, got {text!r}"
        )
    return value


def add_search_parser(commands: Any) -> None:
    """Adds the `search` subcommand to the `keras-nas` subparsers."""
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
        type=_size(MAX_NODES),
        default=None,
        help="cell space: intermediate nodes per cell (None: the space's)",
    )
    space.add_argument(
        "--num-cells",
        type=_size(MAX_CELLS),
        default=None,
        help="fix the depth: cells (cell), cells per stage (nas-bench-201) "
        "or most layers (chain); None: searched as the space defines",
    )
    space.add_argument(
        "--filters",
        type=_size(MAX_FILTERS),
        default=None,
        help=(
            "fix the initial filters (cell, nas-bench-201; mobilenet: the "
            "stem's); None: the space's"
        ),
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
    strategy.add_argument(
        "--latency-weight",
        type=_non_negative_number,
        default=None,
        metavar="W",
        help="proxyless: weight (per ms) of the expected latency in the "
        "architecture loss, from a latency table measured on this machine "
        "at the start (saved in --directory); 0 or absent: no latency term",
    )
    estimation.add_argument(
        "--devices",
        type=devices_option,
        default=None,
        metavar="N|all|cpu",
        help="train every trial (and the one-shot supernets, and the "
        "retrained best) data-parallel on N local devices, or all, with "
        "tf.distribute.MirroredStrategy (TensorFlow backend; GPUs if any, "
        "else the CPUs TensorFlow lists) or keras.distribution.DataParallel "
        "(JAX backend; JAX's devices; --batch-size must be a multiple of N). "
        "--batch-size is the global batch; 'cpu': hide the GPUs. Absent: "
        "Keras' default device",
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
