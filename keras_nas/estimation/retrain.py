"""Retraining the best candidates of a search from scratch.

One-shot and zero-cost scores rank architectures only roughly (Yu et al.,
"Evaluating the Search Phase of Neural Architecture Search", ICLR 2020):
`retrain_top_k` trains the top-k trials of a search from scratch and picks
the final architecture by its real score.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from keras_nas._validation import check_positive_int
from keras_nas.estimation._protocol import best_epoch_metrics

__all__ = ["RetrainResult", "retrain_top_k"]


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
