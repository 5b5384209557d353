"""Scoring and extracting the paths of `OneShotSupernet` (inherited weights).

`PathEvaluation` is the part of `OneShotSupernet` that uses a trained
supernet: `predict_path`, `evaluate_path` (optionally after recalibrating
the path's batch-norm statistics, as SPOS) and `extract` (a standalone
Keras model with copied weights). It relies on the supernet's `_to_path`,
`path_indices`, `_forward`, `_steps` and `_step`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from typing import Any

import keras
import numpy as np
from keras import ops

from keras_nas.supernet.topology import identity

__all__ = ["PathEvaluation"]


class PathEvaluation:
    """Mixin of `OneShotSupernet`: paths scored with inherited weights."""

    def _batch_norms(self) -> list:
        """Every batch-norm layer of the supernet."""
        return [
            sub
            for sub in self._flatten_layers(include_self=False)
            if isinstance(sub, keras.layers.BatchNormalization)
        ]

    def _recalibrate(self, path, train_data, num_batches, batch_size):
        """Re-estimates the path's BN statistics; returns what to restore.

        The statistics become the exact mean and (biased) variance of the
        `num_batches * batch_size` training images, computed in one
        training-mode pass with momentum 0. All batch norms are saved, so
        `_restore` undoes every change (also of layers off the path).
        """
        if train_data is None:
            raise ValueError(
                "Expected `train_data` (x or (x, y) arrays, or an iterable "
                "of batches) when `bn_recalibration_batches` > 0. "
                "Received: train_data=None"
            )
        x = np.concatenate(
            [
                ops.convert_to_numpy(b)
                for b in _batches(train_data, num_batches, batch_size)
            ],
            axis=0,
        )
        bns = self._batch_norms()
        saved = [
            (
                bn,
                bn.momentum,
                ops.convert_to_numpy(bn.moving_mean),
                ops.convert_to_numpy(bn.moving_variance),
            )
            for bn in bns
        ]
        for bn in bns:
            bn.momentum = 0.0
        try:
            run = self._indexed_function(True)
            if run is None:
                self._forward(x, path, True, identity)
            else:
                run(x, self.path_indices(path))
        finally:
            for bn, momentum, *_ in saved:
                bn.momentum = momentum
        return saved

    @contextlib.contextmanager
    def _recalibrated(self, path, train_data, num_batches, batch_size):
        """Runs the block with the path's batch-norm statistics
        recalibrated on `num_batches` batches (if > 0), then restores them
        all."""
        saved = None
        if num_batches:
            saved = self._recalibrate(
                path, train_data, int(num_batches), batch_size
            )
        try:
            yield
        finally:
            if saved is not None:
                self._restore(saved)

    def _indexed_function(self, training: bool):
        """The backend's compiled `fn(x, idx)`; None with `step="eager"`."""
        if self._step == "eager":
            return None
        make = getattr(self._steps(), "indexed_function", None)
        return None if make is None else make(self, training)

    @staticmethod
    def _restore(saved) -> None:
        for bn, momentum, mean, var in saved:
            bn.momentum = momentum
            bn.moving_mean.assign(mean)
            bn.moving_variance.assign(var)

    def predict_path(self, values: Any, x, batch_size: int = 256):
        """Class probabilities of a path with the current shared weights."""
        path = self._to_path(values)
        return self._predict(path, x, batch_size)

    def _predict(self, path, x, batch_size):
        x = np.asarray(x)
        run = self._indexed_function(False)
        if run is None:
            use = self._steps().layer_caller(self)

            def run(xb, _):
                return self._forward(xb, path, False, use)

            idx = None
        else:
            idx = self.path_indices(path)
        size = max(1, min(batch_size, len(x)))
        out = []
        for i in range(0, len(x), size):
            xb = x[i : i + size]
            n = len(xb)
            if idx is not None and n < size:
                # The compiled function keeps one batch shape: a short last
                # batch is padded (inference is per example) and cut again.
                pad = np.repeat(xb[-1:], size - n, axis=0)
                xb = np.concatenate([xb, pad], axis=0)
            out.append(ops.convert_to_numpy(run(xb, idx))[:n])
        return np.concatenate(out, axis=0)

    def evaluate_path(
        self,
        values: Any,
        x_val,
        y_val,
        bn_recalibration_batches: int = 0,
        train_data: Any = None,
        batch_size: int = 256,
    ) -> dict[str, float]:
        """Scores one path with inherited (shared) weights.

        Only the path's layers run; nothing is rebuilt. With
        `bn_recalibration_batches=k`, the path's batch-norm statistics are
        first re-estimated (exact mean and variance of `k * batch_size`
        images of `train_data`, in one pass) as in SPOS; they are restored
        afterwards, so evaluating a path has no side effect on the
        supernet. Unless the supernet was compiled with `step="eager"`,
        the path runs in one traced (TensorFlow) or jitted (JAX) function
        shared by all paths (branch dispatch on `path_indices`): scoring
        many architectures costs one trace, then about one forward pass
        each.

        Args:
            values: hyperparameter values, `HyperParameters`, `Genotype`,
                `NasBench201Genotype` or NAS-Bench-201 cell string.
            x_val: validation images (array).
            y_val: integer labels.
            bn_recalibration_batches: number of training batches used to
                recalibrate batch norm (0: keep the running statistics).
            train_data: training `x`, `(x, y)` or an iterable of batches.
            batch_size: batch size of recalibration and evaluation.

        Returns:
            `{"accuracy": float, "loss": float}`.
        """
        path = self._to_path(values)
        recalibration = (train_data, bn_recalibration_batches, batch_size)
        with self._recalibrated(path, *recalibration):
            probs = self._predict(path, x_val, batch_size)
        y = np.asarray(y_val).reshape(-1).astype(int)
        p = np.clip(probs[np.arange(len(y)), y], 1e-7, 1.0)
        return {
            "accuracy": float(np.mean(np.argmax(probs, axis=-1) == y)),
            "loss": float(-np.mean(np.log(p))),
        }

    def extract(
        self,
        values: Any,
        bn_recalibration_batches: int = 0,
        train_data: Any = None,
        batch_size: int = 256,
    ) -> keras.Model:
        """Returns the path as a standalone functional model.

        The model holds copies of the path's layers with copied weights (and
        batch-norm statistics, recalibrated first when
        `bn_recalibration_batches` > 0), so `model.predict` equals
        `predict_path` and training it leaves the supernet untouched. It is
        compiled like the house models (sparse categorical cross-entropy,
        accuracy) with a fresh optimizer of the supernet's kind.

        Args:
            values: the path (see `evaluate_path`).
            bn_recalibration_batches: as in `evaluate_path`.
            train_data: as in `evaluate_path`.
            batch_size: batch size of the recalibration.

        Returns:
            A compiled `keras.Model`.
        """
        path = self._to_path(values)
        recalibration = (train_data, bn_recalibration_batches, batch_size)
        with self._recalibrated(path, *recalibration):
            clones: dict[int, tuple] = {}

            def use(layer):
                if id(layer) not in clones:
                    clone = layer.__class__.from_config(layer.get_config())
                    clones[id(layer)] = (layer, clone)
                return clones[id(layer)][1]

            inputs = keras.Input(self._spec["input_shape"])
            outputs = self._forward(inputs, path, None, use)
            model = keras.Model(inputs, outputs, name="one_shot_child")
            for layer, clone in clones.values():
                clone.set_weights(layer.get_weights())
        optimizer = "adam"
        if getattr(self, "optimizer", None) is not None:
            config = self.optimizer.get_config()
            optimizer = self.optimizer.__class__.from_config(config)
        model.compile(
            optimizer=optimizer,
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )
        return model


def _batches(data: Any, num_batches: int, batch_size: int) -> Iterable:
    """The first `num_batches` input batches of `data` (fixed order)."""
    if (
        isinstance(data, (tuple, list))
        and len(data) in (2, 3)
        and hasattr(data[0], "shape")
    ):
        data = data[0]
    if hasattr(data, "shape"):
        x = np.asarray(data)
        order = np.random.default_rng(0).permutation(len(x))
        for b in range(num_batches):
            idx = order[b * batch_size : (b + 1) * batch_size]
            if len(idx) == 0:
                return
            yield x[idx]
        return
    for b, batch in enumerate(data):
        if b >= num_batches:
            return
        if isinstance(batch, (tuple, list)):
            batch = batch[0]
        yield ops.convert_to_tensor(np.asarray(batch))
