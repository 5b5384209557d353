"""Memory estimates of a search space's largest model, checked before building.

`keras-nas search --filters 1000000000` used to die in the allocator and
`--num-nodes 1000000` or `--num-cells 100000` to hang while the space or
the model was built. `check_space_size` estimates a lower bound of the
memory the largest model of a space needs to train (weights with their
gradients and Adam slots, activations of one batch kept for the backward
pass, the Python objects of its layers and the hyperparameter values every
trial file stores) and refuses it, saying why, when it exceeds the memory
available. The bound counts only what every architecture of the space
must hold (e.g. the 1x1 input convolutions of each cell, not its
searched operations), so a refusal is never a false alarm.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable
from typing import Any

__all__ = [
    "Estimate",
    "available_memory",
    "check_space_class",
    "check_space_size",
    "check_sizes_early",
    "estimate",
]

#: Bytes per float32 value.
_FLOAT = 4
#: Copies of each weight while training with Adam: weight, gradient, 2 slots.
_WEIGHT_COPIES = 4
#: Bytes of Python/graph objects per Keras layer (a low figure).
_LAYER_BYTES = 8 * 1024
#: Bytes per hyperparameter value (the space is stored in every trial.json).
_HP_VALUE_BYTES = 16


class Estimate(dict):
    """`weights`, `activations` (per example), `layers`, `hp_values` and
    `bytes` (for a batch) of the largest model of a space: lower bounds."""


def _largest(value: Any) -> int:
    if isinstance(value, (list, tuple)):
        return max(int(v) for v in value)
    return int(value)


def _cell_space(options: dict, input_shape, num_classes) -> dict[str, int]:
    # keras_nas.blocks.network.build_cell_network: a 3x3 stem with 3 * C
    # channels, reductions at n // 3 and 2n // 3 doubling C, each cell
    # preprocessing its two inputs with 1x1 convolutions to C channels and
    # concatenating its `num_nodes` node outputs.
    num_nodes = _largest(options["num_nodes"])
    num_cells = _largest(options["num_cells"])
    filters = _largest(options["filters"])
    h, w, c = input_shape
    stem = 3 * filters
    weights = 9 * c * stem
    activations = h * w * stem
    prev_prev = prev = stem
    reduce_at = {num_cells // 3, 2 * num_cells // 3}
    for i in range(min(num_cells, 10_000)):
        if i in reduce_at and (h, w) != (1, 1):
            filters *= 2
            h, w = max(1, (h + 1) // 2), max(1, (w + 1) // 2)
        weights += (prev_prev + prev) * filters
        activations += (num_nodes + 2 + num_nodes) * h * w * filters
        prev_prev, prev = prev, num_nodes * filters
    if num_cells > 10_000:  # The rest repeat the last cell.
        extra = num_cells - 10_000
        weights += extra * 2 * prev * filters
        activations += extra * (2 * num_nodes + 2) * h * w * filters
    weights += prev * num_classes
    layers = num_cells * (2 + 3 * num_nodes)
    # Per cell kind and node j: two inputs among j + 2 states, two ops
    # among about 8: sum over j of 2 (j + 2) + 16 = n^2 + 19 n.
    hp_values = 2 * (num_nodes * num_nodes + 19 * num_nodes)
    return {
        "weights": weights,
        "activations": activations,
        "layers": layers,
        "hp_values": hp_values,
    }


def _nas_bench_201(options: dict, input_shape, num_classes) -> dict[str, int]:
    # Three stages of `cells_per_stage` cells (C, 2C, 4C channels) joined
    # by residual blocks; each cell has 4 nodes and 6 edges.
    filters = _largest(options["filters"])
    cells = _largest(options["cells_per_stage"])
    h, w, c = input_shape
    weights = 9 * c * filters
    activations = h * w * filters
    for stage in range(3):
        channels = filters * 2**stage
        if stage:
            weights += 2 * 9 * channels * channels // 2
            h, w = max(1, (h + 1) // 2), max(1, (w + 1) // 2)
        activations += cells * 4 * h * w * channels
    weights += 4 * filters * num_classes
    return {
        "weights": weights,
        "activations": activations,
        "layers": 3 * cells * 6,
        "hp_values": 6 * 5,
    }


def _chain_space(options: dict, input_shape, num_classes) -> dict[str, int]:
    # At most `max_layers` layers, each at least a layer object and one
    # output of the smallest width.
    layers = _largest(options["max_layers"])
    return {
        "weights": 0,
        "activations": layers * min(options.get("units") or (1,)),
        "layers": layers,
        "hp_values": layers * 10,
    }


#: Space class name -> the smallest value of each size its constructor
#: accepts: an estimate with these for the sizes not given, a 1x1x1 input
#: and 2 classes bounds every space built with the sizes given from below.
_SMALLEST = {
    "CellSearchSpace": {"num_nodes": 1, "num_cells": 1, "filters": 2},
    "NasBench201SearchSpace": {"filters": 2, "cells_per_stage": 1},
    "ChainSearchSpace": {"max_layers": 1},
}

#: Space class name -> estimate(options, input_shape, num_classes).
_ESTIMATES: dict[str, Callable[..., dict[str, int]]] = {
    "CellSearchSpace": _cell_space,
    "NasBench201SearchSpace": _nas_bench_201,
    "ChainSearchSpace": _chain_space,
}


def estimate(
    space_name: str,
    options: dict[str, Any],
    input_shape: tuple[int, ...],
    num_classes: int,
    batch_size: int,
) -> Estimate | None:
    """Lower bounds of the largest model of a space (`None`: unknown space).

    Args:
        space_name: the space's class name, e.g. `"CellSearchSpace"`.
        options: its constructor arguments (defaults included).
        input_shape: `(height, width, channels)`.
        num_classes: number of classes.
        batch_size: examples per training step.
    """
    function = _ESTIMATES.get(space_name)
    if function is None:
        return None
    counts = function(options, tuple(input_shape), num_classes)
    total = (
        _FLOAT * _WEIGHT_COPIES * counts["weights"]
        + _FLOAT * 2 * counts["activations"] * batch_size
        + _LAYER_BYTES * counts["layers"]
        + _HP_VALUE_BYTES * counts["hp_values"]
    )
    return Estimate(counts, bytes=total)


def available_memory() -> int | None:
    """Bytes of memory available now (Linux: MemAvailable and the cgroup
    limit; elsewhere the free physical pages), or `None` if unknown."""
    found = []
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    found.append(int(line.split()[1]) * 1024)
    except (OSError, ValueError):
        pass
    for path in (
        "/sys/fs/cgroup/memory.max",
        "/sys/fs/cgroup/memory/memory.limit_in_bytes",
    ):
        try:
            with open(path) as f:
                text = f.read().strip()
            if text.isdigit() and int(text) < 1 << 60:
                found.append(int(text))
        except OSError:
            pass
    if not found:
        try:
            pages = os.sysconf("SC_AVPHYS_PAGES")
            found.append(pages * os.sysconf("SC_PAGE_SIZE"))
        except (ValueError, OSError, AttributeError):
            return None
    return min(found)


def _size(n: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024 or unit == "PiB":
            return f"{n:.3g} {unit}"
        n /= 1024
    return f"{n:.3g}"


def check_space_size(
    space_name: str,
    options: dict[str, Any],
    input_shape: tuple[int, ...],
    num_classes: int,
    batch_size: int,
    available: int | None = None,
) -> Estimate | None:
    """Refuses a space whose largest model cannot fit in memory.

    Args:
        space_name, options, input_shape, num_classes, batch_size: as for
            `estimate`.
        available: bytes available (default: `available_memory()`).

    Returns:
        The estimate (or `None` for a space without one).

    Raises:
        ValueError: the estimate exceeds the memory available, with the
            figures.
    """
    found = estimate(space_name, options, input_shape, num_classes, batch_size)
    if found is None:
        return None
    if available is None:
        available = available_memory()
    if available is None or found["bytes"] <= available:
        return found
    parts = [
        f"{found['weights']:.3g} weights",
        f"{found['activations'] * batch_size:.3g} activations per batch of "
        f"{batch_size}",
        f"{found['layers']:.3g} layers",
    ]
    if found["hp_values"] > 1e6:
        parts.append(f"{found['hp_values']:.3g} hyperparameter values")
    raise ValueError(
        f"the largest model of this space needs at least "
        f"{_size(found['bytes'])} to train ({', '.join(parts)}), more than "
        f"the {_size(available)} of memory available; use smaller sizes"
    )


def check_space_class(
    cls: type,
    kwargs: dict[str, Any],
    input_shape: tuple[int, ...],
    num_classes: int,
    batch_size: int,
) -> Estimate | None:
    """`check_space_size` for `cls(input_shape, num_classes, **kwargs)`,
    with the constructor's defaults for the sizes not given."""
    options = {
        name: p.default
        for name, p in inspect.signature(cls.__init__).parameters.items()
        if p.default is not inspect.Parameter.empty
    }
    options.update(kwargs)
    return check_space_size(
        cls.__name__, options, input_shape, num_classes, batch_size
    )


def check_sizes_early(
    space_name: str, sizes: dict[str, Any], batch_size: int
) -> Estimate | None:
    """`check_space_size` before the data and the space are known.

    The sizes not given take their smallest value, the input is 1x1x1 with
    2 classes: every estimate grows with each of them, so this is a lower
    bound of the space's largest model on any data, and a refusal is never
    a false alarm. `keras-nas search` calls it before it imports anything
    slow, so that sizes no machine can hold fail in a second.

    Args:
        space_name: the space's class name, e.g. `"CellSearchSpace"`.
        sizes: the constructor's size arguments that were given.
        batch_size: examples per training step.
    """
    smallest = _SMALLEST.get(space_name)
    if smallest is None:
        return None
    options = {**smallest, **sizes}
    return check_space_size(space_name, options, (1, 1, 1), 2, batch_size)
