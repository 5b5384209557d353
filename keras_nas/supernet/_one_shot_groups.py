"""A decision slot of the compiled one-shot step, dispatched by kind of op.

A slot of the cell space chooses an (input, op) pair among `(2 + node) *
len(ops)` branches (14 to 35 with 7 ops); a plain `tf.switch_case` /
`jax.lax.switch` over them holds every branch's op graph, and the gradient
of a switch makes every branch output (zeros for) the intermediates of all
the others, so the traced step grew with the square of the branches (a
2-cell, 4-filter supernet: 151 s CPU to the first TensorFlow step, 5.9 GB;
benchmarks/RESULTS.md). Yet the branches of a slot that run the same kind
of layer (same class and configuration, same input and weight shapes; e.g.
`sep_conv_3x3` on any of the node's stride-1 inputs) differ only in their
weights and their input.

`slot_groups` partitions a slot's branches into such *groups*. The compiled
step switches over the groups only (7 branches for a normal cell, 14 for a
reduction cell, whose inputs 0-1 take stride-2 ops, whatever the node),
and inside a group's branch `select` gathers the chosen member's input and
weights (stacked at call time, taken at the member's index; the variables
stay one per op layer, as saved). The backends then run the group's
representative layer statelessly on those values, through one function
traced once per kind of layer and shape (`_one_shot_tensorflow`,
`_one_shot_jax`), and write the batch-norm statistics back to the chosen
member only. Backend-neutral (`keras.ops` only).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from keras import ops
from keras.backend import standardize_dtype

from keras_nas.supernet import _darts_graph

__all__ = [
    "Group",
    "SlotGroups",
    "run_group",
    "select",
    "shared_function",
    "slot_groups",
    "write_back",
]

# kind of layer -> (weak reference to the representative, function).
_FUNCTIONS: dict = {}


@dataclass
class Group:
    """Branches of a slot running the same kind of layer.

    `layers[m]` is member `m`'s layer and `positions[m]` the position of
    its operand; `layers[0]` is the representative run on the member's
    weights.
    """

    layers: list
    positions: list[int]

    @property
    def stateful(self) -> bool:
        """Whether the layers have variables (else they run directly)."""
        return bool(self.layers[0].variables)


@dataclass
class SlotGroups:
    """A slot's groups and, per branch, its group and member index."""

    groups: list[Group]
    group_of: np.ndarray
    member_of: np.ndarray

    def split(self, index) -> tuple[Any, Any]:
        """`(group, member)` of the branch `index` (int tensors, or Python
        integers for a Python index)."""
        if isinstance(index, (int, np.integer)):
            i = int(index)
            return int(self.group_of[i]), int(self.member_of[i])
        index = ops.cast(index, "int32")
        group = ops.take(ops.convert_to_tensor(self.group_of), index)
        member = ops.take(ops.convert_to_tensor(self.member_of), index)
        return group, member


def kind(layer, operand) -> tuple:
    config = dict(layer.get_config())
    config.pop("name", None)
    return (
        type(layer),
        repr(sorted(config.items())),
        tuple(operand.shape),
        str(operand.dtype),
        tuple((tuple(v.shape), str(v.dtype)) for v in layer.variables),
    )


def slot_groups(branches, operands) -> SlotGroups:
    """Partitions `branches` (`(layer, operand_position)`) into groups of
    the same kind of layer on operands of the same shape (first-seen
    order)."""
    keys: dict[tuple, int] = {}
    groups: list[Group] = []
    group_of, member_of = [], []
    for layer, position in branches:
        key = kind(layer, operands[position])
        g = keys.get(key)
        if g is None:
            g = keys[key] = len(groups)
            groups.append(Group([], []))
        group_of.append(g)
        member_of.append(len(groups[g].layers))
        groups[g].layers.append(layer)
        groups[g].positions.append(position)
    return SlotGroups(
        groups,
        np.asarray(group_of, dtype="int32"),
        np.asarray(member_of, dtype="int32"),
    )


def _take(values, member):
    """`values[member]` of same-shaped tensors (stacked, then gathered)."""
    if len(values) == 1:
        return values[0]
    if isinstance(member, int):
        return values[member]
    return ops.take(ops.stack(values), member, axis=0)


def select(group: Group, operands, member) -> tuple[Any, list, list]:
    """The chosen member's operand, trainable and non-trainable values.

    Only the member's own variables receive a (non-zero) gradient through
    the gather.
    """
    if len(set(group.positions)) == 1:
        x = operands[group.positions[0]]
    else:
        x = _take([operands[p] for p in group.positions], member)
    layers = group.layers
    trainable = [
        _take([layer.trainable_variables[i].value for layer in layers], member)
        for i in range(len(layers[0].trainable_variables))
    ]
    non_trainable = [
        _take(
            [layer.non_trainable_variables[i].value for layer in layers],
            member,
        )
        for i in range(len(layers[0].non_trainable_variables))
    ]
    return x, trainable, non_trainable


def write_back(group: Group, new, member) -> None:
    """Assigns the new non-trainable values `new` (those of the gathered
    member) to the member `member`'s layer; the other members keep
    theirs. (When the group was not run, `new` holds the member's own
    values, so writing them changes nothing.)"""
    for m, layer in enumerate(group.layers):
        if isinstance(member, int) and m != member:
            continue
        hit = None
        if not isinstance(member, int) and len(group.layers) > 1:
            hit = ops.equal(member, m)
        for v, value in zip(layer.non_trainable_variables, new, strict=True):
            if hit is None:
                v.assign(value)
            else:
                v.assign(ops.where(hit, value, v.value))


def shared_function(layer, x, training: bool, wrap: Callable):
    """`fn(trainable, non_trainable, x) -> (y, new)`: `layer`'s kind run
    statelessly on the given values, made once per kind of layer, input
    shape and `training` (`wrap`: the backend's `tf.function` / `jax.jit`).

    `new` is `[packed new non-trainable values]` when training a layer
    with such variables (batch norm), else `[]` (one packed output: on
    TensorFlow every output of a function gets its own zero gradient at
    every call site).
    """
    key = (kind(layer, x), bool(training))
    entry = _FUNCTIONS.get(key)
    if entry is None or entry[0]() is None:
        ref = weakref.ref(layer)

        def run(trainable, non_trainable, x):
            rep = ref()
            y, scope = _darts_graph._run_stateless(
                rep,
                trainable,
                non_trainable,
                lambda: rep(x, training=training),
            )
            if not training or not non_trainable:
                return y, []
            new = []
            for v, old in zip(
                rep.non_trainable_variables, non_trainable, strict=True
            ):
                value = scope.get_current_value(v)
                new.append(old if value is None else value)
            return y, [_darts_graph._pack(new)]

        entry = _FUNCTIONS[key] = (ref, wrap(run))
    return entry[1]


def run_group(group: Group, operands, member, training, wrap, convert=None):
    """The output of the chosen member of `group` and its new
    non-trainable values (None when there are none to write).

    Layers without variables run directly on the gathered operand; the
    others through `shared_function` on the gathered values (`convert`,
    if given, maps each value before the call).
    """
    x, trainable, non_trainable = select(group, operands, member)
    if convert is not None:
        trainable = [convert(v) for v in trainable]
        non_trainable = [convert(v) for v in non_trainable]
    return _call(group, x, trainable, non_trainable, training, wrap)


def _call(group: Group, x, trainable, non_trainable, training, wrap):
    rep = group.layers[0]
    if not group.stateful:
        return rep(x, training=training), None
    fn = shared_function(rep, x, bool(training), wrap)
    y, new = fn(trainable, non_trainable, x)
    if not new:
        return y, None
    return y, _darts_graph._unpack(new[0], rep.non_trainable_variables)


class _Packed:
    """Tensors packed into one flat vector per dtype (static layout)."""

    def __init__(self, values):
        self.layout = []  # per value: (dtype, start, end, shape)
        parts: dict[str, list] = {}
        for v in values:
            dtype = standardize_dtype(v.dtype)
            start = sum(_size(p) for p in parts.get(dtype, []))
            self.layout.append((dtype, start, start + _size(v), v.shape))
            parts.setdefault(dtype, []).append(v)
        self.dtypes = list(parts)
        self.vectors = [_flat(parts[d]) for d in self.dtypes]

    def unpack(self, vectors, indices) -> list:
        out = []
        for i in indices:
            dtype, start, end, shape = self.layout[i]
            vector = vectors[self.dtypes.index(dtype)]
            out.append(ops.reshape(vector[start:end], tuple(shape)))
        return out

    def replace(self, vectors, indices, values) -> list:
        """`vectors` with the contiguous entries `indices` set to
        `values`."""
        out = list(vectors)
        for k, dtype in enumerate(self.dtypes):
            mine = [
                (i, v)
                for i, v in zip(indices, values, strict=True)
                if self.layout[i][0] == dtype
            ]
            if not mine:
                continue
            start = self.layout[mine[0][0]][1]
            end = self.layout[mine[-1][0]][2]
            flat = _flat([ops.cast(v, dtype) for _, v in mine])
            out[k] = ops.concatenate(
                [vectors[k][:start], flat, vectors[k][end:]], axis=0
            )
        return out


def _size(value) -> int:
    size = 1
    for d in value.shape:
        size *= int(d)
    return size


def _flat(values):
    flat = [ops.reshape(v, (-1,)) for v in values]
    return flat[0] if len(flat) == 1 else ops.concatenate(flat, axis=0)


def grouped_switch(index, branches, operands, training, case, wrap, convert):
    """Runs `branches[index]` of a decision slot only (see the module).

    Args:
        index: the slot's branch index, an int tensor (a Python integer
            runs the branch directly).
        branches: `(layer, operand_position)` per branch.
        operands: the slot's candidate inputs.
        training: the layers' `training` flag.
        case: the backend's `case(group, functions, arguments)`: runs
            `functions[group](*arguments)` only.
        wrap: the backend's wrapper of a shared function.
        convert: maps a variable's value to a tensor (or None).

    The chosen member's operand and weights are gathered before the
    switch and handed to it packed (one vector per dtype), so the switch
    has a handful of inputs whatever the number of layers, and every
    branch is one call of its kind's shared function. The new batch-norm
    statistics come back packed and are written to the chosen layer only.
    """
    slot = slot_groups(branches, operands)
    group, member = slot.split(index)
    if isinstance(group, int):
        chosen = slot.groups[group]
        y, new = run_group(chosen, operands, member, training, wrap, convert)
        if new is not None:
            write_back(chosen, new, member)
        return y
    inputs: dict[tuple, int] = {}
    xs, trainable, non_trainable, where = [], [], [], []
    for g in slot.groups:
        x, t, n = select(g, operands, member)
        key = tuple(g.positions)
        if key not in inputs:
            inputs[key] = len(xs)
            xs.append(x)
        if convert is not None:
            t = [convert(v) for v in t]
            n = [convert(v) for v in n]
        where.append(
            (
                inputs[key],
                range(len(trainable), len(trainable) + len(t)),
                range(len(non_trainable), len(non_trainable) + len(n)),
            )
        )
        trainable += t
        non_trainable += n
    packed_t, packed_n = _Packed(trainable), _Packed(non_trainable)
    stats = bool(training) and bool(non_trainable)

    def make(gi):
        chosen = slot.groups[gi]
        x_at, t_at, n_at = where[gi]

        def run(xs, vectors_t, vectors_n):
            y, new = _call(
                chosen,
                xs[x_at],
                packed_t.unpack(vectors_t, t_at),
                packed_n.unpack(vectors_n, n_at),
                training,
                wrap,
            )
            if not stats:
                return y
            if new is None:
                return y, list(vectors_n)
            return y, packed_n.replace(vectors_n, n_at, new)

        return run

    functions = [make(gi) for gi in range(len(slot.groups))]
    out = case(group, functions, (xs, packed_t.vectors, packed_n.vectors))
    if not stats:
        return out
    y, vectors_n = out
    for gi, g in enumerate(slot.groups):
        n_at = where[gi][2]
        if not n_at:
            continue
        write_back(g, packed_n.unpack(vectors_n, n_at), member)
    return y
