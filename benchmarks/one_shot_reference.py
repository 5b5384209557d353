"""Single-path one-shot (SPOS) step: the original DARTS network and keras-nas.

Issue #13 asks of the compiled single-path step of `OneShotSupernet` what it
asks of DARTS: time to the first step (construction + trace/compile + one
step), the steady step and the peak memory, as ratios to a PyTorch
reference. No original SPOS code exists for the DARTS space, so the
reference is the original DARTS search network (Liu et al., ICLR 2019,
github.com/quark0/darts, fetched by the user; `--darts-dir` is its `cnn/`)
run one sampled path per step the way PyTorch users write SPOS: the
runner below replaces the forward passes of its `Network` and `Cell` so
that every node sums exactly its two sampled (input, op) pairs, drawn
uniformly per step as `OneShotSupernet` draws them (7 ops, no `none`;
the reduction cells have their own path). Every other line of the step is
the original's: its modules, cross-entropy, SGD with momentum 0.9 and
weight decay 3e-4, gradient norm clipped at 5. keras-nas:
`OneShotSupernet(search_space="cell")` of the same size (stem 3C, reductions at
1/3 and 2/3 of the depth, 4 nodes), `compile(SGD(0.025, momentum=0.9,
global_clipnorm=5))`, the default compiled step (`--variants tf,jax`: the
piecewise step), the switch step over every branch it replaced on this
space (`tf-switch`, `jax-switch`: `one_shot.PIECEWISE = ()`) or the eager
step (`tf-eager`), one `fit` call per step.

Each measurement runs in its own subprocess, interleaved per round:
reference, then each keras-nas variant. Printed per run: time to the first
step (wall and CPU: `time.process_time`, all threads), median step (wall,
CPU; keras-nas: one `fit` call per step, and the steps in which a newly
sampled kind of layer compiles are among them), peak RSS (`ru_maxrss`;
also less the resident memory before the construction, as in
darts_reference),
the warm steady step and the ratios to the round's reference.

The warm steady step: after the timed steps, steps run until
`--warm-clean` steps in a row compiled nothing (keras-nas: no
`tf.function` traced outside TensorFlow's own modules, e.g. tf.data's,
or no XLA compile on JAX; the reference never compiles), then the CPU
median of `--steps` single steps in which nothing compiled
(`warm_step_cpu_s`, keras-nas still one `fit` per step) and the CPU per
step of `--fit-steps` steps run by one `fit` call (keras-nas) or one
loop (reference), median of 3 such runs in which nothing compiled
(`fit_step_cpu_s`: Keras' per-call cost of `fit` spread over its steps,
as a user's epoch runs).

Usage:

    python benchmarks/one_shot_reference.py --darts-dir /tmp/darts/cnn \
        --torch-python /work/venv-torch/bin/python --config micro \
        --variants tf,tf-eager,jax --steps 5 --threads 1
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import textwrap

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from darts_reference import (  # noqa: E402
    KEYS,
    TIMED_STEPS,
    _patched_copy,
    _result,
)
from darts_step import CONFIGS  # noqa: E402

# The resident memory before the construction (after the imports), as
# darts_reference measures it: `_result` reports the peak above it.
RSS_MIB = textwrap.dedent(
    """
    def rss_mib():
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) / 1024.0 for line in f
                        if line.startswith("VmRSS:"))
    rss_imported = rss_mib()
    """
)

# Runs in the PyTorch interpreter, with the patched copy on sys.path.
REFERENCE = textwrap.dedent(
    """
    import json, random, resource, shutil, sys, time
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
    cfg = json.loads(sys.argv[1])
    torch.set_num_threads(cfg["threads"])
    torch.manual_seed(0)
    rng = random.Random(0)
    import model_search
    from genotypes import PRIMITIVES
    OPS = [PRIMITIVES.index(p) for p in PRIMITIVES if p != "none"]

    def draw(steps):
        # Per node two (input, op) slots, each uniform, as keras-nas draws.
        return [[(rng.randrange(2 + i), rng.choice(OPS)) for _ in range(2)]
                for i in range(steps)]

    def cell_forward(self, s0, s1, path):
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        offset = 0
        for i in range(self._steps):
            s = sum(self._ops[offset + j]._ops[k](states[j])
                    for j, k in path[i])
            offset += len(states)
            states.append(s)
        return torch.cat(states[-self._multiplier:], dim=1)

    def network_forward(self, x):
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            path = self.path_reduce if cell.reduction else self.path_normal
            s0, s1 = s1, cell(s0, s1, path)
        out = self.global_pooling(s1)
        return self.classifier(out.view(out.size(0), -1))

    model_search.Cell.forward = cell_forward
    model_search.Network.forward = network_forward
    RSS_MIB
    t0, c0 = time.perf_counter(), time.process_time()
    criterion = nn.CrossEntropyLoss()
    model = model_search.Network(cfg["filters"], 10, cfg["num_cells"],
                                 criterion)
    optimizer = torch.optim.SGD(
        model.parameters(), 0.025, momentum=0.9, weight_decay=3e-4)
    b, (h, w, c) = cfg["batch"], cfg["shape"]

    def step():
        model.path_normal, model.path_reduce = draw(4), draw(4)
        x, y = torch.randn(b, c, h, w), torch.randint(0, 10, (b,))
        model.train()
        optimizer.zero_grad()
        loss = criterion(model(x), y)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        optimizer.step()
    extra = {"rss_before_build_mib": rss_imported}

    def compiles():
        return 0

    def steps(k):
        for _ in range(k):
            step()
    """
).replace("RSS_MIB\n", RSS_MIB)

# Runs in this interpreter with KERAS_BACKEND set.
KERAS_NAS = textwrap.dedent(
    """
    import json, resource, sys, time
    import numpy as np
    cfg = json.loads(sys.argv[1])
    import keras
    import keras_nas  # noqa: F401
    from keras_nas.supernet import OneShotSupernet, one_shot
    if cfg["switch"]:  # the jitted/traced switch over every branch
        one_shot.PIECEWISE = ()
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf
        tf.config.threading.set_intra_op_parallelism_threads(cfg["threads"])
        tf.config.threading.set_inter_op_parallelism_threads(1)
    b, shape = cfg["batch"], tuple(cfg["shape"])
    rng = np.random.default_rng(0)
    x = rng.normal(size=(b,) + shape).astype("float32")
    y = rng.integers(0, 10, size=b).astype("int32")
    RSS_MIB
    t0, c0 = time.perf_counter(), time.process_time()
    net = OneShotSupernet(
        search_space="cell", input_shape=shape, num_classes=10,
        num_nodes=4, num_cells=cfg["num_cells"], filters=cfg["filters"],
        seed=0)
    net.compile(
        optimizer=keras.optimizers.SGD(
            0.025, momentum=0.9, global_clipnorm=5.0),
        step=cfg["step"])
    extra = {
        "build_cpu_s": time.process_time() - c0,
        "params": int(net.count_params()),
        "rss_before_build_mib": rss_imported,
    }

    def step():
        net.fit(x, y, batch_size=b, epochs=1, verbose=0)

    if keras.backend.backend() == "tensorflow":
        import gc

        def compiles():  # traces of functions outside TF's own modules
            return sum(
                f.experimental_get_tracing_count()
                for f in gc.get_objects()
                if isinstance(f, tf.types.experimental.PolymorphicFunction)
                and not f.python_function.__module__.startswith("tensorflow")
            )
    else:
        import jax
        _compiled = [0]

        def _count(event, duration, **kwargs):
            if event == "/jax/core/compile/backend_compile_duration":
                _compiled[0] += 1

        jax.monitoring.register_event_duration_secs_listener(_count)

        def compiles():
            return _compiled[0]

    xk = np.concatenate([x] * cfg["fit_steps"])
    yk = np.concatenate([y] * cfg["fit_steps"])

    def steps(k):  # one fit call of k batches
        net.fit(xk[: k * b], yk[: k * b], batch_size=b, epochs=1, verbose=0)
    """
).replace("RSS_MIB\n", RSS_MIB)

# Runs after TIMED_STEPS (both sides): the warm steady step (its names
# must not shadow the scripts' own, e.g. the reference's `c`).
STEADY = textwrap.dedent(
    """
    warm = clean = 0
    while clean < cfg["warm_clean"] and warm < cfg["max_warm"]:
        seen = compiles()
        step()
        warm += 1
        clean = clean + 1 if compiles() == seen else 0
    warm_cpu, fit_cpu = [], []
    for _ in range(4 * cfg["steps"]):
        if len(warm_cpu) == cfg["steps"]:
            break
        seen, t = compiles(), time.process_time()
        step()
        took = time.process_time() - t  # before compiles(): a gc walk on TF
        if compiles() == seen:
            warm_cpu.append(took)
    for _ in range(6):
        if len(fit_cpu) == 3:
            break
        seen, t = compiles(), time.process_time()
        steps(cfg["fit_steps"])
        took = time.process_time() - t
        if compiles() == seen:
            fit_cpu.append(took / cfg["fit_steps"])
    warm_cpu.sort()
    fit_cpu.sort()
    nan = float("nan")
    timed.update(
        peak_rss_mib=resource.getrusage(
            resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        warm_up_steps=warm,
        warm_step_cpu_s=warm_cpu[len(warm_cpu) // 2] if warm_cpu else nan,
        fit_step_cpu_s=fit_cpu[len(fit_cpu) // 2] if fit_cpu else nan,
    )
    print("RESULT " + json.dumps(timed))
    """
)
# The figures of the table (the first five: darts_reference's).
COLUMNS = KEYS + ("warm_step_cpu_s", "fit_step_cpu_s")

# variant -> (backend, step, the switch step instead of the piecewise one)
VARIANTS = {
    "tf": ("tensorflow", "compiled", False),
    "tf-switch": ("tensorflow", "compiled", True),
    "tf-eager": ("tensorflow", "eager", False),
    "jax": ("jax", "compiled", False),
    "jax-switch": ("jax", "compiled", True),
}


def _steady(args) -> dict:
    return dict(
        steps=args.steps,
        warm_clean=args.warm_clean,
        max_warm=args.max_warm,
        fit_steps=args.fit_steps,
    )


def run_reference(args, copy, cfg):
    spec = dict(cfg, threads=args.threads, **_steady(args))
    env = dict(os.environ, PYTHONPATH=copy, OMP_NUM_THREADS=str(args.threads))
    script = REFERENCE + TIMED_STEPS + STEADY
    proc = subprocess.run(
        [args.torch_python, "-c", script, json.dumps(spec)],
        cwd=copy,
        env=env,
        capture_output=True,
        text=True,
    )
    return _result(proc, "reference")


def run_keras_nas(args, variant, cfg):
    backend, step, switch = VARIANTS[variant]
    spec = dict(
        cfg, threads=args.threads, step=step, switch=switch, **_steady(args)
    )
    env = dict(os.environ, KERAS_BACKEND=backend)
    env["OMP_NUM_THREADS"] = str(args.threads)
    env["TF_NUM_INTRAOP_THREADS"] = str(args.threads)
    env["TF_NUM_INTEROP_THREADS"] = "1"
    if backend == "jax":
        env["JAX_PLATFORMS"] = "cpu"
    proc = subprocess.run(
        [sys.executable, "-c", KERAS_NAS + TIMED_STEPS + STEADY,
         json.dumps(spec)],
        env=env,
        capture_output=True,
        text=True,
    )
    return _result(proc, variant)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--darts-dir", required=True, help="the original cnn/")
    p.add_argument("--torch-python", required=True)
    p.add_argument("--config", choices=sorted(CONFIGS), default="micro")
    p.add_argument("--variants", default="tf,tf-eager,jax")
    p.add_argument("--steps", type=int, default=5, help="timed steps")
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument(
        "--warm-clean",
        type=int,
        default=10,
        help="warm-up ends after this many steps in a row compiled nothing",
    )
    p.add_argument("--max-warm", type=int, default=100)
    p.add_argument(
        "--fit-steps", type=int, default=20, help="steps of one fit call"
    )
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    cfg = dict(CONFIGS[args.config])
    copy = _patched_copy(args.darts_dir)
    rows = []
    try:
        for _ in range(args.rounds):
            ref = run_reference(args, copy, cfg)
            print(json.dumps({"reference": ref}), flush=True)
            for variant in args.variants.split(","):
                r = run_keras_nas(args, variant, cfg)
                print(json.dumps({variant: r}), flush=True)
                rows.append((variant, r, ref))
    finally:
        shutil.rmtree(copy, ignore_errors=True)
    print(
        f"\nconfig {args.config}, {args.threads} thread(s), "
        f"load {os.getloadavg()[0]:.1f}"
    )
    print(
        "| variant | first step (s) | x ref | first step CPU (s) | x ref "
        "| median step (s) | x ref | median step CPU (s) | x ref "
        "| peak RSS (MiB) | x ref | peak above imports (MiB) | x ref "
        "| warm step CPU (s) | x ref | in-fit step CPU (s) | x ref "
        "| warm-up steps |"
    )
    print("|---" * 18 + "|")
    for variant, r, ref in rows:
        if "error" in r or "error" in ref:
            err = (r.get("error", "") + " " + ref.get("error", ""))[-300:]
            print(f"| {variant} | {err} |")
            continue
        cells = []
        for key in COLUMNS:
            digits = 3 if key.endswith("_cpu_s") and "first" not in key else 2
            cells += [f"{r[key]:.{digits}f}", f"{r[key] / ref[key]:.2f}"]
        cells.append(str(r["warm_up_steps"]))
        print(f"| {variant} | " + " | ".join(cells) + " |")
        print(
            "| reference | "
            + " | ".join(f"{ref[key]:.3f} | 1" for key in COLUMNS)
            + f" | {ref['warm_up_steps']} |"
        )


if __name__ == "__main__":
    main()
