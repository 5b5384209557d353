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

import dataclasses
from typing import Any

from keras_nas._validation import check_positive_int
from keras_nas.estimation._protocol import (
    best_epoch_metrics,
    fit_data,
    wrap_tuner,
)

__all__ = ["RetrainResult", "SharedWeights", "retrain_top_k"]


class SharedWeights:
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
        for name, value in (
            ("bn_recalibration_batches", bn_recalibration_batches),
            ("train_epochs", train_epochs),
        ):
            check_positive_int(name, value, minimum=0)
        self.supernet = supernet
        self.bn_recalibration_batches = bn_recalibration_batches
        self.batch_size = int(batch_size)
        self.train_epochs = train_epochs
        self.train_batch_size = int(train_batch_size)
        self.cache = bool(cache)
        self.trained = False
        self.num_estimates = 0
        self._scores: dict[tuple, dict[str, float]] = {}

    def train(
        self,
        x,
        y,
        epochs: int,
        batch_size: int | None = None,
        **fit_kwargs: Any,
    ):
        """Trains the supernet (uniform single paths); returns the History.

        Compiles it first (SGD, momentum 0.9, lr 0.05) if it is not.
        """
        import keras

        net = self.supernet
        if getattr(net, "optimizer", None) is None:
            net.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9))
        fit_kwargs.setdefault("verbose", 0)
        history = net.fit(
            x,
            y,
            epochs=epochs,
            batch_size=batch_size or self.train_batch_size,
            **fit_kwargs,
        )
        self.trained = True
        self._scores.clear()
        return history

    def score(
        self, values: Any, validation_data: Any, train_data: Any = None
    ) -> dict[str, float]:
        """Shared-weight `{"val_accuracy", "val_loss"}` of one path."""
        if validation_data is None:
            raise ValueError(
                "Expected `validation_data=(x_val, y_val)` (or "
                "`validation_split`) in `search(...)`. "
                "Received: validation_data=None"
            )
        key = self.supernet._to_path(values)
        if self.cache and key in self._scores:
            return dict(self._scores[key])
        x_val, y_val = validation_data[0], validation_data[1]
        k = self.bn_recalibration_batches if train_data is not None else 0
        result = self.supernet.evaluate_path(
            key,
            x_val,
            y_val,
            bn_recalibration_batches=k,
            train_data=train_data,
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
            if x is None or y is None:
                raise ValueError(
                    "Expected training data `x, y` in `search(...)` to train "
                    "the supernet. Received: x=None or y=None"
                )
            self.train(x, y, epochs=self.train_epochs)
        return self.score(trial.hyperparameters.values, val, train_data=x)

    def wrap(self, tuner: Any) -> Any:
        """Makes a keras-tuner tuner score its trials with shared weights.

        Replaces `tuner.run_trial` (on this instance only) by `estimate`,
        so e.g. `keras_tuner.RandomSearch` or `BayesianOptimization` search
        with shared weights. No model is saved per trial: use
        `retrain_top_k` to get trained models.

        Returns:
            The same tuner.

        Example:

        ```python
        tuner = SharedWeights(supernet).wrap(keras_tuner.RandomSearch(
            space, objective="val_accuracy", max_trials=500))
        tuner.search(x, y, validation_data=(x_val, y_val))
        ```
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
        """See `retrain_top_k`."""
        return retrain_top_k(
            tuner, k, x, y, validation_data, epochs, **fit_kwargs
        )


@dataclasses.dataclass
class RetrainResult:
    """One retrained candidate of `retrain_top_k`.

    Attributes:
        trial_id: the search trial.
        hyperparameters: its `keras_tuner.HyperParameters`.
        one_shot_score: the objective the search gave it (shared weights).
        score: the objective after training from scratch (best epoch).
        model: the trained model.
        history: its `History.history` dict.
    """

    trial_id: str
    hyperparameters: Any
    one_shot_score: float | None
    score: float
    model: Any
    history: dict


def retrain_top_k(
    tuner: Any,
    k: int,
    x,
    y,
    validation_data,
    epochs: int,
    **fit_kwargs: Any,
) -> list[RetrainResult]:
    """Retrains the top-k trials of a search from scratch; best first.

    One-shot scores rank architectures only roughly; the final choice must
    rest on real training. Each of the `k` best trials of `tuner` (by their
    search score) is built by the tuner's hypermodel (e.g. the search
    space) with fresh weights, trained with `fit` on `(x, y)` for `epochs`
    epochs and scored on `validation_data` with the tuner's objective (its
    best epoch, as keras-tuner does). The results are sorted by that real
    score: `results[0].model` is the final network.

    Args:
        tuner: a tuner after `search` (any keras-tuner or keras-nas tuner
            with a hypermodel).
        k: how many candidates to retrain.
        x, y: training data.
        validation_data: `(x_val, y_val)` for the real scores.
        epochs: training epochs per candidate.
        **fit_kwargs: more `fit` arguments (`batch_size`, `callbacks`...).

    Returns:
        A list of `RetrainResult`, best real score first.

    Example:

    ```python
    results = retrain_top_k(tuner, 5, x, y, (x_val, y_val), epochs=50)
    final = results[0].model
    ```
    """
    check_positive_int("k", k)
    hypermodel = getattr(tuner, "hypermodel", None)
    if hypermodel is None:
        raise ValueError(
            "Expected a tuner with a hypermodel (the search space) to build "
            "the candidates. Received: tuner.hypermodel=None"
        )
    objective = tuner.oracle.objective
    direction = objective.direction
    fit_kwargs.setdefault("verbose", 0)
    results = []
    for trial in tuner.oracle.get_best_trials(k):
        hp = trial.hyperparameters.copy()
        model = hypermodel.build(hp)
        history = model.fit(
            x,
            y,
            validation_data=validation_data,
            epochs=epochs,
            **fit_kwargs,
        ).history
        # The best finite epoch: one diverged epoch does not spoil it.
        score = float(
            objective.get_value(best_epoch_metrics(history, objective))
        )
        results.append(
            RetrainResult(
                trial.trial_id, hp, trial.score, score, model, history
            )
        )
    sign = -1.0 if direction == "max" else 1.0
    results.sort(key=lambda r: sign * r.score)
    return results
