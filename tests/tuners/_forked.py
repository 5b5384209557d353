"""Starts the multi-process tests' searches as forks of one warm process.

`test_resume_distributed.py` and `test_lost_worker.py` run 25 Python
processes (chiefs, workers, searches to SIGKILL). Each used to import
keras-tuner, Keras and JAX (~4 s of CPU) before doing a second of work.
`Forker` starts this script once with the processes' common environment;
it imports the given modules, then forks a child per request. A child is an
ordinary process of its own (own pid, killed by SIGKILL like any other) that
runs `module.main(args)` with its own environment variables and output file.
The parent reaps the children and writes each exit code to a file, which
`Forked.poll` reads.

Protocol: one JSON request a line on stdin, `{"module", "args", "environ",
"out", "status"}`; the reply on stdout is the child's pid.
"""

from __future__ import annotations

import importlib
import json
import os
import select
import signal
import subprocess
import sys
import time
import traceback


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
    """The warm process: `spawn` forks a child running `module.main`."""

    def __init__(self, modules, directory, environ):
        self._directory = directory
        self._count = 0
        self._proc = subprocess.Popen(
            [sys.executable, __file__, *modules],
            env=environ,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        ready = self._proc.stdout.readline()
        assert ready.strip() == "ready", "the fork server did not start"

    def spawn(self, module, args, out, **environ):
        self._count += 1
        status = os.path.join(self._directory, f"status_{self._count}")
        request = dict(
            module=module, args=list(args), environ=environ, out=out,
            status=status,
        )
        self._proc.stdin.write(json.dumps(request) + "\n")
        self._proc.stdin.flush()
        pid = self._proc.stdout.readline()
        assert pid, "the fork server exited"
        return Forked(int(pid), status)

    def close(self):
        """Ends the server once its children have ended."""
        self._proc.stdin.close()
        self._proc.wait()


def _child(request):
    code = 1
    try:
        out = os.open(request["out"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(out, 1)
        os.dup2(out, 2)
        os.environ.update(request["environ"])
        sys.argv = [request["module"], *request["args"]]
        importlib.import_module(request["module"]).main(request["args"])
        code = 0
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else 1
    except BaseException:
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
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


def main(modules):
    for module in modules:
        importlib.import_module(module)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    print("ready", flush=True)
    statuses = {}
    stdin_open = True
    while stdin_open or statuses:
        _reap(statuses)
        if stdin_open and select.select([sys.stdin], [], [], 0.02)[0]:
            line = sys.stdin.readline()
            if not line:
                stdin_open = False
                continue
            request = json.loads(line)
            pid = os.fork()
            if pid == 0:
                _child(request)
            statuses[pid] = request["status"]
            print(pid, flush=True)
        elif not stdin_open:
            time.sleep(0.02)


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    main(sys.argv[1:])
