"""The relaxations of `DartsSupernet`: step cost and NAS-Bench-201 cells.

`step`: time and peak memory of one first-order search step with
`relaxation="gumbel"` (GDAS), `relaxation="binary"` (ProxylessNAS) and
`partial_channels=4` (PC-DARTS) against the softmax (DARTS), each variant
in its own subprocess (so that its `ru_maxrss` is its own), the variants
interleaved round by round so that the ratios see the same load. Reported
per variant: median CPU and wall time per step, peak RSS and peak RSS
minus the RSS after building (the step's own working memory), and
TensorFlow's own peak of allocated bytes during the timed steps
(`tf.config.experimental.get_memory_info("CPU:0")["peak"]`, reset after
the warm-up step); ratios to the softmax. `--variants` picks a subset.

`passes`: in one process per variant, TensorFlow's peak bytes of each
kind of pass of a first-order step alone (`"w"`: the weights pass, one
sampled op per edge for GDAS/binary; `"a"`: the `alpha` pass, two gated
paths per edge for binary), eager, `repeats` times (the sampled ops, and
so the memory, change with every draw; the first pass includes tracing).

`nb201`: a short search of the NAS-Bench-201 cell (`search_space="nb201"`)
on scikit-learn's digits (8x8x1, `keras_nas.data.load_digits_arrays`, half
for the weights and half for `alpha`) with the softmax (DARTS) and GDAS,
for several seeds; each derived cell is looked up in the NAS-Bench-201
CIFAR-10 table (`keras_nas.benchmarks.tabular`): skip-connection count and
table accuracy.

Usage:

    python benchmarks/relaxations.py step --config micro --rounds 3
    python benchmarks/relaxations.py step --config paper --rounds 1 \
        --steps 1 --eager --variants softmax,binary
    python benchmarks/relaxations.py passes --config paper-b16 \
        --variants softmax,binary --repeats 3
    python benchmarks/relaxations.py nb201 --seeds 0,1,2 --epochs 10 \\
        --table ../shared/benchmarks/nas-bench-201/cifar10.csv
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

from darts_step import CONFIGS as _STEP_CONFIGS
from darts_step import _rss_mib, random_search_data

CONFIGS = {
    **_STEP_CONFIGS,
    # The paper's network at a quarter of its batch (fits a shared box).
    "paper-b16": dict(filters=16, num_cells=8, batch=16, shape=(32, 32, 3)),
}
VARIANTS = {
    "softmax": {},
    "gumbel": {"relaxation": "gumbel"},
    "pc4": {"partial_channels": 4},
    "binary": {"relaxation": "binary"},
}


def _supernet(config, variant, run_eagerly):
    """The compiled `DartsSupernet` of a config and a variant, seeded."""
    import keras

    from keras_nas.supernet.darts import DartsSupernet

    cfg = CONFIGS[config]
    keras.utils.set_random_seed(0)
    model = DartsSupernet(
        cfg["shape"],
        10,
        filters=cfg["filters"],
        num_cells=cfg["num_cells"],
        seed=0,
        **VARIANTS[variant],
    )
    model.compile(decay_steps=1000, run_eagerly=run_eagerly)
    return model


def measure_step(args):
    """In a subprocess: builds one variant, warms up, times `steps`."""
    import keras


    cfg = CONFIGS[args.config]
    data = random_search_data(cfg, args.steps + 1)
    model = _supernet(args.config, args.variant, args.eager)
    rss_built = _rss_mib()
    model.fit(data, epochs=1, steps_per_epoch=1, verbose=0)  # warm-up
    tf_memory = keras.backend.backend() == "tensorflow"
    if tf_memory:
        import tensorflow as tf

        tf.config.experimental.reset_memory_stats("CPU:0")
    times, cpu = [], []
    for _ in range(args.steps):
        t0, c0 = time.perf_counter(), time.process_time()
        model.fit(data, epochs=1, steps_per_epoch=1, verbose=0)
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    tf_peak = float("nan")
    if tf_memory:
        info = tf.config.experimental.get_memory_info("CPU:0")
        tf_peak = info["peak"] / 2**20
    return {
        "tf_peak_mib": tf_peak,
        "variant": args.variant,
        "step_s": sorted(times)[len(times) // 2],
        "step_cpu_s": sorted(cpu)[len(cpu) // 2],
        "peak_rss_mib": peak,
        "rss_after_build_mib": rss_built,
        "loadavg": [round(v, 2) for v in os.getloadavg()],
    }


def run_steps(args):
    variants = args.variants.split(",")
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown or "softmax" not in variants:
        sys.exit(f"--variants: softmax and some of {sorted(VARIANTS)}")
    rows = {v: [] for v in variants}
    for r in range(args.rounds):
        for variant in variants:
            cmd = [sys.executable, __file__, "_step", "--variant", variant]
            cmd += ["--config", args.config, "--steps", str(args.steps)]
            if args.eager:
                cmd.append("--eager")
            proc = subprocess.run(cmd, capture_output=True, text=True)
            lines = [
                s for s in proc.stdout.splitlines() if s.startswith("RESULT")
            ]
            if proc.returncode or not lines:
                sys.exit(f"{variant} failed:\n{proc.stderr[-3000:]}")
            result = json.loads(lines[-1][len("RESULT ") :])
            result["delta"] = (
                result["peak_rss_mib"] - result["rss_after_build_mib"]
            )
            print(f"round {r}: {json.dumps(result)}", flush=True)
            rows[variant].append(result)

    def median(variant, key):
        values = sorted(row[key] for row in rows[variant])
        return values[len(values) // 2]

    print()
    print(
        "| relaxation | CPU/step (ms) | wall/step (ms) | peak RSS (MiB) "
        "| peak - built (MiB) | TF peak bytes (MiB) | CPU x softmax "
        "| peak-built x softmax | TF peak x softmax |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    base_cpu = median("softmax", "step_cpu_s")
    base_mem = median("softmax", "delta")
    base_tf = median("softmax", "tf_peak_mib")
    for variant in variants:
        c = median(variant, "step_cpu_s")
        d = median(variant, "delta")
        t = median(variant, "tf_peak_mib")
        print(
            f"| {variant} | {1000 * c:.0f} "
            f"| {1000 * median(variant, 'step_s'):.0f} "
            f"| {median(variant, 'peak_rss_mib'):.0f} | {d:.0f} | {t:.0f} "
            f"| {c / base_cpu:.2f} | {d / base_mem:.2f} "
            f"| {t / base_tf:.2f} |"
        )


def run_passes(args):
    import numpy as np
    import tensorflow as tf

    from keras_nas.supernet import _darts_tensorflow

    cfg = CONFIGS[args.config]
    rng = np.random.default_rng(0)
    x = tf.constant(
        rng.normal(size=(cfg["batch"],) + cfg["shape"]).astype("float32")
    )
    y = tf.constant(rng.integers(0, 10, cfg["batch"]).astype("int32"))
    for variant in args.variants.split(","):
        model = _supernet(args.config, variant, run_eagerly=True)
        for r in range(args.repeats):
            for groups in ("w", "a"):
                tf.config.experimental.reset_memory_stats("CPU:0")
                info = tf.config.experimental.get_memory_info("CPU:0")
                base = info["current"]
                c0 = time.process_time()
                _darts_tensorflow._pass(model, x, y, groups)
                info = tf.config.experimental.get_memory_info("CPU:0")
                row = {
                    "variant": variant,
                    "repeat": r,
                    "pass": groups,
                    "tf_peak_minus_base_mib": round(
                        (info["peak"] - base) / 2**20
                    ),
                    "cpu_s": round(time.process_time() - c0, 1),
                }
                print(json.dumps(row), flush=True)
        del model


def run_nb201(args):
    import keras
    import numpy as np

    from keras_nas.benchmarks.tabular import TabularBenchmark
    from keras_nas.data import load_digits_arrays
    from keras_nas.supernet.darts import DartsSupernet, search_data

    table = TabularBenchmark.from_nas_bench_201_csv(args.table)
    x, y = load_digits_arrays()
    y = y.astype("int32")
    print(
        "| relaxation | seed | derived cell | skips | none "
        "| CIFAR-10 test acc. (table) | supernet val acc. | search s |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for seed in [int(s) for s in args.seeds.split(",")]:
        order = np.random.default_rng(seed).permutation(len(x))
        half = len(x) // 2
        train = (x[order[:half]], y[order[:half]])
        val = (x[order[half:]], y[order[half:]])
        for relaxation in args.relaxations.split(","):
            keras.utils.set_random_seed(seed)
            data = search_data(train, val, args.batch, seed=seed)
            model = DartsSupernet(
                x.shape[1:],
                10,
                filters=args.filters,
                num_cells=3 * args.cells_per_stage,
                search_space="nb201",
                relaxation=relaxation,
                seed=seed,
            )
            steps = args.epochs * len(data)
            model.compile(
                decay_steps=steps,
                steps_per_epoch=len(data),
                run_eagerly=args.eager,
            )
            t0 = time.perf_counter()
            model.fit(data, epochs=args.epochs, verbose=0)
            seconds = time.perf_counter() - t0
            acc = model.evaluate(*val, batch_size=256, verbose=0)[1]
            genotype = model.derive_genotype()
            hp = model.derive_hyperparameters()
            cell = genotype.to_string().replace("|", "\\|")  # markdown
            print(
                f"| {relaxation} | {seed} | `{cell}` "
                f"| {genotype.ops.count('skip_connect')} "
                f"| {genotype.ops.count('none')} | {table.query(hp):.2f} "
                f"| {acc:.3f} | {seconds:.0f} |",
                flush=True,
            )


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("step")
    s.add_argument("--config", choices=sorted(CONFIGS), default="micro")
    s.add_argument("--steps", type=int, default=3)
    s.add_argument("--rounds", type=int, default=3)
    s.add_argument("--eager", action="store_true")
    s.add_argument("--variants", default="softmax,gumbel,pc4")
    inner = sub.add_parser("_step")
    inner.add_argument("--variant", choices=sorted(VARIANTS))
    inner.add_argument("--config", choices=sorted(CONFIGS), default="micro")
    inner.add_argument("--steps", type=int, default=3)
    inner.add_argument("--eager", action="store_true")
    ps = sub.add_parser("passes")
    ps.add_argument("--config", choices=sorted(CONFIGS), default="micro")
    ps.add_argument("--variants", default="softmax,binary")
    ps.add_argument("--repeats", type=int, default=3)
    n = sub.add_parser("nb201")
    n.add_argument("--table", required=True)
    n.add_argument("--seeds", default="0,1,2")
    n.add_argument("--relaxations", default="softmax,gumbel")
    n.add_argument("--epochs", type=int, default=10)
    n.add_argument("--batch", type=int, default=64)
    n.add_argument("--filters", type=int, default=8)
    n.add_argument("--cells-per-stage", type=int, default=1)
    n.add_argument("--eager", action="store_true")
    args = p.parse_args()
    if args.command == "_step":
        print("RESULT " + json.dumps(measure_step(args)), flush=True)
    elif args.command == "step":
        run_steps(args)
    elif args.command == "passes":
        run_passes(args)
    else:
        run_nb201(args)


if __name__ == "__main__":
    main()
