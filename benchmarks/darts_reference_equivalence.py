"""Compares keras-nas' DARTS with the original PyTorch code, weight for weight.

The original DARTS code (Liu et al., "DARTS: Differentiable Architecture
Search", ICLR 2019; github.com/quark0/darts, `cnn/`) and keras-nas are given
identical weights (made by keras-nas, copied into the PyTorch modules with a
strict `load_state_dict`, so every tensor of the original is covered) and
identical inputs, and their outputs are compared:

1. every candidate op (`OPS` of `cnn/operations.py`: the 8 DARTS ops and
   `conv_7x1_1x7`) at stride 1 and 2, affine or not, on 8x8 and 7x7 inputs
   (the original's `FactorizedReduce` needs even sizes), in inference mode
   (random moving statistics) and training mode (batch statistics);
2. a search cell (`model_search.Cell`), normal and reduction, after a
   normal and after a reduction cell;
3. the search network (`model_search.Network`, 8 filters, 5 cells, 16x16);
4. the DARTS_V2 evaluation network (`model.NetworkCIFAR`, 36 filters, 20
   cells, 32x32: the paper's CIFAR-10 network, 3.3M weights);
5. two search steps of the small search network as `train_search.py` runs
   them (the architect's step on a validation batch, then SGD with momentum
   0.9, weight decay 3e-4 and clipping at 5 on a training batch), first
   order and second order (`--unrolled`), comparing `alpha` and every weight
   after each step; with keras-nas' defaults (`TorchSGD`, `TorchAdam`) and,
   for reference, with Keras' own SGD and Adam (epsilon 1e-7).

Max abs differences are printed (target: < 1e-4 in float32; `--float64`
runs both sides in float64 to tell rounding from real differences).

Usage (PyTorch in its own environment; keras-nas never imports it):

    git clone https://github.com/quark0/darts /tmp/darts_orig
    python -m venv /tmp/torch && /tmp/torch/bin/pip install torch numpy
    python benchmarks/darts_reference_equivalence.py \\
        --darts-dir /tmp/darts_orig --torch-python /tmp/torch/bin/python

The PyTorch half (`_darts_torch_side.py`) runs in a subprocess and patches
the original in memory to run on a CPU. `--quick` skips the 20-cell
DARTS_V2 network; `--parts` picks parts (`ops,cells,search,network,steps,
keras-steps`: the last with Keras' own SGD and Adam).
`--ops-version 1` builds keras-nas' ops as before issue #18 (Keras 'same'
padding, epsilon 1e-3, no batch norm after search pools) to show what the
alignment changed.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import keras
import numpy as np

from keras_nas.blocks import DARTS_V2, build_network
from keras_nas.blocks import ops as nas_ops
from keras_nas.supernet.darts import DartsSupernet, SearchCell, search_data
from keras_nas.supernet.torch_style import TorchAdam, TorchSGD

HERE = os.path.dirname(os.path.abspath(__file__))
OPS = (
    "none",
    "max_pool_3x3",
    "avg_pool_3x3",
    "skip_connect",
    "sep_conv_3x3",
    "sep_conv_5x5",
    "dil_conv_3x3",
    "dil_conv_5x5",
    "conv_7x1_1x7",
)


# ------------------------------------------------ keras -> torch weights


def _np(v):
    return np.asarray(keras.ops.convert_to_numpy(v), keras.config.floatx())


def _bn(bn, prefix, out):
    if bn.scale:
        out[prefix + "weight"] = _np(bn.gamma)
    if bn.center:
        out[prefix + "bias"] = _np(bn.beta)
    out[prefix + "running_mean"] = _np(bn.moving_mean)
    out[prefix + "running_var"] = _np(bn.moving_variance)


def _conv(conv, key, out):
    out[key] = _np(conv.kernel).transpose(3, 2, 0, 1)


def _depthwise(conv, key, out):
    out[key] = _np(conv.kernel).transpose(2, 3, 0, 1)


def op_state(op, prefix, out):
    """The torch state of one op (names of `cnn/operations.py`)."""
    if isinstance(op, keras.Sequential):  # a search pool and its BN
        op_state(op.layers[0], prefix + "0.", out)
        _bn(op.layers[1], prefix + "1.", out)
    elif isinstance(op, nas_ops.ReLUConvBN):
        if op.factorized:  # nn.Sequential(ReLU, conv, conv, BN)
            _conv(op.convs[0], prefix + "1.weight", out)
            _conv(op.convs[1], prefix + "2.weight", out)
            _bn(op.bn, prefix + "3.", out)
        else:
            _conv(op.convs[0], prefix + "op.1.weight", out)
            _bn(op.bn, prefix + "op.2.", out)
    elif isinstance(op, nas_ops.SepConv):  # also DilConv
        index = 1
        for r in range(op.repeats):
            _depthwise(op.depthwise[r], f"{prefix}op.{index}.weight", out)
            _conv(op.pointwise[r], f"{prefix}op.{index + 1}.weight", out)
            _bn(op.bns[r], f"{prefix}op.{index + 2}.", out)
            index += 4
    elif isinstance(op, nas_ops.FactorizedReduce):
        _conv(op.conv_1, prefix + "conv_1.weight", out)
        _conv(op.conv_2, prefix + "conv_2.weight", out)
        _bn(op.bn, prefix + "bn.", out)
    # Pool, Identity, Zero: no tensors.


def search_cell_state(cell, prefix, out):
    op_state(cell.preprocess0, prefix + "preprocess0.", out)
    op_state(cell.preprocess1, prefix + "preprocess1.", out)
    for e, edge in enumerate(cell.edges):
        for op, k in zip(edge.candidates, edge._active, strict=True):
            op_state(op, f"{prefix}_ops.{e}._ops.{k}.", out)


def supernet_state(model, out, prefix=""):
    _conv(model.stem_conv, prefix + "stem.0.weight", out)
    _bn(model.stem_bn, prefix + "stem.1.", out)
    for i, cell in enumerate(model.cells):
        search_cell_state(cell, f"{prefix}cells.{i}.", out)
    out[prefix + "classifier.weight"] = _np(model.classifier.kernel).T
    out[prefix + "classifier.bias"] = _np(model.classifier.bias)


def network_state(model, num_cells, out, prefix=""):
    _conv(model.get_layer("stem_conv"), prefix + "stem.0.weight", out)
    _bn(model.get_layer("stem_bn"), prefix + "stem.1.", out)
    for i in range(num_cells):
        cell = model.get_layer(f"cell_{i}")
        p = f"{prefix}cells.{i}."
        op_state(cell.preprocess0, p + "preprocess0.", out)
        op_state(cell.preprocess1, p + "preprocess1.", out)
        for j, op in enumerate(cell.edge_ops):
            op_state(op, f"{p}_ops.{j}.", out)
    dense = model.get_layer("predictions")
    out[prefix + "classifier.weight"] = _np(dense.kernel).T
    out[prefix + "classifier.bias"] = _np(dense.bias)


def randomize_batch_norms(layer, rng):
    """Random moving statistics (and scale/offset) for every BN."""
    for sub in layer._flatten_layers(include_self=True, recursive=True):
        if isinstance(sub, keras.layers.BatchNormalization):
            n = sub.moving_mean.shape[0]
            sub.moving_mean.assign(
                rng.normal(0, 0.2, n).astype(keras.config.floatx())
            )
            sub.moving_variance.assign(
                rng.uniform(0.5, 2.0, n).astype(keras.config.floatx())
            )
            if sub.scale:
                sub.gamma.assign(
                    rng.uniform(0.5, 1.5, n).astype(keras.config.floatx())
                )
            if sub.center:
                sub.beta.assign(
                    rng.normal(0, 0.2, n).astype(keras.config.floatx())
                )


def nchw(x):
    return np.ascontiguousarray(np.asarray(x).transpose(0, 3, 1, 2))


def _both_modes(fn):
    """Inference first: the training call moves the moving statistics."""
    return {"eval": _np(fn(False)), "train": _np(fn(True))}


# --------------------------------------------------------------- cases


class Cases:
    def __init__(self, seed):
        self.rng = np.random.default_rng(seed)
        self.specs = []
        self.arrays = {}
        self.keras = {}  # case -> {name: keras output, NCHW or logits}

    def add(self, spec, arrays, outputs):
        case = spec["case"]
        self.specs.append(spec)
        for key, value in arrays.items():
            self.arrays[f"{case}/{key}"] = np.asarray(value)
        self.keras[case] = outputs


def add_ops(cases, channels=4, batch=2):
    for name in OPS:
        for strides in (1, 2):
            for affine in (False, True):
                for size in (8, 7):
                    if name == "skip_connect" and strides == 2 and size % 2:
                        continue  # the original's FactorizedReduce: even
                    op = nas_ops.get_op(name, channels, strides, affine)
                    x = cases.rng.normal(size=(batch, size, size, channels))
                    x = x.astype(keras.config.floatx())
                    op.build(x.shape)
                    randomize_batch_norms(op, cases.rng)
                    state = {}
                    op_state(op, "", state)
                    outs = _both_modes(lambda t, op=op, x=x: op(x, training=t))
                    case = f"op/{name}/s{strides}/a{int(affine)}/{size}"
                    cases.add(
                        {
                            "case": case,
                            "kind": "op",
                            "op": name,
                            "channels": channels,
                            "strides": strides,
                            "affine": affine,
                        },
                        {"x": nchw(x)}
                        | {f"state/{k}": v for k, v in state.items()},
                        {k: nchw(v) for k, v in outs.items()},
                    )


def add_search_cells(cases, channels=4, size=8, batch=2):
    for reduction, reduction_prev in ((False, False), (True, False),
                                      (False, True)):  # fmt: skip
        cell = SearchCell(
            channels,
            reduction=reduction,
            reduction_prev=reduction_prev,
            ops=OPS[:-1],
        )
        c_pp, c_p = 3 * channels, 2 * channels
        size0 = 2 * size if reduction_prev else size
        s0 = cases.rng.normal(size=(batch, size0, size0, c_pp))
        s1 = cases.rng.normal(size=(batch, size, size, c_p))
        s0, s1 = (
            s0.astype(keras.config.floatx()),
            s1.astype(keras.config.floatx()),
        )
        alpha = cases.rng.normal(size=(14, 8)).astype(keras.config.floatx())
        w = np.exp(alpha) / np.exp(alpha).sum(-1, keepdims=True)
        cell.build([s0.shape, s1.shape])
        randomize_batch_norms(cell, cases.rng)
        state = {}
        search_cell_state(cell, "", state)
        outs = _both_modes(
            lambda t, c=cell, s=(s0, s1), w=w: c(list(s), w, training=t)
        )
        case = f"search_cell/r{int(reduction)}/rp{int(reduction_prev)}"
        cases.add(
            {
                "case": case,
                "kind": "search_cell",
                "num_nodes": 4,
                "channels": channels,
                "c_prev_prev": c_pp,
                "c_prev": c_p,
                "reduction": reduction,
                "reduction_prev": reduction_prev,
            },
            {"s0": nchw(s0), "s1": nchw(s1), "weights": w}
            | {f"state/{k}": v for k, v in state.items()},
            {k: nchw(v) for k, v in outs.items()},
        )


SEARCH = {"channels": 8, "num_cells": 5, "num_classes": 10, "size": 16}


def _supernet(seed, **kwargs):
    keras.utils.set_random_seed(seed)
    return DartsSupernet(
        (SEARCH["size"], SEARCH["size"], 3),
        SEARCH["num_classes"],
        filters=SEARCH["channels"],
        num_cells=SEARCH["num_cells"],
        seed=seed,
        **kwargs,
    )


def _supernet_arrays(model):
    state = {}
    supernet_state(model, state)
    return {f"state/{k}": v for k, v in state.items()} | {
        "alpha_normal": _np(model.alpha_normal),
        "alpha_reduce": _np(model.alpha_reduce),
    }


def add_search_net(cases, batch=4):
    model = _supernet(1)
    # Stronger alphas than the 1e-3 start, so that they matter.
    model.alpha_normal.assign(cases.rng.normal(size=(14, 8)))
    model.alpha_reduce.assign(cases.rng.normal(size=(14, 8)))
    randomize_batch_norms(model, cases.rng)
    x = cases.rng.normal(size=(batch, SEARCH["size"], SEARCH["size"], 3))
    x = x.astype(keras.config.floatx())
    arrays = _supernet_arrays(model)
    outs = _both_modes(lambda t: model(x, training=t))
    spec = {"case": "search_net", "kind": "search_net"} | SEARCH
    cases.add(spec, arrays | {"x": nchw(x)}, outs)


def add_eval_net(cases, channels=36, num_cells=20, size=32, batch=2):
    keras.utils.set_random_seed(2)
    model = build_network(
        DARTS_V2, (size, size, 3), 10, filters=channels, num_cells=num_cells
    )
    randomize_batch_norms(model, cases.rng)
    x = cases.rng.normal(size=(batch, size, size, 3)).astype(
        keras.config.floatx()
    )
    dense = model.get_layer("predictions")
    features = keras.Model(model.inputs, dense.input)

    def logits(training):
        f = _np(features(x, training=training))
        return f @ _np(dense.kernel) + _np(dense.bias)

    state = {}
    network_state(model, num_cells, state)
    outs = _both_modes(logits)
    spec = {
        "case": "eval_net",
        "kind": "eval_net",
        "genotype": "DARTS_V2",
        "channels": channels,
        "num_cells": num_cells,
        "num_classes": 10,
        "weights": int(model.count_params()),
    }
    cases.add(
        spec,
        {"x": nchw(x)} | {f"state/{k}": v for k, v in state.items()},
        outs,
    )


STEP = {
    "learning_rate": 0.025,
    "weight_decay": 3e-4,
    "arch_learning_rate": 3e-4,
    "arch_weight_decay": 1e-3,
    "grad_clip": 5.0,
    "steps": 2,
}


def add_steps(cases, order, optimizers, batch=8):
    model = _supernet(3, order=order)
    arrays = _supernet_arrays(model)
    if optimizers == "torch":
        weights_opt = TorchSGD(STEP["learning_rate"], momentum=0.9)
        arch_opt = TorchAdam(
            STEP["arch_learning_rate"], beta_1=0.5, epsilon=1e-8
        )
    else:
        weights_opt = keras.optimizers.SGD(STEP["learning_rate"], 0.9)
        arch_opt = keras.optimizers.Adam(STEP["arch_learning_rate"], 0.5)
    # Eagerly: a few steps of a small model, no tracing on a busy CPU.
    model.compile(
        optimizer=weights_opt, arch_optimizer=arch_opt, run_eagerly=True
    )
    shape = (batch, SEARCH["size"], SEARCH["size"], 3)
    outputs = {}
    for step in range(STEP["steps"]):
        xt = cases.rng.normal(size=shape).astype(keras.config.floatx())
        xv = cases.rng.normal(size=shape).astype(keras.config.floatx())
        yt = cases.rng.integers(0, 10, batch).astype("int32")
        yv = cases.rng.integers(0, 10, batch).astype("int32")
        arrays |= {
            f"xt{step}": nchw(xt),
            f"yt{step}": yt,
            f"xv{step}": nchw(xv),
            f"yv{step}": yv,
        }
        # The architecture gradient first (no update; BN moving statistics
        # move, which training-mode passes do not read), then the step.
        grads = model.arch_gradients((xt, yt), (xv, yv))
        outputs[f"grad_normal{step}"] = grads[0]
        outputs[f"grad_reduce{step}"] = grads[1]
        data = search_data((xt, yt), (xv, yv), batch, shuffle=False)
        model.fit(data, epochs=1, verbose=0)
        outputs[f"alpha_normal{step}"] = _np(model.alpha_normal)
        outputs[f"alpha_reduce{step}"] = _np(model.alpha_reduce)
        state = {}
        supernet_state(model, state)
        for key, value in state.items():
            if "running_" not in key:
                outputs[f"param{step}/{key}"] = value
    spec = {
        "case": f"step/order{order}/{optimizers}",
        "kind": "step",
        "order": order,
    }
    cases.add(spec | SEARCH | STEP, arrays, outputs)


# ------------------------------------------------------------ compare


def log(message):
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr)
    sys.stderr.flush()


def run_torch(cases, args):
    with tempfile.TemporaryDirectory() as tmp:
        paths = [os.path.join(tmp, n) for n in ("c.json", "i.npz", "o.npz")]
        with open(paths[0], "w") as f:
            json.dump(cases.specs, f)
        np.savez(paths[1], **cases.arrays)
        script = os.path.join(HERE, "_darts_torch_side.py")
        cmd = [args.torch_python, script, args.darts_dir] + paths
        if args.ops_version < 2:
            cmd.append("--lenient")  # no BN after the search pools
        if args.float64:
            cmd.append("--float64")
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode:
            sys.exit(f"PyTorch side failed:\n{proc.stderr[-4000:]}")
        with np.load(paths[2]) as data:
            return {k: data[k] for k in data.files}


def _max_diff(a, b):
    a, b = np.asarray(a, "float64"), np.asarray(b, "float64")
    if a.shape != b.shape:
        return float("inf"), 0.0
    return float(np.max(np.abs(a - b))), float(np.max(np.abs(b)))


def report(cases, torch_out, tolerance):
    rows, worst = [], 0.0
    for spec in cases.specs:
        case = spec["case"]
        if spec["kind"] != "step":
            for mode, ours in cases.keras[case].items():
                d, scale = _max_diff(ours, torch_out[f"{case}/{mode}"])
                rows.append((f"{case} [{mode}]", d, scale))
            continue
        for step in range(spec["steps"]):
            for kind in ("normal", "reduce"):
                key = f"grad_{kind}{step}"
                d, scale = _max_diff(
                    cases.keras[case][key], torch_out[f"{case}/{key}"]
                )
                rows.append(
                    (f"{case} step {step} d loss/d alpha_{kind}", d, scale)
                )
            for kind in ("normal", "reduce"):
                key = f"alpha_{kind}{step}"
                d, _ = _max_diff(
                    cases.keras[case][key], torch_out[f"{case}/{key}"]
                )
                init = cases.arrays[f"{case}/alpha_{kind}"]
                moved = np.max(np.abs(torch_out[f"{case}/{key}"] - init))
                rows.append((f"{case} step {step} alpha_{kind}", d, moved))
            diffs = [
                _max_diff(v, torch_out[f"{case}/{k}"])[0]
                for k, v in cases.keras[case].items()
                if k.startswith(f"param{step}/")
            ]
            rows.append((f"{case} step {step} all weights", max(diffs), 0))
    for name, d, scale in rows:
        flag = "ok" if d < tolerance else "DIFFERS"
        print(f"{name:52s} max|diff| {d:10.3e}  (scale {scale:9.3e})  {flag}")
        if "/keras" not in name:
            worst = max(worst, d)
    return worst


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--darts-dir", required=True)
    parser.add_argument("--torch-python", required=True)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument(
        "--parts",
        default="ops,cells,search,network,steps,keras-steps",
        help="comma-separated parts to compare (default: all)",
    )
    parser.add_argument("--ops-version", type=int, default=2)
    parser.add_argument("--tolerance", type=float, default=1e-4)
    parser.add_argument(
        "--float64",
        action="store_true",
        help="both sides in float64 (separates rounding from differences)",
    )
    args = parser.parse_args()
    if args.float64:
        keras.config.set_floatx("float64")
        keras.config.set_dtype_policy("float64")
    start = time.time()
    cases = Cases(seed=0)
    parts = set(args.parts.split(","))
    if args.quick:
        parts.discard("network")
    with nas_ops._version_scope(args.ops_version):
        if "ops" in parts:
            log("ops")
            add_ops(cases)
        if "cells" in parts:
            log("search cells")
            add_search_cells(cases)
        if "search" in parts:
            log("search network")
            add_search_net(cases)
        if "network" in parts:
            log("DARTS_V2 network")
            add_eval_net(cases)
        for order in (1, 2):
            for optimizers in ("torch", "keras"):
                if {"torch": "steps", "keras": "keras-steps"}[
                    optimizers
                ] not in parts:
                    continue
                log(f"search steps, order {order}, {optimizers} optimizers")
                add_steps(cases, order, optimizers)
    log("PyTorch side")
    torch_out = run_torch(cases, args)
    worst = report(cases, torch_out, args.tolerance)
    print(
        f"keras {keras.__version__} ({keras.backend.backend()}, "
        f"{keras.config.floatx()}), "
        f"ops_version={args.ops_version}: worst max|diff| {worst:.3e} "
        f"(target < {args.tolerance:g}; the '/keras' optimizer rows, "
        "Keras' own SGD and Adam, are for reference and not counted) "
        f"in {time.time() - start:.0f} s"
    )


if __name__ == "__main__":
    main()
