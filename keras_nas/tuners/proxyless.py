"""ProxylessNAS as a keras-tuner `Tuner` (Cai, Zhu and Han, ICLR 2019).

`Proxyless(space).search(x, y, validation_data=..., epochs=...)` trains one
`keras_nas.supernet.ProxylessSupernet` over a
`keras_nas.spaces.MobileNetSearchSpace` (binary path gates; optionally the
expected latency from a `LatencyTable` in the architecture loss), derives
the network and reports it as the single trial, whose hyperparameters are
values of the space. `retrain(...)` and `get_best_models()` are those of
`Darts`: the space builds the derived network, trained from scratch.
"""

from __future__ import annotations

import contextlib
from typing import Any

from keras_nas._validation import (
    check_no_estimator,
    check_number,
    check_objective,
    check_positive_int,
    short_repr,
)
from keras_nas.estimation.latency_table import LatencyTable
from keras_nas.spaces.mobilenet_space import MobileNetSearchSpace
from keras_nas.supernet.proxyless import (
    ProxylessSupernet,
    default_arch_optimizer,
)
from keras_nas.tensorboard import log_trial_metrics
from keras_nas.tuners._base import NasTuner, check_seed
from keras_nas.tuners.darts import Darts, DartsOracle

__all__ = ["Proxyless"]

_REPORTED = ("val_accuracy", "val_loss")


class Proxyless(Darts):
    """ProxylessNAS (Cai et al., ICLR 2019) on a MobileNet space, as a tuner.

    `search(x, y, validation_data=(x_val, y_val), epochs=...)` trains a
    `ProxylessSupernet` for `epochs` epochs on batches zipped from the
    training data (weights, one sampled path per block) and the validation
    data (path logits, two sampled paths per block); without
    `validation_data` the training arrays are split (`train_portion`). The
    derived architecture (the largest path logit of every block) is the
    only trial, scored by the derived network's validation accuracy inside
    the supernet. `retrain(x, y, ...)` trains it from scratch;
    `get_best_models()` returns it.

    Args:
        hypermodel: a `MobileNetSearchSpace`.
        latency_table: a `LatencyTable` measured on the space (or the path
            of its JSON file), or `"measure"`: measure one on this device
            into the project directory (`latency_table.json`, reused when
            the search resumes). None: no latency term.
        latency_weight: weight (per ms) of the expected latency in the
            architecture loss (additive form; see `ProxylessSupernet`).
        latency_statistic: the table's statistic (`"median_ms"`,
            `"min_ms"`, ...).
        warmup_epochs: epochs of weight steps before the first
            architecture step.
        arch_learning_rate: learning rate of the path logits' Adam.
        batch_size: batch size of each half of a search step.
        train_portion: fraction of `x` used for the weights when no
            `validation_data` is given.
        seed: seed of the path sampling and the data order.
        objective: "val_accuracy" (default) or "val_loss".
        **kwargs: `keras_tuner.Tuner` arguments (`directory`,
            `project_name`, `overwrite`, `distribution_strategy`: a
            `tf.distribute` strategy the supernet is built and trained in,
            ...).

    Example:

    >>> space = MobileNetSearchSpace((8, 8, 1), 10)  # doctest: +SKIP
    >>> tuner = Proxyless(space, latency_table="measure",
    ...                   latency_weight=1.0, seed=0)  # doctest: +SKIP
    >>> tuner.search(x, y, validation_data=(xv, yv),
    ...              epochs=10)  # doctest: +SKIP
    >>> model = tuner.retrain(x, y, epochs=20)  # doctest: +SKIP
    """

    def __init__(
        self,
        hypermodel: MobileNetSearchSpace,
        latency_table: LatencyTable | str | None = None,
        latency_weight: float = 0.0,
        latency_statistic: str = "median_ms",
        warmup_epochs: int = 0,
        arch_learning_rate: float = 1e-3,
        batch_size: int = 64,
        train_portion: float = 0.5,
        seed: int | None = None,
        objective: Any = None,
        **kwargs: Any,
    ) -> None:
        objective = check_objective(
            objective, reported=_REPORTED, default="val_accuracy"
        )
        check_no_estimator(type(self).__name__, kwargs)
        seed = check_seed(seed)
        if not isinstance(hypermodel, MobileNetSearchSpace):
            raise ValueError(
                "Expected `hypermodel` to be a MobileNetSearchSpace. "
                f"Received: hypermodel={short_repr(hypermodel)}"
            )
        if isinstance(latency_table, str) and latency_table != "measure":
            latency_table = LatencyTable.load(latency_table)
        self.latency_table = latency_table
        self.supernet_config = dict(
            latency_weight=latency_weight,
            latency_statistic=latency_statistic,
            seed=seed,
        )
        # Checks the arguments before any search starts.
        measure = latency_table == "measure"
        check_number(
            "latency_weight", latency_weight, 0, float("inf"), high_open=True
        )
        ProxylessSupernet(
            hypermodel,
            latency_table=None if measure else latency_table,
            latency_weight=0.0 if measure else latency_weight,
            latency_statistic=latency_statistic,
        )
        self.warmup_epochs = check_positive_int(
            "warmup_epochs", warmup_epochs, minimum=0
        )
        self.arch_learning_rate = check_number(
            "arch_learning_rate", arch_learning_rate, 0, 1e3, low_open=True
        )
        self.batch_size = check_positive_int("batch_size", batch_size)
        self.train_portion = check_number(
            "train_portion", train_portion, 0, 1, low_open=True, high_open=True
        )
        self.seed = seed
        self.supernet = None
        oracle = DartsOracle(objective=objective, seed=seed)
        NasTuner.__init__(self, oracle, hypermodel=hypermodel, **kwargs)

    def _table(self) -> LatencyTable | None:
        if self.latency_table == "measure":
            self.latency_table = LatencyTable.measure(
                self.hypermodel, path=self.project_dir
            )
        return self.latency_table

    def run_trial(self, trial, *args, **kwargs):
        data, val, epochs, verbose, callbacks = self._search_inputs(
            args, kwargs
        )
        table = self._table()
        # keras-tuner's `distribution_strategy=`: the supernet is built in
        # its scope, so that `fit` runs on its replicas.
        strategy = self.distribution_strategy
        with strategy.scope() if strategy else contextlib.nullcontext():
            supernet = ProxylessSupernet(
                self.hypermodel,
                latency_table=table,
                warmup_steps=self.warmup_epochs * len(data),
                **self.supernet_config,
            )
            supernet.compile(
                arch_optimizer=default_arch_optimizer(self.arch_learning_rate),
                decay_steps=max(1, epochs * len(data)),
            )
        supernet.fit(data, epochs=epochs, callbacks=callbacks, verbose=verbose)
        self.supernet = supernet
        metrics = supernet.evaluate(
            val[0], val[1], batch_size=self.batch_size, verbose=0,
            return_dict=True,
        )  # fmt: skip
        hp = trial.hyperparameters
        self.hypermodel.declare_hyperparameters(hp)
        hp.values.update(supernet.derive_hyperparameters())
        self.oracle.update_space(hp)
        result = {
            "val_accuracy": float(metrics["accuracy"]),
            "val_loss": float(metrics["loss"]),
        }  # = _REPORTED
        log_trial_metrics(self, trial, callbacks, result)
        return result
