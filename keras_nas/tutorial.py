"""The one switch that makes the tutorials fast: `KERAS_NAS_FAST`.

Every notebook in `tutorials/` reads its budget (epochs, trials, data size)
through `tutorial_settings`, so that setting the environment variable
`KERAS_NAS_FAST=1` shrinks all of them at once. CI runs the notebooks that
way on CPU; on Colab (variable unset) they run at full size on a GPU.
"""

from __future__ import annotations

import os
import types
from typing import Any

from keras_nas.blocks.genotypes import NasBench201Genotype
from keras_nas.blocks.registry import NB201_OPS

__all__ = [
    "FAST_ENV_VAR",
    "WORKDIR_ENV_VAR",
    "is_fast",
    "nb201_table",
    "tutorial_settings",
]

#: Name of the environment variable that selects the fast setting.
FAST_ENV_VAR = "KERAS_NAS_FAST"

#: Name of the environment variable naming the folder tutorials write to.
WORKDIR_ENV_VAR = "KERAS_NAS_WORKDIR"

_FALSE = ("", "0", "false", "no", "off")


def is_fast() -> bool:
    """Returns whether `KERAS_NAS_FAST` asks for the fast setting.

    Any value other than empty, `0`, `false`, `no` or `off` (any case)
    means fast.
    """
    return os.environ.get(FAST_ENV_VAR, "").strip().lower() not in _FALSE


def tutorial_settings(**choices: tuple[Any, Any]) -> types.SimpleNamespace:
    """Picks the full or the fast value of each tutorial setting.

    Args:
        **choices: setting name -> `(full_value, fast_value)` pair.

    Returns:
        A namespace with one attribute per setting, holding the value for the
        current mode, plus `fast` (bool) and `workdir`: the folder for the
        tutorial's outputs (search directories, saved models, logs), taken
        from `KERAS_NAS_WORKDIR` or `keras_nas_work` in the current
        directory, created if missing.

    Example:

    ```python
    S = tutorial_settings(epochs=(20, 1), max_trials=(30, 3))
    tuner = AgingEvolution(space, max_trials=S.max_trials,
                           directory=S.workdir)
    tuner.search(x, y, epochs=S.epochs)
    ```
    """
    fast = is_fast()
    workdir = os.environ.get(WORKDIR_ENV_VAR) or "keras_nas_work"
    os.makedirs(workdir, exist_ok=True)
    values = {"workdir": workdir}
    for name, pair in choices.items():
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise ValueError(
                f"Expected `{name}` to be a (full_value, fast_value) pair. "
                f"Received: {name}={pair!r}"
            )
        values[name] = pair[1] if fast else pair[0]
    return types.SimpleNamespace(fast=fast, **values)


#: Where a checkout keeps the NAS-Bench-201 table: `../shared/...` next to
#: the repository root.
DEFAULT_NB201_TABLE = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    "..",
    "shared",
    "benchmarks",
    "nas-bench-201",
    "cifar10.csv",
)


def _write_synthetic_nb201(path: str, seed: int = 0) -> None:
    """Writes a synthetic table in the NAS-Bench-201 CSV format.

    Scores are additive per-edge op effects plus a small random interaction,
    so that the table has structure for search strategies to exploit; a cell
    whose output is cut off from its input scores 10 (chance).
    """
    import itertools

    import numpy as np

    rng = np.random.default_rng(seed)
    effect = {
        "none": -3.0,
        "skip_connect": 0.2,
        "nor_conv_1x1": 0.8,
        "nor_conv_3x3": 1.5,
        "avg_pool_3x3": -0.5,
    }
    edge_weight = rng.uniform(0.5, 1.5, size=6)
    with open(path, "w") as f:
        f.write("arch,test_accuracy\n")
        for ops in itertools.product(NB201_OPS, repeat=6):
            # Edges (1,0) (2,0) (2,1) (3,0) (3,1) (3,2): the output node 3
            # is reachable from the input unless every path has a `none`.
            live = [op != "none" for op in ops]
            n1 = live[0]
            n2 = live[1] or (n1 and live[2])
            connected = live[3] or (n1 and live[4]) or (n2 and live[5])
            if not connected:
                score = 10.0
            else:
                score = 85.0 + sum(
                    w * effect[op]
                    for w, op in zip(edge_weight, ops, strict=True)
                )
                score += rng.normal(0.0, 0.3)
            g = NasBench201Genotype(ops)
            f.write(f"{g.to_string()},{score:.3f}\n")


def nb201_table(path: str | None = None, verbose: bool = True):
    """The NAS-Bench-201 CIFAR-10 table, or a synthetic stand-in.

    Args:
        path: CSV path; defaults to the environment variable `NB201_TABLE`,
            then to `../shared/benchmarks/nas-bench-201/cifar10.csv` beside
            the repository root.
        verbose: print which table is used.

    Returns:
        A `keras_nas.benchmarks.TabularBenchmark`. When the file is missing,
        a synthetic table of the same format is written to the tutorial
        working directory (see `tutorial_settings`) and loaded, and a
        message says so.
    """
    from keras_nas.benchmarks import TabularBenchmark

    path = path or os.environ.get("NB201_TABLE") or DEFAULT_NB201_TABLE
    if os.path.exists(path):
        if verbose:
            print(f"Using the NAS-Bench-201 table {os.path.basename(path)}.")
        return TabularBenchmark.from_nas_bench_201_csv(path)
    workdir = os.environ.get(WORKDIR_ENV_VAR) or "keras_nas_work"
    os.makedirs(workdir, exist_ok=True)
    synthetic = os.path.join(workdir, "synthetic_nb201.csv")
    if not os.path.exists(synthetic):
        _write_synthetic_nb201(synthetic)
    if verbose:
        print(
            f"NAS-Bench-201 table not found at {path!r} (set NB201_TABLE). "
            "Using a SYNTHETIC table of the same format instead: its scores "
            "are made up, only the search mechanics are real."
        )
    return TabularBenchmark.from_nas_bench_201_csv(synthetic)
