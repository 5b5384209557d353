"""DARTS bilevel steps for the TensorFlow backend (GradientTape).

Every gradient comes from its own non-persistent tape that watches only the
variables it differentiates, so no tape or activation outlives its pass.
The second-order step moves the weights in place (`w'`, `w + eps v`,
`w - eps v`) and restores them from one saved copy of the weights.

In graph mode (`fit` without `run_eagerly`) the second-order step traces
each kind of pass (gradients of the weights, of `alpha`, or of both) once
into its own `tf.function`, marked not to be inlined, and calls it: it
runs five passes but holds three pass graphs (micro configuration: peak
memory 10.8 -> 7.6 GB, benchmarks/RESULTS.md). The other steps run each
kind of pass once and trace it inline; eagerly, the passes run directly.

`make_train_function` (graph mode, no `tf.distribute` strategy) makes
the train function one `tf.function` of the iterator per step (one step
per execution, no XLA; else Keras' nested pair), and with TF's default
grappler settings runs it with grappler's function optimizer alone, one
iteration, on the step's own graph; the functions it calls (edges,
passes, weight updates) keep the settings the caller had (`train_step`
restores them while it is traced: a call op carries the options of its
trace). The step's graph is thousands of small ops (variable captures,
slices, sums) that grappler's other passes took ~4 s to optimize for no
measured gain in the step, while the function optimizer's
specializations (gradients not needed pruned) keep it ~25% faster than
with grappler off (micro configuration, benchmarks/RESULTS.md, sections
f13-first-step, r13-tf-outer and w13-tf-first).
"""

from __future__ import annotations

import contextlib
import threading
import weakref

import keras
import tensorflow as tf
from tensorflow.core.protobuf import config_pb2, rewriter_config_pb2
from tensorflow.python.eager import context

from keras_nas import _distribute_tensorflow as distribute
from keras_nas.supernet import _darts_graph, relaxations
from keras_nas.supernet import _weight_update_tensorflow as weight_update
from keras_nas.supernet._batch_norm_tensorflow import fused_batch_norm
from keras_nas.supernet._darts_math import (
    clip_and_decay,
    cross_entropy,
    lr_in_buffer,
    sgd_momentums,
    unpack_search,
)

# model -> {groups: tf.function}; weak so that models can be collected.
_TRACED_PASSES = weakref.WeakKeyDictionary()
# .caller, .step: the caller's function-call options and the step's own
# while an `_outer_optimized` train function runs.
_LOCAL = threading.local()


def _variables(model, groups):
    """The variables a pass differentiates: "w", "a" or "aw" (alpha first).

    Only the lists asked for: each is a walk over every layer of the model
    (~5 ms at the micro configuration, on every eager step)."""
    if groups == "w":
        return model.weight_variables
    if groups == "a":
        return model.arch_variables
    return model.arch_variables + model.weight_variables


def _pass(model, x, y, groups):
    variables = [v.value for v in _variables(model, groups)]
    # Training-mode batch norms as one fused op each (fewer graph ops to
    # trace and instantiate; _batch_norm_tensorflow.py).
    with (
        tf.GradientTape(watch_accessed_variables=False) as tape,
        fused_batch_norm(model),
    ):
        tape.watch(variables)
        # The alpha pass of the binary relaxation runs two gated paths.
        logits = model(x, training=True, arch_pass="a" in groups)
        loss = cross_entropy(y, logits)
    grads = tape.gradient(
        loss, variables, unconnected_gradients=tf.UnconnectedGradients.ZERO
    )
    return loss, logits, grads


def _loss_and_grads(model, x, y, groups):
    """Loss, logits and gradients of one forward/backward pass.

    Inside a `tf.function` of a second-order step (the only step that runs
    a kind of pass more than once) the pass is a call of a per-model,
    per-`groups` `tf.function` traced once (`_noinline`: it stays one
    function in the step's graph, however often the step calls it).
    """
    if model.order != 2 or not tf.inside_function():
        loss, logits, grads = _pass(model, x, y, groups)
    else:
        # The pass's own graph (calls of the edges, as the step's) gets
        # the step's grappler options (`_step_options`), the edges inside
        # it the caller's.
        with _options("step"):
            loss, logits, grads = _traced_pass(model, groups)(x, y)
    # Under a tf.distribute strategy: the global batch's gradients.
    return loss, logits, distribute.mean_gradients(grads)


def _traced_pass(model, groups):
    passes = _TRACED_PASSES.setdefault(model, {})
    if groups not in passes:

        def traced(model, x, y):
            with _options("caller"):
                return _pass(model, x, y, groups)

        passes[groups] = tf.function(
            _darts_graph.weakly_bound(traced, model),
            autograph=False,
            reduce_retracing=True,
            experimental_attributes={"_noinline": True},
        )
    return passes[groups]


def _unrolled_arch_grads(model, xt, yt, xv, yv):
    """Eq. 7-8 of Liu et al.: grad_a L_val(w', a) - xi * (finite-diff HVP).

    The weight arithmetic (`w'`, `w +- eps v`, the norm of `v`) runs one
    call per layer in a traced step, else on the weights stacked by shape
    (`weight_update.weights_for_unrolling`; the same arithmetic element
    for element).
    """
    opt = model.optimizer.weights_optimizer
    w, a = model.weight_variables, model.arch_variables
    xi = tf.cast(opt.learning_rate, w[0].dtype)
    momentums, momentum = sgd_momentums(opt)
    _, _, gw = _loss_and_grads(model, xt, yt, "w")
    weights = weight_update.weights_for_unrolling(w, momentums)
    weights.virtual_step(
        gw, xi, momentum, model.weight_decay, lr_in_buffer(opt)
    )
    loss_v, logits_v, grads = _loss_and_grads(model, xv, yv, "aw")
    grad_a, dw = grads[: len(a)], grads[len(a) :]
    eps = 0.01 / tf.maximum(weights.norm(dw), 1e-12)
    weights.shift(dw, eps, 1)
    _, _, g_pos = _loss_and_grads(model, xt, yt, "a")
    weights.shift(dw, eps, -1)
    _, _, g_neg = _loss_and_grads(model, xt, yt, "a")
    weights.restore()
    grad_a = [
        g - xi * (p - n) / (2.0 * eps)
        for g, p, n in zip(grad_a, g_pos, g_neg, strict=False)
    ]
    return loss_v, logits_v, grad_a


def _arch_grads(model, xt, yt, xv, yv):
    if model.order == 2:
        return _unrolled_arch_grads(model, xt, yt, xv, yv)
    return _loss_and_grads(model, xv, yv, "a")


def _step_options(options):
    """`options` with grappler's function optimizer alone, one iteration;
    None where `options` already set grappler (left to the user)."""
    config = config_pb2.ConfigProto()
    if options.config_proto_serialized:
        config.ParseFromString(options.config_proto_serialized)
    rewrite = config.graph_options.rewrite_options
    if rewrite != rewriter_config_pb2.RewriterConfig():
        return None
    rewrite.optimizers.append("function")
    rewrite.meta_optimizer_iterations = rewriter_config_pb2.RewriterConfig.ONE
    return type(options)(
        executor_type=options.executor_type, config_proto=config
    )


def _outer_optimized(fn):
    """`fn` (Keras' train function) called with `_step_options`."""

    def train_function(*args, **kwargs):
        ctx = context.context()
        caller = ctx.function_call_options
        options = _step_options(caller)
        if options is None:
            return fn(*args, **kwargs)
        _LOCAL.caller, _LOCAL.step = caller, options
        ctx.function_call_options = options
        try:
            return fn(*args, **kwargs)
        finally:
            ctx.function_call_options = caller
            _LOCAL.caller = _LOCAL.step = None

    train_function.outer_optimized = True
    return train_function


@contextlib.contextmanager
def _options(which):
    """The caller's ("caller") or the step's ("step") function-call
    options, inside an `_outer_optimized` train function (else none set):
    the call ops traced meanwhile carry them."""
    options = getattr(_LOCAL, which, None)
    if options is None:
        yield
        return
    ctx = context.context()
    own, ctx.function_call_options = ctx.function_call_options, options
    try:
        yield
    finally:
        ctx.function_call_options = own


def _without_optionals(data):
    """`data` with TF `Optional`s as None (as Keras' train function)."""
    return tf.nest.map_structure(
        lambda x: None if isinstance(x, tf.experimental.Optional) else x,
        data,
    )


def _one_step_function(model, keras_function):
    """The train function of one step per call as one `tf.function` that
    takes the iterator (Keras' nests a `tf.function` of the step in one of
    the iterator: every captured variable became an input of both graphs,
    the inner one a call with ~3,000 inputs; micro configuration, first
    order: trace -1 s, first execution -1 s CPU; benchmarks/RESULTS.md,
    branch w13-tf-first). Same step, same logs; other iterators go to
    Keras' `keras_function`."""

    @tf.autograph.experimental.do_not_convert
    def one_step_on_iterator(iterator):
        data = _without_optionals(iterator.get_next())
        return tf.experimental.Optional.from_value(model.train_step(data))

    step = tf.function(one_step_on_iterator, reduce_retracing=True)

    def function(iterator):
        if not isinstance(
            iterator, (tf.data.Iterator, tf.distribute.DistributedIterator)
        ):
            return keras_function(iterator)
        outputs = step(iterator)
        if not outputs.has_value():
            raise StopIteration
        return outputs.get_value()

    return function


def make_train_function(model, force, whole):
    """Keras' train function (`whole`), in graph mode without a
    `tf.distribute` strategy one `tf.function` per step
    (`_one_step_function`, one step per execution, no XLA) run with
    `_step_options` (module docstring)."""
    whole(force)
    fn = model.train_function
    if (
        getattr(fn, "outer_optimized", False)
        or model.run_eagerly
        or model._distribute_strategy is not None
        or tf.distribute.has_strategy()
    ):
        return fn
    if model.steps_per_execution == 1 and not model.jit_compile:
        fn = _one_step_function(model, fn)
    # Keras' make_train_function returns it only when it was made before.
    model.train_function = _outer_optimized(fn)
    return model.train_function


# Keras traces the step with autograph, which would transpile every Python
# function of the step (~30: ~1.5 s of the micro configuration's trace)
# for no use: its control flow is on Python values.
@tf.autograph.experimental.do_not_convert
def train_step(model, data):
    with _options("caller"):
        return _train_step(model, data)


def _train_step(model, data):
    xt, yt, xv, yv = unpack_search(data)
    logs = {}
    if model.relaxation == "gumbel":  # GDAS' annealed temperature
        model.gumbel_tau.assign(model.temperature())
    if model.order:
        a = model.arch_variables
        binary = model.relaxation == "binary"
        if binary:  # ProxylessNAS: the draw and alpha before the update
            seed, draw = relaxations.read_noise(model)
            alphas = relaxations.alpha_variables(model)
            old = [tf.identity(v.value) for v in alphas]
        arch_loss, logits_v, grad_a = _arch_grads(model, xt, yt, xv, yv)
        grad_a = clip_and_decay(grad_a, a, None, model.arch_weight_decay)
        distribute.apply(model.optimizer.arch_optimizer, grad_a, a)
        if binary:
            new = [tf.identity(v.value) for v in alphas]
            new = relaxations.binary_rescale(old, new, seed, draw)
            weight_update.assign(alphas, new)
        model.arch_loss_tracker.update_state(arch_loss)
        model.arch_accuracy_tracker.update_state(yv, logits_v)
    w = model.weight_variables
    loss, logits, grad_w = _loss_and_grads(model, xt, yt, "w")
    # Few graph ops per layer (_weight_update_tensorflow.py).
    weight_update.update(
        model.optimizer.weights_optimizer,
        grad_w,
        w,
        model.grad_clip,
        model.weight_decay,
    )
    model.loss_tracker.update_state(loss)
    model.accuracy_tracker.update_state(yt, logits)
    logs["loss"] = model.loss_tracker.result()
    logs["accuracy"] = model.accuracy_tracker.result()
    if model.order:
        logs["arch_loss"] = model.arch_loss_tracker.result()
        logs["arch_accuracy"] = model.arch_accuracy_tracker.result()
    return logs


def test_step(model, data):
    x, y, _ = keras.utils.unpack_x_y_sample_weight(data)
    logits = model(x, training=False)
    model.loss_tracker.update_state(cross_entropy(y, logits))
    model.accuracy_tracker.update_state(y, logits)
    return {
        "loss": model.loss_tracker.result(),
        "accuracy": model.accuracy_tracker.result(),
    }


def arch_gradients(model, train_batch, val_batch):
    (xt, yt), (xv, yv) = train_batch, val_batch
    _, _, grads = _arch_grads(model, xt, yt, xv, yv)
    return grads
