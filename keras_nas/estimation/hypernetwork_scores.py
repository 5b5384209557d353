"""SMASH scores as a performance estimator.

`HyperNetworkScores` scores a trial with the weights a trained
`keras_nas.supernet.HyperNetwork` generates for its architecture instead of
training it (Brock et al., "SMASH: One-Shot Model Architecture Search
through HyperNetworks", ICLR 2018): one forward pass over the validation
data per candidate. It plugs into tuners exactly as `SharedWeights` does
(`estimator=` of any keras-nas tuner, `wrap` for keras-tuner's tuners), and
keeps the trained hypernetwork in the tuner's project directory, so a
resumed search does not train it again.

As with every one-shot estimator, the ranking is approximate: retrain the
best candidates from scratch (`retrain_top_k`) before choosing.
"""

from __future__ import annotations

import os
from typing import Any

from keras_nas.estimation._one_shot_estimator import OneShotEstimator

__all__ = ["HyperNetworkScores"]

#: Where the trained hypernetwork is kept in a tuner's project directory.
STATE_DIR = "hypernetwork"


class HyperNetworkScores(OneShotEstimator):
    """Scores trials with the weights a SMASH hypernetwork generates.

    Use it as the `estimator=` of any keras-nas tuner, or wrap a
    keras-tuner tuner with `HyperNetworkScores.wrap(tuner)`. Each trial's
    hyperparameters name an architecture of the hypernetwork's space
    (NAS-Bench-201 or the DARTS cell space); the estimate is its
    validation accuracy and loss with generated weights, reported as
    `val_accuracy` and `val_loss`. Values of other hyperparameters are
    ignored: the hypernetwork's sizes are used.

    If the hypernetwork has not been trained yet, the first `estimate`
    trains it on the search's `(x, y)` for `train_epochs` epochs, once, and
    saves it (`HyperNetwork.save_state`) in `<project_dir>/hypernetwork`;
    a later search in the same project directory loads it instead.

    The hypernetwork normalizes with batch statistics, so there is no
    batch-norm recalibration (`SharedWeights`' `bn_recalibration_batches`):
    score with batches of a few hundred images.

    Args:
        hypernetwork: a `keras_nas.supernet.HyperNetwork`.
        batch_size: batch size of the evaluation.
        train_epochs: epochs of hypernetwork training done on the first
            estimate when it is untrained (0: never train).
        train_batch_size: batch size of that training.
        cache: reuse the score of an architecture already evaluated.

    Example:

    ```python
    space = keras_nas.spaces.NasBench201SearchSpace(
        input_shape=(8, 8, 1), num_classes=10, filters=8,
        cells_per_stage=1)
    net = keras_nas.supernet.HyperNetwork(space, seed=0)
    estimator = HyperNetworkScores(net, train_epochs=40)
    tuner = keras_nas.tuners.AgingEvolution(
        space, objective="val_accuracy", max_trials=2000,
        estimator=estimator, seed=0)
    tuner.search(x_train, y_train, validation_data=(x_val, y_val))
    best = retrain_top_k(tuner, 5, x_train, y_train,
                         validation_data=(x_val, y_val), epochs=30)[0]
    ```
    """

    _model_name = "hypernetwork"

    def __init__(
        self,
        hypernetwork: Any,
        batch_size: int = 256,
        train_epochs: int = 0,
        train_batch_size: int = 64,
        cache: bool = True,
    ):
        if not callable(getattr(hypernetwork, "evaluate_architecture", None)):
            raise ValueError(
                "Expected `hypernetwork` to be a keras_nas.supernet."
                f"HyperNetwork. Received: hypernetwork={hypernetwork!r}"
            )
        super().__init__(batch_size, train_epochs, train_batch_size, cache)
        self.hypernetwork = hypernetwork
        self.trained = hypernetwork.trained_epochs > 0

    def _key(self, values):
        return self.hypernetwork.path(values)

    def _evaluate(self, key, x_val, y_val, train_data):
        # Batch statistics: no batch-norm recalibration on `train_data`.
        return self.hypernetwork.evaluate_architecture(
            key, x_val, y_val, batch_size=self.batch_size
        )

    def _fit(self, x, y, epochs, batch_size, **fit_kwargs):
        """See `HyperNetwork.train`."""
        return self.hypernetwork.train(x, y, epochs, batch_size, **fit_kwargs)

    def _train_for_search(self, tuner, x, y):
        # Restores the hypernetwork a search in the same project directory
        # trained, else trains it and saves it there.
        directory = getattr(tuner, "project_dir", None)
        if directory is not None:
            directory = os.path.join(directory, STATE_DIR)
            if self.hypernetwork.has_state(directory):
                self.hypernetwork.restore_state(directory)
                self.trained = True
                return
        super()._train_for_search(tuner, x, y)
        if directory is not None:
            self.hypernetwork.save_state(directory)
