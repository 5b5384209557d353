"""JAX training steps of `OneShotSupernet`.

Keras' JAX trainer calls `train_step(state, data)` with the model's
variables held in `state`. Four steps:

- piecewise (the compiled step on the cell space, without a
  `keras.distribution` or `jit_compile=False`): the step runs in Python;
  the paths are drawn from the supernet's `SeedGenerator` (one jitted
  draw), every layer of a path is one call of its kind's jitted forward,
  which returns its vjp's pullback, and the backward pass is walked by
  hand in reverse (`_one_shot_chain_jax`; with weights' regularizers or
  a `LossScaleOptimizer`, or `CHAINED = False`: an eager
  `jax.value_and_grad` over `jax.custom_vjp` pieces,
  `_darts_graph._jax_edge`); kinds compile when first sampled; the
  optimizer gets the paths' variables only (Keras' SGD and Adam / AdamW:
  one jitted call per layer or `SepConv` repeat, `_path_update_jax`), the
  metrics update is jitted.
- compiled (default without a Python `sampler`): Keras' own stateless,
  jitted JAX step, with the model's forward pass drawing the path inside
  the step (`keras.random` with the supernet's `SeedGenerator`, whose state
  travels in `state`) and dispatching every decision slot with
  `jax.lax.switch`, so one compiled step serves every path and only the
  taken branch runs. Layers inside a branch run in their own
  `StatelessScope` and the branch returns their batch-norm statistics, so
  the moving-average updates of the taken branch leave the branch as
  values (no tracer leaks). The optimizer runs on all variables and the
  new values of every variable off the path, and of its optimizer slots,
  are then replaced by the old ones: the eager step's semantics.
- strictly fair (`sampler="fair"`, FairNAS): the `m` paths drawn in the
  step run one after the other on the batch in a `jax.lax.scan` (traced
  once) of Keras' stateless loss-and-gradient function, their gradients
  are summed, one optimizer update, masked to the union of the paths.
- eager (a Python `sampler`, or `step="eager"`; on the cell space with
  `step="auto"` a Python sampler's path runs piecewise: `PYTHON_PATHS`):
  loads `state` into the variables, differentiates the loss with
  `jax.value_and_grad` over the sampled path's trainable variables only
  (the others are read, not differentiated), applies the optimizer to
  those variables and returns the updated state.
"""

from __future__ import annotations

import functools
import weakref
from typing import Any

import jax
import jax.numpy as jnp
import keras
import numpy as np
from keras.src.backend.jax.trainer import JAXTrainer

from keras_nas._jax_memory import compiles_released
from keras_nas.supernet import _darts_graph
from keras_nas.supernet import _one_shot_chain_jax as chain
from keras_nas.supernet import _one_shot_groups as groups
from keras_nas.supernet import _one_shot_indexed as indexed
from keras_nas.supernet import _one_shot_variables_jax as variables_jax
from keras_nas.supernet import _path_update as update
from keras_nas.supernet import _path_update_jax as update_jax

_FUNCTIONS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
# model -> {name: jitted piece of the piecewise step}
_PIECES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
#: The piecewise step's gradients chained by hand (`_one_shot_chain_jax`);
#: False: an eager `jax.value_and_grad` over `custom_vjp` pieces (for
#: measurements: benchmarks/).
CHAINED = True
#: A Python sampler's paths (`step="auto"`) run piecewise too.
PYTHON_PATHS = True


def layer_caller(model):
    """Returns `use(layer)`: layers run as they are (eager JAX)."""
    return _identity


def _identity(layer):
    return layer


def switch(index, branches, operands, training):
    """Runs `branches[index]` (a `(layer, operand_position)`) only.

    Every branch reads the current values of all the branches' variables
    (from the enclosing stateless scope) and returns, besides its output,
    the non-trainable variables of all branches (updated for the taken
    layer, unchanged for the others); they are assigned after the switch.
    """
    layers = [layer for layer, _ in branches]
    variables = [list(layer.variables) for layer in layers]
    current = [[v.value for v in vs] for vs in variables]
    states = [
        (j, i, v)
        for j, vs in enumerate(variables)
        for i, v in enumerate(vs)
        if not v.trainable
    ]

    def make(k):
        layer, pos = branches[k]

        def run(*xs):
            mapping = list(zip(variables[k], current[k], strict=True))
            with keras.StatelessScope(state_mapping=mapping) as scope:
                y = layer(xs[pos], training=training)
            new = []
            for j, i, v in states:
                value = scope.get_current_value(v) if j == k else None
                new.append(current[j][i] if value is None else value)
            return y, new

        return run

    y, new = jax.lax.switch(
        jnp.asarray(index, "int32"),
        [make(k) for k in range(len(branches))],
        *operands,
    )
    for (_, _, v), value in zip(states, new, strict=True):
        v.assign(value)
    return y


def _case(index, functions, arguments):
    return jax.lax.switch(index, functions, *arguments)


def _take(stacked, index):
    return stacked[index]


def slot_switch(index, branches, operands, training):
    """Runs `branches[index]` of a one-shot decision slot only: a
    `jax.lax.switch` over its kinds of layer, each branch one call of the
    kind's jitted function on the chosen member's gathered operand and
    weights (`_one_shot_groups`); the batch-norm statistics come back as
    values and are assigned to the chosen layer after the switch."""
    return groups.grouped_switch(
        index, branches, operands, training, _case, jax.jit, None, _take
    )


def apply_path_gradients(model, x, y, sample_weight, path: tuple) -> Any:
    """Eager step: trains one batch on `path`; returns `(loss, y_pred)`."""
    trainable = model.path_trainable_variables(path)
    non_trainable = model.non_trainable_variables

    def loss_fn(values):
        mapping = list(zip(trainable, values, strict=False))
        with keras.StatelessScope(state_mapping=mapping) as scope:
            y_pred = model(x, training=True, path=path)
            loss, scaled = indexed.training_loss(
                model, x, y, y_pred, sample_weight
            )
        updates = {}
        for i, v in enumerate(non_trainable):
            new = scope.get_current_value(v)
            if new is not None:
                updates[i] = new
        return scaled, (loss, y_pred, updates)

    grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
    (_, (loss, y_pred, updates)), grads = grad_fn([v.value for v in trainable])
    for i, value in updates.items():
        non_trainable[i].assign(value)
    model.optimizer.apply(grads, trainable)
    return loss, y_pred


def _assign(variables, values) -> None:
    for variable, value in zip(variables, values, strict=False):
        variable.assign(value)


def _eager_train_step(model, state, data) -> tuple:
    trainable, non_trainable, optimizer_vars, metrics_vars = state
    _assign(model.trainable_variables, trainable)
    _assign(model.non_trainable_variables, non_trainable)
    _assign(model.optimizer.variables, optimizer_vars)
    _assign(model.metrics_variables, metrics_vars)
    logs = model._train_on_path(data)
    state = (
        [v.value for v in model.trainable_variables],
        [v.value for v in model.non_trainable_variables],
        [v.value for v in model.optimizer.variables],
        [v.value for v in model.metrics_variables],
    )
    return logs, state


def compiled_call(model, inputs, training):
    """`call` of the compiled step: samples the path (or takes the path
    of the strictly fair step's loop), dispatches."""
    idx = getattr(model, "_fair_path", None)
    if idx is None:
        idx = model._sample_indices()
    return indexed.forward(model, inputs, idx, training, slot_switch)


def _masked(model, masks, old_state, new_state) -> tuple:
    """`(trainable, optimizer_vars)` of `new_state` with the old values put
    back for every variable whose mask is False, and its optimizer slots."""
    old_trainable, old_optimizer = old_state
    trainable, optimizer_vars = list(new_state[0]), list(new_state[1])
    slots = indexed.optimizer_slots(model.optimizer, model.trainable_variables)
    opt_position = {id(v): i for i, v in enumerate(model.optimizer.variables)}
    for i, (mask, v_slots) in enumerate(zip(masks, slots, strict=True)):
        if mask is True:
            continue
        trainable[i] = jnp.where(mask, trainable[i], old_trainable[i])
        for slot in v_slots:
            p = opt_position[id(slot)]
            optimizer_vars[p] = jnp.where(
                mask, optimizer_vars[p], old_optimizer[p]
            )
    return trainable, optimizer_vars


def _compiled_train_step(model, state, data) -> tuple:
    old_trainable, _, old_optimizer, _ = state
    model._sampling_call = True
    try:
        logs, state = JAXTrainer.train_step(model, state, data)
    finally:
        model._sampling_call = False
    trainable, non_trainable, optimizer_vars, metrics_vars = state
    position = {id(v): i for i, v in enumerate(model.non_trainable_variables)}
    idx = non_trainable[position[id(model._last_indices)]]
    masks = indexed.variable_masks(model, idx)
    trainable, optimizer_vars = _masked(
        model,
        masks,
        (old_trainable, old_optimizer),
        (trainable, optimizer_vars),
    )
    return logs, (trainable, non_trainable, optimizer_vars, metrics_vars)


def fair_gradients(model, state, x, y, sample_weight, paths) -> tuple:
    """The summed gradients of the `m` paths of a strictly fair step.

    The `m` rows of `paths` run one after the other on the same batch in a
    `jax.lax.scan` (traced once), each with its own forward pass; the
    batch-norm statistics carry from one path to the next. Returns
    `(mean loss, last path's predictions, summed gradients,
    non-trainable values)`.
    """
    trainable, non_trainable, optimizer_vars, metrics_vars = state
    grad_fn = jax.value_and_grad(model.compute_loss_and_updates, has_aux=True)

    def body(carry, idx):
        non_trainable, grads_sum, loss_sum = carry
        model._fair_path = idx
        try:
            (_, aux), grads = grad_fn(
                trainable,
                non_trainable,
                metrics_vars,
                x,
                y,
                sample_weight,
                training=True,
                optimizer_variables=optimizer_vars,
            )
        finally:
            model._fair_path = None
        loss, y_pred, non_trainable, _ = aux
        grads_sum = [a + g for a, g in zip(grads_sum, grads, strict=True)]
        loss_sum = loss_sum + jnp.asarray(loss, "float32")
        return (list(non_trainable), grads_sum, loss_sum), y_pred

    start = (
        list(non_trainable),
        [jnp.zeros_like(v) for v in trainable],
        jnp.zeros((), "float32"),
    )
    model._sampling_call = True
    try:
        (non_trainable, grads, loss_sum), y_preds = jax.lax.scan(
            body, start, paths
        )
    finally:
        model._sampling_call = False
    return loss_sum / paths.shape[0], y_preds[-1], grads, non_trainable


def _current(scope, variable, old):
    value = scope.get_current_value(variable)
    return old if value is None else value


def _sample(model, values) -> tuple:
    """`(path indices, new values of `sampler_variables`)`, drawn on
    their `values` (jitted by the piecewise step: one compile, where
    eagerly each of the draw's random ops compiled on its own)."""
    variables = variables_jax.sampler_variables(model)
    mapping = list(zip(variables, values, strict=True))
    with keras.StatelessScope(state_mapping=mapping) as scope:
        indices = model._sample_indices()
    pairs = zip(variables, values, strict=True)
    return indices, [_current(scope, v, old) for v, old in pairs]


def _draw(model, non_trainable, step=None) -> tuple:
    """The sampler's next path indices, drawn statelessly: `(indices, the
    non-trainable values with the sampler's state advanced)`. With the
    piecewise step's `step` (`StepVariables`) only the sampler's
    variables are read and written, by one jitted function."""
    if step is not None:
        indices, values = _piece(model, "sample", _sample)(
            [non_trainable[j] for j in step.sampler]
        )
        new = list(non_trainable)
        for j, value in zip(step.sampler, values, strict=True):
            new[j] = value
        return indices, new
    variables = model.non_trainable_variables
    at = range(len(variables))
    mapping = [(variables[j], non_trainable[j]) for j in at]
    with keras.StatelessScope(state_mapping=mapping) as scope:
        indices = model._sample_indices()
    new = list(non_trainable)
    for j in at:
        new[j] = _current(scope, variables[j], non_trainable[j])
    return indices, new


def _fair_train_step(model, state, data) -> tuple:
    """Strictly fair step (FairNAS, Chu et al., ICCV 2021): the summed
    gradients of the `m` paths, one optimizer update masked to the
    variables of at least one path."""
    trainable, non_trainable, optimizer_vars, metrics_vars = state
    x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
    paths, non_trainable = _draw(model, non_trainable)
    loss, y_pred, grads, non_trainable = fair_gradients(
        model,
        (trainable, non_trainable, optimizer_vars, metrics_vars),
        x,
        y,
        sample_weight,
        paths,
    )
    new = model.optimizer.stateless_apply(optimizer_vars, grads, trainable)
    masks = indexed.union_masks(model, paths, paths.shape[0])
    new_trainable, new_optimizer = _masked(
        model, masks, (trainable, optimizer_vars), new
    )
    logs, metrics_vars = model._update_metrics_variables(
        metrics_vars, loss, x, y, y_pred, sample_weight
    )
    return logs, (new_trainable, non_trainable, new_optimizer, metrics_vars)


def piecewise(model) -> bool:
    """Whether `model`'s compiled step runs piecewise: without a
    `keras.distribution` and without `jit_compile=False`."""
    return keras.distribution.distribution() is None and model._jit is not False


def _wrap(run):
    """`run(trainable, non_trainable, x)` of a kind of layer as a
    `jax.custom_vjp` function of a jitted forward and a jitted backward
    pass (`_darts_graph._jax_edge`, whose fourth argument, the DARTS op
    weights, is a constant zero here)."""

    def unpacked(trainable, non_trainable, x, _):
        # The moving statistics split inside the jitted function (eagerly
        # every split and reshape is an op of the differentiated forward).
        y, new = run(trainable, non_trainable, x)
        if new:
            new = [_darts_graph._unpack(new[0], non_trainable)]
        return y, new

    edge = _darts_graph._jax_edge(unpacked)

    def fn(trainable, non_trainable, x):
        return edge(trainable, non_trainable, x, _zero(x.dtype))

    return fn


@functools.cache
def _zero(dtype):
    return jnp.zeros((), dtype)


def _piece(model, name, fn):
    """`fn` with `model` as first argument, jitted once per model."""
    pieces = _PIECES.setdefault(model, {})
    if name not in pieces:
        pieces[name] = jax.jit(_darts_graph.weakly_bound(fn, model))
    return pieces[name]


def _metrics(model, metrics_vars, loss, x, y, y_pred, sample_weight):
    return model._update_metrics_variables(
        metrics_vars, loss, x, y, y_pred, sample_weight
    )


def _path_grads(model, step, state, data, path, positions):
    """`(loss, y_pred, non_trainable, grads)` of one Python path: eager
    `jax.value_and_grad` over the path's trainable values (`positions`:
    `_one_shot_variables_jax.StepVariables.path`), every layer a call of
    its kind's jitted pieces. Only the variables the forward reads are
    mapped, and only its non-trainable ones read back."""
    trainable, non_trainable = state
    x, y, sample_weight = data
    on, read, states = positions.on, positions.read, positions.states
    variables = [step.trainable[i] for i in on]
    state_variables = [step.non_trainable[j] for j in states]
    use = groups.piece_caller(_wrap, every=True)

    def loss_fn(values):
        mapping = list(zip(variables, values, strict=True))
        mapping += [(step.trainable[i], trainable[i]) for i in read]
        mapping += [(step.non_trainable[j], non_trainable[j]) for j in states]
        with keras.StatelessScope(state_mapping=mapping) as scope:
            y_pred = model._forward(x, path, True, use)
            loss, scaled = indexed.training_loss(
                model, x, y, y_pred, sample_weight
            )
        new = [
            _current(scope, v, non_trainable[j])
            for v, j in zip(state_variables, states, strict=True)
        ]
        return scaled, (loss, y_pred, new)

    grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
    (_, (loss, y_pred, new)), grads = grad_fn([trainable[i] for i in on])
    non_trainable = list(non_trainable)
    for j, value in zip(states, new, strict=True):
        non_trainable[j] = value
    return loss, y_pred, non_trainable, grads


def _pieces_train_step(model, state, data, path=None) -> tuple:
    """The piecewise step: the path (or the `m` paths of a strictly fair
    step) drawn eagerly from the supernet's `SeedGenerator` (the paths the
    jitted switch step draws), or the given Python `path` (a Python
    sampler's), each path's loss differentiated in Python over the jitted
    pieces of its layers' kinds, the summed gradients handed to the
    optimizer with the paths' variables only."""
    step = variables_jax.step_variables(model, state)
    trainable, non_trainable, optimizer_vars, metrics_vars = state
    data = jax.device_put(data)  # NumPy batches: no staging compile
    x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
    if path is None:
        idx, non_trainable = _draw(model, non_trainable, step)
        rows = np.asarray(idx).reshape(-1, idx.shape[-1])
        paths = [indexed.indices_path(model, row) for row in rows]
    else:
        paths = [path]
    grads = [None] * len(trainable)
    losses, squared = [], None
    for path in paths:
        positions = step.path(model, path)
        state = (trainable, non_trainable)
        batch = (x, y, sample_weight)
        if CHAINED and step.chainable:
            loss_grad = _piece(model, "loss_grad", chain.loss_grad)
            loss, y_pred, non_trainable, path_grads, squared = (
                chain.path_grads(
                    model, step, state, batch, path, positions, loss_grad
                )
            )
        else:
            loss, y_pred, non_trainable, path_grads = _path_grads(
                model, step, state, batch, path, positions
            )
        for i, g in zip(positions.on, path_grads, strict=True):
            grads[i] = g if grads[i] is None else grads[i] + g
        losses.append(loss)
    # Other optimizers: eagerly, as the eager step, the optimizer gets the
    # paths' variables only (an update jitted over all variables, masked,
    # costs a compile as long as the whole switch step's). Only those
    # variables, their slots and the optimizer's global variables are
    # loaded from `state` and read back (during `fit` Keras' JAX trainer
    # leaves the other variables without values); all of them with an
    # EMA, which moves every variable's average.
    on = [i for i, g in enumerate(grads) if g is not None]
    rule = update.rule(model.optimizer)
    if rule is not None and update.supported(
        [grads[i] for i in on], [step.trainable[i] for i in on]
    ):
        # One path: an update per layer, the gradients' squares summed
        # by the backward pass (several: per variable, summed here).
        one = len(paths) == 1
        trainable, optimizer_vars = update_jax.apply_rule(
            model,
            step,
            rule,
            grads,
            on,
            (trainable, optimizer_vars),
            chunks=positions.chunks if one else None,
            squared=squared if one else None,
        )
        return _finish(model, (x, y, sample_weight), losses, y_pred, (
            trainable, non_trainable, optimizer_vars, metrics_vars
        ))
    load, at = step.loaded(on)
    variables, optimizer_variables = step.trainable, step.optimizer_variables
    for i in load:
        variables[i].assign(trainable[i])
    for p in at:
        optimizer_variables[p].assign(optimizer_vars[p])
    model.optimizer.apply([grads[i] for i in on], [variables[i] for i in on])
    trainable, optimizer_vars = list(trainable), list(optimizer_vars)
    for i in load:
        trainable[i] = variables[i].value
    for p in at:
        optimizer_vars[p] = optimizer_variables[p].value
    return _finish(model, (x, y, sample_weight), losses, y_pred, (
        trainable, non_trainable, optimizer_vars, metrics_vars
    ))


def _finish(model, data, losses, y_pred, state) -> tuple:
    """`(logs, state)` of the piecewise step: the mean loss of the paths
    and the last path's predictions through the metrics (jitted)."""
    trainable, non_trainable, optimizer_vars, metrics_vars = state
    x, y, sample_weight = data
    loss = losses[0] if len(losses) == 1 else sum(losses) / len(losses)
    logs, metrics_vars = _piece(model, "metrics", _metrics)(
        metrics_vars, loss, x, y, y_pred, sample_weight
    )
    return logs, (trainable, non_trainable, optimizer_vars, metrics_vars)


def train_step(model, state, data) -> tuple:
    """`Model.train_step(state, data)` of the JAX trainer."""
    if model._pieces:
        # Kinds of layer compile as paths first sample them: what each
        # compilation leaves behind given back (`_jax_memory`). A Python
        # sampler's path (ENAS' controller) runs on the same pieces.
        path = None
        if model._train_mode != "compiled":
            path = model._to_path(model._next_training_values())
        with compiles_released():
            return _pieces_train_step(model, state, data, path)
    if model._train_mode == "compiled" and model._fair:
        return _fair_train_step(model, state, data)
    if model._train_mode == "compiled":
        return _compiled_train_step(model, state, data)
    return _eager_train_step(model, state, data)


def indexed_function(model, training: bool):
    """`fn(x, idx)`: the output on path `idx`, jitted once for all paths.

    With `training=True` the batch-norm layers use the batch statistics
    and their moving statistics are updated (assigned after the call).
    """
    cache = _FUNCTIONS.get(model)
    if cache is None:
        cache = _FUNCTIONS[model] = {}
    fn = cache.get(training)
    if fn is not None:
        return fn

    def pure(model, values, x, idx):
        variables = model.variables
        mapping = list(zip(variables, values, strict=True))
        with keras.StatelessScope(state_mapping=mapping) as scope:
            y = indexed.forward(model, x, idx, training, slot_switch)
        new = []
        for v, old in zip(variables, values, strict=True):
            value = scope.get_current_value(v)
            new.append(old if value is None else value)
        return y, new

    jitted = jax.jit(_darts_graph.weakly_bound(pure, model))

    def fn(model, x, idx):
        variables = model.variables
        y, new = jitted([v.value for v in variables], x, idx)
        if training:
            for v, value in zip(variables, new, strict=True):
                if not v.trainable:
                    v.assign(value)
        return y

    fn = cache[training] = _darts_graph.weakly_bound(fn, model)
    return fn
