"""Where the trace and first-run time of one DARTS training pass go.

Traces one training pass of a `DartsSupernet` (forward, gradients of
`alpha` and of the weights: `_darts_tensorflow._pass(model, x, y, "aw")`)
into a `tf.function` and prints, as JSON: the trace CPU time, the graph op
counts (outer graph and the bodies of its library functions), the CPU time
of the first execution (TensorFlow's graph optimization and executor
setup) and of the next executions, and the peak resident memory. On JAX it
times `jax.jit` of the same pass (trace + lower + compile, first and next
calls). CPU times are `time.process_time` (all threads), which a shared
machine disturbs less than wall time (also printed).

Usage:

    python benchmarks/darts_graph_profile.py --config micro
    python benchmarks/darts_graph_profile.py --config micro --per-op
    KERAS_BACKEND=jax python benchmarks/darts_graph_profile.py

`--per-op` evaluates every MixedOp op by op (no fused MixedOp); `--inline`
traces the edges inline instead of through one shared function per kind of
edge.
"""

import argparse
import json
import os
import resource
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from darts_step import CONFIGS  # noqa: E402


def _clock():
    return time.perf_counter(), time.process_time()


def _since(t):
    wall, cpu = _clock()
    return round(wall - t[0], 2), round(cpu - t[1], 2)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", choices=sorted(CONFIGS), default="micro")
    p.add_argument("--per-op", action="store_true")
    p.add_argument("--inline", action="store_true")
    p.add_argument("--runs", type=int, default=3)
    args = p.parse_args()
    import keras
    import numpy as np

    from keras_nas.supernet import _darts_graph, darts_cells
    from keras_nas.supernet._darts_math import cross_entropy
    from keras_nas.supernet.darts import DartsSupernet

    if args.per_op:
        darts_cells.FUSED = False
    if args.inline:
        _darts_graph.ENABLED = False
    cfg = CONFIGS[args.config]
    keras.utils.set_random_seed(0)
    t = _clock()
    model = DartsSupernet(
        cfg["shape"], 10, filters=cfg["filters"], num_cells=cfg["num_cells"]
    )
    out = {"backend": keras.backend.backend(), "config": args.config}
    out["per_op"], out["inline"] = args.per_op, args.inline
    out["build_wall_cpu_s"] = _since(t)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(cfg["batch"],) + cfg["shape"]).astype("float32")
    y = rng.integers(0, 10, size=cfg["batch"]).astype("int32")
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        from keras_nas.supernet import _darts_tensorflow

        fn = tf.function(
            lambda x, y: _darts_tensorflow._pass(model, x, y, "aw")
        )
        t = _clock()
        concrete = fn.get_concrete_function(x, y)
        out["trace_wall_cpu_s"] = _since(t)
        graph = concrete.graph.as_graph_def()
        out["outer_ops"] = len(graph.node)
        out["library_functions"] = len(graph.library.function)
        library = graph.library.function
        out["library_ops"] = sum(len(f.node_def) for f in library)
        call = concrete
    else:
        import jax

        def loss(trainable, non_trainable, x, y):
            logits, nt = model.stateless_call(
                trainable, non_trainable, x, training=True
            )
            return cross_entropy(y, logits), nt

        grad = jax.jit(jax.value_and_grad(loss, has_aux=True))
        tv = [v.value for v in model.trainable_variables]
        ntv = [v.value for v in model.non_trainable_variables]
        t = _clock()
        lowered = grad.lower(tv, ntv, x, y)
        out["trace_wall_cpu_s"] = _since(t)
        out["jaxpr_eqns"] = len(
            jax.make_jaxpr(grad)(tv, ntv, x, y).jaxpr.eqns
        )
        t = _clock()
        compiled = lowered.compile()
        out["compile_wall_cpu_s"] = _since(t)

        def call(x, y):
            return compiled(tv, ntv, x, y)

    runs = []
    for _ in range(args.runs):
        t = _clock()
        result = call(x, y)
        float(result[0][0] if isinstance(result[0], tuple) else result[0])
        runs.append(_since(t))
    out["first_run_wall_cpu_s"] = runs[0]
    out["next_runs_wall_cpu_s"] = runs[1:]
    out["peak_rss_mib"] = round(
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    )
    out["loadavg"] = [round(v, 1) for v in os.getloadavg()]
    print("RESULT " + json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
