"""Shared set-up of the estimator tests.

A tiny NAS-Bench-201 space, and the two tuners the estimator tests search
with: keras-nas' `AgingEvolution` given the estimator, and keras-tuner's own
`RandomSearch` wrapped by `estimator.wrap`, both in the test's `tmp_path`.
"""

from __future__ import annotations

from typing import Any

import keras_tuner

from keras_nas.spaces import NasBench201SearchSpace
from keras_nas.tuners.evolution import AgingEvolution

# 8x8x1 inputs, 3 classes, 4 filters, one cell per stage.
NB201 = NasBench201SearchSpace(
    input_shape=(8, 8, 1), num_classes=3, filters=4, cells_per_stage=1
)


def evolution(space, tmp_path, estimator, **kwargs: Any) -> AgingEvolution:
    """An `AgingEvolution` over `space` that scores with `estimator`.

    `kwargs` (objective, max_trials, population_size, seed, project_name,
    ...) go to `AgingEvolution` as given.
    """
    return AgingEvolution(
        space, estimator=estimator, directory=str(tmp_path), **kwargs
    )


def wrapped_random_search(estimator, space, tmp_path, **kwargs: Any):
    """keras-tuner's `RandomSearch` over `space`, scored by `estimator`
    (through `estimator.wrap`); `kwargs` go to `RandomSearch`."""
    return estimator.wrap(
        keras_tuner.RandomSearch(space, directory=str(tmp_path), **kwargs)
    )
