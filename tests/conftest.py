import gc
import os
import subprocess
import sys

import pytest
from _fork_server import ForkServer

#: Tests that take 20-80 s each (the notebooks, the other-backend
#: subprocesses, the multi-process searches) go first. pytest-xdist's load
#: scheduler sends each worker a first chunk of consecutive tests, so one
#: worker runs these one after another while the other takes the short
#: tests: measured 875-926 s for the suite on 2 cores, against 958 s when
#: they were dealt out to both workers (several multi-process tests at once
#: contend for the 2 cores; benchmarks/RESULTS.md).
LONG_TESTS = (
    "test_tutorials.py::test_notebook_runs",
    "jax",
    "test_distribute.py",
    "test_cli.py::test_search_writes_everything",
    "test_faults.py",
)


def pytest_collection_finish(session):
    """Moves the objects of the imports out of the garbage collector's view.

    After collection a test process holds ~500,000 objects from importing
    TensorFlow, Keras and the test modules, and every full collection
    (tracing creates enough objects to trigger many; keras-tuner runs one
    per trial) walks them all: `gc.freeze()` puts them in the permanent
    generation, which is never collected (tests/spaces + mcts + evolution:
    108 -> 84 s of CPU; benchmarks/RESULTS.md).
    """
    gc.collect()
    gc.freeze()


def pytest_collection_modifyitems(session, config, items):
    """Moves `LONG_TESTS` to the front, keeping the order otherwise."""
    items.sort(
        key=lambda item: not any(
            part in item.nodeid.lower() for part in LONG_TESTS
        )
    )


def _backend_environ(backend: str) -> dict:
    env = dict(os.environ, KERAS_BACKEND=backend)
    if backend == "jax":
        env["JAX_PLATFORMS"] = "cpu"
        # XLA without LLVM's optimisations: these checks compile many
        # small programs and run them once or twice; about a third less
        # CPU time each (same results within the tests' tolerances).
        flags = env.get("XLA_FLAGS", "")
        env["XLA_FLAGS"] = f"{flags} --xla_backend_optimization_level=0"
    return env


@pytest.fixture(scope="session")
def _fork_servers():
    servers = {}
    yield servers
    for server in servers.values():
        server.close()


@pytest.fixture
def run_on_backend(_fork_servers):
    """Runs Python code in a process of its own with another Keras backend.

    `run_on_backend(code, backend="jax", timeout=300)` asserts that the
    process exits with 0 (showing the end of its stderr otherwise) and
    returns its stdout. JAX runs on the CPU. The process is a fork of a
    warm server that has done the imports (`tests/_fork_server.py`).
    """

    def run(code: str, backend: str = "jax", timeout: int = 300) -> str:
        env = _backend_environ(backend)
        server = _fork_servers.get(backend)
        if server is None or not server.alive():
            server = _fork_servers[backend] = ForkServer(env)
        if server.serves(env):
            returncode, stdout, stderr = server.run(code, env, timeout)
        else:
            result = subprocess.run(
                [sys.executable, "-c", code],
                env=env,
                capture_output=True,
                text=True,
                timeout=timeout,
            )
            returncode, stdout, stderr = (
                result.returncode, result.stdout, result.stderr
            )
        assert returncode == 0, stderr[-3000:]
        return stdout

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
