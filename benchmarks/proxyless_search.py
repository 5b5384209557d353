"""ProxylessNAS on digits: a latency weight sweep on the MobileNet space.

ProxylessNAS (Cai, Zhu and Han, ICLR 2019) adds the expected latency of the
architecture, from a per-block latency table measured on the device, to the
architecture loss. This script:

1. measures a `LatencyTable` of a small `MobileNetSearchSpace` (digits
   upsampled from 8x8 to 16x16 by pixel repetition, one channel) on this
   CPU, with the per-part overhead fitted to `--calibrate` random networks
   (`LatencyTable.measure(calibrate=...)`);
2. for every `--weights` value runs a `ProxylessSupernet` search (binary
   path gates, additive latency term `weight * E[latency in ms]`) on a
   train/validation split of the digits, and derives the network;
3. retrains every derived network from scratch (`space.build`) on the
   search's training + validation images and reports its test accuracy on
   held-out digits;
4. times every derived network end to end together with a fresh
   measurement of the table's parts (interleaved rounds, same load) and
   reports the measured latency next to the table's predictions (the
   search's table, and the fresh one);
5. plots test accuracy against measured and predicted latency.

`--stages` / `--stem-filters` choose a smaller space (the supernet of the
default 8 blocks does not learn in a few hundred steps); `--realtime` times
the table and the networks at real-time priority on one CPU
(`benchmarks/_realtime.py`: SCHED_FIFO 50 on CPU 1, as root), the search
runs at normal priority; `--deploy-size S` also times the derived networks
built for an `S x S` input (the same blocks) against a table of that
space (its parts, the networks and `--calibrate` random networks in the
same interleaved rounds), where a network takes milliseconds and the
per-part call overhead matters less.

Usage:

    python benchmarks/proxyless_search.py
    python benchmarks/proxyless_search.py --weights 0 0.5 4 --epochs 15 \
        --plot benchmarks/proxyless_search.png --json results.json
    python benchmarks/proxyless_search.py --stages 16,2,1 32,2,2 \
        --stem-filters 8 --width 1 --warmup-epochs 50 --epochs 80 \
        --batch-size 64 --weights 0 0.5 2 8 --realtime --deploy-size 128
"""

import argparse
import json
import os
import time

import numpy as np
from _common import digits_split
from _realtime import realtime


def _load() -> str:
    return "/".join(f"{v:.1f}" for v in os.getloadavg())


def upsample(x, factor):
    return np.repeat(np.repeat(x, factor, axis=1), factor, axis=2)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--weights", type=float, nargs="+", default=[0.0, 0.5, 4.0]
    )
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--warmup-epochs", type=int, default=3)
    parser.add_argument("--retrain-epochs", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--arch-lr", type=float, default=0.01)
    parser.add_argument(
        "--weights-lr",
        type=float,
        default=3e-3,
        help="Adam learning rate of the supernet weights (0: the default "
        "SGD of ProxylessSupernet.compile)",
    )
    parser.add_argument("--width", type=float, default=0.5)
    parser.add_argument(
        "--stages",
        nargs="+",
        default=None,
        help="the space's stages as FILTERS,BLOCKS,STRIDES (default: the "
        "MobileNetSearchSpace default, 8 searched blocks)",
    )
    parser.add_argument("--stem-filters", type=int, default=16)
    parser.add_argument(
        "--realtime",
        action="store_true",
        help="time at SCHED_FIFO priority 50 on CPU 1 (root)",
    )
    parser.add_argument(
        "--deploy-size",
        type=int,
        default=0,
        help="also time the derived networks at this input size",
    )
    parser.add_argument("--statistic", default="min_ms")
    parser.add_argument("--calibrate", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--plot", default="benchmarks/proxyless_search.png")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    import keras
    import keras_tuner

    if args.threads and keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.threads)

    from keras_nas.estimation import LatencyTable
    from keras_nas.spaces import MobileNetSearchSpace
    from keras_nas.supernet import ProxylessSupernet, search_data
    from keras_nas.supernet.proxyless import default_arch_optimizer

    (x_train, y_train), (x_rest, y_rest) = digits_split(args.seed, 800, 0)
    x_val, y_val = x_rest[:400], y_rest[:400]
    x_test, y_test = x_rest[400:], y_rest[400:]
    x_train, x_val, x_test = (upsample(x, 2) for x in (x_train, x_val, x_test))
    shape = {}
    if args.stages:
        shape["stages"] = [tuple(map(int, t.split(","))) for t in args.stages]
    shape.update(stem_filters=args.stem_filters, width_multiplier=args.width)
    space = MobileNetSearchSpace((16, 16, 1), 10, learning_rate=3e-3, **shape)
    print(
        f"space: input {space.input_shape}, {len(space.blocks)} blocks, "
        f"widths {[b.filters for b in space.blocks]}; backend "
        f"{keras.backend.backend()}, threads {args.threads}, load {_load()}"
    )
    start = time.perf_counter()
    with realtime(enabled=args.realtime) as scheduling:
        table = LatencyTable.measure(
            space, runs=args.runs, repeats=args.repeats, seed=args.seed,
            calibrate=args.calibrate,
        )  # fmt: skip
    print(f"timed with scheduling {scheduling or 'as started'}")
    print(
        f"table: {len(table.entries)} parts in "
        f"{time.perf_counter() - start:.0f} s; per-part overhead "
        f"{table.part_overhead[args.statistic]:.4f} ms ({args.statistic}); "
        f"load {_load()}"
    )
    # An epoch of `search_data` has min(train, val) // batch_size steps.
    per_epoch = min(len(x_train), len(x_val)) // args.batch_size
    steps = per_epoch * args.epochs
    results = []
    for weight in args.weights:
        keras.utils.set_random_seed(args.seed)
        model = ProxylessSupernet(
            space,
            latency_table=table,
            latency_weight=weight,
            latency_statistic=args.statistic,
            warmup_steps=per_epoch * args.warmup_epochs,
            seed=args.seed,
        )
        model.compile(
            optimizer=(
                keras.optimizers.Adam(args.weights_lr)
                if args.weights_lr
                else None
            ),
            arch_optimizer=default_arch_optimizer(args.arch_lr),
            decay_steps=steps,
        )
        data = search_data(
            (x_train, y_train), (x_val, y_val), args.batch_size, seed=0
        )
        start = time.perf_counter()
        history = model.fit(data, epochs=args.epochs, verbose=0)
        seconds = time.perf_counter() - start
        genotype = model.derive_genotype()
        keras.utils.set_random_seed(args.seed)
        hp = space.hyperparameters(genotype)
        values = keras_tuner.HyperParameters()
        for name, value in hp.items():
            values.Fixed(name, value)
        network = space.build(values)
        network.fit(
            np.concatenate([x_train, x_val]),
            np.concatenate([y_train, y_val]),
            epochs=args.retrain_epochs,
            batch_size=args.batch_size,
            verbose=0,
        )
        _, accuracy = network.evaluate(x_test, y_test, verbose=0)
        row = {
            "weight": weight,
            "genotype": list(genotype.ops),
            "search_seconds": seconds,
            "search_arch_accuracy": float(history.history["arch_accuracy"][-1]),
            "search_accuracy": float(history.history["accuracy"][-1]),
            "warmup_end_accuracy": float(
                history.history["accuracy"][max(args.warmup_epochs - 1, 0)]
            ),
            "expected_latency_ms": float(
                keras.ops.convert_to_numpy(model.expected_latency())
            ),
            "predicted_ms": table.predict(genotype, args.statistic),
            "test_accuracy": float(accuracy),
            "network": network,
        }
        results.append(row)
        print(
            f"weight {weight}: {' '.join(genotype.ops)}; search {seconds:.0f}"
            f" s (last epoch: accuracy {row['search_accuracy']:.3f}, arch "
            f"accuracy {row['search_arch_accuracy']:.3f}), test accuracy "
            f"{accuracy:.4f}, predicted "
            f"{row['predicted_ms']:.3f} ms ({args.statistic}); load {_load()}"
        )
    # Every derived network timed with a fresh measurement of the parts.
    rng = np.random.default_rng(args.seed + 1)
    calibration = [
        tuple(str(rng.choice(b.choices)) for b in space.blocks)
        for _ in range(args.calibrate)
    ]
    print(f"timing the networks (load {_load()})")
    stats, fresh = time_networks(
        space, results, calibration, args, args.seed + 1
    )
    plain = [fresh.predict(r["genotype"], args.statistic) for r in results]
    fresh.fit_overhead(
        [(ops, stats[f"calibration {i}"]) for i, ops in enumerate(calibration)]
    )
    for i, row in enumerate(results):
        row["measured_ms"] = stats[f"derived {i}"][args.statistic]
        row["measured_median_ms"] = stats[f"derived {i}"]["median_ms"]
        row["fresh_plain_ms"] = plain[i]
        row["fresh_calibrated_ms"] = fresh.predict(
            row["genotype"], args.statistic
        )
        del row["network"]
        print(
            f"weight {row['weight']}: test accuracy "
            f"{row['test_accuracy']:.4f}; measured {row['measured_ms']:.3f}"
            f" ms; predicted: search table {row['predicted_ms']:.3f}, fresh "
            f"table plain {row['fresh_plain_ms']:.3f}, calibrated "
            f"{row['fresh_calibrated_ms']:.3f} ({args.statistic})"
        )
    if args.deploy_size:
        deploy(results, shape, calibration, args)
    print(f"end (load {_load()})")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {"args": vars(args), "scheduling": scheduling}
                | {"results": results},
                f,
                indent=1,
            )
    if args.plot:
        plot(results, args)


def time_networks(space, results, calibration, args, seed):
    """Times `space`'s latency-table parts, the networks of the results'
    genotypes (`"derived i"`) and of the `calibration` ops (`"calibration
    i"`) in the same interleaved rounds. Returns `(stats, table)`: the
    statistics of every model and a `LatencyTable` of the parts (no
    overhead fitted)."""
    from keras_nas.estimation import LatencyTable
    from keras_nas.estimation.latency_table import measure_interleaved

    layout = space.latency_layout()
    models = dict(layout["models"])
    for i, row in enumerate(results):
        models[f"derived {i}"] = space.build_network(row["genotype"])
    for i, ops in enumerate(calibration):
        models[f"calibration {i}"] = space.build_network(ops)
    print(f"  {len(models)} models")
    with realtime(enabled=args.realtime):
        stats = measure_interleaved(
            models, repeats=args.repeats, seed=seed,
            runs=args.runs, warmup=5, batch_size=1,
        )  # fmt: skip
    return stats, LatencyTable(
        layout, {k: stats[k] for k in layout["models"]}
    )


def deploy(results, shape, calibration, args):
    """Times the derived networks built for a `--deploy-size` input with a
    table of that space (parts, networks and calibration networks in the
    same interleaved rounds); adds `deploy_*` keys to every result."""
    from keras_nas.spaces import MobileNetSearchSpace

    size = args.deploy_size
    space = MobileNetSearchSpace((size, size, 1), 10, **shape)
    print(f"deployed at {size}x{size}: timing the networks")
    stats, table = time_networks(
        space, results, calibration, args, args.seed + 2
    )
    plain = [table.predict(r["genotype"], args.statistic) for r in results]
    plain_median = [table.predict(r["genotype"]) for r in results]
    table.fit_overhead(
        [(ops, stats[f"calibration {i}"]) for i, ops in enumerate(calibration)]
    )
    for i, row in enumerate(results):
        measured = stats[f"derived {i}"][args.statistic]
        row.update(
            deploy_measured_ms=measured,
            deploy_measured_median_ms=stats[f"derived {i}"]["median_ms"],
            deploy_plain_ms=plain[i],
            deploy_calibrated_ms=table.predict(
                row["genotype"], args.statistic
            ),
            deploy_median_plain_ms=plain_median[i],
        )
        print(
            f"  weight {row['weight']}: measured {measured:.3f} ms; table "
            f"plain {plain[i]:.3f} (ratio {measured / plain[i]:.3f}), "
            f"calibrated {row['deploy_calibrated_ms']:.3f} ms "
            f"({args.statistic}); median: measured "
            f"{row['deploy_measured_median_ms']:.3f}, table "
            f"{row['deploy_median_plain_ms']:.3f}"
        )


def plot(results, args):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = [16] + ([args.deploy_size] if args.deploy_size else [])
    fig, axes = plt.subplots(
        1, len(sizes), figsize=(6 * len(sizes), 4.2), squeeze=False
    )
    acc = [100 * r["test_accuracy"] for r in results]
    for ax, size in zip(axes[0], sizes, strict=True):
        key = "" if size == 16 else "deploy_"
        measured = [r[f"{key}measured_ms"] for r in results]
        predicted = [
            r["predicted_ms" if size == 16 else "deploy_plain_ms"]
            for r in results
        ]
        ax.plot(measured, acc, "o-", label="measured")
        ax.plot(predicted, acc, "s--", label="predicted (latency table)")
        for r, x, a in zip(results, measured, acc, strict=True):
            ax.annotate(
                f"w={r['weight']:g}", (x, a),
                textcoords="offset points", xytext=(4, 4), fontsize=8,
            )  # fmt: skip
        ax.set_xlabel(
            f"latency per image at {size}x{size}, ms ({args.statistic}, "
            "1 thread)"
        )
        ax.set_ylabel("test accuracy of the retrained network, %")
        ax.set_title(
            "search on digits 16x16"
            if size == 16
            else f"same networks built for {size}x{size} inputs"
        )
        ax.legend()
        ax.grid(alpha=0.3)
    fig.suptitle("ProxylessNAS on digits: latency weight sweep")
    fig.tight_layout()
    fig.savefig(args.plot, dpi=120)
    print(f"plot: {args.plot}")


if __name__ == "__main__":
    main()
