"""How well do zero-cost proxies rank architectures? (digits, NAS-Bench-201)

Same protocol as `benchmarks/one_shot_ranking.py`: `--archs` distinct
architectures of the NAS-Bench-201 cell space (8 filters, 1 cell per stage),
each trained from scratch on scikit-learn digits (1,100 train / 400
validation images; Adam 5e-3, batch 64) and scored by its validation
accuracy averaged over the last 3 epochs. Each architecture is then scored
at initialization by every zero-cost proxy (`keras_nas.estimation.
zero_cost_score`, one minibatch of the training split, the network's own
initialization with a fixed seed) and the script prints Kendall's tau and
Spearman's rho between each proxy's ranking and the stand-alone one, the
time of one proxy evaluation, and the same figures for the parameter count
as a reference.

`--standalone-json` reuses the architectures and stand-alone scores of an
earlier run of this script or of `one_shot_ranking.py --json` (its
`archs_ops`, `standalone`, `standalone_seconds` fields), so no network is
trained.

`--nb201-table PATH` instead scores `--table-archs` architectures drawn from
the NAS-Bench-201 CIFAR-10 table (columns `arch,test_accuracy`) with the
data-free proxy `synflow` on the benchmark's own network (32x32x3 input,
16 filters, 5 cells per stage; no data needed, so no CIFAR-10 download) and
ranks them against the table's test accuracy, as Abdelfattah et al. (ICLR
2021) do.

Usage:

    python benchmarks/zero_cost_ranking.py --archs 30 \
        --standalone-epochs 15 --json /tmp/zero_cost.json
    python benchmarks/zero_cost_ranking.py \
        --standalone-json /tmp/h7_bench2.json
    python benchmarks/zero_cost_ranking.py --table-archs 100 \
        --nb201-table /work/shared/benchmarks/nas-bench-201/cifar10.csv
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
from _common import add_ranking_task_arguments, fit_score, ranking_task


def _sample_archs(n: int, seed: int) -> list[tuple[str, ...]]:
    from keras_nas.blocks.registry import NB201_OPS

    rng = np.random.default_rng(seed)
    seen: list[tuple[str, ...]] = []
    while len(seen) < n:
        ops = tuple(str(o) for o in rng.choice(NB201_OPS, size=6))
        if ops not in seen:
            seen.append(ops)
    return seen


def _hp(space, ops):
    import keras_tuner

    from keras_nas.blocks.genotypes import NasBench201Genotype
    from keras_nas.spaces import nb201_hyperparameters_from_genotype

    hp = keras_tuner.HyperParameters()
    space.declare_hyperparameters(hp)
    hp.values.update(
        nb201_hyperparameters_from_genotype(NasBench201Genotype(tuple(ops)))
    )
    return hp


def _train_standalone(space, archs, train, val, args):
    scores = []
    start = time.perf_counter()
    for i, ops in enumerate(archs):
        score = fit_score(
            space,
            _hp(space, ops),
            train,
            val,
            seed=args.seed + i,
            epochs=args.standalone_epochs,
            batch_size=args.batch_size,
            last=3,
        )
        scores.append(score)
        print(f"[{i + 1:2d}/{len(archs)}] {ops} {scores[-1]:.4f}", flush=True)
    return scores, time.perf_counter() - start


def _rankable(values):
    """-inf (degenerate network) -> the lowest finite value, for ranking."""
    v = np.asarray(values, dtype="float64")
    return np.where(np.isfinite(v), v, -1e300)


def _table_mode(args) -> dict:
    """synflow and parameter count vs the NAS-Bench-201 CIFAR-10 table."""
    import csv

    import keras
    from scipy import stats

    from keras_nas.blocks.genotypes import NasBench201Genotype
    from keras_nas.blocks.network import build_nb201_network
    from keras_nas.estimation.zero_cost import zero_cost_score

    with open(args.nb201_table) as f:
        rows = list(csv.DictReader(f))
    rng = np.random.default_rng(args.seed)
    picked = [rows[i] for i in rng.choice(len(rows), args.table_archs, False)]
    accuracy, synflow, params, seconds = [], [], [], []
    for i, row in enumerate(picked):
        keras.utils.set_random_seed(args.seed)
        model = build_nb201_network(
            NasBench201Genotype.from_string(row["arch"]),
            (32, 32, 3),
            10,
            filters=16,
            cells_per_stage=5,
        )
        start = time.perf_counter()
        synflow.append(zero_cost_score(model, proxy="synflow"))
        seconds.append(time.perf_counter() - start)
        params.append(float(model.count_params()))
        accuracy.append(float(row["test_accuracy"]))
        print(
            f"[{i + 1:3d}/{len(picked)}] acc {accuracy[-1]:.2f} synflow "
            f"{synflow[-1]:.4g} params {params[-1]:.0f} "
            f"({seconds[-1]:.2f} s)",
            flush=True,
        )
    table = {}
    for name, values in (("synflow", synflow), ("params", params)):
        values = _rankable(values)
        table[name] = {
            "kendall_tau": float(stats.kendalltau(accuracy, values)[0]),
            "spearman_rho": float(stats.spearmanr(accuracy, values)[0]),
        }
    table["synflow"]["median_seconds"] = float(np.median(seconds))
    result = {
        "backend": keras.backend.backend(),
        "archs": len(picked),
        "table": table,
        "load_average": os.getloadavg(),
        "args": vars(args),
        "archs_strings": [r["arch"] for r in picked],
        "test_accuracy": accuracy,
        "synflow": synflow,
        "params": params,
    }
    for name, row in table.items():
        print(
            f"{name:8s} tau {row['kendall_tau']:.3f} "
            f"rho {row['spearman_rho']:.3f}"
        )
    print(
        f"synflow median {table['synflow']['median_seconds']:.2f} s per "
        f"network; load average {result['load_average']}"
    )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
    return result


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_ranking_task_arguments(parser, standalone_epochs=15)
    parser.add_argument(
        "--proxy-batch-size",
        type=int,
        default=64,
        help="examples in the minibatch the proxies see",
    )
    parser.add_argument("--proxies", default=None, help="comma-separated")
    parser.add_argument(
        "--standalone-json",
        default=None,
        help="reuse the architectures, stand-alone scores and time of an "
        "earlier run (this script or one_shot_ranking.py --json)",
    )
    parser.add_argument(
        "--nb201-table",
        default=None,
        help="NAS-Bench-201 CSV (arch,test_accuracy): data-free mode",
    )
    parser.add_argument("--table-archs", type=int, default=100)
    args = parser.parse_args(argv)
    if args.nb201_table:
        return _table_mode(args)

    import keras
    from scipy import stats

    from keras_nas.estimation.zero_cost import (
        ZERO_COST_PROXIES,
        zero_cost_score,
    )

    proxies = (
        tuple(args.proxies.split(",")) if args.proxies else ZERO_COST_PROXIES
    )
    space, train, val = ranking_task(args)
    if args.standalone_json:
        with open(args.standalone_json) as f:
            previous = json.load(f)
        archs = [tuple(ops) for ops in previous["archs_ops"]]
        standalone = previous["standalone"]
        standalone_time = previous["standalone_seconds"]
    else:
        archs = _sample_archs(args.archs, args.seed + 1)
        standalone, standalone_time = _train_standalone(
            space, archs, train, val, args
        )

    rng = np.random.default_rng(args.seed)
    idx = np.sort(rng.permutation(len(train[0]))[: args.proxy_batch_size])
    bx, by = train[0][idx], train[1][idx]
    scores = {p: [] for p in proxies}
    seconds = {p: [] for p in proxies}
    scores["params"] = []
    build_seconds = []
    for i, ops in enumerate(archs):
        keras.utils.set_random_seed(args.seed)
        start = time.perf_counter()
        model = space.build(_hp(space, ops))
        build_seconds.append(time.perf_counter() - start)
        scores["params"].append(float(model.count_params()))
        for proxy in proxies:
            start = time.perf_counter()
            scores[proxy].append(zero_cost_score(model, bx, by, proxy))
            seconds[proxy].append(time.perf_counter() - start)
        print(
            f"[{i + 1:2d}/{len(archs)}] acc {standalone[i]:.4f} "
            + " ".join(f"{p} {scores[p][-1]:.4g}" for p in proxies),
            flush=True,
        )

    table = {}
    for name in (*proxies, "params"):
        values = _rankable(scores[name])
        table[name] = {
            "kendall_tau": float(stats.kendalltau(standalone, values)[0]),
            "spearman_rho": float(stats.spearmanr(standalone, values)[0]),
        }
        if name in seconds:
            t = np.asarray(seconds[name])
            table[name]["median_seconds"] = float(np.median(t))
            table[name]["mean_seconds"] = float(t.mean())
    result = {
        "backend": keras.backend.backend(),
        "archs": len(archs),
        "proxy_batch_size": args.proxy_batch_size,
        "table": table,
        "build_median_seconds": float(np.median(build_seconds)),
        "proxy_total_seconds": float(
            sum(sum(v) for v in seconds.values()) + sum(build_seconds)
        ),
        "standalone_seconds": standalone_time,
        "standalone_acc_range": [min(standalone), max(standalone)],
        "load_average": os.getloadavg(),
        "args": vars(args),
        "standalone": standalone,
        "scores": scores,
        "archs_ops": [list(ops) for ops in archs],
    }
    print(f"{'proxy':10s} {'tau':>7s} {'rho':>7s} {'median s':>9s}")
    for name, row in table.items():
        print(
            f"{name:10s} {row['kendall_tau']:7.3f} {row['spearman_rho']:7.3f}"
            f" {row.get('median_seconds', float('nan')):9.3f}"
        )
    print(
        f"all proxies on {len(archs)} archs (incl. builds): "
        f"{result['proxy_total_seconds']:.1f} s; stand-alone training "
        f"{standalone_time:.1f} s; load average {result['load_average']}"
    )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
    return result


if __name__ == "__main__":
    main()
