"""Python's garbage collector held off while a supernet is built and
first traced.

Building a supernet makes hundreds of thousands of Python objects (Keras
layers, variables, their trackers; a DARTS micro supernet has 2,190
layers) and its first step's trace as many again (graph ops, captured
handles, gradient functions). Python's generational collector walks the
young ones every 700 allocations and, once enough of them survive, the
whole heap: with TensorFlow imported a full collection walks ~600,000-
800,000 objects, 0.2-0.3 s CPU, and a DARTS build and first trace ran one
or two of them and ~500 young ones while finding almost no garbage
(benchmarks/RESULTS.md, branch h16-tf-python).

`deferred_collection()` turns automatic collection off for a span and,
when the outermost span ends, moves the objects it made to the oldest
generation (`gc.freeze()` then `gc.unfreeze()`, which Python documents as
putting the frozen objects back into the oldest generation; two list
splices, no walk) and turns collection back on. The span's objects are
then walked at the next full collection, as long-lived objects would
be, instead of twice by the young generations' collections right after
the span; any cycle they hold is freed by that collection (or an
explicit `gc.collect()`). The move is skipped when something else has
frozen objects (`gc.get_freeze_count() > 0`): unfreezing would hand them
back to the collector.

The collector's state is the process's: spans nest and may run in
several threads at once (a count under a lock); the first to enter turns
collection off if it was on, the last to leave turns it back on, on an
exception too. While a span runs, other threads run without automatic
collection as well. A span that found collection off changes nothing.
`gc.collect()` still collects inside a span.
"""

from __future__ import annotations

import contextlib
import gc
import threading
from collections.abc import Callable, Iterator
from typing import Any

_LOCK = threading.Lock()
# [spans running, whether the outermost one turned collection off]
_STATE = [0, False]


@contextlib.contextmanager
def deferred_collection() -> Iterator[None]:
    """No automatic garbage collection while the `with` body runs (module
    docstring); usable as a decorator."""
    with _LOCK:
        _STATE[0] += 1
        if _STATE[0] == 1 and gc.isenabled():
            gc.disable()
            _STATE[1] = True
    try:
        yield
    finally:
        with _LOCK:
            _STATE[0] -= 1
            if _STATE[0] == 0 and _STATE[1]:
                _STATE[1] = False
                if gc.get_freeze_count() == 0:
                    gc.freeze()
                    gc.unfreeze()
                gc.enable()


class FirstCallDeferred:
    """`fn` whose first call runs in `deferred_collection()` (a train
    function's first call traces or compiles the step); other attributes
    are `fn`'s."""

    def __init__(self, fn: Callable[..., Any]):
        self.fn = fn
        self.called = False

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.called:
            return self.fn(*args, **kwargs)
        self.called = True
        with deferred_collection():
            return self.fn(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        # Only for names not found on the wrapper itself.
        if "fn" not in self.__dict__:  # e.g. copy's probes
            raise AttributeError(name)
        return getattr(self.__dict__["fn"], name)


def first_call_deferred(fn: Any) -> Any:
    """`fn` as a `FirstCallDeferred` (`None` and wrapped ones as they
    are)."""
    if fn is None or isinstance(fn, FirstCallDeferred):
        return fn
    return FirstCallDeferred(fn)
