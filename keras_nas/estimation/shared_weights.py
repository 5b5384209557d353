"""Shared weights as a performance estimator, and the retraining step.

`SharedWeights` scores a trial with the weights it inherits from a trained
`keras_nas.supernet.OneShotSupernet` instead of training it: one forward
pass of the trial's path over the validation data (after an optional
batch-norm recalibration), a few milliseconds per candidate. Any keras-nas
tuner takes it as `estimator=`, and `SharedWeights.wrap` plugs it into
keras-tuner's own tuners, so a multi-trial search of thousands of candidates
runs in minutes (SPOS: Guo et al., ECCV 2020; shared weights as an estimator:
Bender et al., "Understanding and Simplifying One-Shot Architecture Search",
ICML 2018).

One-shot rankings are biased (Yu et al., "Evaluating the Search Phase of
Neural Architecture Search", ICLR 2020): the final architecture must not be
chosen on them alone. `retrain_top_k` retrains the search's top-k
candidates from scratch and picks the final one by its real score.
"""

from __future__ import annotations

from typing import Any

from keras_nas._validation import check_positive_int
from keras_nas.estimation._one_shot_estimator import OneShotEstimator

# `retrain_top_k` lives in `retrain` (every estimator's search ends with it).
from keras_nas.estimation.retrain import RetrainResult as RetrainResult
from keras_nas.estimation.retrain import retrain_top_k as retrain_top_k

__all__ = ["RetrainResult", "SharedWeights", "retrain_top_k"]


class SharedWeights(OneShotEstimator):
    """Scores trials with the shared weights of a one-shot supernet.

    Use it as the `estimator=` of any keras-nas tuner (`AgingEvolution`,
    `Reinforce`, `MonteCarloTreeSearch`, ...), or wrap a keras-tuner tuner
    with `SharedWeights.wrap(tuner)`. Each trial's hyperparameters name a
    path of the supernet; the estimate is that path's validation accuracy
    and loss with inherited weights, reported as `val_accuracy` and
    `val_loss` (so the default objective `"val_accuracy"` works). Values of
    non-architecture hyperparameters (e.g. `num_cells`, `filters`) are
    ignored: the supernet's are used.

    If the supernet has not been trained yet, the first `estimate` trains it
    on the search's `(x, y)` for `train_epochs` epochs (SPOS uniform
    single-path training), once.

    Args:
        supernet: a `keras_nas.supernet.OneShotSupernet`.
        bn_recalibration_batches: training batches used to recalibrate the
            path's batch-norm statistics before scoring (0: none).
        batch_size: batch size of recalibration and evaluation.
        train_epochs: epochs of supernet training done on the first
            estimate when the supernet is untrained (0: never train).
        train_batch_size: batch size of that training.
        cache: reuse the score of an architecture already evaluated.

    Example:

    ```python
    space = keras_nas.spaces.NasBench201SearchSpace(
        input_shape=(8, 8, 1), num_classes=10, filters=8,
        cells_per_stage=1)
    supernet = keras_nas.supernet.OneShotSupernet(space, seed=0)
    estimator = SharedWeights(supernet, train_epochs=30)
    tuner = keras_nas.tuners.AgingEvolution(
        space, objective="val_accuracy", max_trials=2000,
        estimator=estimator, seed=0)
    tuner.search(x_train, y_train, validation_data=(x_val, y_val))
    # One-shot scores are biased: retrain the top 5 from scratch.
    best = retrain_top_k(tuner, 5, x_train, y_train,
                         validation_data=(x_val, y_val), epochs=30)[0]
    ```
    """

    _model_name = "supernet"

    def __init__(
        self,
        supernet: Any,
        bn_recalibration_batches: int = 4,
        batch_size: int = 256,
        train_epochs: int = 0,
        train_batch_size: int = 64,
        cache: bool = True,
    ):
        if not callable(getattr(supernet, "evaluate_path", None)):
            raise ValueError(
                "Expected `supernet` to be a keras_nas.supernet."
                f"OneShotSupernet. Received: supernet={supernet!r}"
            )
        super().__init__(batch_size, train_epochs, train_batch_size, cache)
        check_positive_int(
            "bn_recalibration_batches", bn_recalibration_batches, minimum=0
        )
        self.supernet = supernet
        self.bn_recalibration_batches = bn_recalibration_batches

    def _key(self, values):
        return self.supernet._to_path(values)

    def _evaluate(self, key, x_val, y_val, train_data):
        return self.supernet.evaluate_path(
            key,
            x_val,
            y_val,
            bn_recalibration_batches=(
                self.bn_recalibration_batches if train_data is not None else 0
            ),
            train_data=train_data,
            batch_size=self.batch_size,
        )

    def _fit(self, x, y, epochs, batch_size, **fit_kwargs):
        """Uniform single-path training; compiles the supernet first (SGD,
        momentum 0.9, lr 0.05) if it is not."""
        import keras

        net = self.supernet
        if getattr(net, "optimizer", None) is None:
            net.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9))
        fit_kwargs.setdefault("verbose", 0)
        return net.fit(
            x, y, epochs=epochs, batch_size=batch_size, **fit_kwargs
        )
