"""The base of the one-shot estimators: `SharedWeights` and
`HyperNetworkScores`.

Both score a trial with weights that were not trained for it but come from
one model trained once for the whole search (a supernet's shared weights, a
hypernetwork's generated weights): one evaluation over the validation data
per candidate, cached per architecture. A subclass names the architecture
of a trial (`_key`), evaluates it (`_evaluate`) and trains its model
(`_fit`); this base holds the argument checks, the training on the first
estimate, the cache, the estimator protocol and `wrap`.
"""

from __future__ import annotations

from typing import Any

from keras_nas._validation import check_positive_int
from keras_nas.estimation._protocol import fit_data, wrap_tuner
from keras_nas.estimation.retrain import RetrainResult, retrain_top_k

__all__ = ["OneShotEstimator"]


class OneShotEstimator:
    """Scores trials with weights from a model trained once per search.

    Args:
        batch_size: batch size of the evaluation.
        train_epochs: epochs of training done on the first estimate when
            the model is untrained (0: never train).
        train_batch_size: batch size of that training.
        cache: reuse the score of an architecture already evaluated.
    """

    #: What the trained model is called in error messages.
    _model_name = "one-shot model"

    def __init__(
        self,
        batch_size: int = 256,
        train_epochs: int = 0,
        train_batch_size: int = 64,
        cache: bool = True,
    ):
        check_positive_int("batch_size", batch_size)
        check_positive_int("train_epochs", train_epochs, minimum=0)
        check_positive_int("train_batch_size", train_batch_size)
        self.batch_size = int(batch_size)
        self.train_epochs = train_epochs
        self.train_batch_size = int(train_batch_size)
        self.cache = bool(cache)
        self.trained = False
        self.num_estimates = 0
        self._scores: dict[tuple, dict[str, float]] = {}

    # -- what a subclass implements -------------------------------------

    def _key(self, values: dict[str, Any]) -> tuple:
        """The architecture that hyperparameter `values` name (hashable)."""
        raise NotImplementedError

    def _evaluate(
        self, key: tuple, x_val: Any, y_val: Any, train_data: Any
    ) -> dict[str, float]:
        """`{"accuracy", "loss"}` of architecture `key` on the data."""
        raise NotImplementedError

    def _fit(
        self, x: Any, y: Any, epochs: int, batch_size: int, **fit_kwargs: Any
    ) -> Any:
        """Trains the model; returns the History."""
        raise NotImplementedError

    def _train_for_search(self, tuner: Any, x: Any, y: Any) -> None:
        """Trains the model for `tuner`'s search (on the first estimate)."""
        if x is None or y is None:
            raise ValueError(
                "Expected training data `x, y` in `search(...)` to train "
                f"the {self._model_name}. Received: x=None or y=None"
            )
        self.train(x, y, epochs=self.train_epochs)

    # -- the estimator ----------------------------------------------------

    def train(
        self,
        x,
        y,
        epochs: int,
        batch_size: int | None = None,
        **fit_kwargs: Any,
    ):
        """Trains the model (a random architecture per batch); returns the
        History. Scores cached before are dropped."""
        history = self._fit(
            x, y, epochs, batch_size or self.train_batch_size, **fit_kwargs
        )
        self.trained = True
        self._scores.clear()
        return history

    def score(
        self, values: Any, validation_data: Any, train_data: Any = None
    ) -> dict[str, float]:
        """`{"val_accuracy", "val_loss"}` of one architecture.

        Args:
            values: the trial's hyperparameter values.
            validation_data: `(x_val, y_val)`.
            train_data: training inputs for a batch-norm recalibration
                (`SharedWeights`; estimators without one ignore them).
        """
        if validation_data is None:
            raise ValueError(
                "Expected `validation_data=(x_val, y_val)` (or "
                "`validation_split`) in `search(...)`. "
                "Received: validation_data=None"
            )
        key = self._key(values)
        if self.cache and key in self._scores:
            return dict(self._scores[key])
        result = self._evaluate(
            key, validation_data[0], validation_data[1], train_data
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
            self._train_for_search(tuner, x, y)
        return self.score(trial.hyperparameters.values, val, train_data=x)

    def wrap(self, tuner: Any) -> Any:
        """Makes a keras-tuner tuner score its trials with this estimator.

        Replaces `tuner.run_trial` (on this instance only) by `estimate`,
        so e.g. `keras_tuner.RandomSearch` or `BayesianOptimization` search
        with it. No model is saved per trial: use `retrain_top_k` to get
        trained models.

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
        """See `keras_nas.estimation.retrain_top_k`."""
        return retrain_top_k(
            tuner, k, x, y, validation_data, epochs, **fit_kwargs
        )
