"""A DARTS search cell's edges as two scans: one traced edge per kind.

A `SearchCell` has `num_edges(num_nodes)` edges (14 for 4 nodes); all of
them compute the same function of their own weights: the edges from the
cell's two inputs (stride 2 in a reduction cell) and the edges between its
intermediate nodes (stride 1). Unrolled, a cell's compiled graph holds one
copy of the edge per edge (XLA inlines even a shared `jax.jit` function at
every call; TensorFlow holds a call and its plumbing per edge). Here each
kind of edge is traced ONCE per cell and run in a loop over the edges'
weights, stacked along a new leading axis at call time (the variables stay
per edge: weights, `.keras` files and weight counts are unchanged):

1. the input edges (node `i`'s edges from the inputs `j = 0, 1`): a scan
   over `(input, weights)` pairs; node `i` starts as the sum of its two;
2. the inner edges (node `i`'s edges from node `j - 2`): a scan in the DARTS
   order whose carry holds the nodes; step `(i, j)` adds
   `edge(node[j - 2])` to `node[i]` (node `j - 2` is complete by then:
   every edge into it comes earlier in that order).

A scan's body runs the cell's first edge of that kind statelessly on the
step's weights (`_darts_graph._run_stateless`); the batch-norm moving
statistics come back as outputs and are assigned to each edge's variables.
On JAX that is `jax.lax.scan` (XLA compiles one body per scan), on
TensorFlow a `tf.while_loop` (`_cell_scan_tensorflow.py`). It covers the
softmax relaxation (PC-DARTS included) in traced steps; the sampled
relaxations (GDAS, ProxylessNAS) choose ops per edge and keep one call per
edge, as do eager steps and `tf.distribute` strategies.

**Off by default** (`ENABLED`): measured at the micro configuration
(benchmarks/RESULTS.md, #13 cell reuse), the JAX first-order `fit` reaches
its first step with ~1.8x less CPU (XLA's copy insertion, most of the
compile, is superlinear in the size of a computation, and the scan bodies
are small ones) but each step then costs ~2.7x the CPU of the unrolled
step on XLA's CPU backend; on TensorFlow the loop (trace, `while_v2`
gradient, graph optimization) costs more than the per-kind edge functions
of `_darts_graph.py` it replaces. `tests/supernet/test_cell_scan.py` pins
its results and the size of its traced graph.
"""

from __future__ import annotations

from keras import ops

from keras_nas._backend import backend_module
from keras_nas.supernet import _darts_graph

#: True runs each cell's edges as two scans (see above; off by default).
ENABLED = False


def _backend():
    return backend_module("keras_nas.supernet", "_cell_scan", "DARTS")


def applies(cell, inputs) -> bool:
    """Whether `call` evaluates `cell` on `inputs` (its preprocessed
    inputs) now."""
    if not ENABLED or cell.relaxation != "softmax" or cell.num_nodes < 1:
        return False
    if getattr(_darts_graph._LOCAL, "inside", False):
        return False
    return _backend().applies(inputs)


def _plan(num_nodes):
    """(input edges, inner edges): edge indices, and for the inner edges
    `(edge, source node, target node)`, in the DARTS order."""
    inputs, inner, e = [], [], 0
    for i in range(num_nodes):
        for j in range(i + 2):
            if j < 2:
                inputs.append(e)
            else:
                inner.append((e, j - 2, i))
            e += 1
    return inputs, inner


def _stacked(edges, attr):
    """Each variable of `edges[0].<attr>`, stacked over `edges`."""
    columns = zip(*(getattr(edge, attr) for edge in edges), strict=True)
    return [ops.stack([v.value for v in column]) for column in columns]


def _scan_edges(cell, indices, carry, xs, y_spec, step_fn, context):
    """Runs the edges `indices` of `cell` in one scan.

    `xs`: per-edge tensors (leading axis: the edges). `step_fn(carry, xs_e,
    run)` returns `(carry, y)`, where `run(x)` evaluates the edge on `x`
    with the step's weights. Returns the final carry and the stacked `y`
    (spec `y_spec`: shape, dtype); assigns the new moving statistics to
    each edge's variables.
    """
    op_weights, training, direct = context
    edges = [cell.edges[e] for e in indices]
    rep = edges[0]
    trainable = _stacked(edges, "trainable_variables")
    non_trainable = _stacked(edges, "non_trainable_variables")
    nt, nn = len(trainable), len(non_trainable)
    update = training and nn > 0
    weights = ops.take(op_weights, indices, axis=0)

    def body(c, step):
        tv, ntv = step[:nt], step[nt : nt + nn]
        w, rest = step[nt + nn], step[nt + nn + 1 :]
        scopes = []

        def run(x):
            out, scope = _darts_graph._run_stateless(
                rep, tv, ntv, lambda: direct(rep, x, w, training)
            )
            scopes.append(scope)
            return out

        c, y = step_fn(c, rest, run)
        if not update:
            return c, [y]
        new = []
        for v, old in zip(rep.non_trainable_variables, ntv, strict=True):
            value = scopes[0].get_current_value(v)
            new.append(old if value is None else value)
        return c, [y, *new]

    specs = [y_spec]
    if update:
        specs += [(v.shape, v.dtype) for v in rep.non_trainable_variables]
    carry, ys = _backend().scan(
        body, carry, [*trainable, *non_trainable, weights, *xs], specs
    )
    if update:
        for k, stacked in enumerate(ys[1:]):
            values = ops.unstack(stacked, len(edges), axis=0)
            for edge, value in zip(edges, values, strict=True):
                edge.non_trainable_variables[k].assign(value)
    return carry, ys[0]


def call(cell, states, op_weights, training, edge_weights, direct):
    """The concatenated intermediate nodes of `cell` (see the module).

    Args:
        cell: a built `SearchCell` with the softmax relaxation.
        states: its two preprocessed inputs.
        op_weights: `(num_edges, len(ops))` op weights.
        training: the training flag.
        edge_weights: PC-DARTS' `(num_edges,)` edge weights, or None.
        direct: `MixedOp._call_ops` (the edge's own computation).
    """
    n = cell.num_nodes
    input_edges, inner = _plan(n)
    context = (op_weights, bool(training), direct)
    s1 = states[1]
    shape = cell.edges[input_edges[0]].compute_output_shape(tuple(s1.shape))
    y_spec = (shape, s1.dtype)

    def scaled(y, beta):
        return y * ops.cast(beta, y.dtype)

    def input_step(c, rest, run):
        y = run(rest[0])
        return c, (scaled(y, rest[1]) if len(rest) > 1 else y)

    xs = [ops.take(ops.stack(states), [e % 2 for e in range(2 * n)], 0)]
    if edge_weights is not None:
        xs.append(ops.take(edge_weights, input_edges, axis=0))
    dummy = ops.zeros((), "float32")
    _, ys = _scan_edges(
        cell, input_edges, dummy, xs, y_spec, input_step, context
    )
    nodes = ys[0::2] + ys[1::2]  # node i: its edges from inputs 0 and 1
    if inner:
        targets = ops.eye(n, dtype=nodes.dtype)

        def inner_step(buf, rest, run):
            y = run(ops.take(buf, rest[0], axis=0))
            if len(rest) > 2:
                y = scaled(y, rest[2])
            target = ops.reshape(rest[1], (n, 1, 1, 1, 1))
            buf = buf + target * ops.expand_dims(y, 0)
            return buf, ops.zeros((), "float32")

        xs = [
            ops.convert_to_tensor([src for _, src, _ in inner], "int32"),
            ops.take(targets, [dst for _, _, dst in inner], axis=0),
        ]
        if edge_weights is not None:
            xs.append(ops.take(edge_weights, [e for e, _, _ in inner], 0))
        nodes, _ = _scan_edges(
            cell,
            [e for e, _, _ in inner],
            nodes,
            xs,
            ((), "float32"),
            inner_step,
            context,
        )
    return ops.concatenate(ops.unstack(nodes, n, axis=0), axis=-1)
