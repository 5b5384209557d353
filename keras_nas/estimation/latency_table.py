"""Per-block latency tables: ProxylessNAS' latency model of a network.

ProxylessNAS (Cai et al., "ProxylessNAS: Direct Neural Architecture Search
on Target Task and Hardware", ICLR 2019, Section 3.3) predicts the latency
of a network of a block-structured space as the sum of the latencies of its
blocks, each measured once on the target device at its input shape; the
expected latency of the stochastic architecture, `sum_i sum_j p_ij *
latency_ij` over the blocks `i` and their candidate ops `j`, is then
differentiable in the architecture probabilities `p` and joins the loss.

`LatencyTable.measure(space)` measures every part of a space that offers
`latency_layout()` (`keras_nas.spaces.MobileNetSearchSpace`): every
candidate block at its input shape, the stem and the head, each as a
one-part model timed by `keras_nas.estimation.measure_latency`, and once an
identity model, the cost of calling a model at all. A part's latency is its
model's minus that call cost (at least 0); a network's prediction is the
call cost plus its parts'. A skipped block (`"zero"`) costs nothing.

The table is JSON (`save`, `load`), keyed by part configuration and input
shape, with the measurement settings; measuring again with the same file
only measures the parts it does not hold yet.

Every prediction can add up the medians of the timed calls (the default)
or their minima (`statistic="min_ms"`): on a machine shared with other
work the minima are much less disturbed by the load (see
`benchmarks/mobilenet_latency.py` and its results in
`benchmarks/RESULTS.md`).
"""

from __future__ import annotations

import datetime
import json
import math
import os
import platform
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import keras
import numpy as np

from keras_nas._validation import (
    check_choice,
    check_positive_int,
    short_repr,
)
from keras_nas.estimation import hardware

__all__ = ["LATENCY_TABLE_FILE", "LatencyTable", "measure_interleaved"]

#: File name of a table saved in a directory (e.g. a tuner's project dir).
LATENCY_TABLE_FILE = "latency_table.json"
#: The statistics of `measure_latency` a table keeps per part.
STATISTICS = ("median_ms", "min_ms", "mean_ms", "p90_ms")
_VERSION = 1
_SETTINGS = (
    "backend", "batch_size", "jit_compile", "runs", "warmup", "repeats",
)  # fmt: skip
_SKIP = "zero"


def _file(path: Any) -> str:
    if not isinstance(path, (str, os.PathLike)):
        raise ValueError(
            "Expected `path` to be a file path or a directory. "
            f"Received: path={short_repr(path)}"
        )
    path = os.fspath(path)
    if os.path.isdir(path) or not path.endswith(".json"):
        return os.path.join(path, LATENCY_TABLE_FILE)
    return path


def _check_statistic(statistic: Any) -> str:
    return check_choice("statistic", statistic, STATISTICS)


def measure_interleaved(
    models: Mapping[str, Any],
    repeats: int = 3,
    seed: int = 0,
    on_model: Callable[[str, dict[str, float]], None] | None = None,
    **settings: Any,
) -> dict[str, dict[str, float]]:
    """Latency statistics of several models, measured in interleaved rounds.

    Each of `repeats` rounds times every model once with `measure_latency`
    (`settings`: its `batch_size`, `runs`, `warmup`, `jit_compile`), in an
    order shuffled per round, so that a change of the machine's load
    reaches all models alike. Per model, the statistics of the rounds are
    combined: the median of their `median_ms`, `mean_ms` and `p90_ms`, the
    smallest `min_ms`.

    Args:
        models: name -> model, or name -> a function returning the model
            (built once).
        repeats: rounds.
        seed: seed of the round orders (and of each input batch).
        on_model: called as `on_model(name, stats)` when a model's rounds
            are done.
        **settings: keyword arguments of `measure_latency`.

    Returns:
        name -> `{"median_ms", "min_ms", "mean_ms", "p90_ms"}`.
    """
    repeats = check_positive_int("repeats", repeats)
    built = {
        name: m if isinstance(m, keras.layers.Layer) else m()
        for name, m in models.items()
    }
    rounds: dict[str, list[dict[str, float]]] = {name: [] for name in built}
    rng = np.random.default_rng(seed)
    names = list(built)
    for _ in range(repeats):
        for i in rng.permutation(len(names)):
            name = names[int(i)]
            stats = hardware.measure_latency(built[name], seed=seed, **settings)
            rounds[name].append(stats)
            if len(rounds[name]) == repeats and on_model is not None:
                on_model(name, _combine(rounds[name]))
    return {name: _combine(stats) for name, stats in rounds.items()}


def _combine(rounds: Sequence[Mapping[str, float]]) -> dict[str, float]:
    out = {
        s: float(np.median([r[s] for r in rounds]))
        for s in ("median_ms", "mean_ms", "p90_ms")
    }
    out["min_ms"] = float(min(r["min_ms"] for r in rounds))
    return out


def _check_layout(layout: Any) -> dict[str, Any]:
    fail = ValueError(
        "Expected `layout` to be {'fixed': [key, ...], 'blocks': [{'layer': "
        "name, 'choices': {op: key or None}}, ...]} (see "
        f"`latency_layout()`). Received: layout={short_repr(layout)}"
    )
    if not isinstance(layout, Mapping):
        raise fail
    fixed, blocks = layout.get("fixed"), layout.get("blocks")
    if not isinstance(fixed, Sequence) or isinstance(fixed, str) or not fixed:
        raise fail
    if not all(isinstance(k, str) for k in fixed):
        raise fail
    if not isinstance(blocks, Sequence) or isinstance(blocks, str):
        raise fail
    out = []
    for block in blocks:
        if not isinstance(block, Mapping) or not isinstance(
            block.get("choices"), Mapping
        ):
            raise fail
        choices = dict(block["choices"])
        if not choices or not all(
            isinstance(op, str) and (k is None or isinstance(k, str))
            for op, k in choices.items()
        ):
            raise fail
        out.append({"layer": str(block.get("layer", "")), "choices": choices})
    return {"fixed": [str(k) for k in fixed], "blocks": out}


class LatencyTable:
    """Measured latencies of a space's parts; predicts a network's latency.

    Make one with `LatencyTable.measure(space)` on the device the network
    will run on (with the batch size it will run at), then predict the
    latency of any architecture of the space without building it
    (`predict`), of a built model (`predict_model`), or the expected
    latency under per-block op probabilities, differentiably
    (`expected_latency`). `keras_nas.estimation.HardwareAware(
    metrics=("predicted_latency",), latency_table=table)` adds the
    prediction to every trial's metrics.

    Args:
        layout: the space's parts: `{"fixed": [key, ...], "blocks":
            [{"layer": name, "choices": {op: key or None}}, ...]}`; the
            first fixed key is the call cost (an identity model).
        entries: `{key: {"median_ms": ..., "min_ms": ..., ...}}`.
        settings: how the entries were measured (backend, batch size,
            jit_compile, runs, warmup, device, date).
        part_overhead: `{statistic: ms}`, the per-part overhead (see
            `fit_overhead`); 0 for a statistic it does not name.

    Example:

    ```python
    space = keras_nas.spaces.MobileNetSearchSpace((32, 32, 3), 10)
    table = keras_nas.estimation.LatencyTable.measure(
        space, path="my_project/latency_table.json")
    table.predict(["mbconv_3x3_e6"] + ["zero"] * 7)  # ms
    ```
    """

    def __init__(
        self,
        layout: Mapping[str, Any],
        entries: Mapping[str, Mapping[str, float]] | None = None,
        settings: Mapping[str, Any] | None = None,
        part_overhead: Mapping[str, float] | None = None,
    ) -> None:
        self.layout = _check_layout(layout)
        self.entries: dict[str, dict[str, float]] = {}
        for key, stats in dict(entries or {}).items():
            ok = isinstance(stats, Mapping) and all(
                isinstance(stats.get(s), (int, float))
                and not isinstance(stats.get(s), bool)
                and math.isfinite(stats[s])
                and stats[s] >= 0
                for s in STATISTICS
            )
            if not isinstance(key, str) or not ok:
                raise ValueError(
                    f"Expected every entry to be {{key: {{statistic: ms}}}} "
                    f"with the statistics {list(STATISTICS)} (finite, >= 0)."
                    f" Received: entries[{short_repr(key)}]="
                    f"{short_repr(stats)}"
                )
            self.entries[key] = {s: float(stats[s]) for s in STATISTICS}
        self.settings = dict(settings or {})
        self.part_overhead: dict[str, float] = {}
        for key, ms in dict(part_overhead or {}).items():
            if (
                key not in STATISTICS
                or isinstance(ms, bool)
                or not isinstance(ms, (int, float))
                or not math.isfinite(ms)
            ):
                raise ValueError(
                    f"Expected `part_overhead` to map statistics "
                    f"{list(STATISTICS)} to finite ms. Received: "
                    f"part_overhead={short_repr(part_overhead)}"
                )
            self.part_overhead[key] = float(ms)

    # ------------------------------------------------------------------
    # Measuring, saving and loading.
    # ------------------------------------------------------------------

    @classmethod
    def measure(
        cls,
        space: Any,
        path: str | os.PathLike | None = None,
        batch_size: int = 1,
        runs: int = 30,
        warmup: int = 5,
        jit_compile: bool | None = None,
        seed: int = 0,
        repeats: int = 3,
        on_part: Callable[[str, dict[str, float]], None] | None = None,
        calibrate: int = 0,
    ) -> LatencyTable:
        """Measures every part of `space` on the current device.

        Args:
            space: a search space with `latency_layout()` (e.g.
                `MobileNetSearchSpace`).
            path: a JSON file or a directory (e.g. a tuner's
                `project_dir`; the file is then `latency_table.json`) to
                save the table to. Parts the file already
                holds, measured with the same settings, are not measured
                again; a file measured with other settings raises a
                ValueError (nothing is overwritten).
            batch_size, runs, warmup, jit_compile, seed: passed to
                `measure_latency` for every part.
            repeats: every part is timed in `repeats` interleaved rounds
                (see `measure_interleaved`): the table keeps the median of
                the rounds' medians and the smallest minimum.
            on_part: called as `on_part(key, stats)` after each part is
                measured (e.g. to print progress).
            calibrate: also measure this many random architectures of
                the space (drawn with `seed`, built by
                `space.build_network`) end to end, in the same rounds as
                the parts, and fit the per-part overhead to them
                (`fit_overhead`); 0 keeps the plain sum of the parts.

        Returns:
            The table.
        """
        layout_fn = getattr(space, "latency_layout", None)
        if not callable(layout_fn):
            raise ValueError(
                "Expected `space` to have a `latency_layout()` method (e.g. "
                "a MobileNetSearchSpace). Received: "
                f"space={short_repr(space)}"
            )
        check_positive_int("batch_size", batch_size)
        check_positive_int("runs", runs)
        check_positive_int("warmup", warmup, minimum=0)
        check_positive_int("repeats", repeats)
        check_positive_int("calibrate", calibrate, minimum=0)
        layout = layout_fn()
        settings = {
            "backend": keras.backend.backend(),
            "batch_size": int(batch_size),
            "jit_compile": jit_compile,
            "runs": int(runs),
            "warmup": int(warmup),
            "repeats": int(repeats),
            "device": f"{platform.machine()} {platform.processor()}".strip(),
            "cpus": os.cpu_count(),
        }
        file = None if path is None else _file(path)
        entries: dict[str, dict[str, float]] = {}
        if file is not None and os.path.exists(file):
            saved = cls.load(file)
            theirs = {k: saved.settings.get(k) for k in _SETTINGS}
            ours = {k: settings[k] for k in _SETTINGS}
            if theirs != ours:
                raise ValueError(
                    f"Expected the table in {file!r} to be measured with the "
                    f"same settings {ours}; it was measured with {theirs}. "
                    "Pass another `path` (the file is left unchanged). "
                    f"Received: path={os.fspath(path)!r}"
                )
            entries.update(saved.entries)
        table = cls(_check_layout(layout), entries, settings)
        missing = {
            key: make_model
            for key, make_model in layout["models"].items()
            if key not in table.entries
        }
        networks = {}
        if calibrate:
            rng = np.random.default_rng(seed)
            for k in range(calibrate):
                ops = tuple(str(rng.choice(b.choices)) for b in space.blocks)
                networks[f"calibration network {k}"] = (
                    ops,
                    lambda ops=ops: space.build_network(ops),
                )
            missing.update({k: make for k, (_, make) in networks.items()})
        if missing:
            table.entries.update(
                measure_interleaved(
                    missing,
                    repeats=repeats,
                    seed=seed,
                    on_model=on_part,
                    batch_size=batch_size,
                    warmup=warmup,
                    runs=runs,
                    jit_compile=jit_compile,
                )
            )
            table.settings["measured_at"] = datetime.datetime.now(
                datetime.timezone.utc
            ).isoformat(timespec="seconds")
        if networks:
            table.fit_overhead(
                [(o, table.entries.pop(k)) for k, (o, _) in networks.items()]
            )
            table.settings["calibration_networks"] = int(calibrate)
        if file is not None:
            table.save(file)
        return table

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": _VERSION,
            "settings": dict(self.settings),
            "layout": self.layout,
            "entries": self.entries,
            "part_overhead": dict(self.part_overhead),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LatencyTable:
        if not isinstance(data, Mapping) or data.get("version") != _VERSION:
            raise ValueError(
                f"Expected a latency table (a mapping with 'version': "
                f"{_VERSION}, 'settings', 'layout', 'entries'). "
                f"Received: data={short_repr(data)}"
            )
        return cls(
            data.get("layout"),
            data.get("entries"),
            data.get("settings"),
            data.get("part_overhead"),
        )

    def save(self, path: str | os.PathLike) -> str:
        """Writes the table as JSON (atomically); returns the file path.

        `path` is a `.json` file or a directory (the file is then
        `latency_table.json` in it).
        """
        file = _file(path)
        os.makedirs(os.path.dirname(file) or ".", exist_ok=True)
        temp = f"{file}.tmp"
        with open(temp, "w", encoding="utf-8") as f:
            json.dump(self.to_dict(), f, indent=1, sort_keys=True)
        os.replace(temp, file)
        return file

    @classmethod
    def load(cls, path: str | os.PathLike) -> LatencyTable:
        """Reads a table written by `save` (a file or its directory)."""
        file = _file(path)
        try:
            with open(file, encoding="utf-8") as f:
                data = json.load(f)
        except (OSError, json.JSONDecodeError, RecursionError) as e:
            raise ValueError(
                f"Expected a readable JSON latency table at {file!r} ({e}). "
                f"Received: path={os.fspath(path)!r}"
            ) from e
        return cls.from_dict(data)

    # ------------------------------------------------------------------
    # Predictions.
    # ------------------------------------------------------------------

    def _raw(self, key: str, statistic: str) -> float:
        if key not in self.entries:
            raise ValueError(
                f"Expected the table to hold the part {key!r}; measure it "
                "with `LatencyTable.measure(space, path=...)`. "
                f"Received: a table with {len(self.entries)} parts"
            )
        return self.entries[key][statistic]

    def part_latency(self, key: str | None, statistic: str = "median_ms"):
        """The latency (ms) a part adds to a network: its one-part model's
        minus the call cost, at least 0, minus the fitted per-part
        overhead (`fit_overhead`; `None`, a skipped block: 0)."""
        statistic = _check_statistic(statistic)
        if key is None:
            return 0.0
        call = self._raw(self.layout["fixed"][0], statistic)
        if key == self.layout["fixed"][0]:
            return call
        overhead = self.part_overhead.get(statistic, 0.0)
        return max(self._raw(key, statistic) - call, 0.0) - overhead

    def fit_overhead(
        self, measured: Sequence[tuple[Any, Mapping[str, float]]]
    ) -> dict[str, float]:
        """Fits the per-part overhead to whole networks measured end to end.

        A one-part model costs more than its part does inside a network
        (each model call has costs that grow with its graph and its output,
        beyond the identity model's call cost), so a sum over the parts
        over-predicts by about that overhead per part. This fits, per
        statistic, the one number `d` (ms per part; it may be negative)
        that minimises `sum_k (measured_k - (predicted_k - n_k * d))^2`,
        `n_k` being the parts of network `k` besides the call cost (stem,
        head, blocks not skipped), and keeps it in `part_overhead`:
        predictions then subtract it once per part. Measure the networks
        in the same interleaved rounds as the parts, and judge the fit on
        other networks (`benchmarks/mobilenet_latency.py --calibrate`).

        Args:
            measured: `(architecture, stats)` pairs: a genotype (or its
                ops) and its `measure_latency` statistics.

        Returns:
            `{statistic: d}` for every statistic.
        """
        if isinstance(measured, (str, bytes)) or not measured:
            raise ValueError(
                "Expected `measured` to be a non-empty sequence of "
                "(architecture, stats) pairs. Received: "
                f"measured={short_repr(measured)}"
            )
        counts, rows = [], []
        for architecture, stats in measured:
            ops = self._ops(architecture)
            counts.append(
                len(self.layout["fixed"]) - 1 + sum(o != _SKIP for o in ops)
            )
            rows.append((ops, stats))
        n = np.asarray(counts, dtype="float64")
        self.part_overhead = {}
        fitted = {}
        for statistic in STATISTICS:
            predicted = np.asarray(
                [self.predict(o, statistic) for o, _ in rows]
            )
            actual = np.asarray([float(st[statistic]) for _, st in rows])
            fitted[statistic] = float(
                np.dot(n, predicted - actual) / np.dot(n, n)
            )
        self.part_overhead = fitted
        return dict(fitted)

    def fixed_latency(self, statistic: str = "median_ms") -> float:
        """The latency of the parts every architecture has (call cost,
        stem, head), in ms."""
        return float(
            sum(self.part_latency(k, statistic) for k in self.layout["fixed"])
        )

    def block_latencies(self, statistic: str = "median_ms") -> list[np.ndarray]:
        """Per block, the latency (ms) of each op, in the order of the
        block's choices (`space.blocks[i].choices`)."""
        return [
            np.asarray(
                [
                    self.part_latency(key, statistic)
                    for key in block["choices"].values()
                ],
                dtype="float32",
            )
            for block in self.layout["blocks"]
        ]

    def _ops(self, architecture: Any) -> tuple[str, ...]:
        ops = getattr(architecture, "ops", architecture)
        blocks = self.layout["blocks"]
        if (
            isinstance(ops, (str, bytes))
            or not isinstance(ops, Sequence)
            or len(ops) != len(blocks)
        ):
            raise ValueError(
                f"Expected `architecture` to be a genotype or a sequence of "
                f"{len(blocks)} op names, one per block. "
                f"Received: architecture={short_repr(architecture)}"
            )
        for i, (op, block) in enumerate(zip(ops, blocks, strict=True)):
            if op not in block["choices"]:
                raise ValueError(
                    f"Expected op {i} to be one of {list(block['choices'])}."
                    f" Received: architecture={short_repr(architecture)}"
                )
        return tuple(ops)

    def predict(
        self, architecture: Any, statistic: str = "median_ms"
    ) -> float:
        """The predicted latency (ms) of an architecture of the space.

        Args:
            architecture: a `MobileNetGenotype` or its sequence of ops.
            statistic: which statistic of the measurements to add up
                (`"median_ms"`, `"min_ms"`, `"mean_ms"`, `"p90_ms"`).

        Returns:
            The call cost + the stem + the blocks + the head, in ms.
        """
        ops = self._ops(architecture)
        blocks = self.layout["blocks"]
        total = self.fixed_latency(statistic)
        for op, block in zip(ops, blocks, strict=True):
            total += self.part_latency(block["choices"][op], statistic)
        return float(total)

    def architecture_of(self, model: Any) -> tuple[str, ...]:
        """The ops of a network built by the table's space, read from its
        layers (a block's layer is absent when it is skipped)."""
        names = {layer.name: layer for layer in getattr(model, "layers", [])}
        ops = []
        for block in self.layout["blocks"]:
            layer = names.get(block["layer"])
            op = _SKIP if layer is None else getattr(layer, "op", None)
            if op not in block["choices"]:
                raise ValueError(
                    f"Expected `model` to be a network of the table's space:"
                    f" its layer {block['layer']!r} should be one of "
                    f"{list(block['choices'])}. Received: "
                    f"model={getattr(model, 'name', short_repr(model))!r}"
                    f" with op {op!r}"
                )
            ops.append(op)
        return tuple(ops)

    def predict_model(self, model: Any, statistic: str = "median_ms") -> float:
        """`predict` for a network built by the table's space."""
        return self.predict(self.architecture_of(model), statistic)

    def expected_latency(
        self, probabilities: Sequence[Any], statistic: str = "median_ms"
    ) -> Any:
        """Expected latency under per-block op probabilities (ms).

        `fixed_latency + sum_i dot(probabilities[i], block_latencies[i])`,
        written with `keras.ops`, so it is differentiable in the
        probabilities on every backend: ProxylessNAS' latency loss term
        (Cai et al., 2019, Eq. 6) for a softmax over each block's
        architecture parameters.

        Args:
            probabilities: one tensor per block, of shape `(num_choices,)`
                (the block's ops in `space.blocks[i].choices` order).
            statistic: which measured statistic to use.

        Returns:
            A scalar tensor.

        Example:

        ```python
        alphas = [keras.Variable(np.zeros(len(b.choices)))
                  for b in space.blocks]
        loss = cross_entropy + weight * table.expected_latency(
            [keras.ops.softmax(a) for a in alphas])
        ```
        """
        vectors = self.block_latencies(statistic)
        if isinstance(probabilities, (str, bytes)) or len(probabilities) != len(
            vectors
        ):
            raise ValueError(
                f"Expected `probabilities` to hold {len(vectors)} tensors, "
                f"one per block. Received: probabilities="
                f"{short_repr(probabilities)}"
            )
        total = keras.ops.convert_to_tensor(self.fixed_latency(statistic))
        for i, (p, latency) in enumerate(
            zip(probabilities, vectors, strict=True)
        ):
            p = keras.ops.convert_to_tensor(p)
            if tuple(p.shape) != latency.shape:
                raise ValueError(
                    f"Expected `probabilities[{i}]` to have shape "
                    f"{latency.shape} (the block's choices). Received: "
                    f"shape {tuple(p.shape)}"
                )
            latency = keras.ops.convert_to_tensor(latency, dtype=p.dtype)
            total = keras.ops.cast(total, p.dtype) + keras.ops.sum(p * latency)
        return total
