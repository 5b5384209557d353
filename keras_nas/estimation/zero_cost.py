"""Zero-cost proxies as a performance estimator (`ZeroCost`).

`ZeroCost` scores each trial's untrained network with the proxies of
`keras_nas.estimation.zero_cost_proxies` (Abdelfattah et al., "Zero-Cost
Proxies for Lightweight NAS", ICLR 2021), whose names this module
re-exports: `ZERO_COST_PROXIES`, `zero_cost_score`, `naswot_kernel`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from keras_nas._validation import check_positive_int
from keras_nas.estimation._protocol import (
    fit_data,
    provided_metrics,
    wrap_tuner,
)
from keras_nas.estimation.zero_cost_proxies import (
    ZERO_COST_PROXIES,
    _check_proxy,
    zero_cost_score,
)
from keras_nas.estimation.zero_cost_proxies import (
    naswot_kernel as naswot_kernel,
)

__all__ = ["ZERO_COST_PROXIES", "ZeroCost", "zero_cost_score"]


class ZeroCost:
    """Scores trials with zero-cost proxies of their untrained network.

    A performance estimator for any keras-nas tuner (`estimator=`), or any
    keras-tuner tuner through `wrap`: each trial's model is built by the
    tuner's hypermodel (`tuner.hypermodel.build(trial.hyperparameters)`),
    scored at initialization on a fixed minibatch of the search data, and
    discarded; nothing is trained (Abdelfattah et al., "Zero-Cost Proxies
    for Lightweight NAS", ICLR 2021).

    The estimate is a dict with one metric per proxy, named
    `"zero_cost_<proxy>"` (e.g. `"zero_cost_synflow"`). Larger is better,
    so the tuner's objective must be e.g.
    `keras_tuner.Objective("zero_cost_synflow", "max")` (also given by
    `ZeroCost(...).objective`).

    Args:
        proxy: one of `ZERO_COST_PROXIES`, or a sequence of them (all are
            reported; the first is `objective`).
        batch_size: examples in the minibatch drawn from the search's `x`.
        num_batches: minibatches to average the data-dependent proxies
            over (distinct, drawn without replacement).
        seed: seeds the minibatch choice and, through
            `keras.utils.set_random_seed`, the weight initialization of
            every trial's model, so that all trials are scored alike and
            reproducibly (None: unseeded).
        training: run data-dependent proxies in training mode.

    Example:

    ```python
    space = keras_nas.spaces.NasBench201SearchSpace(
        input_shape=(8, 8, 1), num_classes=10, filters=8,
        cells_per_stage=1)
    estimator = ZeroCost(proxy="synflow", seed=0)
    tuner = keras_nas.tuners.AgingEvolution(
        space, objective=estimator.objective, max_trials=500,
        estimator=estimator, seed=0)
    tuner.search(x_train, y_train)
    # Zero-cost scores only roughly rank networks: retrain the top ones.
    best = keras_nas.estimation.retrain_top_k(
        tuner, 5, x_train, y_train, (x_val, y_val), epochs=30)[0]
    ```
    """

    def __init__(
        self,
        proxy: str | Sequence[str] = "synflow",
        batch_size: int = 64,
        num_batches: int = 1,
        seed: int | None = 0,
        training: bool = True,
    ):
        proxies = (proxy,) if isinstance(proxy, str) else tuple(proxy)
        if not proxies:
            raise ValueError(
                "Expected `proxy` to be a proxy name or a non-empty "
                f"sequence of them. Received: proxy={proxy!r}"
            )
        self.proxies = tuple(_check_proxy(p) for p in proxies)
        self.batch_size = check_positive_int("batch_size", batch_size)
        self.num_batches = check_positive_int("num_batches", num_batches)
        if seed is not None:
            check_positive_int("seed", seed, minimum=0)
        self.seed = seed
        self.training = bool(training)
        self.num_estimates = 0

    @property
    def metric_names(self) -> tuple[str, ...]:
        """The reported metrics, `"zero_cost_<proxy>"` per proxy."""
        return tuple(f"zero_cost_{p}" for p in self.proxies)

    @property
    def objective(self) -> Any:
        """`keras_tuner.Objective` of the first proxy (direction "max")."""
        import keras_tuner

        return keras_tuner.Objective(self.metric_names[0], "max")

    def batches(self, x: Any, y: Any = None) -> list[tuple[Any, Any]]:
        """The `num_batches` minibatches `(x, y)` scored for every trial."""
        if x is None:
            return []
        x = np.asarray(x)
        rng = np.random.default_rng(self.seed)
        size = min(self.batch_size, len(x))
        count = min(self.num_batches, max(1, len(x) // size))
        order = rng.permutation(len(x))[: size * count]
        out = []
        for b in range(count):
            idx = np.sort(order[b * size : (b + 1) * size])
            out.append((x[idx], None if y is None else np.asarray(y)[idx]))
        return out

    def score_model(self, model: Any, x: Any, y: Any = None) -> dict:
        """The metrics dict of one built model on the search data `x, y`."""
        batches = self.batches(x, y)
        out = {}
        for proxy, name in zip(self.proxies, self.metric_names, strict=True):
            if proxy == "synflow":
                shape_batch = batches[0][0] if batches else None
                out[name] = zero_cost_score(model, shape_batch, proxy=proxy)
                continue
            if not batches:
                raise ValueError(
                    f"Expected training data `x` in `search(...)` for "
                    f"proxy={proxy!r}. Received: x=None"
                )
            values = [
                zero_cost_score(model, bx, by, proxy, self.training)
                for bx, by in batches
            ]
            out[name] = float(np.mean(values))
        return out

    def estimate(
        self, tuner: Any, trial: Any, *fit_args: Any, **fit_kwargs: Any
    ) -> dict[str, float]:
        """The `estimator` protocol of `keras_nas.tuners`: a metrics dict."""
        import keras

        self._check_objective(tuner)
        hypermodel = getattr(tuner, "hypermodel", None)
        if hypermodel is None:
            raise ValueError(
                "Expected a tuner with a hypermodel (the search space) to "
                "build the trials. Received: tuner.hypermodel=None"
            )
        x, y, _ = fit_data(fit_args, fit_kwargs)
        if self.seed is not None:
            keras.utils.set_random_seed(self.seed)
        model = hypermodel.build(trial.hyperparameters)
        try:
            return self.score_model(model, x, y)
        finally:
            self.num_estimates += 1
            del model

    def _check_objective(self, tuner: Any) -> None:
        objective = getattr(getattr(tuner, "oracle", None), "objective", None)
        parts = getattr(objective, "objectives", None) or [objective]
        names = [getattr(o, "name", None) for o in parts]
        known = set(self.metric_names) | provided_metrics()
        for name in names:
            if isinstance(name, str) and name not in known:
                raise ValueError(
                    "Expected the tuner's objective to be among the metrics "
                    f"{list(self.metric_names)}, e.g. keras_tuner.Objective("
                    f"{self.metric_names[0]!r}, 'max'). Received: objective="
                    f"{name!r}"
                )

    def wrap(self, tuner: Any) -> Any:
        """Makes a keras-tuner tuner score its trials with zero-cost proxies.

        Replaces `tuner.run_trial` (on this instance only) by `estimate`;
        the tuner's objective must be one of `metric_names` (direction
        "max").

        Returns:
            The same tuner.

        Example:

        ```python
        estimator = ZeroCost("naswot")
        tuner = estimator.wrap(keras_tuner.RandomSearch(
            space, objective=estimator.objective, max_trials=500))
        tuner.search(x, y)
        ```
        """
        return wrap_tuner(self, tuner)
