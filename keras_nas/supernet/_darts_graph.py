"""One traced function per kind of DARTS edge, reused by every such edge.

A DARTS supernet has 14 `MixedOp` edges per cell and every edge sums 7
candidate ops; traced inline, a 5-cell supernet's training graph holds ~70
copies of each op's forward and backward graph (the micro configuration's
first-order `tf.function` trace took ~2 minutes; benchmarks/RESULTS.md).
Yet edges of the same width, stride and input shape differ only in their
weights: a 5-cell or an 8-cell supernet has 5 kinds of edge.

`call(layer, inputs, op_weights, training, direct)` evaluates an edge through
a function traced once per kind of edge (the key below) that takes the
edge's weights as arguments. The function runs a representative layer of
that kind statelessly (`keras.StatelessScope` maps its variables to the
given values), so it reads none of its own weights. On TensorFlow the
function is a `tf.function` marked not to be inlined (one function in the
caller's graph and one gradient function, however often it is called) that
takes the calling edge's variables themselves: it reads them and assigns
the new batch-norm moving statistics in its body, so the caller's graph
holds one call per edge, not a read per weight and an assignment per
statistic (under a `tf.distribute` strategy it takes their values and
returns the statistics, as on JAX). On JAX it is a `jax.jit` function of
the values, whose jaxpr JAX traces once per input shapes; the moving
statistics come back as outputs and are assigned to the calling layer's
variables.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import inspect
import itertools
import math
import threading
import types
import weakref
from typing import Any, NamedTuple

import keras

# key -> (weak reference to the representative layer, traced function).
_FUNCTIONS: dict = {}
#: False traces every edge inline (for measurements: benchmarks/).
ENABLED = True
#: False gives TensorFlow's functions the variables' values, not the
#: variables (for measurements: benchmarks/).
HANDLES = True
_LOCAL = threading.local()
#: JAX: every edge's backward computes its weights' gradients, also in
#: the alpha pass (one variant to compile per kind of edge, not two:
#: micro configuration, first order: first call -14 s CPU, step +25%;
#: for measurements: benchmarks/RESULTS.md).
ALWAYS_WEIGHT_GRADS = False
#: JAX: the alpha pass runs the weights pass's forward executable of an
#: edge (its residuals serve both) and a backward that drops the
#: weights' gradients (XLA removes their computation): one forward to
#: compile per kind of edge, not two (benchmarks/RESULTS.md, #13 z13).
SHARED_FORWARD = True
#: JAX on the CPU: XLA options of the edges' and layers' executables
#: (where this XLA takes them: `_edge_options`). XLA's loop emitters
#: instead of its MLIR fusion emitters: micro configuration, first
#: order, the first step's compilations ~-5 s CPU and its peak memory
#: ~-90 MiB, the step not slower (benchmarks/RESULTS.md, #13 n17).
EDGE_OPTIONS = {"xla_cpu_use_fusion_emitters": False}
_CHECKED_OPTIONS: dict = {}


def _backend_module():
    return importlib.import_module(
        {"tensorflow": "tensorflow", "jax": "jax"}[keras.backend.backend()]
    )


def enabled(inputs) -> bool:
    """Whether to call the shared function: on TensorFlow always, on JAX
    when `inputs` are traced (eager JAX runs the layer directly), never
    from inside a shared function (`call` below: the representative).
    """
    if not ENABLED or getattr(_LOCAL, "inside", False):
        return False
    backend = keras.backend.backend()
    if backend == "tensorflow":
        # Eagerly too: one function call per edge instead of ~50 op
        # dispatches (micro configuration, first-order eager step: CPU
        # time ~11 -> ~4 s; benchmarks/RESULTS.md).
        return True
    if backend == "jax":
        jax = _backend_module()
        return in_piecewise() or isinstance(inputs, jax.core.Tracer)
    return False


def in_piecewise() -> bool:
    """Whether this thread runs inside `piecewise()`."""
    return getattr(_LOCAL, "piecewise", False)


@contextlib.contextmanager
def piecewise():
    """JAX: edges called eagerly in this thread run their jitted function
    (the piecewise step of `_darts_jax.py`), not op by op."""
    before = getattr(_LOCAL, "piecewise", False)
    _LOCAL.piecewise = True
    try:
        yield
    finally:
        _LOCAL.piecewise = before


@functools.cache
def _parameters(cls) -> tuple:
    """The names of `cls`'s constructor arguments (not `name`, `dtype`,
    `*args`, `**kwargs`)."""
    return tuple(
        p.name
        for p in list(inspect.signature(cls.__init__).parameters.values())[1:]
        if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        and p.name not in ("name", "dtype")
    )


_UNKNOWN = object()
# Objects that do not enter a layer's forward pass: their class is enough.
_INERT = (
    keras.initializers.Initializer,
    keras.regularizers.Regularizer,
    keras.constraints.Constraint,
)


def _plain(value):
    """`value` as a key: plain data as it is, a module-level function by
    its qualified name, an initializer, regularizer or constraint by its
    class; else `_UNKNOWN`."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (tuple, list)):
        items = tuple(_plain(v) for v in value)
        return _UNKNOWN if any(v is _UNKNOWN for v in items) else items
    if isinstance(value, _INERT):
        return type(value).__qualname__
    name = getattr(value, "__qualname__", "<")
    if isinstance(value, types.FunctionType) and "<" not in name:
        return f"{value.__module__}.{name}"
    return _UNKNOWN


def _arguments(layer) -> str | None:
    """`layer`'s constructor arguments read from its attributes of the
    same names, with its dtype policy and trainability, as a key; None if
    one is missing or not plain (`_plain`)."""
    items = []
    for name in _parameters(type(layer)):
        value = _plain(getattr(layer, name, _UNKNOWN))
        if value is _UNKNOWN:
            return None
        items.append((name, value))
    items.append(("dtype", layer.dtype_policy.name))
    items.append(("trainable", layer.trainable))
    return repr(items)


def _config(layer) -> str:
    """`layer`'s config as a key. On JAX, of a layer that names its
    constructor's arguments (`_config_names`), those, its dtype policy and
    trainability; of another layer (Keras' own), its constructor's
    arguments read from its attributes where they are plain
    (`_arguments`): Keras' `get_config` serializes the dtype policy, which
    imports TensorFlow in a JAX process (~520 MiB resident, micro
    configuration; benchmarks/RESULTS.md, #13 glue pieces, f15)."""
    names = getattr(type(layer), "_config_names", ())
    if keras.backend.backend() == "jax":
        if names:
            items = [(n, getattr(layer, n)) for n in names]
            items += [("dtype", layer.dtype_policy.name)]
            return repr(items + [("trainable", layer.trainable)])
        key = _arguments(layer)
        if key is not None:
            return key
    config = layer.get_config()
    config.pop("name", None)
    return repr(sorted(config.items()))


class Key(NamedTuple):
    """What makes two layers' calls one shared function (a kind)."""

    backend: str
    handles: bool
    layer_class: type
    config: Any
    input_shape: tuple
    input_dtype: str
    op_weights_shape: tuple | None
    op_weights_dtype: str | None
    training: bool
    piecewise: bool  # JAX: traced differently (_fused_mixed_op.py)


def _key(layer, inputs, op_weights, training, handles=False) -> Key:
    return Key(
        keras.backend.backend(),
        bool(handles),
        type(layer),
        _config(layer),
        tuple(inputs.shape),
        str(inputs.dtype),
        None if op_weights is None else tuple(op_weights.shape),
        None if op_weights is None else str(op_weights.dtype),
        bool(training),
        in_piecewise(),
    )


def functions() -> dict:
    """The shared functions made so far whose layers are alive:
    `{Key: function}`."""
    return {
        key: entry[1]
        for key, entry in _FUNCTIONS.items()
        if entry[0]() is not None
    }


def weakly_bound(fn, model):
    """`fn` with `model` as its first argument, holding `model` weakly.

    For the functions a cache keyed weakly by the model keeps: a value
    that referred to its key strongly (`functools.partial(fn, model)`, a
    closure) would keep the model, its variables and its compiled pieces
    alive for the rest of the process.
    """
    ref = weakref.ref(model)

    def bound(*args, **kwargs):
        return fn(ref(), *args, **kwargs)

    return bound


def _run_stateless(rep, trainable, non_trainable, run):
    """`run()` with `rep`'s variables read as the given values.

    Returns its outputs and the `StatelessScope` (new moving statistics).
    """
    mapping = list(zip(rep.trainable_variables, trainable, strict=True))
    mapping += zip(rep.non_trainable_variables, non_trainable, strict=True)
    _LOCAL.inside = True
    try:
        with keras.StatelessScope(state_mapping=mapping) as scope:
            outputs = run()
    finally:
        _LOCAL.inside = False
    return outputs, scope


def _make_handle_function(layer, direct, training):
    """TensorFlow: a function of the edge's variables themselves.

    It reads the weights and assigns the new moving statistics inside its
    body (traced once per kind of edge), so the caller's graph holds one
    call op per edge instead of a read per weight, an assignment per
    statistic and their plumbing (micro configuration, first-order step:
    ~2 x 3,300 outer ops fewer; benchmarks/RESULTS.md). Gradients reach
    the variables through the call's resource inputs.
    """
    tf = _backend_module()
    ref = weakref.ref(layer)

    def edge(trainable, non_trainable, inputs, op_weights):
        rep = ref()
        outputs, scope = _run_stateless(
            rep,
            [tf.convert_to_tensor(v) for v in trainable],
            [tf.convert_to_tensor(v) for v in non_trainable],
            lambda: direct(rep, inputs, op_weights, training),
        )
        if training:
            for v, target in zip(
                rep.non_trainable_variables, non_trainable, strict=True
            ):
                value = scope.get_current_value(v)
                if value is not None:
                    target.assign(value)
        return outputs

    return tf.function(
        edge, autograph=False, experimental_attributes={"_noinline": True}
    )


def packed_statistics(rep, non_trainable, scope):
    """`rep`'s non-trainable values after a stateless run in `scope` (the
    old value in `non_trainable` where the run set none), packed into one
    tensor: each output of a TF function gets its own zero gradient at
    every call site, so all moving statistics travel as one."""
    new = []
    for v, old in zip(rep.non_trainable_variables, non_trainable, strict=True):
        value = scope.get_current_value(v)
        new.append(old if value is None else value)
    return _pack(new)


def _make_function(layer, direct, training):
    ref = weakref.ref(layer)

    def edge(trainable, non_trainable, inputs, op_weights):
        rep = ref()
        outputs, scope = _run_stateless(
            rep,
            trainable,
            non_trainable,
            lambda: direct(rep, inputs, op_weights, training),
        )
        if not training or not non_trainable:
            return outputs, []
        return outputs, [packed_statistics(rep, non_trainable, scope)]

    if keras.backend.backend() == "tensorflow":
        tf = _backend_module()
        return tf.function(
            edge,
            autograph=False,
            experimental_attributes={"_noinline": True},
        )
    return _jax_edge(_unpacked(edge, ref))


def _unpacked(edge, ref):
    """JAX: `edge` returning the moving statistics as a list of values,
    unpacked inside the jitted function (eagerly, the piecewise step's
    split of each kind's packed statistics compiled on its own)."""

    def run(trainable, non_trainable, inputs, op_weights):
        outputs, new = edge(trainable, non_trainable, inputs, op_weights)
        if new:
            new = [_unpack(new[0], ref().non_trainable_variables)]
        return outputs, new

    return run


def _perturbed(group) -> bool:
    return any(p.perturbed for p in group)


def _expand(mask, pullback, cotangent):
    """The pullback's cotangents, None for the groups not differentiated."""
    grads = iter(pullback(cotangent))
    return tuple(next(grads) if m else None for m in mask)


def _without_weights(residuals, cotangent):
    """`residuals(cotangent)` with the weights' gradients dropped."""
    return (None, *residuals(cotangent)[1:])


def _edge_options():
    """`EDGE_OPTIONS` on JAX's CPU backend where its XLA takes them (one
    trial compilation per process and options), else None."""
    jax = _backend_module()
    if not EDGE_OPTIONS or jax.default_backend() != "cpu":
        return None
    key = tuple(sorted(EDGE_OPTIONS.items()))
    if key not in _CHECKED_OPTIONS:
        options = dict(EDGE_OPTIONS)
        try:
            jax.jit(lambda x: x + 1, compiler_options=options).lower(
                1.0
            ).compile()
        except jax.errors.JaxRuntimeError:  # an XLA without these options
            options = None
        _CHECKED_OPTIONS[key] = options
    return _CHECKED_OPTIONS[key]


def _jax_edge(edge):
    """`edge` as a `jax.custom_vjp` function of jitted pieces.

    The forward pass (the edge's outputs and the residuals of its
    backward pass) is a `jax.jit` function compiled once per kind of edge
    (with `SHARED_FORWARD`; else also per set of differentiated inputs),
    the backward pass one per kind and set of gradients wanted (with the
    weights' gradients or without: the alpha pass; the backward pass with
    them costs ~4x the compile time of the one without, micro
    configuration). Called eagerly (the piecewise step, `_darts_jax.py`),
    every edge of a kind runs those executables; under an outer `jax.jit`
    they are inlined as before.
    """
    jax = _backend_module()
    # Options only for the piecewise step's functions (called eagerly; a
    # nested `jax.jit` takes none, and the key tells the two apart).
    options = _edge_options() if in_piecewise() else None
    primal = jax.jit(edge, compiler_options=options)
    forwards = {}
    backward = jax.jit(
        lambda residuals, cotangent: residuals(cotangent),
        compiler_options=options,
    )

    def forward(mask, trainable, non_trainable, inputs, op_weights):
        groups = (trainable, inputs, op_weights)

        def diff(*args):
            args = iter(args)
            pairs = zip(groups, mask, strict=True)
            t, x, w = (next(args) if m else g for g, m in pairs)
            return edge(t, non_trainable, x, w)

        args = [g for g, m in zip(groups, mask, strict=True) if m]
        outputs, pullback, new = jax.vjp(diff, *args, has_aux=True)
        expand = functools.partial(_expand, mask)
        return (outputs, new), jax.tree_util.Partial(expand, pullback)

    @jax.custom_vjp
    def fn(trainable, non_trainable, inputs, op_weights):
        return primal(trainable, non_trainable, inputs, op_weights)

    def fwd(trainable, non_trainable, inputs, op_weights):
        # The input's and the op weights' gradients always (the first
        # cells' inputs are constants in the alpha pass, the op weights in
        # the weights pass); the weights' too with `SHARED_FORWARD` (the
        # backward then drops them where not wanted), else two variants
        # to compile, with and without them.
        # A layer's piece (`call_layer`: no op weights) always computes
        # its weights' gradients: one variant to compile, a cheap backward.
        layer_piece = op_weights is None
        weight_grads = (
            ALWAYS_WEIGHT_GRADS or layer_piece or _perturbed(trainable)
        )
        mask = (weight_grads or SHARED_FORWARD, True, not layer_piece)
        run = forwards.get(mask)
        if run is None:
            run = forwards[mask] = jax.jit(
                functools.partial(forward, mask),
                compiler_options=options,
            )
        outputs, residuals = run(
            [p.value for p in trainable],
            [p.value for p in non_trainable],
            inputs.value,
            None if op_weights is None else op_weights.value,
        )
        if mask[0] and not weight_grads:
            residuals = jax.tree_util.Partial(_without_weights, residuals)
        return outputs, residuals

    def bwd(residuals, cotangents):
        d_trainable, d_inputs, d_op_weights = backward(
            residuals, cotangents[0]
        )
        return d_trainable, None, d_inputs, d_op_weights

    fn.defvjp(fwd, bwd, symbolic_zeros=True)
    return fn


def function_for(layer, inputs, op_weights, training, direct, handles=False):
    """The shared function of `layer`'s kind of edge (made on first use).

    `handles`: TensorFlow's function of the variables (see
    `_make_handle_function`) instead of their values.
    """
    key = _key(layer, inputs, op_weights, training, handles)
    return function_at(key, layer, direct, training)


def function_at(key: Key, layer, direct, training):
    """`function_for` of a `key` already made by `_key` from `layer`'s
    call (for callers that keep the key: making it reads the layer's
    configuration)."""
    entry = _FUNCTIONS.get(key)
    if entry is None or entry[0]() is None:
        make = _make_handle_function if key.handles else _make_function
        entry = (weakref.ref(layer), make(layer, direct, training))
        _FUNCTIONS[key] = entry
    return entry[1]


def _apply_layer(layer, inputs, op_weights, training):
    """`call_layer`'s computation: the layer itself (no op weights)."""
    return layer(inputs, training=training)


def call_layer(layer, inputs, training):
    """`layer(inputs)`; in JAX's piecewise step (`piecewise()`) through
    the shared function of its kind (as an edge's, `call`: compiled once
    per kind of layer and input shape, forward and backward, reused by
    every such layer), not op by op (eagerly, each op compiles once per
    shape: a cell's preprocessing is ~30 of them).

    Args:
        layer: a built layer whose output depends only on its variables
            and `inputs` (no random ops), e.g. a cell's preprocessing.
        inputs: the input tensor.
        training: the training flag.
    """
    if not (in_piecewise() and enabled(inputs)):
        return layer(inputs, training=training)
    return call(layer, inputs, None, training, _apply_layer)


def rows(op_weights):
    """The rows of a cell's `op_weights` (one per edge); in JAX's
    piecewise step split by one jitted function (eagerly, each row's
    slice and its gradient compile on their own), on TensorFlow by one
    `unstack` (a traced step held a strided slice, its 3 constants and
    its gradient's per edge: ~900 graph ops at the micro configuration),
    else `op_weights` itself (indexed per edge)."""
    if in_piecewise():
        return _jax_rows()(op_weights)
    if keras.backend.backend() == "tensorflow":
        return keras.ops.unstack(op_weights)
    return op_weights


def node_sum(values):
    """The sum of a cell node's edge outputs; on TensorFlow one `add_n`
    (its gradient passes the upstream gradient on as it is; a chain of
    adds gets a broadcasting gradient per add, ~7 graph ops, where the
    batch size is unknown), else added left to right."""
    if keras.backend.backend() == "tensorflow" and len(values) > 1:
        return _backend_module().add_n(values)
    return functools.reduce(lambda a, b: a + b, values)


@functools.cache
def _jax_rows():
    jax = _backend_module()
    return jax.jit(lambda w: tuple(w[i] for i in range(w.shape[0])))


def _handles_apply() -> bool:
    """Whether edges get their variables (TensorFlow without a
    `tf.distribute` strategy: a strategy's variables go by value, as
    before, and are assigned in the replica context)."""
    if keras.backend.backend() != "tensorflow" or not HANDLES:
        return False
    return not _backend_module().distribute.has_strategy()


def call(layer, inputs, op_weights, training, direct):
    """`direct(layer, inputs, op_weights, training)` via the shared function.

    Args:
        layer: a built layer whose output depends only on its variables,
            `inputs` and `op_weights` (no random ops).
        inputs: the input tensor.
        op_weights: the softmax weights of the candidate ops.
        training: the training flag (a Python bool or None).
        direct: the layer's own computation, called on the representative.

    Returns:
        The output; the batch-norm moving statistics are assigned to
        `layer`'s non-trainable variables when `training`.
    """
    training = bool(training)
    if _handles_apply():
        fn = function_for(layer, inputs, op_weights, training, direct, True)
        return fn(
            [v.value for v in layer.trainable_variables],
            [v.value for v in layer.non_trainable_variables],
            inputs,
            op_weights,
        )
    fn = function_for(layer, inputs, op_weights, training, direct)
    trainable = [v.value for v in layer.trainable_variables]
    non_trainable = [v.value for v in layer.non_trainable_variables]
    if keras.backend.backend() == "tensorflow":
        tf = _backend_module()
        # Reads of the variables (the tape records them when it watches
        # the variables) rather than the resource handles.
        trainable = [tf.convert_to_tensor(v) for v in trainable]
        non_trainable = [tf.convert_to_tensor(v) for v in non_trainable]
    outputs, new = fn(trainable, non_trainable, inputs, op_weights)
    if new:
        variables = layer.non_trainable_variables
        for v, value in zip(variables, _unpack(new[0], variables), strict=True):
            v.assign(value)
    return outputs


def _pack(values):
    """The values flattened into one vector."""
    flat = [keras.ops.reshape(v, (-1,)) for v in values]
    return flat[0] if len(flat) == 1 else keras.ops.concatenate(flat, axis=0)


def _unpack(packed, variables):
    """`_pack`'s values, shaped as `variables` (a list: unpacked already,
    `_unpacked`)."""
    if isinstance(packed, (list, tuple)):
        return list(packed)
    sizes = [math.prod(v.shape) for v in variables]
    if len(sizes) == 1:
        return [keras.ops.reshape(packed, variables[0].shape)]
    if len(set(sizes)) == 1:  # equal sections: one op, no index arithmetic
        parts = keras.ops.split(packed, len(sizes))
    else:
        parts = keras.ops.split(packed, list(itertools.accumulate(sizes))[:-1])
    return [
        p if len(v.shape) == 1 else keras.ops.reshape(p, v.shape)
        for p, v in zip(parts, variables, strict=True)
    ]
