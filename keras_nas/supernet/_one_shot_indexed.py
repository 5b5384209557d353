"""Paths of `OneShotSupernet` as integer tensors (the compiled step).

A path is encoded as one integer per *decision slot*: for NAS-Bench-201 the
op index (in `NB201_OPS`) of each of the 6 edges (shared by every cell); for
the cell space, for every node input of the normal and then the reduction
cell, `source * len(ops) + op_index`. With this encoding the supernet's
forward pass dispatches every slot with a real branch (`keras.ops.switch`:
`tf.switch_case` / `jax.lax.switch`), so a single traced or jitted function
serves every path and only the taken branch runs. Backend-neutral
(`keras.ops` only); the backends supply the `switch` used for dispatch.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from keras import ops

from keras_nas.blocks.genotypes import NB201_EDGES


def training_loss(model, x, y, y_pred, sample_weight) -> tuple[Any, Any]:
    """The model's training loss on one batch, and the optimizer's scaled one.

    Shared by the backend gradient steps; returns `(loss, scaled_loss)`.
    """
    loss = model._compute_loss(
        x=x,
        y=y,
        y_pred=y_pred,
        sample_weight=sample_weight,
        training=True,
    )
    return loss, model.optimizer.scale_loss(loss)


def slot_sizes(model) -> list[int]:
    """Number of candidates of each decision slot."""
    if model.search_space == "nb201":
        return [len(model.space_ops)] * len(NB201_EDGES)
    n_ops = len(model.space_ops)
    nodes = model._spec["num_nodes"]
    one = [(node + 2) * n_ops for node in range(nodes) for _ in range(2)]
    return one + one


def path_indices(model, path: tuple) -> np.ndarray:
    """The int32 slot vector of a (validated) Python path."""
    names = list(model.space_ops)
    if model.search_space == "nb201":
        return np.asarray([names.index(op) for op in path], dtype="int32")
    out = [
        src * len(names) + names.index(op)
        for kind in (0, 1)
        for op, src in path[kind]
    ]
    return np.asarray(out, dtype="int32")


def indices_path(model, indices) -> tuple:
    """Inverse of `path_indices`."""
    names = list(model.space_ops)
    indices = [int(v) for v in np.asarray(indices).reshape(-1)]
    if model.search_space == "nb201":
        return tuple(names[k] for k in indices)
    half = len(indices) // 2
    cells = []
    for part in (indices[:half], indices[half:]):
        cells.append(
            tuple((names[k % len(names)], k // len(names)) for k in part)
        )
    return tuple(cells)


def _drawn_sizes(model) -> tuple[list[int], bool]:
    """The sizes of the slots drawn independently, and whether the
    reduction slots mirror the normal ones (cell space, no searched
    reduction cell)."""
    sizes = slot_sizes(model)
    mirror = model.search_space == "cell"
    mirror = mirror and not model._spec["search_reduction"]
    return (sizes[: len(sizes) // 2] if mirror else sizes), mirror


def _uniform_below(shape, sizes, seed_generator):
    """Integers uniform in `[0, sizes[j])` along the last axis."""
    import keras

    u = keras.random.uniform(shape, seed=seed_generator)
    n = ops.convert_to_tensor(np.asarray(sizes, dtype="float32"))
    idx = ops.cast(ops.floor(u * n), "int32")
    return ops.minimum(idx, ops.cast(n, "int32") - 1)


def sample_indices(model, seed_generator):
    """A uniformly random path (SPOS) as an int32 tensor, in-graph.

    Every slot is drawn independently and uniformly, as `sample_values`
    draws every hyperparameter; without a searched reduction cell the
    reduction slots repeat the normal ones.
    """
    sizes, mirror = _drawn_sizes(model)
    idx = _uniform_below((len(sizes),), sizes, seed_generator)
    return ops.concatenate([idx, idx], axis=0) if mirror else idx


def num_fair_paths(model) -> int:
    """The number of paths of one strictly fair step: the number of
    candidate ops of every edge."""
    return len(model.space_ops)


def sample_fair_indices(model, seed_generator):
    """`m` paths with strict fairness (FairNAS) as an `(m, slots)` tensor.

    Chu et al., "FairNAS: Rethinking Evaluation Fairness of Weight Sharing
    Neural Architecture Search", ICCV 2021: for every slot an independent
    uniformly random permutation of its `m` candidate ops is dealt to the
    `m` paths, so every op of every slot is on exactly one path. For the
    cell space a slot also chooses its input node; that is drawn uniformly
    and independently for every path (fairness is over the ops of every
    slot). Without a searched reduction cell the reduction slots repeat
    the normal ones.
    """
    import keras

    sizes, mirror = _drawn_sizes(model)
    m = num_fair_paths(model)
    keys = keras.random.uniform((len(sizes), m), seed=seed_generator)
    op = ops.transpose(ops.cast(ops.argsort(keys, axis=-1), "int32"))
    sources = [size // m for size in sizes]
    src = _uniform_below((m, len(sizes)), sources, seed_generator)
    idx = src * m + op
    return ops.concatenate([idx, idx], axis=1) if mirror else idx


# ----------------------------------------------------------------------
# Forward pass with branch dispatch.
# ----------------------------------------------------------------------


def forward(model, x, idx, training, switch) -> Any:
    """The supernet's output on the path `idx` (int tensor).

    `switch(index, branches, operands)` runs `branches[index]`, where a
    branch is `(layer, operand_position)`, on `operands`.
    """
    for layer in model.stem:
        x = layer(x, training=training)
    if model.search_space == "cell":
        x = _forward_cells(model, x, idx, training, switch)
    else:
        x = _forward_nb201(model, x, idx, training, switch)
    for layer in model.head:
        x = layer(x, training=training)
    return x


def _forward_nb201(model, x, idx, training, switch):
    blocks = iter(model.cell_layers)
    names = model.space_ops
    cell = 0
    for stage in range(3):
        if stage:
            x = next(blocks)(x, training=training)
        for _ in range(model._spec["cells_per_stage"]):
            nodes = [x]
            for to in (1, 2, 3):
                total = None
                for e, (edge_to, src) in enumerate(NB201_EDGES):
                    if edge_to != to:
                        continue
                    branches = [
                        (model.op_layers[model._op_index[(cell, e, op)]], 0)
                        for op in names
                    ]
                    h = switch(idx[e], branches, [nodes[src]], training)
                    total = h if total is None else total + h
                nodes.append(total)
            x = nodes[3]
            cell += 1
    return x


def _forward_cells(model, x, idx, training, switch):
    s = model._spec
    names = s["ops"]
    half = 2 * s["num_nodes"]
    s0 = s1 = x
    for cell in range(s["num_cells"]):
        pre0, pre1 = model.cell_layers[2 * cell : 2 * cell + 2]
        states = [pre0(s0, training=training), pre1(s1, training=training)]
        offset = half if cell in model._reductions else 0
        for node in range(s["num_nodes"]):
            total = None
            for k in range(2):
                branches = [
                    (
                        model.op_layers[model._op_index[(cell, node, src, op)]],
                        src,
                    )
                    for src in range(node + 2)
                    for op in names
                ]
                slot = offset + 2 * node + k
                h = switch(idx[slot], branches, states[: node + 2], training)
                total = h if total is None else total + h
            states.append(total)
        s0, s1 = s1, ops.concatenate(states[2:], axis=-1)
    return s1


# ----------------------------------------------------------------------
# Which layers a path trains (tensor version of `_path_layers`).
# ----------------------------------------------------------------------


def _or(a, b):
    if a is False:
        return b
    if b is False:
        return a
    if a is True or b is True:
        return True
    return ops.logical_or(a, b)


def _and(a, b):
    if a is True:
        return b
    if b is True:
        return a
    if a is False or b is False:
        return False
    return ops.logical_and(a, b)


def liveness(model, idx) -> dict[Any, Any]:
    """Boolean (tensor or Python) liveness of every trainable layer.

    Keys: `("op", i)` for `model.op_layers[i]`, `("cell", i)` for
    `model.cell_layers[i]`, `"stem"` and `"head"`. A layer is live when the
    path runs it and its output reaches the classifier, exactly as in
    `OneShotSupernet._path_layers`.
    """
    if model.search_space == "nb201":
        return _liveness_nb201(model, idx)
    return _liveness_cells(model, idx)


def _liveness_nb201(model, idx):
    names = list(model.space_ops)
    none = names.index("none") if "none" in names else None
    active = [
        True if none is None else ops.not_equal(idx[e], none)
        for e in range(len(NB201_EDGES))
    ]
    reach = {3: True}
    for node in (2, 1, 0):
        reach[node] = False
        for e, (to, src) in enumerate(NB201_EDGES):
            if src == node:
                reach[node] = _or(reach[node], _and(active[e], reach[to]))
    cps = model._spec["cells_per_stage"]
    n_cells = 3 * cps
    out = {"stem": reach[0], "head": True}
    for i in range(len(model.cell_layers)):
        out[("cell", i)] = reach[0]
    for cell in range(n_cells):
        flowing = True if cell == n_cells - 1 else reach[0]
        for e, (to, _) in enumerate(NB201_EDGES):
            for k, op in enumerate(names):
                key = ("op", model._op_index[(cell, e, op)])
                if k == none:
                    out[key] = False
                    continue
                chosen = ops.equal(idx[e], k)
                out[key] = _and(chosen, _and(flowing, reach[to]))
    return out


def _liveness_cells(model, idx):
    s = model._spec
    names = list(s["ops"])
    n_ops = len(names)
    none = names.index("none") if "none" in names else None
    half = 2 * s["num_nodes"]
    n = s["num_cells"]
    out = {"head": True}
    pre_live = {}
    for cell in reversed(range(n)):
        out_live = True if cell == n - 1 else False
        out_live = _or(out_live, pre_live.get((cell + 1, 1), False))
        out_live = _or(out_live, pre_live.get((cell + 2, 0), False))
        offset = half if cell in model._reductions else 0
        used = {0: False, 1: False}
        for node in range(s["num_nodes"]):
            slots = [idx[offset + 2 * node + k] for k in range(2)]
            for slot in slots:
                src = ops.floor_divide(slot, n_ops)
                op_ok = True
                if none is not None:
                    op_ok = ops.not_equal(ops.mod(slot, n_ops), none)
                for k in (0, 1):
                    hit = _and(op_ok, ops.equal(src, k))
                    used[k] = _or(used[k], _and(out_live, hit))
            for src in range(node + 2):
                for j, op in enumerate(names):
                    key = ("op", model._op_index[(cell, node, src, op)])
                    if j == none:
                        out[key] = False
                        continue
                    code = src * n_ops + j
                    chosen = _or(
                        ops.equal(slots[0], code), ops.equal(slots[1], code)
                    )
                    out[key] = _and(out_live, chosen)
        for k in (0, 1):
            pre_live[(cell, k)] = used[k]
            out[("cell", 2 * cell + k)] = used[k]
    stem = _or(pre_live[(0, 0)], pre_live[(0, 1)])
    out["stem"] = _or(stem, pre_live.get((1, 0), False))
    return out


def variable_owners(model) -> list[Any]:
    """For each of `model.trainable_variables`, its liveness key."""
    owner = {}
    for key, layers in (("stem", model.stem), ("head", model.head)):
        for layer in layers:
            for v in layer.trainable_variables:
                owner[id(v)] = key
    for i, layer in enumerate(model.cell_layers):
        for v in layer.trainable_variables:
            owner[id(v)] = ("cell", i)
    for i, layer in enumerate(model.op_layers):
        for v in layer.trainable_variables:
            owner[id(v)] = ("op", i)
    return [owner.get(id(v), "head") for v in model.trainable_variables]


def variable_masks(model, idx) -> list[Any]:
    """Per trainable variable: whether the path `idx` trains it."""
    live = liveness(model, idx)
    return [live[key] for key in variable_owners(model)]


def union_masks(model, paths, num_paths: int) -> list[Any]:
    """Per trainable variable: whether any of the `num_paths` rows of
    `paths` trains it (the variables a strictly fair step updates)."""
    out = variable_masks(model, paths[0])
    for k in range(1, num_paths):
        masks = variable_masks(model, paths[k])
        out = [_or(a, b) for a, b in zip(out, masks, strict=True)]
    return out


def optimizer_slots(optimizer, variables) -> list[list]:
    """The optimizer's slot variables (momenta, ...) of each variable.

    Keras optimizers keep one list per kind of slot, indexed like their
    trainable variables; every such list found on the optimizer is used.
    """
    import keras

    n = len(getattr(optimizer, "_trainable_variables", None) or [])
    slot_lists = []
    for name, value in vars(optimizer).items():
        if (
            isinstance(value, (list, tuple))
            and n
            and len(value) == n
            and name not in ("_variables", "_trainable_variables")
            and all(isinstance(v, keras.Variable) for v in value)
        ):
            slot_lists.append(value)
    out = []
    for v in variables:
        i = optimizer._get_variable_index(v)
        out.append([slots[i] for slots in slot_lists])
    return out
