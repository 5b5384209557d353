"""`tf.distribute` rules of keras-nas' custom training steps (TensorFlow).

Keras' TensorFlow trainer runs `train_step` once per replica
(`strategy.run`). A Keras optimizer's `apply` called there **sums** the
replicas' gradients (`_all_reduce_sum_gradients`); Keras' own step divides
the loss by the number of replicas first (`scale_loss_for_distribution`),
so the sum is the gradient of the global batch's mean loss. The custom steps
of the supernets and the GAN compute their own losses (a batch mean per
replica) and transform the gradients before applying them (clipping, weight
decay, the unrolled step of second-order DARTS), so they must all-reduce the
gradients themselves, transform the global gradient once, and hand the
optimizer a share that sums back to it. The helpers here do that:

- `mean_gradients(grads)`: the replicas' mean, identical on every replica
  (the gradient of the global batch for equal per-replica batches);
- `apply(optimizer, grads, variables)`: applies replica-identical gradients
  (divided by the number of replicas, which the optimizer's sum undoes; exact
  in floating point for a power of two replicas);
- `unscale_loss(loss)`: a Keras-computed (divided) loss as the batch mean,
  for the loss tracker;
- `once(fn)`: runs a host-side draw (a Python sampler's path) once for all
  replicas, in the cross-replica context, and gives every replica its
  value; in-graph draws from a `keras.random.SeedGenerator` need nothing:
  its state is mirrored, so every replica draws the same numbers;
- `replica_share(values, n)`: replica k's rows `[k n, (k + 1) n)` of a
  global draw, so that random inputs (a GAN's latent vectors) are those
  one device would draw for the global batch.

Batch normalization keeps per-replica statistics, as in plain Keras models
(Keras' `synchronized=True` all-reduces through `merge_call`, which
`tf.distribute.MirroredStrategy` refuses inside the nested functions and
`tf.switch_case` branches the supernets' ops run in). So N replicas equal
one device exactly when the replicas' batches have the statistics of the
global batch, and otherwise differ by what per-replica statistics change,
as for any Keras model with batch norm.

Outside `strategy.run`, or with one replica, every helper is the identity
(`apply` is the optimizer's `apply`). Variables updated in the replica
context with `assign` (no aggregation) update each replica's own copy: the
steps only do so with replica-identical values.

`tf.distribute.MultiWorkerMirroredStrategy` (several processes or
machines) needs nothing more from the steps: the all-reduce spans the
workers, variables (the `SeedGenerator` state included) start from the
first worker's values, and a host-side draw runs once per worker from the
same seeded generator. But Keras 3's TensorFlow trainer cannot `fit` any
model under it (tensorflow/tensorflow#72388): its first-batch build reduces
the nested batch with `strategy.reduce` (which takes one tensor, not a
nest), and it averages the step's scalar logs with `strategy.reduce(...,
axis=0)` (no axis 0 in a scalar). Importing this module mends both, for
that strategy only (`_mend_keras_multi_worker`): the build uses the first
local replica's batch (only its shapes matter) and the logs are averaged
over the replicas (`axis=None`), as Keras does for `MirroredStrategy`.
Every other strategy keeps Keras' own code.

Without a strategy, Keras' TensorFlow trainer builds nothing before the
first trace of the step: an unbuilt optimizer, compiled metric or loss
creates its variables inside the trace, and `tf.function` then traces the
whole step a second time (each new variable in a `cond`). A model class
with `BUILD_BEFORE_TRACE = True` (the supernets with their own steps) gets
Keras' strategy-time build instead (`_symbolic_build` on the first batch's
shapes), so its step is traced once; other models keep Keras' code.
That build creates the variables with one TensorFlow-side name
(`unnamed_variables`; Keras' `name` and `path` are kept): eager
TensorFlow caches the kernel of the op that creates a variable by its
attributes, the variable's name among them, so a new name per variable
(Keras' default) costs a new kernel each time, ~0.6 ms per variable
(DARTS' 893 momentum buffers: ~0.55 s of the first step;
benchmarks/RESULTS.md, issue #13).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from typing import Any

import tensorflow as tf
from keras.src.backend.tensorflow import trainer as _keras_trainer

from keras_nas._gc import deferred_collection

__all__ = [
    "apply",
    "mean_gradients",
    "num_replicas",
    "once",
    "replica_share",
    "unscale_loss",
]


def num_replicas() -> int:
    """Replicas of the current replica context (1 outside `strategy.run`)."""
    context = tf.distribute.get_replica_context()
    return 1 if context is None else int(context.num_replicas_in_sync)


def mean_gradients(grads: Sequence[Any]) -> list:
    """The mean of `grads` over the replicas (a list, the same on each)."""
    grads = list(grads)
    if num_replicas() == 1 or not grads:
        return grads
    context = tf.distribute.get_replica_context()
    return list(context.all_reduce(tf.distribute.ReduceOp.MEAN, grads))


def apply(optimizer, grads: Sequence[Any], variables: Sequence[Any]) -> None:
    """`optimizer.apply(grads, variables)` for replica-identical `grads`."""
    n = num_replicas()
    if n > 1:
        grads = [g / tf.cast(n, g.dtype) for g in grads]
    optimizer.apply(list(grads), list(variables))


def unscale_loss(loss):
    """A Keras-computed loss (divided by the replicas) as the batch mean."""
    n = num_replicas()
    return loss if n == 1 else loss * tf.cast(n, loss.dtype)


def once(fn: Callable[[], Any]) -> Any:
    """`fn()` run once for all replicas; every replica gets its value."""
    if num_replicas() == 1:
        return fn()
    context = tf.distribute.get_replica_context()
    return context.merge_call(lambda strategy: fn())


def replica_share(values, n):
    """Rows `[k n, (k + 1) n)` of `values` on replica k (all on one)."""
    if num_replicas() == 1:
        return values
    k = tf.distribute.get_replica_context().replica_id_in_sync_group
    start = tf.cast(k, "int32") * tf.cast(n, "int32")
    return values[start : start + n]


def _multi_worker(strategy) -> bool:
    """Whether `strategy` is a `MultiWorkerMirroredStrategy` with several
    workers (Keras' own test, `_collective_all_reduce_multi_worker`)."""
    return isinstance(
        strategy, tf.distribute.MultiWorkerMirroredStrategy
    ) and bool(strategy.extended._in_multi_worker_mode())


def _unnamed(next_creator, **kwargs):
    kwargs["name"] = "Variable/"  # absolute: no enclosing name scope
    return next_creator(**kwargs)


def unnamed_variables():
    """A scope whose new variables have one TensorFlow name, `Variable:0`.

    Only the `tf.Variable`'s own name changes (not the enclosing name
    scopes' path either, which would make it unique again): a Keras
    variable keeps its `name` and `path`, and the optimizers, checkpoints
    and `.keras` files go by those or by the object, not by the
    TensorFlow name. Creating a variable costs ~4x less CPU (module
    docstring).
    """
    return tf.variable_creator_scope(_unnamed)


def construction_scope():
    """`unnamed_variables()` unless a distribution strategy is in effect
    (its variables keep their names), for building a model's many
    variables."""
    if tf.distribute.has_strategy():
        return contextlib.nullcontext()
    return unnamed_variables()


def _unbuilt(model) -> bool:
    """Whether Keras' `_symbolic_build` has anything to build in `model`
    (its own test: layers, compiled metrics and loss, optimizer)."""
    parts = [model.optimizer, model._compile_metrics, model._compile_loss]
    return not all(layer.built for layer in model._flatten_layers()) or any(
        part is not None and not part.built for part in parts
    )


def _mend_keras_multi_worker() -> None:
    """Lets Keras' TensorFlow trainer `fit` under several workers, and
    builds a `BUILD_BEFORE_TRACE` model's state before the first trace.

    Replaces `TensorFlowTrainer._maybe_symbolic_build` and the trainer
    module's `reduce_per_replica` by versions that differ from Keras' only
    under a multi-worker `MultiWorkerMirroredStrategy`, or without a
    strategy for a `BUILD_BEFORE_TRACE` model (module docstring).
    Runs once; a Keras without these names is left alone.
    """
    trainer = getattr(_keras_trainer, "TensorFlowTrainer", None)
    keras_reduce = getattr(_keras_trainer, "reduce_per_replica", None)
    keras_build = getattr(trainer, "_maybe_symbolic_build", None)
    if keras_reduce is None or keras_build is None:
        return
    if getattr(keras_build, "_keras_nas_mended", False):
        return

    def reduce_per_replica(values, strategy, reduction):
        if not _multi_worker(strategy) or reduction not in ("auto", "mean"):
            return keras_reduce(values, strategy, reduction)

        def mean(value):
            if not isinstance(value, tf.distribute.DistributedValues):
                return value
            return strategy.reduce("MEAN", value, axis=None)

        return tf.nest.map_structure(mean, values)

    def maybe_symbolic_build(self, iterator=None, data_batch=None):
        strategy = self._distribute_strategy
        if strategy is None and getattr(self, "BUILD_BEFORE_TRACE", False):
            # Built now, not inside the first trace (module docstring).
            if not _unbuilt(self):
                return None
            if iterator is not None:
                for _, _, it in iterator:
                    data_batch = next(it)
                    break
            # The optimizer's state without automatic collections (_gc.py).
            with unnamed_variables(), deferred_collection():
                self._symbolic_build(data_batch=data_batch)
            return None
        if strategy is None or iterator is None or not _multi_worker(strategy):
            return keras_build(self, iterator=iterator, data_batch=data_batch)
        for _, _, it in iterator:
            data_batch = tf.nest.map_structure(
                lambda v: strategy.experimental_local_results(v)[0], next(it)
            )
            break
        with strategy.scope():
            self._symbolic_build(data_batch=data_batch)

    maybe_symbolic_build._keras_nas_mended = True
    _keras_trainer.reduce_per_replica = reduce_per_replica
    trainer._maybe_symbolic_build = maybe_symbolic_build


_mend_keras_multi_worker()
