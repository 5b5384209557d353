"""Shared set-up of the latency-table and ProxylessNAS tests.

A tiny MobileNet space (8x8x1 inputs, 3 searched blocks with the 3x3 and
5x5 e3 MBConvs, and "zero" where allowed) and a made-up `LatencyTable` of
it, so the tests measure nothing.
"""

from __future__ import annotations

from keras_nas.estimation import LatencyTable
from keras_nas.spaces import MobileNetSearchSpace


def tiny_space() -> MobileNetSearchSpace:
    return MobileNetSearchSpace(
        (8, 8, 1), 10, stem_filters=8, stages=((8, 2, 1), (16, 1, 2)),
        kernel_sizes=(3, 5), expansions=(3,),
    )  # fmt: skip


def fake_table(space: MobileNetSearchSpace) -> LatencyTable:
    """Made-up latencies: part `i` costs `1.5 + i` ms, the call 0.5 ms
    (`min_ms` half of that)."""
    layout = space.latency_layout()
    entries = {}
    for i, key in enumerate(layout["models"]):
        ms = 0.5 if key.startswith("call") else 1.5 + i
        entries[key] = {
            "median_ms": ms, "min_ms": ms / 2, "mean_ms": ms, "p90_ms": ms,
        }  # fmt: skip
    return LatencyTable(layout, entries, {"batch_size": 1})
