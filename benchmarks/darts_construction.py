"""DARTS supernet: construction time and where the resident memory goes.

One process per run: imports, constructs a `DartsSupernet` (micro or paper
configuration) and takes `--steps` one-step `fit` calls in TF graph mode
(`--backend tensorflow`, the `fit` default), TF eager (`--eager`) or JAX
(`--backend jax`, jit). Prints the CPU time and the resident memory (RSS)
after each phase: the imports, the construction (with `compile`), the trace
or compilation of the step (TF graph: when Keras' step function's trace
returns; JAX: after the last XLA compilation of the first call, with the
count and wall time of the first call's XLA compilations), the first
step and the later ones; the peak (`ru_maxrss`). Seeding has its own
phase (`darts_step.seed_everything`, which on JAX does not import
TensorFlow as `keras.utils.set_random_seed` does). Also the
construction's counts: Keras layers, variables, JAX compilations
(`jax.monitoring`) or, with `--count-ops`, eager TensorFlow ops (an op
callback, which slows the construction: its time is then not comparable),
and which big packages the process imported (e.g. whether JAX is loaded
in a TensorFlow process).

`--profile N` prints the N most expensive functions of the construction
(cProfile, cumulative and own time).

Usage:

    python benchmarks/darts_construction.py --backend tensorflow --threads 1
    python benchmarks/darts_construction.py --backend tensorflow --eager
    python benchmarks/darts_construction.py --backend jax --profile 40
"""

import argparse
import collections
import json
import os
import resource
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from darts_step import (  # noqa: E402
    CONFIGS,
    _rss_mib,
    build_supernet,
    random_search_data,
    seed_everything,
)

BIG_PACKAGES = (
    "tensorflow",
    "jax",
    "torch",
    "scipy",
    "sklearn",
    "matplotlib",
    "pandas",
    "PIL",
    "keras_tuner",
    "tensorboard",
    "grpc",
)


def _phase(out, name, t0):
    out[name] = {
        "cpu_s": round(time.process_time() - t0, 2),
        "rss_mib": round(_rss_mib()),
    }
    return time.process_time()


def _count_tf_ops(counts):
    """Counts the eager ops TensorFlow runs (a global op callback)."""
    from tensorflow.python.framework import op_callbacks

    def callback(op_type, inputs, attrs, outputs, op_name=None, graph=None):
        if graph is None:
            counts[op_type] += 1

    op_callbacks.add_op_callback(callback)
    return lambda: op_callbacks.remove_op_callback(callback)


def _watch_tf_trace(marks):
    """Records the RSS when the first trace of Keras' step returns."""
    from tensorflow.python.eager.polymorphic_function import (
        tracing_compilation,
    )

    original = tracing_compilation.trace_function

    def trace_function(*args, **kwargs):
        result = original(*args, **kwargs)
        marks.append((time.process_time(), _rss_mib(), 0.0))
        return result

    tracing_compilation.trace_function = trace_function


def _watch_jax_compiles(marks):
    import jax

    def listener(event, duration, **kwargs):
        if event == "/jax/core/compile/backend_compile_duration":
            marks.append((time.process_time(), _rss_mib(), duration))

    jax.monitoring.register_event_duration_secs_listener(listener)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backend", choices=["tensorflow", "jax"], default=None)
    p.add_argument("--eager", action="store_true", help="TF eager steps")
    p.add_argument("--config", choices=sorted(CONFIGS), default="micro")
    p.add_argument(
        "--batch", type=int, default=None, help="overrides the batch size"
    )
    p.add_argument("--order", type=int, default=1)
    p.add_argument("--steps", type=int, default=2)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--profile", type=int, default=0)
    p.add_argument("--count-ops", action="store_true")
    args = p.parse_args()
    if args.backend:
        os.environ["KERAS_BACKEND"] = args.backend
    if args.threads:
        os.environ["OMP_NUM_THREADS"] = str(args.threads)
    out = {"config": args.config, "order": args.order}
    out["rss_start_mib"] = round(_rss_mib())
    t = time.process_time()
    import keras

    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        if args.threads:
            tf.config.threading.set_intra_op_parallelism_threads(args.threads)
            tf.config.threading.set_inter_op_parallelism_threads(1)
    import keras_nas.supernet.darts  # noqa: F401 (the imports' phase)

    t = _phase(out, "imports", t)
    out["variant"] = (
        "jax" if backend == "jax" else ("tf-eager" if args.eager else "tf")
    )
    out["imported"] = sorted(
        {m.split(".")[0] for m in sys.modules} & set(BIG_PACKAGES)
    )
    # Seeds Python, NumPy, Keras and on TF TensorFlow (not on JAX).
    seed_everything(0)
    t = _phase(out, "seed", t)
    out["imported_after_seed"] = sorted(
        {m.split(".")[0] for m in sys.modules} & set(BIG_PACKAGES)
    )
    cfg = dict(CONFIGS[args.config])
    if args.batch:
        cfg["batch"] = args.batch
    out["batch"] = cfg["batch"]
    data = random_search_data(cfg, args.steps)
    ops, marks = collections.Counter(), []
    if backend == "tensorflow":
        stop = _count_tf_ops(ops) if args.count_ops else None
    else:
        _watch_jax_compiles(marks)
    profile = None
    if args.profile:
        import cProfile

        profile = cProfile.Profile()
        profile.enable()
    t = time.process_time()
    model = build_supernet(cfg, args.order, run_eagerly=args.eager)
    if profile is not None:
        profile.disable()
    t = _phase(out, "construction", t)
    out["layers"] = len(list(model._flatten_layers()))
    out["variables"] = len(model.variables)
    if backend == "tensorflow":
        if stop is not None:
            stop()
            out["eager_ops"] = sum(ops.values())
            out["eager_ops_top"] = ops.most_common(6)
        if not args.eager:
            _watch_tf_trace(marks)
    else:
        out["xla_compiles"] = len(marks)
        marks.clear()
    wall = time.perf_counter()
    for step in range(args.steps):
        model.fit(data, epochs=1, steps_per_epoch=1, verbose=0)
        if step == 0 and marks:
            cpu, rss, _ = marks[-1]
            out["trace_or_compile"] = {
                "cpu_s": round(cpu - t, 2),
                "rss_mib": round(rss),
            }
            if backend == "jax":  # XLA compilations in the first call
                out["trace_or_compile"]["xla_compiles"] = len(marks)
                out["trace_or_compile"]["xla_compile_wall_s"] = round(
                    sum(m[2] for m in marks), 2
                )
                out["trace_or_compile"]["first_call_wall_s"] = round(
                    time.perf_counter() - wall, 2
                )
        t = _phase(out, f"step_{step + 1}", t)
    out["peak_rss_mib"] = round(
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    )
    out["loadavg"] = [round(v, 1) for v in os.getloadavg()]
    print("RESULT " + json.dumps(out), flush=True)
    if profile is not None:
        import pstats

        stats = pstats.Stats(profile)
        stats.sort_stats("cumulative").print_stats(args.profile)
        stats.sort_stats("tottime").print_stats(args.profile)


if __name__ == "__main__":
    main()
