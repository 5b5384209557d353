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

from keras_nas._validation import check_positive_int
from keras_nas.estimation._protocol import fit_data, wrap_tuner
from keras_nas.estimation.shared_weights import RetrainResult, retrain_top_k

__all__ = ["HyperNetworkScores"]

#: Where the trained hypernetwork is kept in a tuner's project directory.
STATE_DIR = "hypernetwork"


class HyperNetworkScores:
    """Scores trials with the weights a SMASH hypernetwork generates.

    Use it as the `estimator=` of any keras-nas tuner, or wrap a
    keras-tuner tuner with `HyperNetworkScores.wrap(tuner)`. Each trial's
    hyperparameters name a NAS-Bench-201 architecture; the estimate is its
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
        check_positive_int("batch_size", batch_size)
        check_positive_int("train_epochs", train_epochs, minimum=0)
        check_positive_int("train_batch_size", train_batch_size)
        self.hypernetwork = hypernetwork
        self.batch_size = int(batch_size)
        self.train_epochs = train_epochs
        self.train_batch_size = int(train_batch_size)
        self.cache = bool(cache)
        self.trained = hypernetwork.trained_epochs > 0
        self.num_estimates = 0
        self._scores: dict[tuple, dict[str, float]] = {}

    def train(
        self, x, y, epochs: int, batch_size: int | None = None, **fit_kwargs
    ):
        """Trains the hypernetwork (a random architecture per batch);
        returns the History. See `HyperNetwork.train`."""
        history = self.hypernetwork.train(
            x, y, epochs, batch_size or self.train_batch_size, **fit_kwargs
        )
        self.trained = True
        self._scores.clear()
        return history

    def score(self, values: Any, validation_data: Any) -> dict[str, float]:
        """Generated-weight `{"val_accuracy", "val_loss"}` of one
        architecture."""
        if validation_data is None:
            raise ValueError(
                "Expected `validation_data=(x_val, y_val)` (or "
                "`validation_split`) in `search(...)`. "
                "Received: validation_data=None"
            )
        key = tuple(self.hypernetwork.genotype(values).ops)
        if self.cache and key in self._scores:
            return dict(self._scores[key])
        result = self.hypernetwork.evaluate_architecture(
            key,
            validation_data[0],
            validation_data[1],
            batch_size=self.batch_size,
        )
        out = {"val_accuracy": result["accuracy"], "val_loss": result["loss"]}
        self.num_estimates += 1
        if self.cache:
            self._scores[key] = dict(out)
        return out

    def estimate(
        self, tuner: Any, trial: Any, *fit_args: Any, **fit_kwargs: Any
    ) -> dict[str, float]:
        """The `estimator` protocol of `keras_nas.tuners`: a metrics dict."""
        x, y, val = fit_data(fit_args, fit_kwargs)
        if not self.trained and self.train_epochs:
            directory = getattr(tuner, "project_dir", None)
            if directory is not None:
                directory = os.path.join(directory, STATE_DIR)
            if directory is not None and self.hypernetwork.has_state(
                directory
            ):
                self.hypernetwork.restore_state(directory)
                self.trained = True
            else:
                if x is None or y is None:
                    raise ValueError(
                        "Expected training data `x, y` in `search(...)` to "
                        "train the hypernetwork. Received: x=None or y=None"
                    )
                self.train(x, y, epochs=self.train_epochs)
                if directory is not None:
                    self.hypernetwork.save_state(directory)
        return self.score(trial.hyperparameters.values, val)

    def wrap(self, tuner: Any) -> Any:
        """Makes a keras-tuner tuner score its trials with the
        hypernetwork (replaces `tuner.run_trial` on this instance).

        Returns:
            The same tuner.
        """
        return wrap_tuner(self, tuner)

    def retrain_top_k(
        self,
        tuner: Any,
        k: int,
        x,
        y,
        validation_data,
        epochs: int,
        **fit_kwargs: Any,
    ) -> list[RetrainResult]:
        """See `keras_nas.estimation.retrain_top_k`."""
        return retrain_top_k(
            tuner, k, x, y, validation_data, epochs, **fit_kwargs
        )
