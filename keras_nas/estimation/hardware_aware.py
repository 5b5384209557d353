"""Hardware-aware objectives for any tuner: params, FLOPs, latency, reward.

`HardwareAware` is an estimator (the `estimator=` protocol of
`keras_nas.tuners`) that adds the hardware costs of a trial's architecture
(`keras_nas.estimation.hardware`) to its metrics, plus an optional
scalarized objective: MnasNet's reward (Tan et al., "MnasNet: Platform-Aware
Neural Architecture Search for Mobile", CVPR 2019, Eq. 2)

    reward = accuracy * (cost / target) ** w,
    w = alpha if cost <= target else beta,

with `alpha = beta = -0.07` (the paper's soft constraint; `alpha=0,
beta=-1` is its hard constraint). Search on it with
`objective=estimator.objective`, or on several objectives at once with
`objective=estimator.pareto_objectives()` (keras-tuner multi-objective);
`keras_nas.visualize.plot_history(tuner)` then draws the Pareto front of
accuracy against the costs.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import keras

from keras_nas._metric_names import HARDWARE_METRICS
from keras_nas.estimation import hardware
from keras_nas.estimation._protocol import (
    plain_run_trial,
    provides_metrics,
    wrap_tuner,
)
from keras_nas.estimation.latency_table import LatencyTable

__all__ = ["HARDWARE_METRICS", "HardwareAware", "mnas_reward"]


def mnas_reward(
    accuracy: float,
    cost: float,
    target: float,
    alpha: float = -0.07,
    beta: float = -0.07,
) -> float:
    """MnasNet's reward `accuracy * (cost / target) ** w` (Tan et al. 2019).

    Args:
        accuracy: the model's accuracy (or any score to maximize, >= 0).
        cost: its latency (or another cost), > 0.
        target: the target cost, > 0.
        alpha: exponent `w` when `cost <= target`.
        beta: exponent `w` when `cost > target`.

    Returns:
        The reward (larger is better).

    Example:

    >>> round(mnas_reward(0.75, 80.0, 80.0), 4)
    0.75
    >>> mnas_reward(0.75, 160.0, 80.0) < 0.75
    True
    """
    if not cost > 0 or not target > 0:
        raise ValueError(
            "Expected a positive `cost` and `target`. "
            f"Received: cost={cost!r}, target={target!r}"
        )
    w = alpha if cost <= target else beta
    return float(accuracy) * (float(cost) / float(target)) ** w


def _values_key(trial: Any) -> str:
    return json.dumps(trial.hyperparameters.values, sort_keys=True, default=str)


class _HardwareCallback(keras.callbacks.Callback):
    """Puts the hardware metrics (and the reward) into every epoch's logs.

    Placed first among the search's callbacks, so `History`, TensorBoard,
    keras-tuner's checkpointing and its objective see them.
    """

    def __init__(self, estimator: HardwareAware, key: str):
        super().__init__()
        self.estimator = estimator
        self.key = key
        self.hardware: dict[str, float] = {}

    def __deepcopy__(self, memo):
        # keras-tuner deep-copies the callbacks of every execution; the
        # estimator (and its cache) is shared, not copied.
        return _HardwareCallback(self.estimator, self.key)

    def on_train_begin(self, logs=None):
        model = self.model
        self.hardware = self.estimator._measure_cached(self.key, lambda: model)

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs.update(self.hardware)
            self.estimator.add_reward(logs)


class HardwareAware:
    """Adds hardware costs and a hardware-aware reward to trial metrics.

    Use it as the `estimator=` of any keras-nas tuner, or wrap a keras-tuner
    tuner with `HardwareAware(...).wrap(tuner)`. Each trial gets the
    metrics named in `metrics` (see `keras_nas.estimation.hardware`):

    - `"params"`: all weights; `"trainable_params"`: trainable ones,
    - `"macs"`: multiply-accumulates; `"flops"`: FLOPs (`2 * MACs` + the
      rest), for one example,
    - `"latency"`: median inference latency in ms (`measure_latency`),
    - `"predicted_latency"`: the latency in ms that `latency_table` (a
      `LatencyTable` of the search space) predicts, without timing the
      model (ProxylessNAS' per-block latency model),

    and, when a `target` is given, the MnasNet reward under `reward_name`
    (see `mnas_reward`), computed from `accuracy_metric` and
    `target_metric`.

    Without an inner `estimator`, the trial is trained exactly as
    keras-tuner's `Tuner.run_trial` does (same callbacks, TensorBoard
    directories, best-epoch checkpoint, `executions_per_trial`, and its
    return value, the list of `History`): a callback adds the costs of the
    model being trained, and the reward of each epoch, to the epoch logs,
    so the best epoch and the checkpoint follow the objective even when it
    is the reward. With an inner estimator (e.g. `SharedWeights`,
    `PartialTraining`), its metrics dict is returned with the costs (and
    the reward) added. An inner estimator that trains with `fit` and the
    search's callbacks (`PartialTraining`) gets them in its epoch logs too,
    so it can pick its best epoch by the reward; for the others the costs
    are those of the stand-alone model that the tuner's hypermodel builds
    for the trial (built once more for that).

    An inner estimator that checks the tuner's objective against its own
    metrics (`ZeroCost`) also accepts the costs and the reward added here,
    so e.g. `HardwareAware(estimator=ZeroCost("synflow"), target=...,
    accuracy_metric="zero_cost_synflow")` searches on the reward of the
    proxy and the cost.

    Costs are cached per set of hyperparameter values (`cache=True`), so
    a repeated architecture is not measured twice.

    Args:
        metrics: the hardware metrics to add (names of `HARDWARE_METRICS`).
        estimator: optional inner estimator scoring the trial.
        target: target value of `target_metric` for the reward; `None`
            (default) adds no reward.
        target_metric: the cost in the reward; defaults to `"latency"` if
            it is in `metrics`, else the first metric.
        alpha: reward exponent when the cost is within the target.
        beta: reward exponent when the cost exceeds the target.
        accuracy_metric: the metric rewarded (maximized).
        reward_name: name of the reward metric.
        input_shape: shape of one example, for models without known inputs.
        latency_runs: timed calls per latency measurement.
        latency_warmup: untimed calls before them.
        latency_batch_size: batch size of the latency measurement.
        latency_table: a `LatencyTable` of the search space, required by
            the `"predicted_latency"` metric.
        cache: reuse the costs of an architecture already measured.

    Example:

    ```python
    estimator = HardwareAware(
        metrics=("params", "flops", "latency"), target=5.0)  # 5 ms
    tuner = keras_nas.tuners.AgingEvolution(
        space, objective=estimator.objective, max_trials=50,
        estimator=estimator, seed=0)
    tuner.search(x, y, validation_split=0.2, epochs=5)

    # Multi-objective: accuracy against FLOPs, then the Pareto front.
    estimator = HardwareAware(metrics=("flops",))
    tuner = keras_nas.tuners.AgingEvolution(
        space, objective=estimator.pareto_objectives(), max_trials=50,
        estimator=estimator, seed=0)
    tuner.search(x, y, validation_split=0.2, epochs=5)
    keras_nas.visualize.plot_history(tuner, path="pareto.png")
    ```
    """

    def __init__(
        self,
        metrics: Sequence[str] = ("params", "flops", "latency"),
        estimator: Any = None,
        *,
        target: float | None = None,
        target_metric: str | None = None,
        alpha: float = -0.07,
        beta: float = -0.07,
        accuracy_metric: str = "val_accuracy",
        reward_name: str = "hardware_reward",
        input_shape: Sequence[int] | None = None,
        latency_runs: int = 20,
        latency_warmup: int = 3,
        latency_batch_size: int = 1,
        cache: bool = True,
        latency_table: LatencyTable | None = None,
    ):
        if isinstance(metrics, str):
            metrics = (metrics,)
        metrics = tuple(metrics)
        if not metrics or any(m not in HARDWARE_METRICS for m in metrics):
            raise ValueError(
                f"Expected `metrics` to be names among {HARDWARE_METRICS}. "
                f"Received: metrics={metrics!r}"
            )
        if estimator is not None and not callable(
            getattr(estimator, "estimate", None)
        ):
            raise ValueError(
                "Expected `estimator` to have an `estimate(tuner, trial, "
                f"*args, **kwargs)` method. Received: estimator={estimator!r}"
            )
        if ("predicted_latency" in metrics) != (latency_table is not None):
            raise ValueError(
                "Expected a `latency_table` (a LatencyTable) exactly when "
                "`metrics` holds 'predicted_latency'. Received: "
                f"metrics={metrics!r}, latency_table={latency_table!r}"
            )
        if latency_table is not None and not isinstance(
            latency_table, LatencyTable
        ):
            raise ValueError(
                "Expected `latency_table` to be a LatencyTable. "
                f"Received: latency_table={latency_table!r}"
            )
        if target_metric is None:
            latencies = [m for m in metrics if m.endswith("latency")]
            target_metric = latencies[0] if latencies else metrics[0]
        if target_metric not in metrics:
            raise ValueError(
                f"Expected `target_metric` to be one of metrics={metrics}. "
                f"Received: target_metric={target_metric!r}"
            )
        if target is not None and (
            isinstance(target, bool)
            or not isinstance(target, (int, float))
            or not target > 0
        ):
            raise ValueError(
                "Expected `target` to be a positive number or None. "
                f"Received: target={target!r}"
            )
        self.metrics = metrics
        self.estimator = estimator
        self.target = target
        self.target_metric = target_metric
        self.alpha = float(alpha)
        self.beta = float(beta)
        self.accuracy_metric = accuracy_metric
        self.reward_name = reward_name
        self.input_shape = input_shape
        self.latency_runs = latency_runs
        self.latency_warmup = latency_warmup
        self.latency_batch_size = latency_batch_size
        self.cache = bool(cache)
        self.latency_table = latency_table
        self.num_measurements = 0
        self._costs: dict[str, dict[str, float]] = {}

    @property
    def logs_to_tensorboard(self) -> bool:
        """Whether `estimate` logs the trial itself (it trains with `fit`).

        `NasTuner` then does not log the returned metrics again.
        """
        if self.estimator is None:
            return True
        return bool(getattr(self.estimator, "logs_to_tensorboard", False))

    @property
    def objective(self) -> Any:
        """`keras_tuner.Objective(reward_name, "max")` (needs a `target`)."""
        import keras_tuner

        if self.target is None:
            raise ValueError(
                "Expected a `target` to define the reward objective. "
                "Received: target=None"
            )
        return keras_tuner.Objective(self.reward_name, "max")

    def pareto_objectives(self, *metrics: str) -> list[Any]:
        """Objectives of a multi-objective search: accuracy and costs.

        Args:
            *metrics: the costs to minimize (default: all of `metrics`).

        Returns:
            `[Objective(accuracy_metric, "max"), Objective(cost, "min"),
            ...]`, to pass as a tuner's `objective`.
        """
        import keras_tuner

        names = metrics or self.metrics
        for name in names:
            if name not in self.metrics:
                raise ValueError(
                    f"Expected costs among metrics={self.metrics}. "
                    f"Received: {name!r}"
                )
        return [keras_tuner.Objective(self.accuracy_metric, "max")] + [
            keras_tuner.Objective(name, "min") for name in names
        ]

    def measure(self, model: Any) -> dict[str, float]:
        """The hardware metrics of a built model."""
        out: dict[str, float] = {}
        shape = self.input_shape
        if "params" in self.metrics:
            out["params"] = float(hardware.count_params(model, False, shape))
        if "trainable_params" in self.metrics:
            out["trainable_params"] = float(
                hardware.count_params(model, True, shape)
            )
        if {"macs", "flops"} & set(self.metrics):
            costs = hardware.profile_model(model, shape)
            if "macs" in self.metrics:
                out["macs"] = float(sum(c.macs for c in costs))
            if "flops" in self.metrics:
                out["flops"] = float(sum(c.flops for c in costs))
        if "latency" in self.metrics:
            out["latency"] = hardware.measure_latency(
                model,
                shape,
                batch_size=self.latency_batch_size,
                warmup=self.latency_warmup,
                runs=self.latency_runs,
            )["median_ms"]
        if "predicted_latency" in self.metrics:
            out["predicted_latency"] = self.latency_table.predict_model(model)
        self.num_measurements += 1
        return out

    def _measure_cached(self, key: str, make_model) -> dict[str, float]:
        if self.cache and key in self._costs:
            return dict(self._costs[key])
        out = self.measure(make_model())
        if self.cache:
            self._costs[key] = dict(out)
        return out

    def reward(self, accuracy: float, cost: float) -> float:
        """`mnas_reward(accuracy, cost, target, alpha, beta)`."""
        if self.target is None:
            raise ValueError(
                "Expected a `target` to compute the reward. Received: "
                "target=None"
            )
        return mnas_reward(accuracy, cost, self.target, self.alpha, self.beta)

    def add_reward(self, metrics: dict[str, Any]) -> dict[str, Any]:
        """Adds the reward to a metrics dict in place (if `target` is set)."""
        if self.target is None:
            return metrics
        if self.accuracy_metric not in metrics:
            raise ValueError(
                f"Expected the metric {self.accuracy_metric!r} "
                "(`accuracy_metric`) among the trial's metrics to compute "
                f"the reward. Received: metrics={sorted(metrics)}"
            )
        metrics[self.reward_name] = self.reward(
            metrics[self.accuracy_metric], metrics[self.target_metric]
        )
        return metrics

    def _build(self, tuner: Any, trial: Any) -> Any:
        hypermodel = getattr(tuner, "hypermodel", None)
        if hypermodel is None:
            raise ValueError(
                "Expected a tuner with a hypermodel (the search space) to "
                "build the trial's model. Received: tuner.hypermodel=None"
            )
        return hypermodel.build(trial.hyperparameters.copy())

    def estimate(self, tuner: Any, trial: Any, *fit_args, **fit_kwargs):
        """The `estimator` protocol of `keras_nas.tuners`.

        Returns:
            With an inner estimator: its metrics dict plus the hardware
            metrics (and the reward). Without: keras-tuner's `run_trial`
            result (a list of `History`, one per execution) whose epochs
            carry the hardware metrics and the reward.
        """
        key = _values_key(trial)
        # Any `fit` of the trial (ours, or an inner estimator's such as
        # `PartialTraining`) gets the costs and the reward in its logs.
        callbacks = list(fit_kwargs.get("callbacks") or [])
        fit_kwargs["callbacks"] = [_HardwareCallback(self, key), *callbacks]
        if self.estimator is None:
            return plain_run_trial(tuner, trial, *fit_args, **fit_kwargs)
        added = self.metrics + ((self.reward_name,) if self.target else ())
        with provides_metrics(added):
            metrics = self.estimator.estimate(
                tuner, trial, *fit_args, **fit_kwargs
            )
        if not isinstance(metrics, Mapping):
            raise ValueError(
                "Expected the inner estimator to return a dict of metrics. "
                f"Received: {type(metrics).__name__}"
            )
        costs = self._measure_cached(key, lambda: self._build(tuner, trial))
        out = self.add_reward({**metrics, **costs})
        objective = tuner.oracle.objective
        if getattr(objective, "objectives", None) and objective.has_value(out):
            # keras-tuner wants a multi-objective's value in a metrics dict
            # (it adds it itself to the epochs of a `History`).
            out[objective.name] = objective.get_value(out)
        return out

    def wrap(self, tuner: Any) -> Any:
        """Makes a keras-tuner tuner add hardware metrics to its trials.

        Returns:
            The same tuner (its `run_trial` replaced on this instance).

        Example:

        ```python
        estimator = HardwareAware(("params",))
        tuner = estimator.wrap(keras_tuner.RandomSearch(
            space, objective=estimator.pareto_objectives(), max_trials=20))
        ```
        """
        return wrap_tuner(self, tuner)
