"""Runs the tests' other-backend checks in forks of one warm process.

`tests/conftest.py`'s `run_on_backend` fixture starts this script once per
test process with the backend's environment (e.g. `KERAS_BACKEND=jax`). It
imports Keras, the backend and keras-nas once, without starting the
backend's runtime (no device, no thread: forking is then safe), and for
each check it forks: the child runs the check's code as `python -c` would,
so every check still has a process of its own (no state carried from one
check to the next), without paying the imports again (~4 s CPU each).

Protocol, one JSON object per line: the request on stdin is
`{"code": str, "environ": dict, "timeout": float}`; the reply on stdout is
`{"returncode": int, "stdout": str, "stderr": str}` (returncode -9 after a
timeout).
"""

import atexit
import gc
import json
import os
import signal
import sys
import tempfile
import traceback
import types


def _warm_up():
    import keras  # noqa: F401

    import keras_nas  # noqa: F401
    import keras_nas.blocks  # noqa: F401
    import keras_nas.estimation  # noqa: F401
    import keras_nas.spaces  # noqa: F401
    import keras_nas.supernet  # noqa: F401
    import keras_nas.tuners  # noqa: F401

    if os.environ.get("KERAS_BACKEND") == "jax":
        from jax._src import xla_bridge

        # Forking a process whose XLA runtime has started can deadlock.
        assert not xla_bridge._backends, "the JAX runtime started on import"


def _child(code, environ, out_path, err_path):
    """Runs `code` like `python -c code`; never returns."""
    returncode = 0
    try:
        for fd, path in ((1, out_path), (2, err_path)):
            target = os.open(path, os.O_WRONLY | os.O_TRUNC)
            os.dup2(target, fd)
            os.close(target)
        sys.stdout = os.fdopen(1, "w", closefd=False)
        sys.stderr = os.fdopen(2, "w", closefd=False)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.close(devnull)
        sys.stdin = open(os.devnull)
        os.environ.clear()
        os.environ.update(environ)
        sys.argv = ["-c"]
        main = types.ModuleType("__main__")
        sys.modules["__main__"] = main
        try:
            exec(compile(code, "<string>", "exec"), main.__dict__)
        except SystemExit as stop:
            if stop.code is None:
                returncode = 0
            elif isinstance(stop.code, int):
                returncode = stop.code
            else:
                print(stop.code, file=sys.stderr)
                returncode = 1
        except BaseException:
            traceback.print_exc()
            returncode = 1
        atexit._run_exitfuncs()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(returncode)


class _Timeout(Exception):
    pass


def _on_alarm(signum, frame):
    raise _Timeout


def _run(request, replies):
    # Plain files, not a TemporaryDirectory: its finalizer would run in the
    # child's exit functions and delete them under the parent.
    paths = []
    for _ in range(2):
        fd, path = tempfile.mkstemp(prefix="fork_server_")
        os.close(fd)
        paths.append(path)
    out_path, err_path = paths
    try:
        pid = os.fork()
        if pid == 0:
            replies.close()
            _child(request["code"], request["environ"], out_path, err_path)
        signal.signal(signal.SIGALRM, _on_alarm)
        signal.setitimer(signal.ITIMER_REAL, float(request["timeout"]))
        try:
            _, status = os.waitpid(pid, 0)
            returncode = os.waitstatus_to_exitcode(status)
        except _Timeout:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            returncode = -signal.SIGKILL
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        with open(out_path) as f:
            stdout = f.read()
        with open(err_path) as f:
            stderr = f.read()
    finally:
        for path in paths:
            os.unlink(path)
    return {"returncode": returncode, "stdout": stdout, "stderr": stderr}


def main():
    # The protocol owns the real stdout; anything else printed goes to
    # stderr.
    replies = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    _warm_up()
    # The imports' objects: out of every later collection (and not copied
    # on write into each child by the collector touching them).
    gc.collect()
    gc.freeze()
    replies.write(json.dumps({"ready": True}) + "\n")
    replies.flush()
    for line in sys.stdin:
        reply = _run(json.loads(line), replies)
        replies.write(json.dumps(reply) + "\n")
        replies.flush()


if __name__ == "__main__":
    main()
