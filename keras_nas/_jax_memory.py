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
glibc) once per `TRIM_EVERY_S` seconds of compilation and where the
context ends after compiling (a trim walks the heap, and what it gives
back the next compilations fault in again: not after each of ~200 small
compilations). The executables stay cached, so nothing compiles twice; a
call that misses the C++ cache for another reason (a function with host
callbacks or effects) lowers and compiles again if it is called after a
release (benchmarks/RESULTS.md, #13 peak memory of the compiled step).
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

#: Seconds of compilation between two trims of glibc's heap.
TRIM_EVERY_S = 1.0

_LOCK = threading.Lock()
_DEPTH = [0]
# Seconds of compilation since the last trim.
_PENDING = [0.0]


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


def _trim() -> None:
    _PENDING[0] = 0.0
    if _TRIM is not None:
        _TRIM(0)


def _on_event(event, duration, **kwargs):
    del kwargs
    if event != _COMPILE_EVENT:
        return
    for cache in _CACHES:
        cache.cache_clear()
    _PENDING[0] += duration
    if _PENDING[0] >= TRIM_EVERY_S:
        _trim()


@contextlib.contextmanager
def compiles_released():
    """JAX's lowering caches emptied after every compilation made within
    (any thread), glibc's heap trimmed now and then (module doc)."""
    with _LOCK:
        _DEPTH[0] += 1
        if _DEPTH[0] == 1:
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
                    jax.monitoring.unregister_event_duration_listener(
                        _on_event
                    )
