"""ENAS: a REINFORCE controller and shared weights trained in alternation.

Pham et al., "Efficient Neural Architecture Search via Parameter Sharing"
(ICML 2018). The child networks are the paths of a
`keras_nas.supernet.OneShotSupernet`; the controller is a
`keras_nas.tuners.controller` policy (the ENAS/Zoph & Le LSTM by default).
Each round of the search

1. trains the shared weights for `epochs` epochs, one architecture sampled
   from the controller per batch;
2. trains the controller for `controller_steps` REINFORCE steps, each on
   `controller_batch` sampled architectures rewarded with their validation
   accuracy on one validation minibatch, computed with the shared weights;
3. scores the round's trial, an architecture sampled from the controller,
   with the shared weights on the whole validation set.

In keras-tuner terms one round is one trial: `max_trials` rounds, and the
best trials are the best architectures by shared-weight validation accuracy
(`get_best_hyperparameters()`); `get_best_models()` returns them as
standalone models with the inherited weights (retrain from scratch with
`keras_nas.estimation.retrain_top_k`). The oracle keeps the controller
(weights file beside `oracle.json`) and its RNG; the tuner saves the supernet
weights and optimizer state in the project directory after every round, so a
search started again with `overwrite=False` resumes where it stopped.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any

import keras
import numpy as np

from keras_nas._validation import (
    check_no_estimator,
    check_objective,
    check_positive_int,
)
from keras_nas.tensorboard import log_trial_metrics
from keras_nas.tuners import _base
from keras_nas.tuners.reinforce import ReinforceOracle

__all__ = ["Enas", "EnasOracle"]

_WEIGHTS = "enas_supernet.weights.h5"


# The metrics `Enas.run_trial` reports: the possible objectives.
_REPORTED = ("val_accuracy", "val_loss", "mean_reward")


class EnasOracle(ReinforceOracle):
    """The oracle of `Enas`: one trial per round, sampled from the policy.

    A `ReinforceOracle` whose controller is trained by the tuner during
    each round (on shared-weight rewards) rather than once per trial; the
    trial's own score does not update it. It saves and resumes the
    controller and its RNG like `ReinforceOracle`. Duplicate architectures
    are not proposed twice.

    Args:
        objective: `None` (the default, as in keras-tuner) means
            "val_accuracy".
        controller: `"lstm"` (ENAS; default) or `"factorized"`.
        learning_rate: Adam step size of the controller (ENAS: 3.5e-4 with
            an LSTM of 100 units; default here 5e-3 for short searches).
        baseline_decay: moving-average baseline decay (ENAS: 0.99).
        entropy_weight: entropy bonus (ENAS: 1e-4).
        **kwargs: see `ReinforceOracle`.
    """

    def __init__(
        self,
        objective: Any = None,
        max_trials: int = 10,
        controller: str = "lstm",
        learning_rate: float | None = 5e-3,
        baseline_decay: float = 0.99,
        entropy_weight: float = 1e-4,
        **kwargs: Any,
    ):
        super().__init__(
            objective=check_objective(objective, default="val_accuracy"),
            max_trials=max_trials,
            controller=controller,
            learning_rate=learning_rate,
            baseline_decay=baseline_decay,
            entropy_weight=entropy_weight,
            **kwargs,
        )

    def _learn(self, trial) -> None:
        # The tuner trained the controller during the trial: only mark the
        # weights as new, so `save()` writes them with the trial's end.
        self._controller_version += 1


def _strategy_scope(strategy):
    """`strategy.scope()`, or no scope for None."""
    return strategy.scope() if strategy else contextlib.nullcontext()


class Enas(_base.NasTuner):
    """ENAS search (Pham et al., ICML 2018) as a keras-tuner `Tuner`.

    Args:
        hypermodel: a `CellSearchSpace` or `NasBench201SearchSpace` (used to
            build the supernet when `supernet` is not given).
        supernet: optional `OneShotSupernet` (compiled or not).
        objective: the objective: shared-weight `"val_accuracy"`,
            `"val_loss"` or the controller's `"mean_reward"`. `None` (the
            default, as in keras-tuner) means `"val_accuracy"`.
        max_trials: number of rounds (one trial each).
        controller: `"lstm"` (default) or `"factorized"`.
        controller_steps: controller updates per round.
        controller_batch: architectures sampled per controller update
            (ENAS: 1).
        reward_batch_size: validation examples per reward (one minibatch).
        learning_rate, baseline_decay, entropy_weight, controller_kwargs:
            see `EnasOracle`.
        child_optimizer: optimizer of the shared weights when the supernet
            is not compiled. Defaults to SGD, lr 0.05, Nesterov momentum
            0.9 (ENAS).
        seed: integer seed.
        **kwargs: `keras_tuner.Tuner` arguments (`directory`,
            `project_name`, `overwrite`, ...). `estimator=` is refused:
            ENAS scores its trials with the shared weights itself.

    Example:

    ```python
    space = keras_nas.spaces.NasBench201SearchSpace(
        input_shape=(8, 8, 1), num_classes=10, filters=8,
        cells_per_stage=1)
    tuner = Enas(space, max_trials=10, seed=0, directory="runs",
                 project_name="enas")
    tuner.search(x, y, validation_data=(x_val, y_val), epochs=2,
                 batch_size=64)
    best_hp = tuner.get_best_hyperparameters()[0]
    child = tuner.get_best_models()[0]  # inherited weights
    ```
    """

    def __init__(
        self,
        hypermodel: Any = None,
        supernet: Any = None,
        objective: Any = None,
        max_trials: int = 10,
        controller: str = "lstm",
        controller_steps: int = 20,
        controller_batch: int = 1,
        reward_batch_size: int = 128,
        learning_rate: float | None = 5e-3,
        baseline_decay: float = 0.99,
        entropy_weight: float = 1e-4,
        controller_kwargs: dict | None = None,
        child_optimizer: Any = None,
        seed: int | None = None,
        **kwargs: Any,
    ):
        from keras_nas.supernet.one_shot import OneShotSupernet

        objective = check_objective(
            objective, reported=_REPORTED, default="val_accuracy"
        )
        check_no_estimator(type(self).__name__, kwargs)
        seed = _base.check_seed(seed)
        if supernet is None:
            if hypermodel is None:
                raise ValueError(
                    "Expected a `hypermodel` (search space) or a "
                    "`supernet`. Received: hypermodel=None, supernet=None"
                )
            # Built in keras-tuner's `distribution_strategy=` scope, if any.
            with _strategy_scope(kwargs.get("distribution_strategy")):
                supernet = OneShotSupernet(hypermodel, seed=seed)
        if not isinstance(supernet, OneShotSupernet):
            raise ValueError(
                "Expected `supernet` to be a keras_nas.supernet."
                f"OneShotSupernet. Received: supernet={supernet!r}"
            )
        for name, value in (
            ("controller_steps", controller_steps),
            ("controller_batch", controller_batch),
            ("reward_batch_size", reward_batch_size),
        ):
            check_positive_int(name, value)
        self.supernet = supernet
        self.controller_steps = controller_steps
        self.controller_batch = controller_batch
        self.reward_batch_size = reward_batch_size
        self.child_optimizer = child_optimizer
        self._supernet_loaded = False
        oracle = EnasOracle(
            objective=objective,
            max_trials=max_trials,
            controller=controller,
            learning_rate=learning_rate,
            baseline_decay=baseline_decay,
            entropy_weight=entropy_weight,
            controller_kwargs=controller_kwargs,
            seed=seed,
        )
        # The supernet's own space: its sizes are the trials' sizes.
        super().__init__(oracle, supernet.space, **kwargs)

    # -- supernet persistence ------------------------------------------------

    def _path(self, name: str) -> str:
        return os.path.join(self.project_dir, name)

    def _compile_supernet(self) -> None:
        net = self.supernet
        # The optimizer's variables go where the supernet's are (TensorFlow:
        # the strategy the supernet was built in).
        with _strategy_scope(getattr(net, "_distribute_strategy", None)):
            if getattr(net, "optimizer", None) is None:
                optimizer = self.child_optimizer or keras.optimizers.SGD(
                    0.05, momentum=0.9, nesterov=True
                )
                net.compile(optimizer=optimizer)
            if not net.optimizer.built:
                net.optimizer.build(net.trainable_variables)

    def _load_supernet(self) -> None:
        """Restores the supernet saved by the last completed round."""
        if self._supernet_loaded:
            return
        self._compile_supernet()
        self._supernet_loaded = True
        if not os.path.exists(self._path(_WEIGHTS)):
            return
        # The weights file holds the optimizer's state and the path
        # samplers' states too (`OneShotSupernet.save_own_variables`).
        self.supernet.load_weights(self._path(_WEIGHTS))

    def _save_supernet(self) -> None:
        tmp = self._path("tmp_" + _WEIGHTS)
        self.supernet.save_weights(tmp)
        os.replace(tmp, self._path(_WEIGHTS))

    # -- the search ------------------------------------------------------------

    def on_search_begin(self) -> None:
        super().on_search_begin()
        self._load_supernet()

    def _train_controller(self, x_val, y_val) -> list[float]:
        controller = self.oracle.controller
        rng = self.oracle._rng
        rewards_seen = []
        n = len(x_val)
        for _ in range(self.controller_steps):
            idx = rng.choice(
                n, size=min(self.reward_batch_size, n), replace=False
            )
            traces, rewards = [], []
            for _ in range(self.controller_batch):
                values, trace = controller.sample(rng)
                score = self.supernet.evaluate_path(
                    values,
                    x_val[idx],
                    y_val[idx],
                    batch_size=self.reward_batch_size,
                )
                traces.append(trace)
                rewards.append(score["accuracy"])
            controller.update(traces, rewards)
            rewards_seen.extend(rewards)
        return rewards_seen

    def run_trial(self, trial, *fit_args, **fit_kwargs) -> dict[str, float]:
        """One ENAS round; returns the trial architecture's shared-weight
        validation metrics."""
        from keras_nas.estimation._protocol import fit_data

        self._load_supernet()
        x, y, val = fit_data(fit_args, fit_kwargs)
        if x is None or y is None or val is None:
            raise ValueError(
                "Expected `search(x, y, validation_data=(x_val, y_val), "
                "epochs=...)`. Received: x, y or validation_data missing"
            )
        x_val, y_val = np.asarray(val[0]), np.asarray(val[1])
        net = self.supernet
        own_sampler = net.sampler  # e.g. "fair": restored after the round
        net.sampler = self.oracle.controller
        try:
            net.fit(
                x,
                y,
                epochs=int(fit_kwargs.get("epochs", 1)),
                batch_size=fit_kwargs.get("batch_size", 64),
                verbose=0,
            )
        finally:
            net.sampler = own_sampler
        rewards = self._train_controller(x_val, y_val)
        # In batches of the rewards' size: the compiled path function
        # (JAX: jitted per batch shape) is compiled once for both.
        score = net.evaluate_path(
            trial.hyperparameters.values,
            x_val,
            y_val,
            batch_size=min(self.reward_batch_size, len(x_val)),
        )
        self._save_supernet()
        metrics = {
            "val_accuracy": score["accuracy"],
            "val_loss": score["loss"],
            "mean_reward": float(np.mean(rewards)),
        }  # = _REPORTED
        log_trial_metrics(self, trial, fit_kwargs.get("callbacks"), metrics)
        return metrics

    def load_model(self, trial) -> keras.Model:
        """The trial's architecture with the supernet's current weights."""
        self._load_supernet()
        return self.supernet.extract(trial.hyperparameters.values)
