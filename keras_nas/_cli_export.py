"""`keras-nas export DIR --format keras|saved_model|tflite`.

Loads the search's `best_model.keras` and writes it as a Keras file, a
TensorFlow SavedModel (`model.export(..., format="tf_saved_model")`) or a
TFLite flatbuffer (`model.export(..., format="litert")`, TensorFlow's TFLite
converter), then checks the export: it runs the exported model on random
inputs and compares its outputs with the Keras model's. SavedModel and TFLite
need TensorFlow; on another backend a failed export says to rerun with
`KERAS_BACKEND=tensorflow` (Keras 3.15 on JAX: saved_model works through
jax2tf, tflite does not). Keras is imported only when the command runs.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import warnings
from typing import Any

from keras_nas._cli_env import UsageError, import_backend, muted_stderr

#: `--format` -> default output name in `DIR/export/`.
FORMATS = {
    "keras": "best_model.keras",
    "saved_model": "best_model_saved_model",
    "tflite": "best_model.tflite",
}
EXPORT_DIR = "export"
SOURCE = "best_model.keras"


def add_export_parser(commands: Any) -> None:
    """Adds the `export` subcommand to the `keras-nas` subparsers."""
    parser = commands.add_parser(
        "export",
        help="export the best model as .keras, SavedModel or TFLite",
        description=(
            "Export DIR/best_model.keras (the retrained best model of a "
            "search) for deployment, and check that the export computes the "
            "same outputs. saved_model and tflite need TensorFlow (run with "
            "KERAS_BACKEND=tensorflow, the default, if another backend "
            "fails)."
        ),
    )
    parser.add_argument(
        "directory",
        metavar="DIR",
        nargs="?",
        default="keras_nas_results",
        help="the --directory of a finished search (default: "
        "keras_nas_results)",
    )
    parser.add_argument(
        "--format",
        choices=sorted(FORMATS),
        default="tflite",
        help="keras: a .keras file; saved_model: a TensorFlow SavedModel "
        "folder (TF Serving); tflite: a .tflite file (default: tflite)",
    )
    parser.add_argument(
        "--output",
        metavar="PATH",
        default=None,
        help="where to write it (default: DIR/export/"
        + ", DIR/export/".join(FORMATS.values())
        + ")",
    )
    parser.add_argument(
        "--verbose",
        action="store_true",
        help="show TensorFlow's own log lines and warnings",
    )


def _output_path(args: argparse.Namespace) -> str:
    if args.output is not None:
        output = os.path.abspath(args.output)
    else:
        output = os.path.join(args.directory, EXPORT_DIR, FORMATS[args.format])
    if args.format == "keras" and not output.endswith(".keras"):
        raise UsageError(
            f"--format keras writes a .keras file; got --output {output!r}"
        )
    return output


def export(args: argparse.Namespace) -> int:
    """Runs `keras-nas export`; returns the exit status."""
    source = os.path.join(args.directory, SOURCE)
    if not os.path.isfile(source):
        raise UsageError(
            f"no {SOURCE} in {args.directory!r}: export needs a finished "
            "search (see `keras-nas show DIR`)"
        )
    output = _output_path(args)
    print(f"keras-nas export: {source} -> {output} ({args.format})", flush=True)
    backend_line = import_backend(verbose=args.verbose)
    print(backend_line, flush=True)
    quiet = contextlib.nullcontext() if args.verbose else _quiet()
    with quiet:
        model = _load(source)
        _write(model, args.format, output, backend_line)
        difference = _check(model, args.format, output)
    size = _size(output)
    checked = (
        "not checked (more than one input)"
        if difference is None
        else "outputs on random inputs differ from the Keras model's by at "
        f"most {difference:.1e}"
    )
    print(f"wrote {output} ({size / 1e6:.2f} MB); {checked}", flush=True)
    return 0


@contextlib.contextmanager
def _quiet():
    with muted_stderr(expected=(UsageError,)), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _load(source: str) -> Any:
    import keras  # keras_nas._serializable registers our classes on import.

    try:
        return keras.saving.load_model(source)
    except Exception as e:
        raise UsageError(f"cannot load {source!r}: {e}") from e


def _write(model: Any, fmt: str, output: str, backend_line: str) -> None:
    parent = os.path.dirname(output)
    if parent:
        os.makedirs(parent, exist_ok=True)
    if os.path.isdir(output):
        shutil.rmtree(output)
    if fmt == "keras":
        model.save(output)
        return
    keras_format = {"saved_model": "tf_saved_model", "tflite": "litert"}[fmt]
    try:
        model.export(output, format=keras_format, verbose=False)
    except Exception as e:
        backend = backend_line.split()[1]
        hint = (
            "; rerun with KERAS_BACKEND=tensorflow (the .keras file loads on "
            "any backend)"
            if backend != "tensorflow"
            else ""
        )
        message = " ".join(str(e).split())[:300].rstrip(".")
        raise UsageError(
            f"--format {fmt} failed on the {backend} backend: "
            f"{type(e).__name__}: {message}{hint}"
        ) from e


def _check(model: Any, fmt: str, output: str) -> float | None:
    """Largest absolute difference between the Keras model and the export
    on 3 random inputs (None for a model with several inputs)."""
    import numpy as np

    if len(model.inputs) != 1:
        return None
    shape = [3 if d is None else d for d in model.inputs[0].shape]
    x = np.random.default_rng(0).random(shape).astype("float32")
    expected = np.asarray(model.predict(x, verbose=0))
    if fmt == "keras":
        actual = _load(output).predict(x, verbose=0)
    elif fmt == "saved_model":
        import tensorflow as tf

        loaded = tf.saved_model.load(output)  # Kept: serve uses its weights.
        actual = loaded.serve(x).numpy()
    else:
        actual = _run_tflite(output, x)
    return float(np.max(np.abs(np.asarray(actual) - expected)))


def _run_tflite(path: str, x: Any) -> Any:
    import tensorflow as tf

    interpreter = tf.lite.Interpreter(model_path=path)
    entry = interpreter.get_input_details()[0]
    interpreter.resize_tensor_input(entry["index"], list(x.shape))
    interpreter.allocate_tensors()
    interpreter.set_tensor(entry["index"], x)
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])


def _size(path: str) -> int:
    if os.path.isfile(path):
        return os.path.getsize(path)
    return sum(
        os.path.getsize(os.path.join(root, name))
        for root, _, names in os.walk(path)
        for name in names
    )
