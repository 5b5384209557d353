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
step (`grouped_switch`) switches over the groups only (7 branches for a
normal cell, 14 for a reduction cell, whose inputs 0-1 take stride-2 ops,
whatever the node). Before the switch every member's variables are packed
into one flat vector (per dtype) and the chosen member's operand and
vectors are taken in every group (the variables stay one per op layer, as
saved), so the switch has a few inputs per group; each branch is one call
of its kind's shared function (`shared_function`: the representative
layer run statelessly, traced once per kind of layer and shape; a
noinline `tf.function` or a `jax.jit` function, `_one_shot_tensorflow`,
`_one_shot_jax`). The new batch-norm statistics come back as values and
are written to the chosen layer only. The price: every step reads and
packs all the slot's weights (the old switch read only the taken
branch's), a larger share of a TensorFlow step at small sizes
(benchmarks/RESULTS.md): JAX always groups, TensorFlow only with
`_one_shot_tensorflow.GROUPED = True`. A Python index (eager use) runs
the chosen member directly (`run_group`). Backend-neutral (`keras.ops`
only).
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
    "LayerRecord",
    "SlotGroups",
    "piece_caller",
    "run_group",
    "select",
    "shared_function",
    "shared_functions",
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
    return (
        type(layer),
        _darts_graph._config(layer),
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


def shared_function(
    layer, x, training: bool, wrap: Callable, direct: Callable | None = None
):
    """`fn(trainable, non_trainable, x) -> (y, new)`: `layer`'s kind run
    statelessly on the given values, made once per kind of layer, input
    shape and `training` (`wrap`: the backend's `tf.function` / `jax.jit`;
    `direct(layer, x, training)`, if given, computes the layer's output
    instead of its call).

    `new` is `[packed new non-trainable values]` when training a layer
    with such variables (batch norm), else `[]` (one packed output: on
    TensorFlow every output of a function gets its own zero gradient at
    every call site).
    """
    key = (kind(layer, x), bool(training), direct, wrap)
    entry = _FUNCTIONS.get(key)
    if entry is None or entry[0]() is None:
        ref = weakref.ref(layer)

        def output(rep, x):
            if direct is None:
                return rep(x, training=training)
            return direct(rep, x, training)

        def run(trainable, non_trainable, x):
            rep = ref()
            y, scope = _darts_graph._run_stateless(
                rep, trainable, non_trainable, lambda: output(rep, x)
            )
            if not training or not non_trainable:
                return y, []
            stats = _darts_graph.packed_statistics(rep, non_trainable, scope)
            return y, [stats]

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


class LayerRecord:
    """A layer of a piecewise step, read once: its variables (and, in a
    subclass, what else its calls need). `Layer.variables` walks the
    layer's sublayers, and a kind reads the layer's configuration: per
    call they cost more than the call of the compiled piece. `of(layer)`
    keeps one record per layer (weakly) and makes it again when the
    layer's `trainable` flag changed."""

    def __init__(self, layer):
        self.layer = weakref.ref(layer)
        self.frozen = not layer.trainable
        self.trainable = list(layer.trainable_variables)
        self.non_trainable = list(layer.non_trainable_variables)

    @property
    def has_variables(self) -> bool:
        return bool(self.trainable or self.non_trainable)

    @classmethod
    def of(cls, layer):
        records = _RECORDS.setdefault(cls, weakref.WeakKeyDictionary())
        record = records.get(layer)
        if record is None or record.frozen != (not layer.trainable):
            record = records[layer] = cls(layer)
        return record


# Record class -> {layer: record}.
_RECORDS: dict = {}


class _PieceLayer(LayerRecord):
    """A `LayerRecord` with, per input shape and dtype, `training`,
    `direct` and wrapper, its kind's shared function."""

    def __init__(self, layer):
        super().__init__(layer)
        self.functions: dict = {}

    def function(self, x, training: bool, wrap: Callable, direct=None):
        key = (tuple(x.shape), str(x.dtype), training, direct, wrap)
        entry = self.functions.get(key)
        # The function holds its kind's representative weakly: made again
        # (`shared_function`) if that layer is gone.
        if entry is None or entry[0]() is None:
            layer = self.layer()
            fn = shared_function(layer, x, training, wrap, direct)
            rep = _FUNCTIONS[(kind(layer, x), training, direct, wrap)][0]
            entry = self.functions[key] = (rep, fn)
        return entry[1]


def piece_caller(
    wrap: Callable, convert: Callable | None = None, every: bool = False
):
    """`use(layer)` of the piecewise step: a layer with variables runs as
    one call of its kind's shared function (`shared_function`, made on the
    kind's first call) on its own weights, and its new batch-norm
    statistics are assigned to it; a layer without variables runs as it
    is. Every layer of a kind (the same op on any edge of the same width,
    stride and input shape, the cells' preprocessing of one shape, ...)
    shares one function, compiled once (`wrap`, `convert`: as for
    `run_group`). With `every`, the layers without variables (pooling,
    identity, ...) are pieces too (JAX: one call of a compiled function
    in the differentiated forward instead of a Keras call of several
    ops)."""

    def use(layer):
        known = _PieceLayer.of(layer)
        if not (every or known.has_variables):
            return layer

        def call(x, training=None):
            fn = known.function(x, bool(training), wrap)
            trainable = [v.value for v in known.trainable]
            non_trainable = [v.value for v in known.non_trainable]
            if convert is not None:
                trainable = [convert(v) for v in trainable]
                non_trainable = [convert(v) for v in non_trainable]
            y, new = fn(trainable, non_trainable, x)
            if new:
                values = _darts_graph._unpack(new[0], known.non_trainable)
                for v, value in zip(known.non_trainable, values, strict=True):
                    v.assign(value)
            return y

        return call

    return use


def shared_functions(wrap: Callable) -> dict:
    """The shared functions `wrap` made whose layers are alive (the pieces
    a piecewise step compiled): `{(kind of layer, training, direct, wrap):
    fn}`."""
    return {
        key: entry[1]
        for key, entry in _FUNCTIONS.items()
        if key[-1] is wrap and entry[0]() is not None
    }


def _call(group: Group, x, trainable, non_trainable, training, wrap):
    rep = group.layers[0]
    if not group.stateful:
        return rep(x, training=training), None
    fn = shared_function(rep, x, bool(training), wrap)
    y, new = fn(trainable, non_trainable, x)
    if not new:
        return y, None
    return y, _darts_graph._unpack(new[0], rep.non_trainable_variables)


class _Layout:
    """A layer's variables packed into one flat vector per dtype."""

    def __init__(self, variables):
        self.shapes = [tuple(v.shape) for v in variables]
        self.buckets: dict[str, list[int]] = {}
        for i, v in enumerate(variables):
            self.buckets.setdefault(standardize_dtype(v.dtype), []).append(i)

    def pack(self, values) -> list:
        return [
            _flat([values[i] for i in indices])
            for indices in self.buckets.values()
        ]

    def unpack(self, vectors) -> list:
        out = [None] * len(self.shapes)
        for vector, indices in zip(vectors, self.buckets.values(), strict=True):
            start = 0
            for i in indices:
                size = _size(self.shapes[i])
                part = vector[start : start + size]
                out[i] = ops.reshape(part, self.shapes[i])
                start += size
        return out


def _size(shape) -> int:
    size = 1
    for d in shape:
        size *= int(d)
    return size


def _flat(values):
    flat = [ops.reshape(v, (-1,)) for v in values]
    return flat[0] if len(flat) == 1 else ops.concatenate(flat, axis=0)


def _member_vectors(layers, variables_of, layout, convert) -> list[list]:
    """Per member: its variables (`variables_of(layer)`) packed."""
    out = []
    for layer in layers:
        values = [v.value for v in variables_of(layer)]
        if convert is not None:
            values = [convert(v) for v in values]
        out.append(layout.pack(values))
    return out


def _pick(members: list[list], member, take) -> list:
    """The chosen member's packed vectors (stacked, then taken)."""
    if len(members) == 1:
        return members[0]
    return [
        take(ops.stack([m[b] for m in members]), member)
        for b in range(len(members[0]))
    ]


def grouped_switch(
    index, branches, operands, training, case, wrap, convert, take
):
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
        take: the backend's `take(stacked, member)` along the first axis.

    Before the switch, every member's variables are packed into one flat
    vector (per dtype) and the chosen member's operand and vectors of
    every group are taken, so the switch has a few inputs per group
    whatever the number of layers, and every branch is one call of its
    kind's shared function. The new batch-norm statistics come back
    packed and are written to the chosen layer only.
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
    xs, t_vectors, n_vectors, n_members, layouts = [], [], [], [], []
    for g in slot.groups:
        key = tuple(g.positions)
        if key not in inputs:
            inputs[key] = len(xs)
            if len(set(key)) == 1:
                xs.append(operands[key[0]])
            else:
                xs.append(take(ops.stack([operands[p] for p in key]), member))
        rep = g.layers[0]
        t_layout = _Layout(rep.trainable_variables)
        n_layout = _Layout(rep.non_trainable_variables)
        layouts.append((inputs[key], t_layout, n_layout))
        t_members = _member_vectors(
            g.layers, lambda layer: layer.trainable_variables, t_layout, convert
        )
        n_members.append(
            _member_vectors(
                g.layers,
                lambda layer: layer.non_trainable_variables,
                n_layout,
                convert,
            )
        )
        t_vectors.append(_pick(t_members, member, take))
        n_vectors.append(_pick(n_members[-1], member, take))
    stats = bool(training) and any(n for n in n_vectors)

    def make(gi):
        chosen = slot.groups[gi]
        x_at, t_layout, n_layout = layouts[gi]

        def run(xs, t_vectors, n_vectors):
            y, new = _call(
                chosen,
                xs[x_at],
                t_layout.unpack(t_vectors[gi]),
                n_layout.unpack(n_vectors[gi]),
                training,
                wrap,
            )
            if not stats:
                return y
            out = list(n_vectors)
            if new is not None:
                out[gi] = n_layout.pack(new)
            return y, out

        return run

    functions = [make(gi) for gi in range(len(slot.groups))]
    out = case(group, functions, (xs, t_vectors, n_vectors))
    if not stats:
        return out
    y, new_vectors = out
    for gi, g in enumerate(slot.groups):
        if not n_vectors[gi]:
            continue
        n_layout = layouts[gi][2]
        for m, layer in enumerate(g.layers):
            vectors = new_vectors[gi]
            if len(g.layers) > 1:
                hit = ops.equal(member, m)
                vectors = [
                    ops.where(hit, new, old)
                    for new, old in zip(vectors, n_members[gi][m], strict=True)
                ]
            for v, value in zip(
                layer.non_trainable_variables,
                n_layout.unpack(vectors),
                strict=True,
            ):
                v.assign(value)
    return y
