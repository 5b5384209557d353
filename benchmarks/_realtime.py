"""Real-time scheduling of this process while it times something (Linux).

`realtime(cpu)` is a context manager: on entry every thread of the process
(`/proc/self/task`) gets the `SCHED_FIFO` policy at priority 50 and is
pinned to CPU `cpu` (as `chrt -f 50 taskset -c CPU` would do for a whole
command), on exit each thread gets its policy, priority and CPUs back. The
timed code then preempts every ordinary process on that CPU, which is what
makes latencies repeatable on a shared machine. Needs root (or
CAP_SYS_NICE); without it, or off Linux, it changes nothing and says so.
The kernel still keeps 5% of each second for the other processes
(`/proc/sys/kernel/sched_rt_runtime_us`).
"""

from __future__ import annotations

import contextlib
import os


def _threads() -> list[int]:
    try:
        return [int(t) for t in os.listdir("/proc/self/task")]
    except OSError:
        return []


@contextlib.contextmanager
def realtime(cpu: int = 1, priority: int = 50, enabled: bool = True):
    """Runs the block at real-time priority on one CPU (see the module).

    Yields a dict describing what was set (`{"policy": "SCHED_FIFO",
    "priority": 50, "cpus": [1], "threads": n}`), or `{}` when nothing
    was (disabled, not permitted, not Linux).
    """
    saved, info = [], {}
    if enabled and hasattr(os, "sched_setscheduler"):
        try:
            for tid in _threads():
                saved.append(
                    (
                        tid,
                        os.sched_getscheduler(tid),
                        os.sched_getparam(tid),
                        os.sched_getaffinity(tid),
                    )
                )
                os.sched_setaffinity(tid, {cpu})
                os.sched_setscheduler(
                    tid, os.SCHED_FIFO, os.sched_param(priority)
                )
            info = {
                "policy": "SCHED_FIFO",
                "priority": priority,
                "cpus": [cpu],
                "threads": len(saved),
            }
        except (OSError, PermissionError) as error:
            print(f"real-time scheduling not set: {error}")
    try:
        yield info
    finally:
        restored = {tid for tid, *_ in saved}
        for tid, policy, param, cpus in saved:
            with contextlib.suppress(OSError):
                os.sched_setscheduler(tid, policy, param)
                os.sched_setaffinity(tid, cpus)
        if saved:
            # Threads started inside the block inherited the real-time
            # policy: give them the process' first thread's settings.
            _, policy, param, cpus = saved[0]
            for tid in set(_threads()) - restored:
                with contextlib.suppress(OSError):
                    os.sched_setscheduler(tid, policy, param)
                    os.sched_setaffinity(tid, cpus)
