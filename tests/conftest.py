import os
import subprocess
import sys

import pytest

#: Tests that take 20-80 s each (the notebooks, the other-backend
#: subprocesses, the multi-process searches). pytest-xdist's `load`
#: scheduler first sends each worker a chunk of consecutive tests, then the
#: rest on demand: these long ones are shared out at the start of the
#: workers' first chunks, so the CI workers end together instead of one of
#: them running a notebook alone at the end.
LONG_TESTS = (
    "test_tutorials.py::test_notebook_runs",
    "jax",
    "test_resume_distributed.py",
    "test_lost_worker.py",
    "test_distribute.py",
    "test_multi_worker.py",
    "test_cli.py::test_search_writes_everything",
    "test_faults.py",
)


def pytest_collection_modifyitems(session, config, items):
    """Deals `LONG_TESTS` out to the starts of the xdist workers' chunks."""
    is_long = [any(p in i.nodeid.lower() for p in LONG_TESTS) for i in items]
    long = [i for i, flag in zip(items, is_long, strict=True) if flag]
    short = [i for i, flag in zip(items, is_long, strict=True) if not flag]
    # Set by xdist in its workers, which collect the tests.
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    # The size of xdist's first chunk per worker (LoadScheduling.schedule).
    chunk = max(len(items) // workers // 4, 2)
    order = []
    for worker in range(workers):
        mine = long[worker::workers]
        order += mine + short[: max(chunk - len(mine), 0)]
        short = short[max(chunk - len(mine), 0) :]
    items[:] = order + short


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
            # XLA without LLVM's optimisations: these checks compile many
            # small programs and run them once or twice; about a third less
            # CPU time each (same results within the tests' tolerances).
            flags = env.get("XLA_FLAGS", "")
            env["XLA_FLAGS"] = f"{flags} --xla_backend_optimization_level=0"
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
