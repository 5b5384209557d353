"""Starts the tests' processes as forks of one warm process.

Two kinds of tests start many Python processes that each import Keras, a
backend and keras-nas or keras-tuner (~4 s of CPU) before doing a few
seconds of work: the other-backend checks (`run_on_backend` in
`tests/conftest.py`: one process at a time, `ForkServer.run`) and the
multi-process searches (`test_resume_distributed.py`,
`test_lost_worker.py`: chiefs, workers and searches to SIGKILL, several at
once, `Forker.spawn`). Both start this script once, as a server, with the
processes' common environment: it imports the given modules (without
starting a backend's runtime: no device, no thread, so forking is safe),
then forks a child per request. A child is an ordinary process of its own
(own pid, killed by SIGKILL like any other, exit functions run) that runs
`python -c code` or `module.main(args)` with its own environment and output
files; no state is carried from one child to the next. The server reaps the
children and writes each exit code to a file, which `Forked.poll` reads.

Protocol: one JSON request a line on stdin, `{"code": str}` or `{"module":
str, "args": list}`, with `"environ"` (the child's whole environment),
`"stdout"`, `"stderr"` (paths, may be equal) and `"status"` (the exit code's
file); the reply on stdout is the child's pid.
"""

from __future__ import annotations

import atexit
import gc
import importlib
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import types

#: What the other-backend checks import before forking.
BACKEND_MODULES = (
    "keras",
    "keras_nas",
    "keras_nas.blocks",
    "keras_nas.estimation",
    "keras_nas.spaces",
    "keras_nas.supernet",
    "keras_nas.tuners",
)


# -- the client side --------------------------------------------------------


class Forked:
    """A `subprocess.Popen`-like handle on a forked child."""

    def __init__(self, pid: int, status: str):
        self.pid = pid
        self._status = status
        self.returncode = None

    def poll(self):
        if self.returncode is None and os.path.exists(self._status):
            with open(self._status) as f:
                self.returncode = int(f.read())
        return self.returncode

    def wait(self, timeout=None):
        deadline = None if timeout is None else time.time() + timeout
        while self.poll() is None:
            if deadline is not None and time.time() > deadline:
                raise subprocess.TimeoutExpired(f"pid {self.pid}", timeout)
            time.sleep(0.02)
        return self.returncode


class Forker:
    """The warm server: `spawn` forks a child running `module.main(args)`.

    Args:
        modules: modules to import before forking.
        directory: where the children's exit codes are written.
        environ: the server's environment, the base of each child's.
        path: directories put first on the server's `sys.path`.
    """

    def __init__(self, modules, directory, environ, path=()):
        self._directory = directory
        self._environ = dict(environ)
        self._count = 0
        config = json.dumps({"modules": list(modules), "path": list(path)})
        self._proc = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), config],
            env=self._environ,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.ready = None

    def alive(self) -> bool:
        """Whether the server has started (waiting for it) and still runs."""
        if self._proc.poll() is not None:
            return False
        if self.ready is None:
            self.ready = self._proc.stdout.readline().strip() == "ready"
        return self.ready

    def _request(self, request, environ):
        assert self.alive(), "the fork server did not start: see the log"
        self._count += 1
        status = os.path.join(self._directory, f"status_{self._count}")
        request.update(environ=environ, status=status)
        self._proc.stdin.write(json.dumps(request) + "\n")
        self._proc.stdin.flush()
        pid = self._proc.stdout.readline()
        assert pid, "the fork server exited: see the log above"
        return Forked(int(pid), status)

    def spawn(self, module, args, out, **environ):
        """Forks `module.main(args)`, stdout and stderr to the file `out`,
        with the server's environment updated by `environ`."""
        request = dict(module=module, args=list(args), stdout=out, stderr=out)
        return self._request(request, dict(self._environ, **environ))

    def close(self):
        """Ends the server once its children have ended."""
        self._proc.stdin.close()
        self._proc.wait(timeout=60)


class ForkServer(Forker):
    """Runs code like `python -c` in forks of a process that has imported
    Keras, the backend and keras-nas (`BACKEND_MODULES`), one at a time.

    Variables read at import time (the backend's, XLA's) must be the same as
    the server's (`serves`); otherwise the caller starts a new interpreter.
    """

    _IMPORT_TIME_VARIABLES = ("KERAS_BACKEND", "JAX_PLATFORMS", "XLA_FLAGS")

    def __init__(self, env: dict):
        self._tmp = tempfile.TemporaryDirectory(prefix="fork_server_")
        super().__init__(BACKEND_MODULES, self._tmp.name, env)
        self.env = self._environ

    def serves(self, env: dict) -> bool:
        return self.alive() and all(
            env.get(k) == self.env.get(k) for k in self._IMPORT_TIME_VARIABLES
        )

    def run(self, code: str, env: dict, timeout: float) -> tuple:
        """`(returncode, stdout, stderr)` of `code` (-9 after `timeout`)."""
        out, err = (
            os.path.join(self._tmp.name, f"{name}_{self._count + 1}")
            for name in ("stdout", "stderr")
        )
        child = self._request(dict(code=code, stdout=out, stderr=err), env)
        try:
            child.wait(timeout)
        except subprocess.TimeoutExpired:
            os.kill(child.pid, signal.SIGKILL)
            child.wait()
        texts = []
        for path in (out, err):
            with open(path) as f:
                texts.append(f.read())
            os.unlink(path)
        return child.returncode, texts[0], texts[1]

    def close(self):
        super().close()
        self._tmp.cleanup()


# -- the server side --------------------------------------------------------


def _child(request):
    """Runs the request's code or module in this fork; never returns."""
    code = 1
    try:
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
        out = os.open(request["stdout"], flags)
        err = out
        if request["stderr"] != request["stdout"]:
            err = os.open(request["stderr"], flags)
        os.dup2(out, 1)
        os.dup2(err, 2)
        for fd in {out, err}:
            os.close(fd)
        sys.stdout = os.fdopen(1, "w", closefd=False)
        sys.stderr = os.fdopen(2, "w", closefd=False)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
        sys.stdin = open(os.devnull)
        os.environ.clear()
        os.environ.update(request["environ"])
        try:
            if "code" in request:
                sys.argv = ["-c"]
                main = types.ModuleType("__main__")
                sys.modules["__main__"] = main
                code_object = compile(request["code"], "<string>", "exec")
                exec(code_object, main.__dict__)
            else:
                sys.argv = [request["module"], *request["args"]]
                module = importlib.import_module(request["module"])
                module.main(request["args"])
            code = 0
        except SystemExit as stop:
            if stop.code is None or isinstance(stop.code, int):
                code = stop.code or 0
            else:
                print(stop.code, file=sys.stderr)
        except BaseException:
            traceback.print_exc()
        atexit._run_exitfuncs()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def _reap(statuses):
    while statuses:
        pid, status = os.waitpid(-1, os.WNOHANG)
        if pid == 0:
            return
        path = statuses.pop(pid)
        with open(path + ".tmp", "w") as f:
            f.write(str(os.waitstatus_to_exitcode(status)))
        os.replace(path + ".tmp", path)


def _warm_up(config):
    sys.path[:0] = config["path"]
    for module in config["modules"]:
        importlib.import_module(module)
    if "jax" in sys.modules:
        from jax._src import xla_bridge

        # Forking a process whose XLA runtime has started can deadlock.
        assert not xla_bridge._backends, "the JAX runtime started on import"


def main(config):
    # The protocol owns the real stdout; anything else printed goes to
    # stderr.
    replies = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    _warm_up(config)
    # The imports' objects: out of every later collection (and not copied
    # on write into each child by the collector touching them).
    gc.collect()
    gc.freeze()
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    replies.write("ready\n")
    replies.flush()
    statuses = {}
    stdin_open = True
    while stdin_open or statuses:
        _reap(statuses)
        if not stdin_open:
            time.sleep(0.02)
            continue
        # Block while no child runs; poll for exits while some do.
        wait = 0.02 if statuses else None
        if not select.select([sys.stdin], [], [], wait)[0]:
            continue
        line = sys.stdin.readline()
        if not line:
            stdin_open = False
            continue
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            replies.close()
            _child(request)
        statuses[pid] = request["status"]
        replies.write(f"{pid}\n")
        replies.flush()


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
