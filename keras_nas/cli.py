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

This module builds the parser and dispatches to the subcommands, each in
its own module: `search` in `keras_nas._cli_search` (its options in
`keras_nas._cli_args`, its spaces and tuners in `keras_nas._cli_tuners`, its
directory and `results.json` in `keras_nas._cli_results`), `show`, `export`
and `doctor` in `keras_nas._cli_show`, `keras_nas._cli_export` and
`keras_nas._cli_doctor`; the quiet start-up (TensorFlow imported with its
notices muted, unless `--verbose`) in `keras_nas._cli_env`.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

from keras_nas._cli_args import PROG, Parser, add_search_parser
from keras_nas._cli_doctor import add_doctor_parser, doctor_command
from keras_nas._cli_env import UsageError, quiet_environment
from keras_nas._cli_export import add_export_parser, export
from keras_nas._cli_search import search
from keras_nas._cli_show import add_show_parser, show

__all__ = ["COMMANDS", "UsageError", "build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The `keras-nas` argument parser."""
    from keras_nas import __version__

    parser = Parser(
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
        dest="command", metavar="COMMAND", parser_class=Parser
    )
    add_search_parser(commands)
    add_show_parser(commands)
    add_export_parser(commands)
    add_doctor_parser(commands)
    return parser


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
