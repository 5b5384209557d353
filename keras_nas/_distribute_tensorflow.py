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
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import tensorflow as tf

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
