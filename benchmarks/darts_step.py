"""Times one DARTS search step against a plain training step.

For a `DartsSupernet` (Liu et al., ICLR 2019) this measures the time of one
training step with `alpha` frozen (`order=0`: forward + backward on the
training batch and an SGD update, the baseline), one first-order search step
and one second-order search step, each in its own subprocess so that the
peak resident memory (`ru_maxrss`) belongs to that step alone.

Configurations (from the issue):
- micro: 8 filters, 5 cells, batch 16, 16x16x3 inputs, 10 classes;
- paper: 16 filters, 8 cells, batch 64, 32x32x3 inputs, 10 classes;
- tiny (not from the issue): 4 filters, 2 cells, batch 16, 8x8x3 inputs.

Usage:

    python benchmarks/darts_step.py --backend tensorflow --config micro
    python benchmarks/darts_step.py --backend jax --config micro --steps 5

`--jit` compiles the TensorFlow steps with XLA, `--eager` runs them
eagerly (no graph tracing: cheap to start on a busy CPU); JAX steps are always
jit-compiled (Keras' JAX trainer runs eagerly otherwise). Targets: first
order <= 2.3x and second order <= 5x the plain step; the verdict uses CPU
time per step (`time.process_time`), which a shared machine disturbs less
than wall time (both are printed).

Peak memory: `ru_maxrss` of the measuring subprocess (one process per step
kind, so each peak covers building, tracing or compiling, and running that
step kind only). `--max-rss-gib` stops a measurement whose resident memory
passes the limit and reports the phase it was in (for shared machines).
`--batch` overrides the configuration's batch size (e.g. to compare memory
where the full batch does not fit).
"""

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import threading
import time

CONFIGS = {
    "micro": dict(filters=8, num_cells=5, batch=16, shape=(16, 16, 3)),
    "paper": dict(filters=16, num_cells=8, batch=64, shape=(32, 32, 3)),
    # Not from the issue: a smoke configuration for a busy CPU.
    "tiny": dict(filters=4, num_cells=2, batch=16, shape=(8, 8, 3)),
}
TARGETS = {1: 2.3, 2: 5.0}


def random_search_data(cfg, batches):
    """`SearchData` of `batches` random training and as many validation
    batches of `cfg`'s shape and batch size (seed 0, in order)."""
    import numpy as np

    from keras_nas.supernet.darts import SearchData

    n = cfg["batch"] * batches
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2 * n,) + cfg["shape"]).astype("float32")
    y = rng.integers(0, 10, size=2 * n).astype("int32")
    return SearchData(
        (x[:n], y[:n]), (x[n:], y[n:]), batch_size=cfg["batch"], shuffle=False
    )


def seed_everything(seed):
    """`keras.utils.set_random_seed(seed)` without importing TensorFlow.

    On TensorFlow this is `keras.utils.set_random_seed`. On the other
    backends it seeds what that function seeds there, Python's and NumPy's
    global generators, and drops Keras' global `SeedGenerator`
    (`keras.utils.clear_session`; Keras draws the seed of a new one from
    Python's generator), but not TensorFlow's generator:
    `keras.utils.set_random_seed` imports TensorFlow to seed it when TF is
    installed (~460 MiB resident here), which would count against a JAX
    step's peak memory although the step never uses TensorFlow.
    """
    import keras
    import numpy as np

    if keras.backend.backend() == "tensorflow":
        keras.utils.set_random_seed(seed)
        return
    keras.utils.clear_session(free_memory=False)
    random.seed(seed)
    np.random.seed(seed)


def build_supernet(cfg, order, **compile_kwargs):
    """The compiled `DartsSupernet` of configuration `cfg` (a `CONFIGS`
    value) and search `order`, as the DARTS benchmarks time it.

    `compile_kwargs` go to `compile` (e.g. `jit_compile`, `run_eagerly`)
    besides `decay_steps=1000`; a `dtype` entry goes to the constructor.
    """
    from keras_nas.supernet.darts import DartsSupernet

    dtype = compile_kwargs.pop("dtype", None)
    model = DartsSupernet(
        cfg["shape"],
        10,
        filters=cfg["filters"],
        num_cells=cfg["num_cells"],
        order=order,
        dtype=dtype,
    )
    model.compile(decay_steps=1000, **compile_kwargs)
    return model


def _rss_mib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def _watch_memory(limit_mib, phase):
    """Ends the process when its resident memory passes `limit_mib`.

    The box is shared: a configuration that does not fit is reported
    (phase and memory reached) instead of being left to the OOM killer.
    """

    def watch():
        while True:
            rss = _rss_mib()
            if rss > limit_mib:
                result = {"exceeded_mib": limit_mib, "rss_mib": rss}
                result["phase"] = phase[0]
                print("RESULT " + json.dumps(result), flush=True)
                os._exit(3)
            time.sleep(0.1)

    threading.Thread(target=watch, daemon=True).start()


def measure(args):
    """Runs in a subprocess: builds, compiles, warms up, times one mode."""
    phase = ["build"]
    if args.without_tensorflow:
        # As on an install without TensorFlow: `import tensorflow` fails.
        sys.modules["tensorflow"] = None
    if args.max_rss_gib:
        _watch_memory(1024.0 * args.max_rss_gib, phase)
    import keras

    from keras_nas.supernet import _cell_scan

    _cell_scan.ENABLED = args.cell_scan
    if keras.backend.backend() == "jax":
        from keras_nas.supernet import _darts_jax

        _darts_jax.PIECEWISE = not args.jax_whole

    cfg = dict(CONFIGS[args.config])
    if args.batch:
        cfg["batch"] = args.batch
    seed_everything(0)
    data = random_search_data(cfg, args.steps + args.warmup)
    rss_imported = _rss_mib()
    t0, c0 = time.perf_counter(), time.process_time()
    jit = True if keras.backend.backend() == "jax" else args.jit
    model = build_supernet(
        cfg,
        args.mode,
        dtype=args.dtype,
        jit_compile=jit,
        run_eagerly=args.eager,
    )
    build_s = time.perf_counter() - t0
    build_cpu_s = time.process_time() - c0
    rss_built = _rss_mib()
    phase[0] = "first call (tracing/compilation) and warm-up"
    t0, c0 = time.perf_counter(), time.process_time()
    model.fit(data, epochs=1, steps_per_epoch=args.warmup, verbose=0)
    compile_s = time.perf_counter() - t0
    compile_cpu_s = time.process_time() - c0
    rss_warm = _rss_mib()
    phase[0] = "timed steps"
    times, cpu_times = [], []
    for _ in range(args.repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        model.fit(data, epochs=1, steps_per_epoch=args.steps, verbose=0)
        times.append((time.perf_counter() - t0) / args.steps)
        cpu_times.append((time.process_time() - c0) / args.steps)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    return {
        "backend": keras.backend.backend(),
        "jit": bool(jit),
        "eager": bool(args.eager),
        "cell_scan": args.cell_scan,
        "config": args.config,
        "batch": cfg["batch"],
        "order": args.mode,
        "params": int(model.count_params()),
        "build_s": build_s,
        "build_cpu_s": build_cpu_s,
        "first_call_s": compile_s,
        "first_call_cpu_s": compile_cpu_s,
        "step_s": min(times),
        "step_s_median": sorted(times)[len(times) // 2],
        "step_cpu_s_median": sorted(cpu_times)[len(cpu_times) // 2],
        "step_cpu_s": min(cpu_times),
        "rss_before_build_mib": rss_imported,
        "rss_after_build_mib": rss_built,
        "rss_after_warmup_mib": rss_warm,
        "peak_rss_mib": peak,
        # Whether the measured process imported TensorFlow (its RSS).
        "tensorflow_imported": sys.modules.get("tensorflow") is not None,
        "loadavg": [round(v, 2) for v in os.getloadavg()],
    }


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backend", choices=["tensorflow", "jax"], default=None)
    p.add_argument("--jit", action="store_true", help="XLA on TensorFlow")
    p.add_argument(
        "--eager", action="store_true", help="TensorFlow eager (no tracing)"
    )
    p.add_argument(
        "--cell-scan",
        action="store_true",
        help="each cell's edges as two scans (_cell_scan.py)",
    )
    p.add_argument(
        "--jax-whole",
        action="store_true",
        help="JAX: the whole step jitted (not piecewise, _darts_jax.py)",
    )
    p.add_argument(
        "--without-tensorflow",
        action="store_true",
        help="JAX: TensorFlow made unimportable (as if not installed)",
    )
    p.add_argument("--config", choices=sorted(CONFIGS), default="micro")
    p.add_argument(
        "--batch", type=int, default=None, help="overrides the batch size"
    )
    p.add_argument("--steps", type=int, default=3, help="timed steps")
    p.add_argument("--warmup", type=int, default=1, help="untimed steps")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--dtype", default=None, help="e.g. mixed_bfloat16")
    p.add_argument("--orders", default="0,1,2")
    p.add_argument(
        "--max-rss-gib",
        type=float,
        default=None,
        help="stop a measurement whose resident memory passes this",
    )
    p.add_argument("--mode", type=int, default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.backend:
        os.environ["KERAS_BACKEND"] = args.backend
    if args.mode is not None:
        print("RESULT " + json.dumps(measure(args)), flush=True)
        return
    results = {}
    for order in [int(o) for o in args.orders.split(",")]:
        cmd = [sys.executable, __file__, "--mode", str(order)]
        cmd += ["--config", args.config, "--steps", str(args.steps)]
        cmd += ["--warmup", str(args.warmup), "--repeats", str(args.repeats)]
        if args.batch:
            cmd += ["--batch", str(args.batch)]
        if args.jit:
            cmd.append("--jit")
        if args.eager:
            cmd.append("--eager")
        if args.cell_scan:
            cmd.append("--cell-scan")
        if args.jax_whole:
            cmd.append("--jax-whole")
        if args.without_tensorflow:
            cmd.append("--without-tensorflow")
        if args.dtype:
            cmd += ["--dtype", args.dtype]
        if args.max_rss_gib:
            cmd += ["--max-rss-gib", str(args.max_rss_gib)]
        proc = subprocess.run(
            cmd, env=dict(os.environ), capture_output=True, text=True
        )
        lines = [s for s in proc.stdout.splitlines() if s.startswith("RESULT")]
        if (proc.returncode and proc.returncode != 3) or not lines:
            sys.exit(f"order {order} failed:\n{proc.stderr[-3000:]}")
        results[order] = json.loads(lines[-1][len("RESULT ") :])
        print(json.dumps(results[order]), flush=True)
    exceeded = {o: r for o, r in results.items() if "exceeded_mib" in r}
    for order, r in exceeded.items():
        print(
            f"order {order}: stopped at {r['rss_mib']:.0f} MiB resident "
            f"(limit {r['exceeded_mib']:.0f} MiB) during {r['phase']}"
        )
        del results[order]
    base = results.get(0)
    print()
    print(
        "| step | wall/step (ms) | CPU/step (ms) | x plain (wall) "
        "| x plain (CPU) | target | peak RSS (MiB) |"
    )
    print("|---|---|---|---|---|---|---|")
    names = {0: "plain (alpha frozen)", 1: "first order", 2: "second order"}
    for order, r in results.items():
        ratio = r["step_s"] / base["step_s"] if base else float("nan")
        cpu = r["step_cpu_s"] / base["step_cpu_s"] if base else float("nan")
        target = TARGETS.get(order)
        verdict = (
            "-"
            if target is None or base is None
            else f"<= {target}x: {'met' if cpu <= target else 'NOT met'}"
        )
        print(
            f"| {names[order]} | {1000 * r['step_s']:.1f} "
            f"| {1000 * r['step_cpu_s']:.1f} | {ratio:.2f} | {cpu:.2f} "
            f"| {verdict} | {r['peak_rss_mib']:.0f} |"
        )


if __name__ == "__main__":
    main()
