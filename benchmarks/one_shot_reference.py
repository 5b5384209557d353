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
CPU), peak RSS (`ru_maxrss`), and the ratios to the round's reference.

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
    extra = {}
    """
)

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
    }

    def step():
        net.fit(x, y, batch_size=b, epochs=1, verbose=0)
    """
)

# variant -> (backend, step, the switch step instead of the piecewise one)
VARIANTS = {
    "tf": ("tensorflow", "compiled", False),
    "tf-switch": ("tensorflow", "compiled", True),
    "tf-eager": ("tensorflow", "eager", False),
    "jax": ("jax", "compiled", False),
    "jax-switch": ("jax", "compiled", True),
}


def run_reference(args, copy, cfg):
    spec = dict(cfg, steps=args.steps, threads=args.threads)
    env = dict(os.environ, PYTHONPATH=copy, OMP_NUM_THREADS=str(args.threads))
    proc = subprocess.run(
        [args.torch_python, "-c", REFERENCE + TIMED_STEPS, json.dumps(spec)],
        cwd=copy,
        env=env,
        capture_output=True,
        text=True,
    )
    return _result(proc, "reference")


def run_keras_nas(args, variant, cfg):
    backend, step, switch = VARIANTS[variant]
    spec = dict(
        cfg, steps=args.steps, threads=args.threads, step=step, switch=switch
    )
    env = dict(os.environ, KERAS_BACKEND=backend)
    env["OMP_NUM_THREADS"] = str(args.threads)
    env["TF_NUM_INTRAOP_THREADS"] = str(args.threads)
    env["TF_NUM_INTEROP_THREADS"] = "1"
    if backend == "jax":
        env["JAX_PLATFORMS"] = "cpu"
    proc = subprocess.run(
        [sys.executable, "-c", KERAS_NAS + TIMED_STEPS, json.dumps(spec)],
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
        "| peak RSS (MiB) | x ref |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for variant, r, ref in rows:
        if "error" in r or "error" in ref:
            err = (r.get("error", "") + " " + ref.get("error", ""))[-300:]
            print(f"| {variant} | {err} |")
            continue
        cells = []
        for key in KEYS:
            cells += [f"{r[key]:.2f}", f"{r[key] / ref[key]:.2f}"]
        print(f"| {variant} | " + " | ".join(cells) + " |")
        print(
            "| reference | "
            + " | ".join(f"{ref[key]:.2f} | 1" for key in KEYS)
            + " |"
        )


if __name__ == "__main__":
    main()
