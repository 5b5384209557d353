import gc
import json
import os
import subprocess
import sys

import pytest

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


class _ForkServer:
    """One warm process per backend that forks a child for each check.

    See `tests/_fork_server.py`: each check still runs in a process of its
    own, started from a copy of one that has imported Keras, the backend
    and keras-nas already. Variables read at import time (the backend's,
    XLA's) must be the same as the server's; otherwise, or if the server
    is gone, the check runs in a new interpreter as before.
    """

    _IMPORT_TIME_VARIABLES = ("KERAS_BACKEND", "JAX_PLATFORMS", "XLA_FLAGS")

    def __init__(self, env: dict):
        self.env = env
        self.process = subprocess.Popen(
            [sys.executable, os.path.join(os.path.dirname(__file__),
                                          "_fork_server.py")],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.ready = None

    def serves(self, env: dict) -> bool:
        if self.process.poll() is not None:
            return False
        if self.ready is None:
            self.ready = bool(self.process.stdout.readline())
        return self.ready and all(
            env.get(k) == self.env.get(k) for k in self._IMPORT_TIME_VARIABLES
        )

    def run(self, code: str, env: dict, timeout: float) -> tuple:
        request = {"code": code, "environ": env, "timeout": timeout}
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        assert line, "the fork server died: see the log above"
        reply = json.loads(line)
        return reply["returncode"], reply["stdout"], reply["stderr"]

    def close(self):
        self.process.stdin.close()
        self.process.wait(timeout=30)


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
    warm server that has done the imports (`_ForkServer`).
    """

    def run(code: str, backend: str = "jax", timeout: int = 300) -> str:
        env = _backend_environ(backend)
        server = _fork_servers.get(backend)
        if server is None or server.process.poll() is not None:
            server = _fork_servers[backend] = _ForkServer(env)
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
