"""Latency table prediction vs measured latency on the MobileNet space.

ProxylessNAS (Cai et al., ICLR 2019) predicts a network's latency as the
sum of per-block latencies measured once on the device. This script checks
that model on this machine: it measures a `LatencyTable` of a
`MobileNetSearchSpace` (every candidate block at its input shape, stem,
head and the call cost), draws `--archs` random architectures of the
space, measures each built network end to end with `measure_latency` (same
settings) and compares it with the table's prediction: the ratio
measured / predicted per architecture, its mean, and the mean absolute
percentage error (target: within 10%), for the median and for the minimum
of the timed calls.

The parts and the networks are timed together by
`keras_nas.estimation.latency_table.measure_interleaved`: `--repeats`
rounds, each timing every part and every network once in a shuffled
order, so that the machine's changing load reaches both alike; each of
`--rounds` independent runs of this gives a fresh table.

With `--calibrate K`, K more random architectures (another seed) are
timed in the same rounds; the table's per-part overhead is fitted to them
(`LatencyTable.fit_overhead`) and the `--archs` networks, which the fit
never saw, are predicted again: "plain" rows are the sum of the parts,
"calibrated" rows subtract the fitted overhead per part.

Usage:

    python benchmarks/mobilenet_latency.py
    python benchmarks/mobilenet_latency.py --size 32 --archs 10 --rounds 2
    python benchmarks/mobilenet_latency.py --json results.json
    python benchmarks/mobilenet_latency.py --threads 1 --calibrate 5
    # at real-time priority on one core (as root), a larger input
    chrt -f 50 taskset -c 1 python benchmarks/mobilenet_latency.py \
        --size 128 --threads 1 --calibrate 5 --archs 10
"""

import argparse
import json
import os
import time

import numpy as np


def _load() -> str:
    return "/".join(f"{v:.1f}" for v in os.getloadavg())


def _errors(measured, predicted):
    measured, predicted = np.asarray(measured), np.asarray(predicted)
    ratio = measured / predicted
    mape = float(np.mean(np.abs(predicted - measured) / measured) * 100)
    return ratio, mape


def run_round(space, genotypes, args, round_index, calibration=()):
    from keras_nas.estimation import LatencyTable
    from keras_nas.estimation.latency_table import measure_interleaved

    layout = space.latency_layout()
    models = dict(layout["models"])
    names = [f"network {i}" for i in range(len(genotypes))]
    for name, genotype in zip(names, genotypes, strict=True):
        models[name] = space.build_network(genotype)
    calibration_names = [f"calibration {i}" for i in range(len(calibration))]
    for name, genotype in zip(calibration_names, calibration, strict=True):
        models[name] = space.build_network(genotype)
    print(
        f"round {round_index}: {len(layout['models'])} parts and "
        f"{len(genotypes)} + {len(calibration)} networks, "
        f"{args.repeats} interleaved repeats "
        f"(load {_load()})"
    )
    start = time.perf_counter()
    stats = measure_interleaved(
        models,
        repeats=args.repeats,
        seed=round_index,
        batch_size=args.batch_size,
        runs=args.runs,
        warmup=args.warmup,
    )
    seconds = time.perf_counter() - start
    table = LatencyTable(
        layout, {k: stats[k] for k in layout["models"]}, {"round": round_index}
    )
    print(
        f"  measured in {seconds:.1f} s; call cost "
        f"{table.part_latency(table.layout['fixed'][0]):.3f} ms, fixed "
        f"{table.fixed_latency():.3f} ms (median)"
    )
    rows = []
    for name, genotype in zip(names, genotypes, strict=True):
        measured = stats[name]
        rows.append(
            {
                "genotype": list(genotype.ops),
                "measured_median_ms": measured["median_ms"],
                "measured_min_ms": measured["min_ms"],
                "predicted_median_ms": table.predict(genotype, "median_ms"),
                "predicted_min_ms": table.predict(genotype, "min_ms"),
                "predicted_from_model_ms": table.predict_model(models[name]),
            }
        )
        row = rows[-1]
        print(
            f"  skipped {genotype.num_skipped}: measured "
            f"{row['measured_median_ms']:.3f} ms, predicted "
            f"{row['predicted_median_ms']:.3f} ms (ratio "
            f"{row['measured_median_ms'] / row['predicted_median_ms']:.3f});"
            f" min {row['measured_min_ms']:.3f} vs "
            f"{row['predicted_min_ms']:.3f}"
        )
    summary = {"round": round_index, "seconds": seconds, "rows": rows}
    if calibration:
        overhead = table.fit_overhead(
            [
                (g, stats[n])
                for n, g in zip(calibration_names, calibration, strict=True)
            ]
        )
        summary["part_overhead_ms"] = overhead
        print(
            "  fitted per-part overhead: "
            f"median {overhead['median_ms']:.4f} ms, "
            f"min {overhead['min_ms']:.4f} ms"
        )
        for row, genotype in zip(rows, genotypes, strict=True):
            for stat in ("median", "min"):
                row[f"calibrated_{stat}_ms"] = table.predict(
                    genotype, f"{stat}_ms"
                )
    for kind in ("predicted", "calibrated") if calibration else ("predicted",):
        for stat in ("median", "min"):
            ratio, mape = _errors(
                [r[f"measured_{stat}_ms"] for r in rows],
                [r[f"{kind}_{stat}_ms"] for r in rows],
            )
            summary[f"{kind} {stat}"] = {
                "mean_ratio": float(ratio.mean()),
                "min_ratio": float(ratio.min()),
                "max_ratio": float(ratio.max()),
                "mape_percent": mape,
            }
            label = "plain" if kind == "predicted" else "calibrated"
            print(
                f"  {label} {stat}: measured/predicted mean "
                f"{ratio.mean():.3f} (range {ratio.min():.3f}-"
                f"{ratio.max():.3f}), mean abs error {mape:.1f}%"
            )
    print(f"  end of round (load {_load()})")
    return summary


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=32, help="input HxW")
    parser.add_argument("--channels", type=int, default=3)
    parser.add_argument("--archs", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--threads",
        type=int,
        default=0,
        help="TensorFlow intra- and inter-op threads (0: its default)",
    )
    parser.add_argument(
        "--calibrate",
        type=int,
        default=0,
        help="networks (another seed) to fit the per-part overhead to",
    )
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    import keras

    if args.threads and keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.threads)

    from keras_nas.blocks import MobileNetGenotype
    from keras_nas.spaces import MobileNetSearchSpace

    space = MobileNetSearchSpace(
        (args.size, args.size, args.channels), num_classes=10
    )
    rng = np.random.default_rng(args.seed)
    genotypes = [
        MobileNetGenotype(
            tuple(str(rng.choice(b.choices)) for b in space.blocks)
        )
        for _ in range(args.archs)
    ]
    print(
        f"MobileNetSearchSpace input {space.input_shape}, "
        f"{len(space.blocks)} blocks, backend {keras.backend.backend()}, "
        f"batch {args.batch_size}, {args.runs} timed runs, cpus "
        f"{os.cpu_count()}, threads {args.threads or 'default'}"
    )
    calibration_rng = np.random.default_rng(args.seed + 1)
    calibration = [
        MobileNetGenotype(
            tuple(str(calibration_rng.choice(b.choices)) for b in space.blocks)
        )
        for _ in range(args.calibrate)
    ]
    scheduling = _scheduling()
    print(f"scheduling: {scheduling}")
    rounds = [
        run_round(space, genotypes, args, i, calibration)
        for i in range(args.rounds)
    ]
    if args.json:
        with open(args.json, "w") as f:
            out = {"args": vars(args), "scheduling": scheduling}
            json.dump(out | {"rounds": rounds}, f, indent=1)


def _scheduling() -> dict:
    """This process' scheduling (set from outside, e.g. `chrt -f 50
    taskset -c 1 python ...` or `nice -n -20`): policy, real-time priority,
    nice value and the CPUs it may run on."""
    policies = {
        getattr(os, name): name
        for name in ("SCHED_OTHER", "SCHED_FIFO", "SCHED_RR", "SCHED_BATCH")
        if hasattr(os, name)
    }
    try:
        policy = policies.get(os.sched_getscheduler(0), "other")
        priority = os.sched_getparam(0).sched_priority
        cpus = sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # Not Linux.
        return {}
    return {
        "policy": policy,
        "priority": priority,
        "nice": os.nice(0),
        "cpus": cpus,
    }


if __name__ == "__main__":
    main()
