"""DARTS bilevel steps for the JAX backend (stateless, as Keras' JAX trainer).

`train_step(model, state, data)` receives and returns Keras' JAX trainer
state `(trainable, non_trainable, optimizer, metrics)` values. Gradients come
from `jax.value_and_grad` of a pure loss built on `model.stateless_call`;
the optimizers update through `stateless_apply`. The trainable values are
split into the network weights and `alpha` by position.

Piecewise compilation (`make_train_function`, the default for
`jit_compile=True` without a `keras.distribution`): Keras' trainer jits the
whole step, and XLA then compiles one computation that holds every edge of
every cell (it inlines the shared `jax.jit` edge functions of
`_darts_graph.py` at each call), forward and backward, for every pass of
the step; its compile time grows superlinearly with that size (micro
configuration, first order: ~80 s CPU). Instead the step runs in Python on
separately jitted pieces, each compiled once per shape and reused by every
call: each kind of edge's forward and backward pass (`_darts_graph._jax_edge`,
a `jax.custom_vjp` of two `jax.jit` functions), the optimizers' updates
with their clipping and decay (`TorchSGD`'s one call per layer, compiled
once per kind of layer: `_weight_update_jax`), the unrolled step of the
second order and the metrics, and of the glue: each kind of cell
preprocessing layer and the stem's two layers (`_darts_graph.call_layer`,
forward and backward as an edge's), the split of a cell's op weights into
rows and the loss; what lies between (node sums, head) runs op by op,
each op compiled once per shape. Under a `keras.distribution` the whole
step is jitted as before (the pieces are then inlined).

A later process can skip most compilations: JAX's persistent compilation
cache, the user's opt-in (keras-nas sets nothing), e.g.
`jax.config.update("jax_compilation_cache_dir", path)` and
`jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)` (or
the environment variables `JAX_COMPILATION_CACHE_DIR` and
`JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS=0`) before the first step
(micro configuration: benchmarks/RESULTS.md, #13 glue pieces).
"""

from __future__ import annotations

import functools
import weakref

import jax
import keras

from keras_nas._jax_memory import compiles_released
from keras_nas._jax_state import update_metrics
from keras_nas.supernet import _darts_graph, relaxations
from keras_nas.supernet import _weight_update_jax as weight_update
from keras_nas.supernet._darts_math import (
    clip_and_decay,
    cross_entropy,
    flat_norm,
    lr_in_buffer,
    sgd_momentums,
    unpack_search,
    virtual_step,
)
from keras_nas.supernet.bilevel import is_arch


def _split_indices(model):
    arch = [
        i for i, v in enumerate(model.trainable_variables) if is_arch(v)
    ]
    weights = [
        i
        for i, v in enumerate(model.trainable_variables)
        if not is_arch(v)
    ]
    return weights, arch


def _split(model, values):
    wi, ai = _split_indices(model)
    return [values[i] for i in wi], [values[i] for i in ai]


def _merge(model, w, a):
    wi, ai = _split_indices(model)
    out = [None] * (len(wi) + len(ai))
    for i, v in zip(wi, w, strict=False):
        out[i] = v
    for i, v in zip(ai, a, strict=False):
        out[i] = v
    return out


#: False: `jit_compile=True` jits the whole step (Keras' trainer), as
#: under a distribution (for measurements: benchmarks/).
PIECEWISE = True

#: XLA options of the pieces made by `_piece` (elementwise updates over
#: every weight: LLVM's optimizations cost more compile time than they
#: save; micro configuration, benchmarks/RESULTS.md).
PIECE_OPTIONS = {"xla_backend_optimization_level": 0}

# model -> {name: jitted piece}
_PIECES = weakref.WeakKeyDictionary()


def _piece(model, name, fn, options=PIECE_OPTIONS):
    """`fn` with `model` as first argument: in the piecewise step its
    `jax.jit` function (made once per model), else `fn` itself (traced
    into the whole step). `options`: XLA's (None under autodiff: JAX
    takes them only on a top-level `jax.jit`)."""
    if not _darts_graph.in_piecewise():
        return functools.partial(fn, model)
    pieces = _PIECES.setdefault(model, {})
    if name not in pieces:
        pieces[name] = jax.jit(
            _darts_graph.weakly_bound(fn, model), compiler_options=options
        )
    return pieces[name]


def _loss_fn(model, arch_pass):
    def loss(w, a, ntv, x, y):
        logits, ntv = model.stateless_call(
            _merge(model, w, a), ntv, x, training=True, arch_pass=arch_pass
        )
        loss = _piece(model, "loss", _cross_entropy, None)(y, logits)
        return loss, (logits, ntv)

    return loss


def _cross_entropy(model, y, logits):
    return cross_entropy(y, logits)


def _grads(model, argnums):
    # The alpha pass of the binary relaxation runs two gated paths.
    arch_pass = argnums == 1 or argnums == (0, 1)
    return jax.value_and_grad(
        _loss_fn(model, arch_pass), argnums=argnums, has_aux=True
    )


def _lr_and_momentums(model, wov, dtype):
    """The weights learning rate and SGD momentum values, from `wov`."""
    opt = model.optimizer.weights_optimizer
    mapping = list(zip(opt.variables, wov, strict=False))
    with keras.StatelessScope(state_mapping=mapping):
        lr = keras.ops.cast(opt.learning_rate, dtype)
    momentums, momentum = sgd_momentums(opt)
    if momentums is None:
        return lr, None, 0.0
    index = {id(v): k for k, v in enumerate(opt.variables)}
    return lr, [wov[index[id(m)]] for m in momentums], momentum


def _virtual(model, w, gw, wov):
    """The unrolled weights `w'` and the learning rate `xi`."""
    xi, moms, momentum = _lr_and_momentums(model, wov, w[0].dtype)
    w_virtual = virtual_step(
        w,
        gw,
        moms,
        xi,
        momentum,
        model.weight_decay,
        lr_in_buffer=lr_in_buffer(model.optimizer.weights_optimizer),
    )
    return w_virtual, xi


def _perturbed(model, w, dw):
    """`w + eps dw`, `w - eps dw` and `eps = 0.01 / ||dw||`."""
    eps = 0.01 / jax.numpy.maximum(flat_norm(dw), 1e-12)
    w_pos = [v + eps * d for v, d in zip(w, dw, strict=False)]
    w_neg = [v - eps * d for v, d in zip(w, dw, strict=False)]
    return w_pos, w_neg, eps


def _unrolled(model, grad_a, g_pos, g_neg, xi, eps):
    return [
        g - xi * (p - n) / (2.0 * eps)
        for g, p, n in zip(grad_a, g_pos, g_neg, strict=False)
    ]


def _unrolled_arch_grads(model, w, a, ntv, wov, xt, yt, xv, yv):
    """Eq. 7-8 of Liu et al.: grad_a L_val(w', a) - xi * (finite-diff HVP)."""
    (_, (_, ntv)), gw = _grads(model, 0)(w, a, ntv, xt, yt)
    w_virtual, xi = _piece(model, "virtual", _virtual)(w, gw, wov)
    (loss_v, (logits_v, ntv)), (dw, grad_a) = _grads(model, (0, 1))(
        w_virtual, a, ntv, xv, yv
    )
    w_pos, w_neg, eps = _piece(model, "perturbed", _perturbed)(w, dw)
    (_, (_, ntv)), g_pos = _grads(model, 1)(w_pos, a, ntv, xt, yt)
    (_, (_, ntv)), g_neg = _grads(model, 1)(w_neg, a, ntv, xt, yt)
    grad_a = _piece(model, "unrolled", _unrolled)(
        grad_a, g_pos, g_neg, xi, eps
    )
    return loss_v, logits_v, ntv, grad_a


def _arch_grads(model, w, a, ntv, wov, xt, yt, xv, yv):
    if model.order == 2:
        return _unrolled_arch_grads(model, w, a, ntv, wov, xt, yt, xv, yv)
    (loss_v, (logits_v, ntv)), grad_a = _grads(model, 1)(w, a, ntv, xv, yv)
    return loss_v, logits_v, ntv, grad_a


def _set_temperature(model, ntv, wov):
    """`ntv` with `gumbel_tau` at the weights optimizer's step (GDAS)."""
    opt = model.optimizer.weights_optimizer
    mapping = list(zip(opt.variables, wov, strict=False))
    with keras.StatelessScope(state_mapping=mapping):
        tau = model.temperature(opt.iterations.value)
    ntv = list(ntv)
    for i, v in enumerate(model.non_trainable_variables):
        if v is model.gumbel_tau:
            ntv[i] = keras.ops.cast(tau, ntv[i].dtype)
    return ntv


def _noise(model, ntv):
    """`(seed, draw)` of the binary relaxation, read from `ntv`."""
    wanted = (model.binary_seed, model.binary_draws)
    variables = model.non_trainable_variables
    return tuple(
        next(ntv[i] for i, v in enumerate(variables) if v is w)
        for w in wanted
    )


def _rescale(model, old, new, seed, draw):
    """`new` arch values with ProxylessNAS' rescaling of the alphas."""
    alphas = {id(v) for v in relaxations.alpha_variables(model)}
    arch = [v for v in model.trainable_variables if is_arch(v)]
    keep = [i for i, v in enumerate(arch) if id(v) in alphas]
    rescaled = relaxations.binary_rescale(
        [old[i] for i in keep], [new[i] for i in keep], seed, draw
    )
    out = list(new)
    for i, value in zip(keep, rescaled, strict=True):
        out[i] = value
    return out


def train_step(model, state, data):
    tv, ntv, ov, mv = state
    xt, yt, xv, yv = unpack_search(data)
    w, a = _split(model, tv)
    wov, aov = model.optimizer.split(ov)
    if model.relaxation == "gumbel":
        ntv = _set_temperature(model, ntv, wov)
    updates = []
    if model.order:
        if model.relaxation == "binary":  # the draw of the alpha pass
            seed, draw = _noise(model, ntv)
        old_a = a
        arch_loss, logits_v, ntv, grad_a = _arch_grads(
            model, w, a, ntv, wov, xt, yt, xv, yv
        )
        a, aov = _piece(model, "arch_update", _arch_update)(aov, grad_a, a)
        if model.relaxation == "binary":
            a = _rescale(model, old_a, a, seed, draw)
        updates += [(arch_loss,), (yv, logits_v)]
    (loss, (logits, ntv)), grad_w = _grads(model, 0)(w, a, ntv, xt, yt)
    w, wov = _update_weights(model, wov, grad_w, w)
    updates = [(loss,), (yt, logits)] + updates
    logs, mv = _piece(model, "metrics", _train_metrics)(mv, updates)
    return logs, (_merge(model, w, a), ntv, wov + aov, mv)


def _arch_update(model, aov, grad_a, a):
    grad_a = clip_and_decay(grad_a, a, None, model.arch_weight_decay)
    return model.optimizer.arch_optimizer.stateless_apply(aov, grad_a, a)


def _update_weights(model, wov, grad_w, w):
    """The weights' step: in the piecewise step, for `TorchSGD`, one
    call per layer (`_weight_update_jax`), else one piece."""
    opt = model.optimizer.weights_optimizer
    plan = None
    if _darts_graph.in_piecewise():
        plan = _update_plan(model, len(w))
    if plan is None:
        return _piece(model, "weights_update", _weights_update)(wov, grad_w, w)
    groups, iteration, buffers = plan
    lr, wov_iteration = _piece(model, "weights_lr", _weights_lr)(wov)
    scale = None
    if model.grad_clip:
        scale = _piece(model, "clip_scale", _clip_scale)(grad_w)
    w, new_buffers = weight_update.update(
        opt,
        groups,
        w,
        [wov[p] for p in buffers],
        grad_w,
        lr,
        scale,
        model.weight_decay,
    )
    wov = list(wov)
    wov[iteration] = wov_iteration
    for p, value in zip(buffers, new_buffers, strict=True):
        wov[p] = value
    return w, wov


# model -> (weights optimizer, count of weights, plan): the plan is the
# weights' groups, the positions of the optimizer's iteration count and
# of each weight's momentum buffer, or None.
_PLANS = weakref.WeakKeyDictionary()


def _update_plan(model, count):
    """How `_update_weights` runs `_weight_update_jax.update` on `model`'s
    `count` weights (None: it does not apply). Made once per model,
    weights optimizer and count of weights."""
    opt = model.optimizer.weights_optimizer
    cached = _PLANS.get(model)
    if cached is not None and cached[0] is opt and cached[1] == count:
        return cached[2]
    trainable = model.trainable_variables
    variables = [trainable[i] for i in _split_indices(model)[0]]
    plan = None
    if weight_update.applies(opt, variables):
        index = {id(v): k for k, v in enumerate(opt.variables)}
        buffers = []
        if opt.momentum:
            buffers = [
                index[id(opt.momentums[opt._get_variable_index(v)])]
                for v in variables
            ]
        plan = (
            weight_update.groups(variables),
            index[id(opt.iterations)],
            buffers,
        )
    _PLANS[model] = (opt, count, plan)
    return plan


def _weights_lr(model, wov):
    """The weights optimizer's learning rate at its step (float32) and
    its step count plus one."""
    opt = model.optimizer.weights_optimizer
    mapping = list(zip(opt.variables, wov, strict=False))
    with keras.StatelessScope(state_mapping=mapping):
        lr = keras.ops.cast(opt.learning_rate, "float32")
        iterations = opt.iterations.value
    return lr, iterations + 1


def _clip_scale(model, grads):
    return weight_update.clip_scale(grads, model.grad_clip)


def _weights_update(model, wov, grad_w, w):
    grad_w = clip_and_decay(
        grad_w, w, model.grad_clip, model.weight_decay, flat_norm
    )
    return model.optimizer.weights_optimizer.stateless_apply(wov, grad_w, w)


def _train_metrics(model, mv, args):
    """The training step's metrics: `args` of the loss and accuracy
    trackers, then of the arch trackers when `alpha` took a step."""
    trackers = [model.loss_tracker, model.accuracy_tracker]
    trackers += [model.arch_loss_tracker, model.arch_accuracy_tracker]
    return update_metrics(model, mv, list(zip(trackers, args, strict=False)))


def test_step(model, state, data):
    tv, ntv, mv = state
    x, y, _ = keras.utils.unpack_x_y_sample_weight(data)
    logits, ntv = model.stateless_call(tv, ntv, x, training=False)
    logs, mv = _piece(model, "test_metrics", _test_metrics)(mv, y, logits)
    return logs, (tv, ntv, mv)


def _test_metrics(model, mv, y, logits):
    return update_metrics(
        model,
        mv,
        [
            (model.loss_tracker, (cross_entropy(y, logits),)),
            (model.accuracy_tracker, (y, logits)),
        ],
    )


def _piecewise(model) -> bool:
    """Whether `model`'s compiled steps run piecewise (module doc)."""
    return bool(
        PIECEWISE
        and model.jit_compile
        and not model.run_eagerly
        and keras.distribution.distribution() is None
        and model.relaxation == "softmax"
    )


def _eager(step, model, state, data):
    """`step` run in Python on the jitted pieces; what each compilation
    leaves behind given back as it ends (`_jax_memory`)."""
    data = jax.tree.map(jax.numpy.asarray, data)
    with _darts_graph.piecewise(), compiles_released():
        return step(model, state, data)


def _function(model, force, whole, attribute, step):
    """`model.<attribute>` made from the piecewise `step` (module doc), or
    `whole(force)`, Keras' own (the whole step jitted)."""
    if not _piecewise(model):
        return whole(force)
    if getattr(model, attribute) is None or force:
        run = functools.partial(_eager, step, model)
        setattr(model, attribute, model._make_function(run))
    return getattr(model, attribute)


def make_train_function(model, force, whole):
    """Keras' train function: piecewise or `whole(force)`."""
    return _function(model, force, whole, "train_function", train_step)


def make_test_function(model, force, whole):
    """Keras' test function: piecewise or `whole(force)`."""
    return _function(model, force, whole, "test_function", test_step)


def arch_gradients(model, train_batch, val_batch):
    (xt, yt), (xv, yv) = train_batch, val_batch
    tv = [v.value for v in model.trainable_variables]
    ntv = [v.value for v in model.non_trainable_variables]
    wov, _ = model.optimizer.split([v.value for v in model.optimizer.variables])
    w, a = _split(model, tv)
    xt, yt, xv, yv = (keras.ops.convert_to_tensor(t) for t in (xt, yt, xv, yv))
    _, _, _, grads = _arch_grads(model, w, a, ntv, wov, xt, yt, xv, yv)
    return grads
