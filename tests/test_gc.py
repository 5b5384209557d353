"""keras_nas/_gc.py: the collector held off for a span, and given back."""

from __future__ import annotations

import gc
import threading
import weakref

import pytest

from keras_nas import _gc


class _Node:
    pass


def _cycle() -> weakref.ref:
    """A reference cycle no one else holds; a weak reference to it."""
    a, b = _Node(), _Node()
    a.other, b.other = b, a
    return weakref.ref(a)


@pytest.fixture
def collections():
    """The generations of the automatic and explicit collections run
    while the test runs (gc.callbacks)."""
    seen: list[int] = []

    def record(phase, info):
        if phase == "start":
            seen.append(info["generation"])

    gc.callbacks.append(record)
    try:
        yield seen
    finally:
        gc.callbacks.remove(record)


@pytest.fixture(autouse=True)
def _collector_on():
    was = gc.isenabled()
    gc.enable()
    yield
    if was:
        gc.enable()
    else:
        gc.disable()


@pytest.fixture
def unfrozen():
    """No frozen objects while the test runs (tests/conftest.py freezes
    the imports' objects; frozen again after the test)."""
    frozen = gc.get_freeze_count()
    if frozen:
        gc.unfreeze()
    yield
    if frozen:
        gc.freeze()


def test_span_collects_nothing_and_gives_the_collector_back(
    collections, unfrozen
):
    thresholds = gc.get_threshold()
    with _gc.deferred_collection():
        assert not gc.isenabled()
        # Many times the young generation's threshold of containers.
        kept = [[i] for i in range(50 * thresholds[0])]
        assert collections == []
    assert gc.isenabled()
    assert gc.get_threshold() == thresholds
    assert gc.get_freeze_count() == 0
    # The span's objects went to the oldest generation, not walked twice
    # by the young generations' collections after it.
    assert gc.get_count()[0] < thresholds[0]
    assert gc.is_tracked(kept[-1])


def test_cycles_made_in_the_span_are_freed_by_a_later_collection():
    with _gc.deferred_collection():
        ref = _cycle()
    assert ref() is not None  # no collection in the span
    gc.collect()
    assert ref() is None


def test_nested_spans_give_it_back_at_the_outermost_end():
    with _gc.deferred_collection():
        with _gc.deferred_collection():
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()


def test_an_exception_gives_it_back():
    with pytest.raises(RuntimeError, match="in the span"):
        with _gc.deferred_collection():
            with _gc.deferred_collection():
                raise RuntimeError("in the span")
    assert gc.isenabled()


def test_a_collector_turned_off_stays_off():
    gc.disable()
    with _gc.deferred_collection():
        assert not gc.isenabled()
    assert not gc.isenabled()


def test_objects_frozen_by_others_stay_frozen():
    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        with _gc.deferred_collection():
            kept = [[i] for i in range(100)]
        assert gc.get_freeze_count() == frozen
        assert gc.isenabled()
        assert kept
    finally:
        gc.unfreeze()


def test_spans_in_two_threads():
    entered, leave = threading.Event(), threading.Event()
    errors = []

    def other():
        try:
            with _gc.deferred_collection():
                entered.set()
                leave.wait(10)
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    thread = threading.Thread(target=other)
    with _gc.deferred_collection():
        thread.start()
        assert entered.wait(10)
    # The other thread's span still runs.
    assert not gc.isenabled()
    leave.set()
    thread.join(10)
    assert not errors
    assert gc.isenabled()


def test_first_call_deferred():
    states = []

    def step(x):
        states.append(gc.isenabled())
        return 2 * x

    step.outer_optimized = True
    fn = _gc.first_call_deferred(step)
    assert (fn(1), fn(2), fn(3)) == (2, 4, 6)
    assert states == [False, True, True]
    assert gc.isenabled()
    assert fn.outer_optimized  # the function's own attributes
    assert _gc.first_call_deferred(fn) is fn
    assert _gc.first_call_deferred(None) is None
    with pytest.raises(AttributeError):
        getattr(fn, "missing")  # noqa: B009


def test_a_failing_first_call_gives_it_back():
    def step():
        raise StopIteration

    fn = _gc.first_call_deferred(step)
    with pytest.raises(StopIteration):
        fn()
    assert gc.isenabled()
