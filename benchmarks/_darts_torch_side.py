"""The PyTorch half of `darts_reference_equivalence.py` (run by it).

Runs the original DARTS code (github.com/quark0/darts, `cnn/`) on the
weights and inputs that the Keras half exported, and writes its outputs.
It needs PyTorch and NumPy only (not keras-nas) and is started by the
Keras half as

    TORCH_PYTHON _darts_torch_side.py DARTS_DIR CASES.json IN.npz OUT.npz

The original code is of PyTorch 0.3/0.4 and CUDA; this script patches, at
run time and in memory only, what stops it on a CPU: `.cuda()` returns its
tensor or module unchanged, and `torchvision` (imported by `utils.py` for
data transforms, unused here) is a stub module. Nothing of the original is
copied into keras-nas.
"""

import argparse
import contextlib
import io
import json
import os
import sys
import types

import numpy as np
import torch
from torch import nn


def _load_original(darts_dir):
    torch.Tensor.cuda = lambda self, *args, **kwargs: self
    nn.Module.cuda = lambda self, *args, **kwargs: self
    stub = types.ModuleType("torchvision")
    stub.transforms = types.ModuleType("torchvision.transforms")
    sys.modules.setdefault("torchvision", stub)
    sys.modules.setdefault("torchvision.transforms", stub.transforms)
    sys.path.insert(0, os.path.join(darts_dir, "cnn"))
    import architect
    import genotypes
    import model
    import model_search
    import operations

    return types.SimpleNamespace(
        architect=architect,
        genotypes=genotypes,
        model=model,
        model_search=model_search,
        operations=operations,
    )


_LENIENT = False


def _load_state(module, arrays):
    """Loads `arrays` (torch names) into `module`, strictly: every tensor
    of the module but `num_batches_tracked` must be given, no other (with
    `--lenient`, the moving statistics of batch norms keras-nas lacks, as
    with `ops_version=1`, keep PyTorch's initial 0 and 1)."""
    if any(np.asarray(a).dtype == np.float64 for a in arrays.values()):
        module.double()  # --float64
    own = module.state_dict()
    extra = sorted(set(arrays) - set(own))
    missing = sorted(
        k
        for k in own
        if k not in arrays
        and not k.endswith("num_batches_tracked")
        and not (_LENIENT and k.endswith(("running_mean", "running_var")))
    )
    if extra or missing:
        raise KeyError(f"state mismatch: missing={missing} extra={extra}")
    state = {}
    for key, value in own.items():
        if key.endswith("num_batches_tracked") or key not in arrays:
            state[key] = value
            continue
        tensor = torch.from_numpy(np.asarray(arrays[key]))
        if tuple(tensor.shape) != tuple(value.shape):
            raise ValueError(
                f"{key}: shape {tuple(tensor.shape)} != {tuple(value.shape)}"
            )
        state[key] = tensor
    module.load_state_dict(state, strict=True)


def _arrays(data, case, prefix):
    start = f"{case}/{prefix}"
    return {k[len(start) :]: data[k] for k in data.files if k.startswith(start)}


def _both_modes(module, fn, out, case):
    with torch.no_grad():
        module.eval()
        out[f"{case}/eval"] = fn().numpy()
        module.train()
        out[f"{case}/train"] = fn().numpy()


def _run_op(orig, spec, data, out):
    case = spec["case"]
    op = orig.operations.OPS[spec["op"]](
        spec["channels"], spec["strides"], spec["affine"]
    )
    _load_state(op, _arrays(data, case, "state/"))
    x = torch.from_numpy(data[f"{case}/x"])
    _both_modes(op, lambda: op(x), out, case)


def _run_search_cell(orig, spec, data, out):
    case = spec["case"]
    cell = orig.model_search.Cell(
        spec["num_nodes"],
        spec["num_nodes"],
        spec["c_prev_prev"],
        spec["c_prev"],
        spec["channels"],
        spec["reduction"],
        spec["reduction_prev"],
    )
    _load_state(cell, _arrays(data, case, "state/"))
    s0 = torch.from_numpy(data[f"{case}/s0"])
    s1 = torch.from_numpy(data[f"{case}/s1"])
    w = torch.from_numpy(data[f"{case}/weights"])
    _both_modes(cell, lambda: cell(s0, s1, w), out, case)


def _search_network(orig, spec, data, case):
    with contextlib.redirect_stdout(io.StringIO()):
        net = orig.model_search.Network(
            spec["channels"],
            spec["num_classes"],
            spec["num_cells"],
            nn.CrossEntropyLoss(),
        )
    _load_state(net, _arrays(data, case, "state/"))
    with torch.no_grad():
        net.alphas_normal.copy_(torch.from_numpy(data[f"{case}/alpha_normal"]))
        net.alphas_reduce.copy_(torch.from_numpy(data[f"{case}/alpha_reduce"]))
    return net


def _run_search_net(orig, spec, data, out):
    case = spec["case"]
    net = _search_network(orig, spec, data, case)
    x = torch.from_numpy(data[f"{case}/x"])
    _both_modes(net, lambda: net(x), out, case)


def _run_eval_net(orig, spec, data, out):
    case = spec["case"]
    genotype = getattr(orig.genotypes, spec["genotype"])
    with contextlib.redirect_stdout(io.StringIO()):
        net = orig.model.NetworkCIFAR(
            spec["channels"],
            spec["num_classes"],
            spec["num_cells"],
            False,
            genotype,
        )
    net.drop_path_prob = 0.0
    _load_state(net, _arrays(data, case, "state/"))
    x = torch.from_numpy(data[f"{case}/x"])
    _both_modes(net, lambda: net(x)[0], out, case)


def _run_step(orig, spec, data, out):
    """Search steps as in train_search.py: the architect's step on the
    validation batch, then one SGD step of the weights (clipped)."""
    case = spec["case"]
    net = _search_network(orig, spec, data, case)
    args = types.SimpleNamespace(
        momentum=0.9,
        weight_decay=spec["weight_decay"],
        arch_learning_rate=spec["arch_learning_rate"],
        arch_weight_decay=spec["arch_weight_decay"],
    )
    architect = orig.architect.Architect(net, args)
    lr = spec["learning_rate"]
    optimizer = torch.optim.SGD(
        net.parameters(),
        lr,
        momentum=0.9,
        weight_decay=spec["weight_decay"],
    )
    net.train()
    for step in range(spec["steps"]):

        def batch(name, step=step):
            return torch.from_numpy(data[f"{case}/{name}{step}"])

        xt, yt = batch("xt"), batch("yt").long()
        xv, yv = batch("xv"), batch("yv").long()
        architect.step(xt, yt, xv, yv, lr, optimizer, spec["order"] == 2)
        # The raw gradient (Adam adds the weight decay to a copy).
        for kind in ("normal", "reduce"):
            grad = getattr(net, f"alphas_{kind}").grad
            out[f"{case}/grad_{kind}{step}"] = grad.detach().numpy().copy()
        optimizer.zero_grad()
        loss = net._loss(xt, yt)
        loss.backward()
        nn.utils.clip_grad_norm_(net.parameters(), spec["grad_clip"])
        optimizer.step()
        # Copies: the optimizers update these tensors in place.
        for kind in ("normal", "reduce"):
            alpha = getattr(net, f"alphas_{kind}")
            out[f"{case}/alpha_{kind}{step}"] = alpha.detach().numpy().copy()
        for key, value in net.named_parameters():
            out[f"{case}/param{step}/{key}"] = value.detach().numpy().copy()


_RUNNERS = {
    "op": _run_op,
    "search_cell": _run_search_cell,
    "search_net": _run_search_net,
    "eval_net": _run_eval_net,
    "step": _run_step,
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("darts_dir")
    parser.add_argument("cases")
    parser.add_argument("inputs")
    parser.add_argument("outputs")
    parser.add_argument("--lenient", action="store_true")
    parser.add_argument("--float64", action="store_true")
    args = parser.parse_args()
    if args.float64:  # also the models the architect builds (`new()`)
        torch.set_default_dtype(torch.float64)
    global _LENIENT
    _LENIENT = args.lenient
    torch.manual_seed(0)
    torch.set_num_threads(1)  # small tensors; no spinning threads
    orig = _load_original(args.darts_dir)
    with open(args.cases) as f:
        cases = json.load(f)
    data = np.load(args.inputs)
    out = {}
    for spec in cases:
        _RUNNERS[spec["kind"]](orig, spec, data, out)
    np.savez(args.outputs, **out)


if __name__ == "__main__":
    main()
