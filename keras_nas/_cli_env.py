"""Shared pieces of the `keras-nas` command: its usage error, plurals, and
its start-up (a quiet TensorFlow and a line naming the backend).

TensorFlow 2.21 writes its start-up notices (oneDNN, CUDA drivers, CPU
instructions, `failed call to cuInit`) from C++ before its logging is
initialised, so neither `TF_CPP_MIN_LOG_LEVEL` nor absl's Python logging
hides them all. `import_backend` therefore imports Keras and TensorFlow with
the process's standard error (file descriptor 2) sent to a temporary file,
and replays that file only if the import fails. Nothing here imports Keras or
TensorFlow at module level: `keras-nas --help` stays fast.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import os
import sys
import tempfile
import warnings
from collections.abc import Iterator


class UsageError(ValueError):
    """Bad command-line input: reported as one line, exit status 2."""


def plural(count: int, word: str) -> str:
    """`"1 epoch"` for `plural(1, "epoch")`, `"3 epochs"` for 3."""
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


#: Python warnings the command hides unless `--verbose`.
_QUIET_WARNINGS = (
    # A sampled cell may ignore one of its inputs; that input's unused
    # preprocessing then has no gradient, which is expected in a search.
    "Gradients do not exist",
)


def quiet_environment() -> None:
    """Sets TensorFlow's log level before TensorFlow is imported.

    A level the user set in `TF_CPP_MIN_LOG_LEVEL` is kept.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    for message in _QUIET_WARNINGS:
        warnings.filterwarnings("ignore", message=message)


@contextlib.contextmanager
def muted_stderr(expected: tuple[type, ...] = ()) -> Iterator[None]:
    """Sends file descriptor 2 (C++ and Python) to a temporary file.

    The captured text is written back to standard error if the block
    raises (so a failed import still explains itself), unless the exception
    is one of the `expected` types, which say all there is to say.
    """
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # No real standard error: nothing to mute.
        yield
        return
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        except BaseException as e:
            _restore(saved)
            if not isinstance(e, expected):
                capture.seek(0)
                os.write(2, capture.read())
            raise
        else:
            _restore(saved)


def _restore(saved: int) -> None:
    with contextlib.suppress(OSError, ValueError):
        sys.stderr.flush()
    os.dup2(saved, 2)
    os.close(saved)


def quietly(verbose: bool) -> contextlib.AbstractContextManager:
    """`muted_stderr` (a `UsageError` is not replayed) unless `verbose`."""
    if verbose:
        return contextlib.nullcontext()
    return muted_stderr(expected=(UsageError,))


def _quiet_absl() -> None:
    try:
        import absl.logging
    except ImportError:
        return
    absl.logging.set_verbosity(absl.logging.ERROR)


def import_backend(verbose: bool = False) -> str:
    """Imports Keras (and TensorFlow) quietly; describes the backend.

    Args:
        verbose: if True, TensorFlow's own messages are shown.

    Returns:
        One line naming the Keras backend, its version and the devices,
        e.g. `"backend tensorflow 2.21.0 (keras 3.15.1), devices: cpu:0"`.
    """
    with quietly(verbose):
        if importlib.util.find_spec("tensorflow") is not None:
            # keras-nas needs TensorFlow for its data pipelines on every
            # backend; importing it here keeps its notices inside the mute.
            importlib.import_module("tensorflow")
        keras = importlib.import_module("keras")
        backend = keras.backend.backend()
        devices = _devices(keras)
    if not verbose:
        _quiet_absl()
    module = sys.modules.get(backend)
    version = getattr(module, "__version__", "")
    name = f"{backend} {version}".strip()
    devices_text = ", ".join(devices)
    return (
        f"backend {name} (keras {keras.__version__}), devices: {devices_text}"
    )


def _devices(keras) -> list[str]:
    try:
        devices = keras.distribution.list_devices()
    except Exception:  # A backend without the distribution API.
        return ["unknown"]
    return [str(d).lower() for d in devices] or ["unknown"]
