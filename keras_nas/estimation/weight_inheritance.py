"""Weight inheritance as a performance estimator.

An evolved child starts from its parent's trained weights wherever the
mutation left its layers unchanged (Real et al., "Large-Scale Evolution of
Image Classifiers", ICML 2017), so a few epochs of training score it about
as well as a full training from scratch would. `WeightInheritance` plugs
this into any keras-nas tuner whose oracle records parents (the
`trial_parents` protocol; `keras_nas.tuners.AgingEvolution` does): trials
with a parent are built, initialized with `inherit_weights` from the
parent's checkpoint and trained for `epochs` epochs; other trials train for
the full number of epochs of `search(...)`. Each trial saves its best
epoch's weights where keras-tuner does (`checkpoint.weights.h5` in the trial
directory), for its own children and for `tuner.get_best_models()`.
"""

from __future__ import annotations

import collections
import json
import os
import warnings
from typing import Any

from keras_nas._validation import check_bool, check_number, check_positive_int
from keras_nas.estimation._protocol import best_epoch_metrics, wrap_tuner
from keras_nas.estimation.network_morphisms import inherit_by_morphism
from keras_nas.estimation.weight_transfer import (
    InheritanceReport,
    inherit_weights,
    trial_parents,
)

__all__ = ["WeightInheritance"]


class WeightInheritance:
    """Trains children briefly from their parent's inherited weights.

    The `estimator=` of a keras-nas tuner (see `keras_nas.tuners.NasTuner`).
    For each trial:

    1. the oracle is asked for the trial's parents (`trial_parents`); if it
       has one whose checkpoint exists, the parent is rebuilt from its
       hyperparameters and its trained weights are loaded;
    2. the child is built by the tuner's hypermodel and `inherit_weights`
       copies every parent layer that the mutation left unchanged (same
       structural position, class and weight shapes; with
       `morphisms=True`, after widening the parent to the child's widths);
    3. a child that inherited at least `min_fraction` of its weights (and
       at least one layer) trains for `epochs` epochs, every other trial
       for `full_epochs` (default: the `epochs` given to `search`);
    4. the best epoch's weights are saved as keras-tuner does, and the
       objective of the best epoch is returned with the inheritance counts
       (`inherited_layers`, `inherited_fraction`, `trained_epochs`), which
       the oracle records as trial metrics.

    `reports` maps trial ids to `InheritanceReport.to_dict()` (also written
    to `inheritance.json` in the trial directory). One execution per trial
    (`executions_per_trial` is ignored).

    Inherited weights make children look better than an equally short
    training from scratch: compare final candidates by retraining them
    (e.g. `keras_nas.estimation.retrain_top_k`).

    Args:
        epochs: training epochs of a child that inherited weights.
        full_epochs: training epochs of the other trials; None uses the
            `epochs` argument of `search` (keras' default 1 if absent).
        min_fraction: smallest share of the child's weights (scalars) that
            must be inherited for the short schedule, in `[0, 1]`.
        morphisms: initialize children with `inherit_by_morphism`: where
            the child has more units than the parent in a layer, the parent
            is first widened by Net2WiderNet (function-preserving), so the
            widened layer and the layer reading it are inherited too.
        cache_size: how many parent models to keep in memory (a parent is
            often mutated several times).

    Example:

    ```python
    space = keras_nas.spaces.ChainSearchSpace((8, 8, 1), 10, max_layers=4)
    tuner = keras_nas.tuners.AgingEvolution(
        space, objective="val_accuracy", max_trials=30, seed=0,
        estimator=WeightInheritance(epochs=2))
    tuner.search(x, y, validation_data=(x_val, y_val), epochs=6)
    ```
    """

    def __init__(
        self,
        epochs: int = 2,
        full_epochs: int | None = None,
        min_fraction: float = 0.0,
        morphisms: bool = False,
        cache_size: int = 4,
    ):
        self.epochs = check_positive_int("epochs", epochs)
        self.full_epochs = check_positive_int(
            "full_epochs", full_epochs, allow_none=True
        )
        self.min_fraction = check_number("min_fraction", min_fraction, 0, 1)
        self.morphisms = check_bool("morphisms", morphisms)
        self.cache_size = check_positive_int("cache_size", cache_size)
        self.reports: dict[str, dict[str, Any]] = {}
        self._cache: collections.OrderedDict = collections.OrderedDict()

    # -- parents --------------------------------------------------------------

    def parent_model(self, tuner: Any, trial_id: str) -> Any:
        """A finished trial's model with its saved weights, or None."""
        path = tuner._get_checkpoint_fname(trial_id)
        if path in self._cache:  # Keyed by path: tuners may share ids.
            self._cache.move_to_end(path)
            return self._cache[path]
        try:
            trial = tuner.oracle.get_trial(trial_id)
        except (KeyError, ValueError):
            return None
        if not os.path.exists(path):
            return None
        model = tuner.hypermodel.build(trial.hyperparameters.copy())
        with warnings.catch_warnings():
            # The checkpoint's optimizer state is not needed.
            warnings.simplefilter("ignore", UserWarning)
            model.load_weights(path)
        self._cache[path] = model
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return model

    def _inherit(self, tuner, trial, model) -> tuple[str | None, Any]:
        for parent in trial_parents(tuner.oracle, trial.trial_id)[:1]:
            source = self.parent_model(tuner, parent)
            if source is None:
                continue
            if self.morphisms:
                return parent, inherit_by_morphism(model, source)
            return parent, inherit_weights(model, source)
        return None, None

    # -- estimator protocol ---------------------------------------------------

    def estimate(
        self, tuner: Any, trial: Any, *fit_args: Any, **fit_kwargs: Any
    ) -> dict[str, float]:
        """The `estimator` protocol of `keras_nas.tuners`: a metrics dict."""
        # Private keras-tuner API, on purpose: this repeats the steps of
        # `Tuner.run_trial` with the inherited weights put in between build
        # and `fit` (and the child's own epochs), and keras-tuner has no
        # public API for those steps: `_try_build` (the tuner's compile
        # overrides and `max_model_size`), `_deepcopy_callbacks`,
        # `_configure_tensorboard_dir` (per-trial TensorBoard dirs),
        # `_get_checkpoint_fname` with `SaveBestEpoch` (the file
        # `load_model`/`get_best_models` read). What is assumed of them is
        # pinned in tests/estimation/test_weight_inheritance_keras_tuner.py.
        from keras_tuner.src.engine import tuner_utils

        if tuner.hypermodel is None:
            raise ValueError(
                "Expected a tuner with a hypermodel (the search space) to "
                "build the trials. Received: tuner.hypermodel=None"
            )
        hp = trial.hyperparameters
        model = tuner._try_build(hp)
        parent, report = self._inherit(tuner, trial, model)
        short = (
            report is not None
            and report.num_inherited > 0
            and report.fraction >= self.min_fraction
        )
        kwargs = dict(fit_kwargs)
        if short:
            kwargs["epochs"] = self.epochs
        elif self.full_epochs is not None:
            kwargs["epochs"] = self.full_epochs
        callbacks = tuner._deepcopy_callbacks(
            list(kwargs.pop("callbacks", None) or [])
        )
        tuner._configure_tensorboard_dir(callbacks, trial, 0)
        callbacks.append(
            tuner_utils.SaveBestEpoch(
                objective=tuner.oracle.objective,
                filepath=tuner._get_checkpoint_fname(trial.trial_id),
            )
        )
        history = tuner.hypermodel.fit(
            hp, model, *fit_args, callbacks=callbacks, **kwargs
        )
        # The best epoch's metrics, as keras-tuner reports them, but a
        # diverged (NaN) epoch never counts as the best.
        metrics = best_epoch_metrics(history.history, tuner.oracle.objective)
        if report is None:
            report = InheritanceReport([], [], 0, 0)
        record = report.to_dict()
        record.update(
            parent=parent,
            trained_epochs=len(history.history.get("loss", [])),
        )
        self.reports[trial.trial_id] = record
        with open(
            os.path.join(
                tuner.get_trial_dir(trial.trial_id), "inheritance.json"
            ),
            "w",
        ) as f:
            json.dump(record, f)
        metrics.update(
            inherited_layers=float(report.num_inherited),
            inherited_fraction=float(report.fraction),
            trained_epochs=float(record["trained_epochs"]),
        )
        return metrics

    def wrap(self, tuner: Any) -> Any:
        """Makes a keras-tuner tuner score its trials with inherited
        weights, as `estimator=` does for a keras-nas tuner; returns the
        same tuner.

        Only trials whose oracle records parents (`trial_parents`) inherit;
        with keras-tuner's own oracles every trial trains for
        `full_epochs`.

        Example:

        ```python
        tuner = WeightInheritance(epochs=2).wrap(
            keras_tuner.RandomSearch(space, objective="val_accuracy",
                                     max_trials=20))
        tuner.search(x, y, validation_data=(x_val, y_val), epochs=6)
        ```
        """
        return wrap_tuner(self, tuner)
