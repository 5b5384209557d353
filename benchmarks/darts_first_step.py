"""Where the time to the first DARTS step goes, as a user meets it.

Builds a `DartsSupernet`, compiles it and calls `fit` for one step (TF
graph mode, the default), in one process, and splits the time of that
first `fit` call into: building the optimizers' state, tracing (how many
times each `tf.function` of Keras' train function was traced, and for how
long) and the rest (TensorFlow's first execution: grappler's graph
optimization, executor set-up, the edge functions' instantiation, one
step). Then times `--steps` further one-step `fit` calls. CPU times are
`time.process_time` (all threads), which a shared machine disturbs less
than wall time (also printed).

`--grappler off|one` runs Keras' train function with grappler disabled or
with one meta-optimizer iteration, scoped to that function (the thread's
function call options while it runs; nothing global), for measurements.
`--threads 1` pins TensorFlow to one thread (as the side-by-side runs of
benchmarks/darts_reference.py).

Usage:

    python benchmarks/darts_first_step.py --config micro --order 1
    python benchmarks/darts_first_step.py --config micro --grappler off
"""

import argparse
import json
import os
import resource
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from darts_step import (  # noqa: E402
    CONFIGS,
    build_supernet,
    random_search_data,
    seed_everything,
)

# The functions of the TensorFlow train function (the step's traces):
# keras-nas' one function per step, or Keras' two nested ones.
STEP_FUNCTIONS = (
    "one_step_on_iterator",
    "multi_step_on_iterator",
    "one_step_on_data",
)


def _clock():
    return time.perf_counter(), time.process_time()


def _since(t):
    wall, cpu = _clock()
    return round(wall - t[0], 2), round(cpu - t[1], 2)


def _count_traces(tracing_compilation, traces):
    """Records the name and CPU time of every traced tf.function."""
    original = tracing_compilation.trace_function

    def trace_function(*args, **kwargs):
        options = kwargs.get("tracing_options")
        if options is None and len(args) > 2:
            options = args[2]
        name = getattr(options, "name", "?")
        before = time.process_time()
        result = original(*args, **kwargs)
        traces.append((name, time.process_time() - before))
        return result

    tracing_compilation.trace_function = trace_function


def _scoped(fn, mode):
    """`fn` run with a grappler setting of its own (thread-local)."""
    from tensorflow.core.protobuf import config_pb2, rewriter_config_pb2
    from tensorflow.python.eager import context

    ctx = context.context()
    config = config_pb2.ConfigProto()
    config.ParseFromString(ctx.function_call_options.config_proto_serialized)
    rewrite = config.graph_options.rewrite_options
    if mode == "off":
        rewrite.disable_meta_optimizer = True
    elif mode == "function":
        rewrite.optimizers.append("function")
        one = rewriter_config_pb2.RewriterConfig.ONE
        rewrite.meta_optimizer_iterations = one
    else:
        one = rewriter_config_pb2.RewriterConfig.ONE
        rewrite.meta_optimizer_iterations = one
    options = context.FunctionCallOptions(config_proto=config)

    def wrapped(*args, **kwargs):
        previous = ctx.function_call_options
        ctx.function_call_options = options
        try:
            return fn(*args, **kwargs)
        finally:
            ctx.function_call_options = previous

    wrapped.scoped = True
    return wrapped


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", choices=sorted(CONFIGS), default="micro")
    p.add_argument(
        "--batch", type=int, default=None, help="overrides the batch size"
    )
    p.add_argument("--order", type=int, default=1)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument(
        "--grappler",
        choices=["default", "off", "one", "function"],
        default="default",
    )
    args = p.parse_args()
    os.environ["KERAS_BACKEND"] = "tensorflow"
    import tensorflow as tf
    from tensorflow.python.eager.polymorphic_function import (
        tracing_compilation,
    )

    if args.threads:
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    traces = []
    _count_traces(tracing_compilation, traces)
    cfg = dict(CONFIGS[args.config])
    if args.batch:
        cfg["batch"] = args.batch
    seed_everything(0)
    data = random_search_data(cfg, args.steps + 1)
    out = {"config": args.config, "order": args.order, "batch": cfg["batch"]}
    out["grappler"] = args.grappler
    t = _clock()
    model = build_supernet(cfg, args.order)
    out["build_wall_cpu_s"] = _since(t)
    optimizer_build = []
    build = model.optimizer.build

    def timed_build(variables):
        t = _clock()
        build(variables)
        optimizer_build.append(_since(t)[1])

    model.optimizer.build = timed_build
    if args.grappler != "default":
        make = model.make_train_function

        def make_scoped(force=False):
            make(force)
            if not getattr(model.train_function, "scoped", False):
                model.train_function = _scoped(
                    model.train_function, args.grappler
                )
            return model.train_function

        model.make_train_function = make_scoped
    t = _clock()
    model.fit(data, epochs=1, steps_per_epoch=1, verbose=0)
    out["first_fit_wall_cpu_s"] = _since(t)
    step_traces = [(n, round(s, 2)) for n, s in traces if n in STEP_FUNCTIONS]
    out["step_traces"] = step_traces
    out["other_traces"] = len(traces) - len(step_traces)
    out["optimizer_build_cpu_s"] = round(sum(optimizer_build), 2)
    # The outermost function's trace includes the inner one's.
    outer = max((s for _, s in step_traces), default=0.0)
    out["trace_cpu_s"] = round(outer, 2)
    out["first_execution_cpu_s"] = round(
        out["first_fit_wall_cpu_s"][1] - outer - sum(optimizer_build), 2
    )
    steps = []
    for _ in range(args.steps):
        t = _clock()
        model.fit(data, epochs=1, steps_per_epoch=1, verbose=0)
        steps.append(_since(t)[1])
    out["step_cpu_s_median"] = statistics.median(steps) if steps else None
    out["step_cpu_s_min"] = min(steps) if steps else None
    out["peak_rss_mib"] = round(
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    )
    out["loadavg"] = [round(v, 1) for v in os.getloadavg()]
    print("RESULT " + json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
