import os
import subprocess
import sys

import pytest


@pytest.fixture
def run_on_backend():
    """Runs Python code in a new process with another Keras backend.

    `run_on_backend(code, backend="jax", timeout=300)` asserts that the
    process exits with 0 (showing the end of its stderr otherwise) and
    returns its stdout. JAX runs on the CPU.
    """

    def run(code: str, backend: str = "jax", timeout: int = 300) -> str:
        env = dict(os.environ, KERAS_BACKEND=backend)
        if backend == "jax":
            env["JAX_PLATFORMS"] = "cpu"
        result = subprocess.run(
            [sys.executable, "-c", code],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        return result.stdout

    return run


@pytest.fixture
def eager_functions():
    """Runs Keras train/predict steps eagerly (TensorFlow backend).

    For tests whose models train for one or two batches: tracing the step
    functions would cost far more than running them. Use it with
    `pytestmark = pytest.mark.usefixtures("eager_functions")`.
    """
    import keras

    if keras.backend.backend() != "tensorflow":
        yield
        return
    import tensorflow as tf

    previous = tf.config.functions_run_eagerly()
    tf.config.run_functions_eagerly(True)
    yield
    tf.config.run_functions_eagerly(previous)
