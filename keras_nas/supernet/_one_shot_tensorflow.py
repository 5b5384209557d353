"""TensorFlow training steps of `OneShotSupernet`.

Four steps:

- piecewise (the compiled step on the cell space, without a
  `tf.distribute` strategy or `jit_compile=True`): Keras' train function
  runs in Python; the path (or the `m` paths of a strictly fair step) is
  drawn eagerly from the supernet's `SeedGenerator` (the same numbers as
  in the graph step), and every layer of the path runs as one call of the
  `tf.function` of its kind of layer (`_one_shot_groups.piece_caller`,
  traced when the kind is first sampled), its backward pass chained by
  hand (`_one_shot_chain_tensorflow`: TensorFlow's forward and backward
  functions of each piece, no `tf.GradientTape`), the loss's gradient
  and the metrics each one `tf.function` of the model; the optimizer gets
  the paths' variables and summed gradients only (Keras' SGD and Adam /
  AdamW in one fused kernel per variable, `apply_update`).
- compiled (default without a Python `sampler` elsewhere): the path is an int32
  tensor drawn inside the step, every decision slot dispatches with
  `tf.switch_case`, and Keras traces `train_step` once (`tf.function`).
  In graph mode only the taken branch runs, forward and backward, so a
  step costs about one path. The gradients of the other ops are zeros;
  so that momentum and weight decay do not move them, the update of every
  variable (and of its optimizer slots) is masked with the path's mask:
  exactly the eager step's semantics.
- strictly fair (`sampler="fair"`, FairNAS): the compiled step with `m`
  paths per batch, run in a `tf.while_loop` with their gradients summed,
  one optimizer update masked to the union of the paths' variables.
- eager (a Python `sampler`, e.g. the ENAS controller, or `step="eager"`):
  the path is a Python choice and only its variables are handed to the
  optimizer; every layer call runs as its own cached `tf.function`. On the
  cell space with `step="auto"` a Python sampler's path runs on the
  piecewise step instead (`PYTHON_PATHS`).

Under a `tf.distribute` strategy (`fit` inside `strategy.scope()`) every
replica trains the same path: the compiled steps draw it from the mirrored
state of the model's `SeedGenerator` (the same numbers on every replica),
the eager step draws it once on the host (`distribute.once`). The loss is
Keras' (divided by the number of replicas), so the optimizer's sum over the
replicas is the global batch's gradient, as in Keras' own step; the
restored off-path variables are replica-identical. Batch norm keeps
per-replica statistics (see `keras_nas._distribute_tensorflow`).
"""

from __future__ import annotations

import contextlib
import functools
import weakref
from typing import Any

import keras
import tensorflow as tf
from tensorflow.core.protobuf import config_pb2
from tensorflow.python.eager import context as tf_context
from tensorflow.python.ops import resource_variable_ops

from keras_nas import _distribute_tensorflow as distribute
from keras_nas.supernet import _darts_graph
from keras_nas.supernet import _one_shot_chain_tensorflow as chain
from keras_nas.supernet import _one_shot_groups as groups
from keras_nas.supernet import _one_shot_indexed as indexed
from keras_nas.supernet._path_update_tensorflow import apply_update

#: True dispatches every slot over its kinds of layer (`grouped_switch`):
#: ~1.6x less trace CPU and ~45% less peak memory on the DARTS cell space,
#: but a 1.4-2.8x slower step (every step gathers all of a slot's weights;
#: tiny cell space, NAS-Bench-201 and a small cell space: RESULTS.md, issue
#: #13, q13-oneshot). A search runs thousands of steps, so TensorFlow keeps
#: the switch over all (input, op) branches by default; JAX, where the
#: grouped step is as fast and compiles ~1.6x faster, always groups.
GROUPED = False
_CALLERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_FUNCTIONS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
# model -> {function of the piecewise step: its tf.function}.
_STEP_FUNCTIONS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def layer_caller(model):
    """Returns `use(layer)`: the layer's call as a cached `LayerFunction`."""
    cache = _CALLERS.get(model)
    if cache is None:
        cache = _CALLERS[model] = {}

    def use(layer):
        fn = cache.get(id(layer))
        if fn is None:
            fn = cache[id(layer)] = LayerFunction(layer)
        return fn

    return use


def _call(layer, inputs, training=None):
    return layer(inputs, training=training)


def _call_weak(ref, inputs, training=None):
    return ref()(inputs, training=training)


def _batch_free(x):
    """`x`'s `TensorSpec` with the batch (first) dimension unknown."""
    shape = tuple(x.shape)
    return tf.TensorSpec((None, *shape[1:]) if shape else (), x.dtype)


def _signature(inputs, training) -> tuple:
    """What a `LayerFunction` traces once for: `training` and the inputs'
    dtypes and shapes without the batch dimension."""
    return training, tuple(
        (str(x.dtype), tuple(x.shape)[1:]) for x in tf.nest.flatten(inputs)
    )


class LayerFunction:
    """`layer(inputs, training=...)` as `tf.function`s of its own.

    One function per `training` value (and input dtypes and non-batch
    shapes), traced once with the batch dimension unknown
    (`input_signature`): batches of any size (a short last batch
    included) run the same graph. Each function's Python function is a
    `functools.partial` of its own, so TensorFlow's frequent-retracing
    detector (keyed by the function's code) counts each one's traces
    apart instead of taking the first traces of many layers for retraces
    of one function. With `weak=True` the layer is held weakly (for
    caches keyed weakly by the layer).
    """

    __slots__ = ("_call", "_functions")

    def __init__(self, layer, weak: bool = False):
        self._call = (
            functools.partial(_call_weak, weakref.ref(layer))
            if weak
            else functools.partial(_call, layer)
        )
        self._functions: dict = {}

    def __call__(self, inputs, training=None):
        if training is not None and not isinstance(training, bool):
            key, call = None, self._call  # a tensor: traced per call site
        else:
            key = _signature(inputs, training)
            call = functools.partial(self._call, training=training)
        fn = self._functions.get(key)
        if fn is None:
            if key is None:
                fn = tf.function(call, reduce_retracing=True)
            else:
                specs = tf.nest.map_structure(_batch_free, inputs)
                fn = tf.function(call, input_signature=[specs])
            self._functions[key] = fn
        return fn(inputs) if key is not None else fn(inputs, training)

    def tracing_count(self) -> int:
        """How many graphs TensorFlow traced for this layer."""
        return sum(
            fn.experimental_get_tracing_count()
            for fn in self._functions.values()
        )


def switch(index, branches, operands, training):
    """Runs `branches[index]` (a `(layer, operand_position)`) only."""

    def make(layer, pos):
        return lambda: layer(operands[pos], training=training)

    return tf.switch_case(
        tf.cast(index, tf.int32), [make(*b) for b in branches]
    )


def _shared(fn):
    """A function of `_one_shot_groups.shared_function`: traced once per
    kind of layer and not inlined, so the step's graph holds one call per
    slot and kind, not a copy of the op (nor of its gradient)."""
    return tf.function(
        fn, autograph=False, experimental_attributes={"_noinline": True}
    )


def _piece(fn):
    """A piece of the piecewise step: a `tf.function` called eagerly,
    traced once per kind of layer (`_one_shot_groups.piece_caller`)."""
    return tf.function(fn, autograph=False)


def _case(index, functions, arguments):
    return tf.switch_case(index, [lambda f=f: f(*arguments) for f in functions])


def slot_switch(index, branches, operands, training):
    """Runs `branches[index]` of a one-shot decision slot only: a switch
    over its kinds of layer, each branch one call of the kind's shared
    function on the chosen member's gathered operand and weights
    (`_one_shot_groups`)."""
    if not GROUPED:
        return switch(index, branches, operands, training)
    return grouped_switch(index, branches, operands, training)


def grouped_switch(index, branches, operands, training):
    """`slot_switch` with the grouped dispatch, whatever `GROUPED` says."""
    return groups.grouped_switch(
        index,
        branches,
        operands,
        training,
        _case,
        _shared,
        tf.convert_to_tensor,
        tf.gather,
    )


def piece_caller(model):
    """`use(layer)` of the piecewise step: one `tf.function` per kind of
    layer, called eagerly on the layer's variables themselves
    (`_darts_graph.call`: the function of the variables reads them and
    assigns the new batch-norm statistics inside its body, so a piece is
    one call, without the eager reads, the unpacking and the assignments
    around it; the gradients reach the variables through the call's
    resource inputs). Without `_darts_graph.HANDLES`: the function of
    the values (`_one_shot_groups.piece_caller`)."""
    if not _darts_graph.HANDLES:
        return groups.piece_caller(_piece, tf.convert_to_tensor)
    return _handle_piece


def pieces() -> dict:
    """The pieces the piecewise step made so far (their layers alive):
    `{(class of layer, key of the kind): tf.function}`."""
    if not _darts_graph.HANDLES:
        # (kind, ...): the kind's first element is the class of layer.
        return {
            (key[0][0], key): fn
            for key, fn in groups.shared_functions(_piece).items()
        }
    # A layer's piece has no op weights (an edge's has).
    return {
        (key.layer_class, key): fn
        for key, fn in _darts_graph.functions().items()
        if key.backend == "tensorflow"
        and key.handles
        and key.op_weights_shape is None
    }


class _HandlePiece(groups.LayerRecord):
    """A layer's piece on its variables (`_darts_graph.call` with
    handles): a `LayerRecord` with its kinds' keys read once (per call,
    the key, made of the layer's configuration, cost about as much as the
    call of the piece), and per kind the concrete function, called on the
    variables' handles (`_call_flat`: the `tf.function`'s binding of its
    nested arguments and its cache lookup cost ~0.5 ms CPU a call, more
    than a small piece's forward pass; RESULTS.md, #13 e15)."""

    def __init__(self, layer):
        super().__init__(layer)
        self.keys: dict = {}
        self.concrete: dict = {}
        variables = [v.value for v in self.trainable + self.non_trainable]
        self.handles = [getattr(v, "handle", None) for v in variables]
        # Read inside the function: watched here, as a call of the
        # `tf.function` on the variables would.
        self.watched = [v for v in variables if v.trainable]

    def _entry(self, inputs, training: bool) -> list:
        """`[function, concrete function or None, chained pair or
        unset]` of the kind at this input shape and dtype."""
        at = (tuple(inputs.shape), inputs.dtype, training)
        key = self.keys.get(at)
        if key is None:
            key = self.keys[at] = _darts_graph._key(
                self.layer(), inputs, None, training, True
            )
        fn = _darts_graph.function_at(
            key, self.layer(), _darts_graph._apply_layer, training
        )
        entry = self.concrete.get(at)
        if entry is None or entry[0] is not fn:
            entry = self.concrete[at] = [fn, self._flat_call(fn, inputs), 0]
        return entry

    def pair(self, inputs, training: bool):
        """The chained step's forward and backward functions of this call
        (`_one_shot_chain_tensorflow._Pair`), None where the call runs as
        a `tf.function` (then under a tape)."""
        entry = self._entry(inputs, training)
        if entry[2] == 0:
            entry[2] = None
            if entry[1] is not None:
                entry[2] = chain.Pair.of(entry[1], [*self.handles, inputs])
        return entry[2]

    def __call__(self, inputs, training=None):
        training = bool(training)
        entry = self._entry(inputs, training)
        fn = entry[0]
        if entry[1] is None:
            return fn(
                [v.value for v in self.trainable],
                [v.value for v in self.non_trainable],
                inputs,
                None,
            )
        for v in self.watched:
            resource_variable_ops.variable_accessed(v)
        return entry[1]._call_flat([*self.handles, inputs], [])

    def _flat_call(self, fn, inputs):
        """`fn`'s concrete function for these arguments (traced if it is
        not), or None where its flat inputs are not the variables'
        handles and `inputs` (then the `tf.function` is called)."""
        concrete = fn.get_concrete_function(
            [v.value for v in self.trainable],
            [v.value for v in self.non_trainable],
            inputs,
            None,
        )
        flat = concrete.function_type.flat_inputs
        if (
            None in self.handles
            or len(flat) != len(self.handles) + 1
            or concrete.captured_inputs
        ):
            return None
        return concrete


def _handle_piece(layer):
    piece = _HandlePiece.of(layer)
    return piece if piece.has_variables else layer


#: False: the pieces run with the context's function options (Grappler
#: on; for measurements: benchmarks/).
PLAIN_PIECES = True
# Grappler leaves a graph of fewer nodes than this as it is (its own rule
# for tiny graphs, 4 nodes by default): above any piece's size.
_MIN_GRAPH_NODES = 1 << 30
# The context's (serialized config, executor) -> the options without
# Grappler's passes.
_PLAIN: dict = {}


@contextlib.contextmanager
def plain_functions():
    """Functions called eagerly in this thread (a piece, its gradient) are
    instantiated without Grappler's graph rewrites: a piece is a few dozen
    ops, instantiated once per kind and once more for its gradient, and
    Grappler's passes cost more CPU there than they saved in the steps
    measured (RESULTS.md, #13 e15). TensorFlow's thread-local function
    call options get Grappler's `min_graph_nodes` above any piece's size
    (the meta-optimizer still runs, so each function keeps only the
    library functions it reaches; with the meta-optimizer disabled, the
    peak memory grew ~50 MiB), and are set back on exit."""
    if not PLAIN_PIECES:
        yield
        return
    ctx = tf_context.context()
    before = ctx.function_call_options
    key = (before.config_proto_serialized, before.executor_type)
    options = _PLAIN.get(key)
    if options is None:
        config = config_pb2.ConfigProto.FromString(key[0])
        rewrite = config.graph_options.rewrite_options
        rewrite.min_graph_nodes = _MIN_GRAPH_NODES
        options = _PLAIN[key] = tf_context.FunctionCallOptions(
            executor_type=key[1], config_proto=config
        )
    ctx.function_call_options = options
    try:
        yield
    finally:
        ctx.function_call_options = before


#: A Python sampler's paths (`step="auto"`, e.g. ENAS' controller) train
#: on the piecewise step's pieces too (`_piece_paths`); False: on the eager
#: step (`layer_caller` under a tape), as before (for measurements).
PYTHON_PATHS = True

#: False: the piecewise step differentiates its pieces under a
#: `tf.GradientTape` (for measurements and tests).
CHAINED = True


def _chained(model) -> bool:
    """Whether the piecewise step's backward pass is chained by hand
    (`_one_shot_chain_tensorflow`): unless `CHAINED` is False or a weight
    has a regularizer (its loss's gradient reaches the weight directly,
    past the output)."""
    return CHAINED and not model._sublayers()[1]


def piecewise(model) -> bool:
    """Whether `model`'s compiled step runs piecewise: without a
    `tf.distribute` strategy and without `jit_compile=True` (XLA compiles
    the whole switch step)."""
    return not (
        model._distribute_strategy is not None
        or tf.distribute.has_strategy()
        or model._jit
    )


def piecewise_train_function(model, keras_function):
    """Keras' train function of the piecewise step (`keras_function`, made
    with `run_eagerly`) without its wrappers of a traced step: a batch of
    a `tf.data` iterator goes to `train_step` directly, not through an
    `Optional`, the default strategy's `run` and the reduction of its
    outputs over one replica (~2 ms CPU a step at the tiny configuration;
    RESULTS.md, #13 j16); several steps per execution or another iterator
    go through `keras_function`."""
    step = model._autoconvert_optionals(model.train_step)
    # Made again with Keras' (after `compile`): the step's functions trace
    # the compiled loss, metrics and optimizer.
    _STEP_FUNCTIONS.pop(model, None)

    def function(iterator):
        if model.steps_per_execution == 1 and isinstance(
            iterator, tf.data.Iterator
        ):
            return step(iterator.get_next())
        return keras_function(iterator)

    return function


def apply_path_gradients(model, x, y, sample_weight, path: tuple) -> Any:
    """Eager step: trains one batch on the Python `path`, every layer a
    call of its own cached `tf.function` (`layer_caller`)."""
    use = layer_caller(model)
    return apply_paths_gradients(model, x, y, sample_weight, [path], use)


def apply_paths_gradients(
    model, x, y, sample_weight, paths, use, metrics=None
) -> Any:
    """Trains one batch on the Python `paths` (one, or the `m` paths of a
    strictly fair step), eagerly; `use(layer)` is what a layer's call runs
    (the piecewise step: its kind's compiled piece, `piece_caller`).

    Only the paths' trainable variables are differentiated and handed to
    the optimizer, in one update with the paths' gradients summed, so the
    other ops get no update at all (no momentum, no weight decay,
    untouched optimizer slots). Returns the mean loss and the last path's
    predictions. Given a list `metrics`, the chained step of one path
    updates the loss tracker and the compiled metrics in the function of
    its loss's gradient and appends their results to it (one call less).
    """
    variables, grads, seen, losses = [], [], {}, []
    chained = use is _handle_piece and _chained(model)
    fused = chained and metrics is not None and len(paths) == 1
    loss_gradient = None
    if fused:
        step = _step_function(model, _loss_gradient_metrics)

        def loss_gradient(*args):
            loss, d_pred, results = step(*args)
            metrics.append(results)
            return loss, d_pred

    elif chained:
        loss_gradient = _step_function(model, _loss_gradient)
    for path in paths:
        with plain_functions():
            if chained:
                loss, y_pred, on_path, path_grads = chain.path_grads(
                    model,
                    x,
                    y,
                    sample_weight,
                    path,
                    _HandlePiece.of,
                    loss_gradient,
                )
            else:
                on_path = model.path_trainable_variables(path)
                with tf.GradientTape() as tape:
                    y_pred = model._forward(x, path, True, use)
                    loss, scaled = indexed.training_loss(
                        model, x, y, y_pred, sample_weight
                    )
                path_grads = tape.gradient(scaled, on_path)
        losses.append(loss)
        if len(paths) == 1:  # its variables are distinct
            variables, grads = on_path, list(path_grads)
            break
        for v, g in zip(on_path, path_grads, strict=True):
            i = seen.get(id(v))
            if i is None:
                seen[id(v)] = len(variables)
                variables.append(v)
                grads.append(g)
            elif g is not None:
                grads[i] = g if grads[i] is None else grads[i] + g
    with plain_functions():
        apply_update(model.optimizer, grads, variables)
    loss = losses[0] if len(losses) == 1 else tf.add_n(losses) / len(losses)
    return distribute.unscale_loss(loss), y_pred


def _masked_apply(model, grads, masks) -> None:
    """Applies the optimizer to all trainable variables, then puts back
    every variable whose mask is False, with its optimizer slots."""
    variables = model.trainable_variables
    grads = [
        tf.zeros_like(v.value) if g is None else g
        for v, g in zip(variables, grads, strict=True)
    ]
    slots = indexed.optimizer_slots(model.optimizer, variables)
    saved = []
    for v, mask, v_slots in zip(variables, masks, slots, strict=True):
        if mask is True:
            continue
        for w in (v, *v_slots):
            saved.append((w, tf.identity(w.value), mask))
    model.optimizer.apply(grads, variables)
    for w, old, mask in saved:
        w.assign(tf.where(tf.cast(mask, tf.bool), w.value, old))


def apply_indexed_gradients(model, x, y, sample_weight, idx) -> Any:
    """Compiled step: trains one batch on the path tensor `idx`.

    All variables are differentiated (those off the path get zeros from
    `tf.switch_case`), the optimizer is applied to all of them, and then
    every variable off the path, with its optimizer slots, is put back: the
    result equals `apply_path_gradients` on the same path.
    """
    variables = model.trainable_variables
    with tf.GradientTape() as tape:
        y_pred = indexed.forward(model, x, idx, True, slot_switch)
        loss, scaled = indexed.training_loss(model, x, y, y_pred, sample_weight)
    grads = tape.gradient(scaled, variables)
    _masked_apply(model, grads, indexed.variable_masks(model, idx))
    return distribute.unscale_loss(loss), y_pred


def fair_gradients(model, x, y, sample_weight, paths) -> tuple:
    """The summed gradients of the `m` paths of a strictly fair step.

    `paths` is an `(m, slots)` int tensor. The paths run one after the
    other on the same batch in a `tf.while_loop` (traced once, whatever
    `m`), each with its own forward pass and batch-norm statistics.
    Returns `(mean loss over the paths, last path's predictions, summed
    gradients of model.trainable_variables)`.
    """
    variables = model.trainable_variables
    m = indexed.num_fair_paths(model)

    def body(k, loss_sum, y_pred, grads):
        with tf.GradientTape() as tape:
            y_pred = indexed.forward(model, x, paths[k], True, slot_switch)
            loss, scaled = indexed.training_loss(
                model, x, y, y_pred, sample_weight
            )
        new = tape.gradient(scaled, variables)
        grads = [
            a if g is None else a + g for a, g in zip(grads, new, strict=True)
        ]
        return k + 1, loss_sum + tf.cast(loss, "float32"), y_pred, grads

    y_pred = tf.zeros(
        (tf.shape(x)[0], model._spec["num_classes"]), model.compute_dtype
    )
    start = (
        tf.constant(0),
        tf.zeros((), "float32"),
        y_pred,
        [tf.zeros_like(v.value) for v in variables],
    )
    _, loss_sum, y_pred, grads = tf.while_loop(
        lambda k, *_: k < m, body, start, maximum_iterations=m
    )
    return loss_sum / m, y_pred, grads


def apply_fair_gradients(model, x, y, sample_weight, paths) -> Any:
    """Strictly fair step (FairNAS, Chu et al., ICCV 2021): trains one
    batch on the `m` paths of `paths`.

    The summed gradients (`fair_gradients`) are applied in one optimizer
    update; every variable on none of the paths, with its optimizer
    slots, is put back. Returns the mean loss and the last path's
    predictions.
    """
    m = indexed.num_fair_paths(model)
    loss, y_pred, grads = fair_gradients(model, x, y, sample_weight, paths)
    _masked_apply(model, grads, indexed.union_masks(model, paths, m))
    return distribute.unscale_loss(loss), y_pred


def _loss_gradient(model, x, y, y_pred, sample_weight) -> tuple:
    """`(loss, gradient of the optimizer's scaled loss with respect to
    y_pred)` (`indexed.training_loss`)."""
    with tf.GradientTape() as tape:
        tape.watch(y_pred)
        loss, scaled = indexed.training_loss(model, x, y, y_pred, sample_weight)
    return loss, tape.gradient(scaled, y_pred)


def _draw(model):
    """The piecewise step's path tensor (`model._sample_indices`): the
    draw's ~10 small eager ops and the recording of the path are one
    function call (~1.5 ms CPU a step at the tiny configuration; RESULTS.md,
    #13 p17)."""
    return model._sample_indices()


def _loss_gradient_metrics(model, x, y, y_pred, sample_weight) -> tuple:
    """`_loss_gradient`, then `_record_metrics` with its loss (one path,
    one replica: the loss is the batch mean)."""
    loss, d_pred = _loss_gradient(model, x, y, y_pred, sample_weight)
    results = _record_metrics(model, x, y, y_pred, sample_weight, loss)
    return loss, d_pred, results


def _record_metrics(model, x, y, y_pred, sample_weight, loss) -> dict:
    """The step's loss tracker and compiled metrics updated; their
    results (as Keras' `train_step` ends)."""
    model._loss_tracker.update_state(loss, sample_weight=tf.shape(y)[0])
    return model.compute_metrics(x, y, y_pred, sample_weight=sample_weight)


def _step_function(model, fn):
    """`fn(model, ...)` of the piecewise step as a `tf.function` of the
    model's (held weakly), traced once per input signature: the loss, its
    gradient and the metrics are ~100 small eager ops, ~8 ms CPU a step
    at the tiny configuration (RESULTS.md, #13 j16)."""
    cache = _STEP_FUNCTIONS.get(model)
    if cache is None:
        cache = _STEP_FUNCTIONS[model] = {}
    function = cache.get(fn)
    if function is None:
        function = cache[fn] = tf.function(
            _darts_graph.weakly_bound(fn, model),
            reduce_retracing=True,
            autograph=False,
        )
    return function


def _piece_paths(model) -> list:
    """The paths of a piecewise step: a Python sampler's next one (ENAS'
    controller; `PYTHON_PATHS`), or drawn eagerly from the supernet's
    `SeedGenerator` (the same paths as the graph step draws)."""
    if model._train_mode != "compiled":
        return [model._to_path(model._next_training_values())]
    with plain_functions():  # drawn as in the graph step: the same paths
        idx = _step_function(model, _draw)()
    rows = idx.numpy().reshape(-1, idx.shape[-1])
    return [indexed.indices_path(model, row) for row in rows]


def train_step(model, data) -> dict:
    """`Model.train_step(data)` of the TensorFlow trainer."""
    if model._train_mode != "compiled" and not model._pieces:
        values = distribute.once(model._next_training_values)
        return model._train_on_path(data, values)
    x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
    if model._pieces:
        metrics: list = []
        loss, y_pred = apply_paths_gradients(
            model,
            x,
            y,
            sample_weight,
            _piece_paths(model),
            piece_caller(model),
            metrics,
        )
        if metrics:
            return metrics[0]
        with plain_functions():
            record = _step_function(model, _record_metrics)
            return record(x, y, y_pred, sample_weight, loss)
    idx = model._sample_indices()
    apply = apply_fair_gradients if model._fair else apply_indexed_gradients
    loss, y_pred = apply(model, x, y, sample_weight, idx)
    model._loss_tracker.update_state(loss, sample_weight=tf.shape(y)[0])
    return model.compute_metrics(x, y, y_pred, sample_weight=sample_weight)


def indexed_function(model, training: bool):
    """`fn(x, idx)`: the output on path `idx`, traced once for all paths.

    With `training=True` the batch-norm layers use (and update their
    moving statistics with) the batch statistics.
    """
    cache = _FUNCTIONS.get(model)
    if cache is None:
        cache = _FUNCTIONS[model] = {}
    fn = cache.get(training)
    if fn is None:

        def run(model, x, idx):
            return indexed.forward(model, x, idx, training, slot_switch)

        fn = cache[training] = tf.function(
            _darts_graph.weakly_bound(run, model),
            reduce_retracing=True,
            autograph=False,
        )
    return fn
