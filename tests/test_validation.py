"""The one validation module (issue 14): `(name, value, ...)` everywhere,
and the value the user passed always in the message."""

import keras
import pytest

from keras_nas import _validation as V
from keras_nas.data import split_arrays
from keras_nas.estimation import PartialTraining, WeightInheritance
from keras_nas.estimation.hardware import measure_latency


def test_checks_show_the_value_passed():
    cases = [
        (lambda: V.check_positive_int("n", "3"), r"integer >= 1\. "
         r"Received: n='3'"),
        (lambda: V.check_positive_int("n", True), "Received: n=True"),
        (lambda: V.check_positive_int("n", 0, allow_none=True),
         r">= 1 or None\. Received: n=0"),
        (lambda: V.check_number("p", 1.0, 0, 1, high_open=True),
         r"in \[0, 1\)\. Received: p=1\.0"),
        (lambda: V.check_number("p", "x", 0, 1), "Received: p='x'"),
        (lambda: V.check_number("p", False, 0, 1), "Received: p=False"),
        (lambda: V.check_bool("b", 1), "Received: b=1"),
        (lambda: V.check_choice("c", True, (1, 2)), r"one of \[1, 2\]\. "
         "Received: c=True"),
        (lambda: V.check_seed(-1), "Received: seed=-1"),
    ]
    for call, message in cases:
        with pytest.raises(ValueError, match=message):
            call()
    assert V.check_positive_int("n", None, allow_none=True) is None
    assert V.check_number("p", 1, 0, 1) == 1.0
    assert V.check_choice("c", 2, (1, 2)) == 2


def test_latency_warmup_message_shows_the_users_value():
    # It said `warmup=-1` for any non-integer (issue 14).
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    for bad in ("3", 2.5, -2):
        with pytest.raises(
            ValueError, match=rf"`warmup`.*>= 0\. Received: warmup={bad!r}"
        ):
            measure_latency(model, warmup=bad, runs=1)
    with pytest.raises(ValueError, match=r"Received: runs='5'"):
        measure_latency(model, runs="5")
    with pytest.raises(ValueError, match=r"Received: batch_size=1\.5"):
        measure_latency(model, batch_size=1.5)


def test_callers_use_the_shared_checks():
    with pytest.raises(ValueError, match=r"Received: full_epochs='2'"):
        WeightInheritance(full_epochs="2")
    with pytest.raises(ValueError, match=r"in \[0, 1\]\. "
                       r"Received: min_fraction=2"):
        WeightInheritance(min_fraction=2)
    with pytest.raises(ValueError, match=r"in \(0, 1\]\. "
                       r"Received: fraction=0"):
        PartialTraining(fraction=0)
    with pytest.raises(ValueError, match=r"in \(0, 1\)\. "
                       r"Received: validation_split=1"):
        split_arrays([[0.0]] * 4, [0] * 4, validation_split=1)
