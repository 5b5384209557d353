"""Memory that JAX's compilations leave behind, given back as they end.

Two things outlive each XLA compilation that a `jax.jit` call makes, besides
the executable it needs:

- the MLIR module it was lowered to, with an MLIR context of its own (~1.4
  MiB even for one addition: every dialect loaded), kept in JAX's Python
  lowering caches for as long as the traced function lives. A later call
  with the same shapes does not need it: JAX's C++ dispatch cache holds
  the executable and finds it first. A step that compiles ~200 pieces and
  ops (DARTS' piecewise JAX step at the micro configuration) keeps ~210
  MiB of them.
- on Linux (glibc), the free memory of the compiler's threads: each keeps
  its own heap arena, which only it reuses, so the peak of every
  compilation stays resident beside the step's own memory.

`compiles_released()`: within it, after every compilation (JAX's
`/jax/core/compile/backend_compile_duration` event, in the compiling
thread), JAX's lowering caches are emptied, and glibc returns its free
memory to the system (`malloc_trim(0)`; nowhere else: a no-op without
glibc) after `TRIM_EVERY_S` seconds of compilation, then after twice as
many each time within the outermost context (1, 2, 4, ... s), and where
the context ends after compiling. A trim gives back all free memory,
the step's own buffers freed between its pieces included, and the
step's next pieces fault those pages in again (zeroed by the kernel):
at the paper configuration (batch 16) a trim once per second of
compilation made the first step ~10% slower, and the step after it
faults the first step's buffers in again. A step that compiles nothing
(every steady step) trims nothing. `counts()`: how many compilations,
cache clears and trims the release made (for benchmarks). The
executables stay cached, so nothing compiles twice; a call that misses
the C++ cache for another reason (a function with host callbacks or
effects) lowers and compiles again if it is called after a release
(benchmarks/RESULTS.md, #13 peak memory of the compiled step).
The lowering caches are JAX's private names, looked up defensively: where
a JAX release renames them, only the trim remains.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib
import sys
import threading

import jax

_COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"

#: Seconds of compilation before the first trim of glibc's heap within
#: a context; the interval doubles after each trim.
TRIM_EVERY_S = 1.0

_LOCK = threading.Lock()
_DEPTH = [0]
# Seconds of compilation since the last trim; seconds before the next.
_PENDING = [0.0]
_INTERVAL = [TRIM_EVERY_S]
# Compilations seen, lowering-cache clears and trims made, process-wide.
_COUNTS = {"compilations": 0, "cache_clears": 0, "trims": 0}


def _malloc_trim():
    """glibc's `malloc_trim`, or None (another C library or system)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


_TRIM = _malloc_trim()


def _lowering_caches() -> list:
    """JAX's caches of lowered modules (`cache_clear` objects); those not
    found in this JAX release are left out."""
    caches = []
    for module, name in (
        ("jax._src.interpreters.pxla", "_cached_lowering_to_hlo"),
        ("jax._src.pjit", "_pjit_lower"),
    ):
        try:
            caches.append(getattr(importlib.import_module(module), name))
        except (ImportError, AttributeError):
            continue
    return [c for c in caches if hasattr(c, "cache_clear")]


_CACHES = _lowering_caches()


def counts() -> dict:
    """Compilations seen within `compiles_released`, JAX's lowering
    caches emptied and glibc's heap trimmed, since the process began."""
    return dict(_COUNTS)


def _trim() -> None:
    _PENDING[0] = 0.0
    if _TRIM is not None:
        _TRIM(0)
        _COUNTS["trims"] += 1


def _on_event(event, duration, **kwargs):
    del kwargs
    if event != _COMPILE_EVENT:
        return
    _COUNTS["compilations"] += 1
    for cache in _CACHES:
        cache.cache_clear()
        _COUNTS["cache_clears"] += 1
    _PENDING[0] += duration
    if _PENDING[0] >= _INTERVAL[0]:
        _INTERVAL[0] *= 2.0
        _trim()


@contextlib.contextmanager
def compiles_released():
    """JAX's lowering caches emptied after every compilation made within
    (any thread), glibc's heap trimmed at doubling intervals of
    compilation time (module doc)."""
    with _LOCK:
        _DEPTH[0] += 1
        if _DEPTH[0] == 1:
            _INTERVAL[0] = TRIM_EVERY_S
            jax.monitoring.register_event_duration_secs_listener(_on_event)
    try:
        yield
    finally:
        with _LOCK:
            _DEPTH[0] -= 1
            if _DEPTH[0] == 0:
                if _PENDING[0]:
                    _trim()
                with contextlib.suppress(AssertionError, ValueError):
                    # gone if the user cleared JAX's listeners meanwhile
                    jax.monitoring.unregister_event_duration_listener(_on_event)
