"""The `keras-nas doctor DIR` subcommand (the repairs: `keras_nas._doctor`)."""

from __future__ import annotations

import argparse
from typing import Any

from keras_nas._cli_env import UsageError, muted_stderr
from keras_nas._doctor import DOCTOR_HELP, doctor
from keras_nas._project import ProjectError

__all__ = ["add_doctor_parser", "doctor_command"]


def add_doctor_parser(commands: Any) -> None:
    """Adds the `doctor` subcommand to the `keras-nas` subparsers."""
    parser = commands.add_parser(
        "doctor",
        help="check a search directory and repair it for a resume",
        description=DOCTOR_HELP,
    )
    parser.add_argument(
        "directory", metavar="DIR", help="the --directory of a search"
    )


def doctor_command(args: argparse.Namespace) -> int:
    """Runs `keras-nas doctor`; returns the exit status."""
    try:
        # Rebuilding a keras-nas oracle's state imports TensorFlow: its
        # start-up notices are muted (and shown if the repair crashes).
        with muted_stderr(expected=(ProjectError, OSError)):
            lines = doctor(args.directory)
    except (ProjectError, OSError) as e:
        raise UsageError(str(e)) from e
    for line in lines:
        print(line)
    return 0
