"""The relaxations of a DARTS edge besides the softmax: GDAS, ProxylessNAS'
binary gates and PC-DARTS.

- `"gumbel"` (Dong and Yang, "Searching for A Robust Neural Architecture
  in Four GPU Hours", CVPR 2019, GDAS): each forward pass draws a hard
  one-hot choice per edge from the Gumbel-softmax of `alpha` at a
  temperature annealed from 10 to 0.1; the forward runs only the chosen op
  of each edge (`sampled_edge`: `keras.ops.switch`), and the gradient
  reaches `alpha` straight through the soft sample (`gumbel_hard`).
- `"binary"` (Cai, Zhu and Han, "ProxylessNAS: Direct Neural Architecture
  Search on Target Task and Hardware", ICLR 2019): binarised paths with the
  math of `binary_gates`. A training forward draws one path per edge from
  `softmax(alpha)` and runs only that op (the weights pass); the forward
  of the architecture pass (`arch_pass=True`) draws two paths per edge
  without replacement, runs the active one and, on a stopped input, the
  inactive one, and joins them with binary gates of value `(1, 0)` whose
  gradient is the paper's estimator over the two paths (`paired_edge`).
  After the architecture update the two updated logits of every edge are
  shifted so the other paths keep their probabilities (`binary_rescale`).
  The draws are shared by the cells of a kind, like `alpha`.
- `partial_channels=K` (Xu et al., "PC-DARTS: Partial Channel Connections
  for Memory-Efficient Architecture Search", ICLR 2020): an edge mixes only
  the first `1/K` of its input channels, passes the rest by (max-pooled on
  stride-2 edges), concatenates and shuffles the channels
  (`partial_output`); each node weighs its incoming edges by the softmax of
  edge-normalisation betas (`node_softmax`).

The Gumbel noise (of GDAS and of the binary draws) comes from a
counter-based integer hash of (seed, draw, position) in `keras.ops`
(`hash_uniform`): the same numbers on TensorFlow and JAX, reproducible
from the saved counter. Backend-neutral.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np
from keras import ops

from keras_nas._validation import (
    RELAXATIONS,
    check_partial_channels,
    check_relaxation,
)
from keras_nas.supernet import binary_gates
from keras_nas.supernet.bilevel import ARCH_NAMES, BETA_NAMES

__all__ = [
    "RELAXATIONS",
    "add_arch_state",
    "alpha_variables",
    "binary_pairs",
    "binary_rescale",
    "cell_weights",
    "check_partial_channels",
    "check_relaxation",
    "channel_shuffle",
    "gumbel_hard",
    "hash_uniform",
    "node_softmax",
    "paired_edge",
    "partial_output",
    "read_noise",
    "sampled_edge",
    "split_channels",
    "temperature",
]

#: The relaxations that run only sampled ops (a one-hot per edge).
SAMPLED = ("gumbel", "binary")


# ------------------------------------------------------------------ GDAS


def temperature(step, anneal_steps: int, tau_max: float, tau_min: float):
    """The temperature at search step `step` (a tensor): linear from
    `tau_max` at step 0 to `tau_min` at step `anneal_steps - 1`, then
    constant (GDAS anneals it linearly over the search's epochs)."""
    span = float(max(int(anneal_steps) - 1, 1))
    frac = ops.minimum(ops.cast(step, "float32") / span, 1.0)
    return (1.0 - frac) * tau_max + frac * tau_min


_MASK16 = 0xFFFF


def _mix(x):
    """A 32-bit integer hash (Wellons' "lowbias32") in int32 arithmetic:
    multiplications wrap, shifts are made logical by masking."""
    x = ops.bitwise_xor(x, ops.bitwise_and(ops.right_shift(x, 16), _MASK16))
    x = ops.multiply(x, ops.convert_to_tensor(0x7FEB352D, "int32"))
    x = ops.bitwise_xor(x, ops.bitwise_and(ops.right_shift(x, 15), 0x1FFFF))
    x = ops.multiply(x, ops.convert_to_tensor(0x846CA68B - (1 << 32), "int32"))
    return ops.bitwise_xor(
        x, ops.bitwise_and(ops.right_shift(x, 16), _MASK16)
    )


def hash_uniform(seed, draw, shape: Sequence[int], stream: int = 0):
    """Uniform float32 numbers in (0, 1) of `shape`, a pure function of the
    int32 scalars `seed`, `draw` and the Python int `stream`: the same on
    every backend (24 bits of a counter-based hash per number)."""
    size = 1
    for d in shape:
        size *= int(d)
    seed = ops.cast(seed, "int32")
    draw = ops.cast(draw, "int32")
    offset = (int(stream) * 0x3C6EF372) & 0xFFFFFFFF  # as int32, wrapped
    offset -= (offset >> 31) << 32
    key = _mix(ops.bitwise_xor(_mix(seed + offset), draw))
    position = ops.arange(size, dtype="int32")
    bits = _mix(ops.bitwise_xor(_mix(position + key), key))
    bits = ops.bitwise_and(ops.right_shift(bits, 8), 0xFFFFFF)
    u = (ops.cast(bits, "float32") + 0.5) / float(1 << 24)
    return ops.reshape(u, tuple(shape))


def gumbel_hard(logits, tau, uniform):
    """GDAS' hard Gumbel-softmax sample with a straight-through gradient.

    Args:
        logits: `(edges, ops)` architecture logits `alpha`.
        tau: the temperature.
        uniform: `(edges, ops)` numbers in (0, 1) (`hash_uniform`).

    Returns:
        `(edges, ops)`: the one-hot of `argmax(logits + g)` in the forward
        pass (`g = -log(-log(uniform))`), whose gradient is that of the
        soft sample `softmax((logits + g) / tau)`.
    """
    logits = ops.cast(logits, "float32")
    gumbel = -ops.log(-ops.log(uniform))
    soft = ops.softmax((logits + gumbel) / tau, axis=-1)
    index = ops.argmax(logits + gumbel, axis=-1)
    hard = ops.one_hot(index, ops.shape(logits)[-1], dtype=soft.dtype)
    return hard - ops.stop_gradient(soft) + soft


def _zero(inputs, strides: int):
    x = inputs[:, ::strides, ::strides, :] if strides > 1 else inputs
    return ops.zeros_like(x)


def _run_op(layer, inputs, index, training):
    """Op `index` (a tensor) of `layer` alone, through `keras.ops.switch`:
    each branch reads the layer's variables through its own
    `keras.StatelessScope` and returns the batch-norm statistics it
    updated, assigned after the switch (a branch may not assign variables
    itself under `tf.switch_case` or `jax.lax.switch`)."""
    trainable = list(layer.trainable_variables)
    stats = list(layer.non_trainable_variables)
    t_values = [v.value for v in trainable]
    s_values = [v.value for v in stats]
    by_name = dict(zip(layer._active, layer.candidates, strict=True))

    def branch(k):
        def run(x):
            mapping = list(zip(trainable, t_values, strict=True))
            mapping += zip(stats, s_values, strict=True)
            with keras.StatelessScope(state_mapping=mapping) as scope:
                if k in by_name:
                    y = by_name[k](x, training=training)
                else:  # none
                    y = _zero(x, layer.strides)
            new = []
            for v, old in zip(stats, s_values, strict=True):
                value = scope.get_current_value(v)
                new.append(old if value is None else value)
            return y, new

        return run

    branches = [branch(k) for k in range(len(layer.ops))]
    y, new = ops.switch(index, branches, inputs)
    if training:
        for v, value in zip(stats, new, strict=True):
            v.assign(value)
    return y


def sampled_edge(layer, inputs, op_weights, training=None):
    """The output of a GDAS edge: only the op chosen by `op_weights` runs.

    `op_weights` is the straight-through one-hot of `gumbel_hard` over
    `layer.ops` (all names, `none` included). As in the GDAS code, the
    output is `h[k] * op_k(x) + sum_{j != k} h[j]` for the chosen `k`: the
    other terms are zero in value and give every logit a gradient. Only
    op `k` runs (`keras.ops.switch`). The binary relaxation's weights pass
    (a one-hot without gradient) runs here too.

    Args:
        layer: a built `MixedOp`.
        inputs: the edge input (already channel-sampled, if any).
        op_weights: `(len(layer.ops),)` straight-through one-hot weights.
        training: the training flag.
    """
    op_weights = ops.cast(op_weights, inputs.dtype)
    index = ops.argmax(op_weights)
    y = _run_op(layer, inputs, index, training)
    chosen = ops.take(op_weights, index)
    return chosen * y + (ops.sum(op_weights) - chosen)


def paired_edge(layer, inputs, op_weights, training=None):
    """The output of a binary (ProxylessNAS) edge in the architecture pass.

    `op_weights` has shape `(2, len(layer.ops))`: row 0 the one-hot of the
    active path, row 1 that of the inactive one, each of value 1 at its
    path with the derivative of that path's gate there (`cell_weights`).
    Returns `g_a * op_a(x) + g_b * op_b(x)` with gates of value `(1, 0)`:
    the value is the active op's output; `d/d g_b = <upstream, op_b(x)>`.
    `op_b` runs on a stopped input and its output is stopped (the
    architecture step updates only `alpha`, as the paper's: no gradient
    flows through the inactive path), so of it only its output is kept
    for the backward pass. Two ops run per edge.
    """
    op_weights = ops.cast(op_weights, inputs.dtype)
    rows = (op_weights[0], op_weights[1])
    index = [ops.argmax(r) for r in rows]
    # The value-1 entry of each row; its derivative is the gate's.
    picked = [ops.take(r, i) for r, i in zip(rows, index, strict=True)]
    g_a = picked[0]
    g_b = picked[1] - ops.stop_gradient(picked[1])
    active = _run_op(layer, inputs, index[0], training)
    other = _run_op(layer, ops.stop_gradient(inputs), index[1], training)
    return g_a * active + g_b * ops.stop_gradient(other)


# -------------------------------------------------------------- PC-DARTS


def split_channels(inputs, k: int):
    """`(x[..., :C/k], x[..., C/k:])`: the mixed and bypassed channels."""
    c = inputs.shape[-1] // k
    return inputs[..., :c], inputs[..., c:]


def channel_shuffle(x, groups: int):
    """PC-DARTS' (and ShuffleNet's) channel shuffle of NHWC `x`: channel
    `g * (C / groups) + i` moves to `i * groups + g`."""
    shape = ops.shape(x)
    c = x.shape[-1]
    x = ops.reshape(x, (-1, shape[1], shape[2], groups, c // groups))
    x = ops.transpose(x, (0, 1, 2, 4, 3))
    return ops.reshape(x, (-1, shape[1], shape[2], c))


def partial_output(mixed, bypass, strides: int, k: int):
    """Concatenates an edge's mixed channels with the bypassed ones
    (max-pooled 2x2 on stride-2 edges, as the PC-DARTS code) and shuffles
    the channels in `k` groups."""
    if strides > 1:
        bypass = ops.max_pool(bypass, 2, strides, padding="same")
    out = ops.concatenate([mixed, ops.cast(bypass, mixed.dtype)], axis=-1)
    return channel_shuffle(out, k)


def node_softmax(beta, sizes: Sequence[int]):
    """PC-DARTS' edge normalisation: the softmax of `beta` within each
    node's block of incoming edges (`sizes[i]` edges for node `i`)."""
    beta = ops.cast(beta, "float32")
    out, start = [], 0
    for n in sizes:
        block = beta[start : start + n]
        # One incoming edge: weight 1 (and no gradient), as its softmax.
        out.append(
            ops.ones_like(block) if n == 1 else ops.softmax(block, axis=-1)
        )
        start += n
    return ops.concatenate(out, axis=0)


# ------------------------------------------- the state of a DartsSupernet


def _add_arch(model, name, shape, seed):
    init = keras.initializers.RandomNormal(stddev=1e-3, seed=seed)
    variable = model.add_weight(
        shape=shape,
        initializer=init,
        name=name,
        dtype=model.dtype_policy.variable_dtype,
        autocast=False,
    )
    setattr(model, name, variable)


def _noise_names(model) -> tuple[str, str] | None:
    """The (seed, draw counter) variables of a sampled relaxation."""
    if model.relaxation not in SAMPLED:
        return None
    return f"{model.relaxation}_seed", f"{model.relaxation}_draws"


def add_arch_state(model) -> None:
    """Adds a `DartsSupernet`'s architecture variables (`alpha_*`, and
    `beta_*` with partial channels, initialized `1e-3 * N(0, 1)` as in the
    papers) and, for the sampled relaxations, the non-trainable noise seed
    and draw counter (`gumbel_seed`, `gumbel_draws` and the temperature
    `gumbel_tau`; `binary_seed`, `binary_draws`)."""
    kinds = model._kinds
    shape = (model._edges(), len(model.candidate_ops))
    for k, name in enumerate(ARCH_NAMES[:kinds]):
        seed = None if model.seed is None else model.seed + k
        _add_arch(model, name, shape, seed)
    if model.partial_channels > 1:
        for k, name in enumerate(BETA_NAMES[:kinds]):
            seed = None if model.seed is None else model.seed + 2 + k
            _add_arch(model, name, (model._edges(),), seed)
    names = _noise_names(model)
    if names is None:
        return
    seed = model.seed
    if seed is None:
        seed = int(np.random.randint(0, 2**31 - 1))
    state = [(names[0], "int32", seed), (names[1], "int32", 0)]
    if model.relaxation == "gumbel":
        state.insert(0, ("gumbel_tau", "float32", model.tau_max))
    for name, dtype, value in state:
        variable = model.add_weight(
            shape=(),
            initializer=keras.initializers.Constant(value),
            name=name,
            dtype=dtype,
            trainable=False,
            autocast=False,
        )
        setattr(model, name, variable)


def read_noise(model):
    """`(seed, draw)` tensors: copies of the noise variables' values now
    (on TensorFlow `convert_to_tensor` of a variable is the variable,
    which a later assign changes)."""
    seed_name, draws_name = _noise_names(model)
    seed = ops.copy(getattr(model, seed_name))
    return seed, ops.copy(getattr(model, draws_name))


def alpha_variables(model) -> list:
    """`[alpha_normal, alpha_reduce]` (only `alpha_normal` for nb201)."""
    return [getattr(model, n) for n in ARCH_NAMES[: model._kinds]]


def binary_pairs(alphas, seed, draw) -> list:
    """The `(edges, 2)` `(active, inactive)` paths of each kind of cell that
    the binary architecture pass of draw `draw` uses (`pair_from_noise` on
    the hash noise of `(seed, draw)`; one stream per kind)."""
    out = []
    for k, a in enumerate(alphas):
        shape = tuple(a.shape)
        u = hash_uniform(seed, draw, shape, stream=k)
        u_active = hash_uniform(seed, draw, shape[:1], stream=2 + k)
        out.append(binary_gates.pair_from_noise(a, u, u_active))
    return out


def binary_rescale(old_alphas, new_alphas, seed, draw) -> list:
    """ProxylessNAS' rescaling after an architecture update: the values of
    `new_alphas` with the two logits of every edge that the architecture
    pass of draw `draw` sampled (from `old_alphas`) shifted so that the
    other paths keep their probabilities (`binary_gates.rescale_pairs`)."""
    pairs = binary_pairs(old_alphas, seed, draw)
    return [
        binary_gates.rescale_pairs(old, new, p)
        for old, new, p in zip(old_alphas, new_alphas, pairs, strict=True)
    ]


def _binary_weights(alphas, seed, draw, arch_pass):
    if not arch_pass:  # one path per edge, drawn from softmax(alpha)
        out = []
        for k, a in enumerate(alphas):
            u = hash_uniform(seed, draw, tuple(a.shape), stream=k)
            path = binary_gates.path_from_noise(a, u)
            out.append(ops.one_hot(path, a.shape[-1]))
        return out
    out = []
    for a, pair in zip(alphas, binary_pairs(alphas, seed, draw), strict=True):
        g = binary_gates.straight_through_gates(a, pair)
        # Value 1 at each path, derivative that of its gate.
        scale = 1.0 + g - ops.stop_gradient(g)
        hot = ops.one_hot(pair, a.shape[-1], dtype=g.dtype)  # (e, 2, ops)
        out.append(hot * ops.expand_dims(scale, -1))
    return out


def cell_weights(model, training, arch_pass=False) -> dict:
    """`{reduction: (op weights, edge weights or None)}` of one forward
    pass of a `DartsSupernet`: the softmax of `alpha`; or (gumbel) a new
    hard sample per kind of cell when training (the draw counter advances)
    and the argmax one-hot otherwise; or (binary) when training a one-hot
    path per edge, or with `arch_pass` the `(edges, 2, ops)` one-hots of
    two paths with their gates (`paired_edge`), and the argmax one-hot
    otherwise; with partial channels, the per-node softmax of `beta`."""
    alphas = alpha_variables(model)
    if model.relaxation in SAMPLED and training:
        seed, draw = read_noise(model)
        if model.relaxation == "gumbel":
            shape = tuple(alphas[0].shape)
            tau = ops.convert_to_tensor(model.gumbel_tau)
            weights = [
                gumbel_hard(
                    a, tau, hash_uniform(seed, draw, shape, stream=k)
                )
                for k, a in enumerate(alphas)
            ]
        else:
            weights = _binary_weights(alphas, seed, draw, arch_pass)
        getattr(model, _noise_names(model)[1]).assign(draw + 1)
    elif model.relaxation in SAMPLED:  # The argmax op of every edge.
        n = alphas[0].shape[-1]
        weights = [ops.one_hot(ops.argmax(a, axis=-1), n) for a in alphas]
    else:
        weights = [ops.softmax(a) for a in alphas]
    betas = [None] * len(alphas)
    if model.partial_channels > 1:
        betas = [
            node_softmax(getattr(model, n), model._node_sizes())
            for n in BETA_NAMES[: model._kinds]
        ]
    return {False: (weights[0], betas[0]), True: (weights[-1], betas[-1])}
