"""DARTS search step: the original PyTorch code and keras-nas side by side.

Runs the search step of the original DARTS code (Liu et al., ICLR 2019,
github.com/quark0/darts, fetched by the user; its `cnn/` directory is given
with `--darts-dir`) with a PyTorch interpreter given by `--torch-python`,
and keras-nas' `DartsSupernet` step (benchmarks/darts_step.py) on the same
configuration, interleaved: every round runs the reference and then each
keras-nas variant, each in its own subprocess. For each it prints the time
to the first step (construction + tracing/compilation + one step), the
median step time and the peak resident memory (`ru_maxrss` of the
subprocess; also less what it held before the construction, i.e. above
the framework's imports), and the ratios to the reference of the same
round.

The original code is copied to a temporary directory and patched there for
current PyTorch (`.cuda()` removed, the removed `add_(scalar, tensor)`
overloads rewritten); nothing of it enters keras-nas. PyTorch is not a
dependency of keras-nas.

Usage:

    python benchmarks/darts_reference.py --darts-dir /tmp/darts/cnn \
        --torch-python /work/venv-torch/bin/python --config micro \
        --orders 1,2 --variants tf,tf-xla,jax --threads 1

Variants: `tf` (TF graph, the `fit` default), `tf-xla`, `tf-eager`, `jax`
(the step compiled piecewise, `_darts_jax.py`), `jax-whole` (the whole
step jitted), `jax-no-tf` (`jax` with TensorFlow made unimportable, as on
an install without it: Keras imports TensorFlow on JAX where it can, e.g.
in `get_config`, and its ~460 MiB count in the `jax` peak).

`--batch` overrides the configuration's batch size on both sides (the
paper configuration's reference step takes ~9.4 GB at batch 64);
`--max-rss-gib` stops a keras-nas measurement whose resident memory passes
the limit (the row then says where it stopped).
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from darts_step import CONFIGS  # noqa: E402

# Current-PyTorch rewrites of the original code, applied to a temp copy.
PATCHES = [
    (r"\.cuda\(async=True\)", ""),
    (r"\.cuda\(\)", ""),
    (r"\.add_\(R, v\)", ".add_(v, alpha=R)"),
    (r"\.sub_\(2\*R, v\)", ".sub_(v, alpha=2*R)"),
    (r"\.sub_\(eta, ig\.data\)", ".sub_(ig.data, alpha=eta)"),
    (
        r"theta\.sub\(eta, moment\+dtheta\)",
        "theta.sub(moment+dtheta, alpha=eta)",
    ),
]

# Runs in the PyTorch interpreter, with the patched copy on sys.path.
REFERENCE = textwrap.dedent(
    """
    import json, resource, sys, time, types
    import torch
    import torch.nn as nn
    cfg = json.loads(sys.argv[1])
    torch.set_num_threads(cfg["threads"])
    torch.manual_seed(0)
    from model_search import Network
    from architect import Architect
    def rss_mib():
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) / 1024.0 for line in f
                        if line.startswith("VmRSS:"))
    rss_imported = rss_mib()
    t0, c0 = time.perf_counter(), time.process_time()
    criterion = nn.CrossEntropyLoss()
    model = Network(cfg["filters"], 10, cfg["num_cells"], criterion)
    optimizer = torch.optim.SGD(
        model.parameters(), 0.025, momentum=0.9, weight_decay=3e-4)
    args = types.SimpleNamespace(
        momentum=0.9, weight_decay=3e-4, arch_learning_rate=3e-4,
        arch_weight_decay=1e-3)
    architect = Architect(model, args)
    b, (h, w, c) = cfg["batch"], cfg["shape"]
    def batch():
        return torch.randn(b, c, h, w), torch.randint(0, 10, (b,))
    def step():
        (xt, yt), (xv, yv) = batch(), batch()
        model.train()
        if cfg["order"]:
            architect.step(xt, yt, xv, yv, 0.025, optimizer,
                           unrolled=cfg["order"] == 2)
        optimizer.zero_grad()
        loss = criterion(model(xt), yt)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        optimizer.step()
    extra = {"params": sum(p.numel() for p in model.parameters()),
             "rss_before_build_mib": rss_imported}
    """
)

# Ends a child script that has run `import json, resource, time`, taken
# `t0, c0` (wall and CPU clocks) before the construction and defined
# `step()`, `cfg` and `extra` (a dict of more figures): runs the first
# step and `cfg["steps"]` timed ones, prints the RESULT line (the dict
# `timed`, which a script appended after it may extend and print again).
TIMED_STEPS = textwrap.dedent(
    """
    step()
    first = time.perf_counter() - t0
    first_cpu = time.process_time() - c0
    times, cpu_times = [], []
    for _ in range(cfg["steps"]):
        t, t_cpu = time.perf_counter(), time.process_time()
        step()
        times.append(time.perf_counter() - t)
        cpu_times.append(time.process_time() - t_cpu)
    times.sort()
    cpu_times.sort()
    timed = dict(
        extra,
        first_step_s=first,
        first_step_cpu_s=first_cpu,
        step_s_median=times[len(times) // 2],
        step_cpu_s_median=cpu_times[len(cpu_times) // 2],
        peak_rss_mib=resource.getrusage(
            resource.RUSAGE_SELF).ru_maxrss / 1024.0,
    )
    print("RESULT " + json.dumps(timed))
    """
)

# Wall and CPU (`time.process_time`, all threads of the process) figures;
# the peak resident memory, whole and above what the process held before
# the construction (the framework's imports: TensorFlow's alone is ~770
# MiB, PyTorch's ~300).
KEYS = (
    "first_step_s",
    "first_step_cpu_s",
    "step_s_median",
    "step_cpu_s_median",
    "peak_rss_mib",
    "peak_above_imports_mib",
)

VARIANTS = {
    "tf": ("tensorflow", []),
    "tf-xla": ("tensorflow", ["--jit"]),
    "tf-eager": ("tensorflow", ["--eager"]),
    "jax": ("jax", []),
    "jax-whole": ("jax", ["--jax-whole"]),
    "jax-no-tf": ("jax", ["--without-tensorflow"]),
}


def _patched_copy(darts_dir):
    tmp = tempfile.mkdtemp(prefix="darts_ref_")
    for name in os.listdir(darts_dir):
        if name.endswith(".py"):
            with open(os.path.join(darts_dir, name)) as f:
                text = f.read()
            for pattern, repl in PATCHES:
                text = re.sub(pattern, repl, text)
            with open(os.path.join(tmp, name), "w") as f:
                f.write(text)
    return tmp


def _result(proc, what):
    lines = [s for s in proc.stdout.splitlines() if s.startswith("RESULT")]
    if lines and proc.returncode == 3:  # darts_step's memory limit
        r = json.loads(lines[-1][len("RESULT ") :])
        if "exceeded_mib" in r:
            return {
                "error": f"{what} stopped at {r['rss_mib']:.0f} MiB "
                f"during {r['phase']}"
            }
    if proc.returncode or not lines:
        return {"error": f"{what} failed: {proc.stderr[-1500:]}"}
    r = json.loads(lines[-1][len("RESULT ") :])
    r["peak_above_imports_mib"] = (
        r["peak_rss_mib"] - r["rss_before_build_mib"]
    )
    return r


def run_reference(args, copy, order, cfg):
    spec = dict(cfg, order=order, steps=args.steps, threads=args.threads)
    env = dict(os.environ, PYTHONPATH=copy, OMP_NUM_THREADS=str(args.threads))
    proc = subprocess.run(
        [args.torch_python, "-c", REFERENCE + TIMED_STEPS, json.dumps(spec)],
        cwd=copy,
        env=env,
        capture_output=True,
        text=True,
    )
    return _result(proc, "reference")


def run_keras_nas(args, variant, order):
    backend, flags = VARIANTS[variant]
    cmd = [sys.executable, os.path.join(HERE, "darts_step.py")]
    cmd += ["--backend", backend, "--mode", str(order)]
    cmd += ["--config", args.config, "--steps", "1", "--warmup", "1"]
    cmd += ["--repeats", str(args.steps)] + flags
    if args.batch:
        cmd += ["--batch", str(args.batch)]
    if args.max_rss_gib:
        cmd += ["--max-rss-gib", str(args.max_rss_gib)]
    env = dict(os.environ, KERAS_BACKEND=backend)
    if backend == "jax":
        env["JAX_PLATFORMS"] = "cpu"
    if args.threads:
        env["OMP_NUM_THREADS"] = str(args.threads)
        env["TF_NUM_INTRAOP_THREADS"] = str(args.threads)
        env["TF_NUM_INTEROP_THREADS"] = "1"
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    r = _result(proc, variant)
    if "error" not in r:
        r["first_step_s"] = r["build_s"] + r["first_call_s"]
        r["first_step_cpu_s"] = r["build_cpu_s"] + r["first_call_cpu_s"]
    return r


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--darts-dir", required=True, help="the original cnn/")
    p.add_argument("--torch-python", required=True)
    p.add_argument("--config", choices=sorted(CONFIGS), default="micro")
    p.add_argument("--orders", default="1,2")
    p.add_argument("--variants", default="tf,tf-xla,jax")
    p.add_argument("--steps", type=int, default=5, help="timed steps")
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--batch", type=int, default=None, help="overrides it")
    p.add_argument("--max-rss-gib", type=float, default=None)
    args = p.parse_args()
    cfg = dict(CONFIGS[args.config])
    if args.batch:
        cfg["batch"] = args.batch
    copy = _patched_copy(args.darts_dir)
    rows = []
    try:
        for order in [int(o) for o in args.orders.split(",")]:
            for rnd in range(args.rounds):
                ref = run_reference(args, copy, order, cfg)
                print(json.dumps({"order": order, "reference": ref}))
                for variant in args.variants.split(","):
                    r = run_keras_nas(args, variant, order)
                    print(json.dumps({"order": order, variant: r}))
                    rows.append((order, rnd, variant, r, ref))
    finally:
        shutil.rmtree(copy, ignore_errors=True)
    print(
        f"\nconfig {args.config}, batch {cfg['batch']}, "
        f"{args.threads} thread(s), "
        f"load {os.getloadavg()[0]:.1f}"
    )
    print(
        "| order | variant | first step (s) | x ref | first step CPU (s) "
        "| x ref | median step (s) | x ref | median step CPU (s) | x ref "
        "| peak RSS (MiB) | x ref | peak above imports (MiB) | x ref |"
    )
    print("|---" * 14 + "|")
    for order, _, variant, r, ref in rows:
        if "error" in r or "error" in ref:
            print(
                f"| {order} | {variant} | {r.get('error', '')[:60]} "
                f"{ref.get('error', '')[:60]} |"
            )
            continue
        cells = []
        for key in KEYS:
            cells += [f"{r[key]:.2f}", f"{r[key] / ref[key]:.2f}"]
        print(f"| {order} | {variant} | " + " | ".join(cells) + " |")
        print(
            f"| {order} | reference | "
            + " | ".join(f"{ref[key]:.2f} | 1" for key in KEYS)
            + " |"
        )


if __name__ == "__main__":
    main()
