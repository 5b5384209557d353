"""Run keras-tuner oracles against a lookup table instead of training.

A `TabularBenchmark` maps each point of a `HyperParameters` space to a
precomputed score (e.g. NAS-Bench-201's CIFAR-10 test accuracy, Dong & Yang,
ICLR 2020). `run_oracle_on_table` drives any `keras_tuner.Oracle` through its
public API only (`create_trial`, `update_trial`, `end_trial`), exactly as a
tuner would, for many seeds and a budget of unique queries, and records the
best score found after each unique query and the oracle's own time per trial.
"""

from __future__ import annotations

import csv
import dataclasses
import multiprocessing
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import keras_tuner
import numpy as np
from keras_tuner.engine import trial as trial_module

from keras_nas.spaces import nas_bench_201

__all__ = ["TabularBenchmark", "TabularRun", "run_oracle_on_table"]


class TabularBenchmark:
    """A search space whose every point has a precomputed score.

    Args:
        table: Mapping from a point's key (see `key_fn`) to its score.
        hyperparameters: The keras-tuner `HyperParameters` of the space.
        key_fn: Callable turning a dict of hyperparameter values into the
            table's key.
        metric: Name under which the score is reported to oracles.
        direction: `"max"` (default) or `"min"`.
        name: A name for reports.

    Example:

    ```python
    table = TabularBenchmark.from_nas_bench_201_csv(
        "nas-bench-201/cifar10.csv"
    )
    table.query({"edge_1_0": "nor_conv_3x3", ...})  # -> 94.37...
    ```
    """

    def __init__(
        self,
        table: Mapping[str, float],
        hyperparameters: keras_tuner.HyperParameters,
        key_fn: Callable[[Mapping[str, Any]], str],
        metric: str = "accuracy",
        direction: str = "max",
        name: str = "table",
    ):
        if not table:
            raise ValueError(
                "Expected `table` to hold at least one entry. "
                f"Received: table of length {len(table)}"
            )
        if direction not in ("max", "min"):
            raise ValueError(
                "Expected `direction` to be 'max' or 'min'. "
                f"Received: direction={direction!r}"
            )
        self.table = {str(k): float(v) for k, v in table.items()}
        self._hyperparameters = hyperparameters
        self.key_fn = key_fn
        self.metric = metric
        self.direction = direction
        self.name = name

    @classmethod
    def from_nas_bench_201_csv(
        cls, path: str, metric: str = "test_accuracy"
    ) -> TabularBenchmark:
        """Loads a NAS-Bench-201 table (columns `arch,<metric>`).

        The space is `keras_nas.spaces.NasBench201SearchSpace`'s: six
        `edge_{to}_{from}` choices among `NB201_OPS`.

        Args:
            path: A CSV file whose `arch` column holds cell strings such as
                `|nor_conv_3x3~0|+|none~0|skip_connect~1|+|...~2|`.
            metric: The column holding the score.
        """
        if not os.path.exists(path):
            raise ValueError(
                "Expected `path` to name an existing NAS-Bench-201 CSV file. "
                f"Received: path={path!r}"
            )
        table = {}
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            if reader.fieldnames is None or not {"arch", metric} <= set(
                reader.fieldnames
            ):
                raise ValueError(
                    f"Expected the CSV columns to include 'arch' and "
                    f"{metric!r}. Received: columns={reader.fieldnames!r}"
                )
            for row in reader:
                table[row["arch"]] = float(row[metric])
        hp = keras_tuner.HyperParameters()
        nas_bench_201.NasBench201SearchSpace().declare_hyperparameters(hp)
        return cls(
            table,
            hp,
            _nb201_key,
            metric="accuracy",
            direction="max",
            name=os.path.splitext(os.path.basename(path))[0],
        )

    @property
    def hyperparameters(self) -> keras_tuner.HyperParameters:
        """A fresh copy of the space's `HyperParameters`."""
        return self._hyperparameters.copy()

    def key(self, values: Mapping[str, Any]) -> str:
        return self.key_fn(values)

    def query(self, values: Mapping[str, Any]) -> float:
        """The score of the point `values` (a dict of active values)."""
        key = self.key_fn(values)
        if key not in self.table:
            raise ValueError(
                f"The point is not in the table {self.name!r}. "
                f"Received: values={dict(values)!r} (key {key!r})"
            )
        return self.table[key]

    @property
    def optimum(self) -> float:
        """The best score in the table."""
        scores = self.table.values()
        return max(scores) if self.direction == "max" else min(scores)

    def __len__(self) -> int:
        return len(self.table)


def _nb201_key(values: Mapping[str, Any]) -> str:
    return nas_bench_201.nb201_genotype_from_hyperparameters(values).to_string()


@dataclasses.dataclass
class TabularRun:
    """What `run_oracle_on_table` measured, one row per seed.

    Attributes:
        seeds: The seeds, in row order.
        curves: Array `(num_seeds, budget)`: best score after each unique
            query (NaN after an oracle stopped early).
        create_times: Per seed, seconds spent in `create_trial` per trial
            (the oracle's decision plus keras-tuner's bookkeeping).
        end_times: Per seed, seconds spent in `end_trial` per trial.
        num_trials: Per seed, trials created (duplicates included).
        optimum: The table's optimum.
        direction: `"max"` or `"min"`.
    """

    seeds: list[int]
    curves: np.ndarray
    create_times: list[np.ndarray]
    end_times: list[np.ndarray]
    num_trials: list[int]
    optimum: float
    direction: str = "max"

    def best_at(self, queries: int) -> np.ndarray:
        """Best score per seed after `queries` unique queries."""
        return self.curves[:, queries - 1]

    def share_reaching_optimum(self, queries: int | None = None) -> float:
        """Share of seeds that found the optimum within `queries`."""
        best = self.curves[:, -1] if queries is None else self.best_at(queries)
        return float(np.mean(np.isclose(best, self.optimum)))

    def decision_times(self) -> np.ndarray:
        """All `create_trial + end_trial` times, in seconds."""
        if not self.create_times:
            return np.zeros(0)
        return np.concatenate(
            [
                c + e
                for c, e in zip(self.create_times, self.end_times, strict=True)
            ]
        )


# Tasks of the running `run_oracle_on_table`, read by forked workers (so that
# factories need not be picklable, e.g. lambdas).
_TASKS: list = []


def _run_task(index: int):
    return _run_one_seed(_TASKS[index])


def _run_one_seed(args) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    oracle_factory, table, budget, seed, directory, max_trials = args
    better = max if table.direction == "max" else min
    objective = keras_tuner.Objective(table.metric, table.direction)
    oracle = oracle_factory(
        objective=objective,
        hyperparameters=table.hyperparameters,
        max_trials=max_trials,
        seed=seed,
    )
    oracle._set_project_dir(directory, f"seed_{seed}")
    oracle.verbose = 0
    seen = set()
    curve = np.full(budget, np.nan)
    create_times, end_times = [], []
    best = None
    idle = 0
    while len(seen) < budget:
        start = time.perf_counter()
        trial = oracle.create_trial("tuner0")
        create_times.append(time.perf_counter() - start)
        if trial.status == trial_module.TrialStatus.STOPPED:
            create_times.pop()
            break
        if trial.status == trial_module.TrialStatus.IDLE:
            # A single worker that is told to wait would wait forever.
            create_times.pop()
            idle += 1
            if idle > 3:
                break
            continue
        idle = 0
        values = trial.hyperparameters.values
        score = table.query(values)
        oracle.update_trial(trial.trial_id, {table.metric: score})
        trial.status = trial_module.TrialStatus.COMPLETED
        start = time.perf_counter()
        oracle.end_trial(trial)
        end_times.append(time.perf_counter() - start)
        key = table.key(values)
        if key not in seen:
            best = score if best is None else better(best, score)
            curve[len(seen)] = best
            seen.add(key)
    shutil.rmtree(os.path.join(directory, f"seed_{seed}"), ignore_errors=True)
    return (
        curve,
        np.asarray(create_times),
        np.asarray(end_times),
        len(create_times),
    )


def _scratch_root() -> str:
    # Trial and oracle JSON files are written on every call: keep them in
    # memory when the machine offers a RAM-backed folder.
    shm = "/dev/shm"
    if os.path.isdir(shm) and os.access(shm, os.W_OK):
        return shm
    return tempfile.gettempdir()


def run_oracle_on_table(
    oracle_factory: Callable[..., keras_tuner.Oracle],
    table: TabularBenchmark,
    budget: int,
    seeds: Sequence[int] | int,
    directory: str | None = None,
    max_trials: int | None = None,
    jobs: int = 1,
) -> TabularRun:
    """Runs an oracle on a table for several seeds.

    The oracle is driven like a single keras-tuner worker: `create_trial`,
    look the point up, `update_trial`, `end_trial`, until `budget` distinct
    points were queried or the oracle stops. Re-proposed points cost a trial
    but not a query.

    Args:
        oracle_factory: Callable `(objective=, hyperparameters=,
            max_trials=, seed=) -> keras_tuner.Oracle`, e.g.
            `keras_tuner.oracles.RandomSearchOracle` or
            `functools.partial(AgingEvolutionOracle, population_size=20)`.
        table: The `TabularBenchmark`.
        budget: Unique queries per seed.
        seeds: A list of seeds, or a count `n` for seeds `1..n` (keras-tuner
            treats seed 0 as "no seed").
        directory: Where the oracles write their trial files; a temporary
            folder (RAM-backed when available) by default.
        max_trials: The oracles' `max_trials`; `4 * budget` by default.
        jobs: Worker processes (seeds are split among them).

    Returns:
        A `TabularRun`.

    Example:

    ```python
    run = run_oracle_on_table(
        keras_tuner.oracles.RandomSearchOracle, table, budget=100, seeds=10
    )
    run.best_at(100).mean()
    ```
    """
    if int(budget) < 1:
        raise ValueError(
            f"Expected `budget` to be a positive integer. Received: "
            f"budget={budget!r}"
        )
    if isinstance(seeds, int):
        seeds = list(range(1, seeds + 1))
    seeds = [int(s) for s in seeds]
    if not seeds or any(s <= 0 for s in seeds):
        raise ValueError(
            "Expected `seeds` to be a positive count or a list of positive "
            f"integers (keras-tuner treats 0 as no seed). Received: "
            f"seeds={seeds!r}"
        )
    budget = int(budget)
    max_trials = max_trials or 4 * budget
    own_dir = directory is None
    if own_dir:
        directory = tempfile.mkdtemp(
            prefix="keras_nas_tab_", dir=_scratch_root()
        )
    tasks = [
        (oracle_factory, table, budget, s, directory, max_trials) for s in seeds
    ]
    try:
        if jobs > 1 and len(seeds) > 1:
            _TASKS[:] = tasks
            ctx = multiprocessing.get_context("fork")
            with ctx.Pool(min(jobs, len(seeds))) as pool:
                results = pool.map(_run_task, range(len(tasks)), chunksize=1)
        else:
            results = [_run_one_seed(t) for t in tasks]
    finally:
        _TASKS[:] = []
        if own_dir:
            shutil.rmtree(directory, ignore_errors=True)
    return TabularRun(
        seeds=seeds,
        curves=np.stack([r[0] for r in results]),
        create_times=[r[1] for r in results],
        end_times=[r[2] for r in results],
        num_trials=[r[3] for r in results],
        optimum=table.optimum,
        direction=table.direction,
    )
