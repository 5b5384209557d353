"""Building a trial's model with one garbage collection, not two.

keras-tuner's `Tuner._try_build` clears the Keras session, which runs a
full garbage collection, and then runs a second one at once. A full
collection walks every object of the process: 0.2-0.3 s once TensorFlow is
imported, more in a long-lived process (a notebook, a test run), on every
trial, and the second finds next to nothing the first left.
`build_trial_model` does what `_try_build` does after a single collection,
and keeps the `keras.distribution` in effect (JAX `DataParallel`), which
`clear_session` forgets.
"""

from __future__ import annotations

import math
from typing import Any

import keras
import keras_tuner


def build_trial_model(tuner: Any, hp: Any) -> Any:
    """Clears the session, builds and size-checks the trial's model.

    Args:
        tuner: The `keras_tuner.Tuner` whose hypermodel builds the model.
        hp: The trial's `HyperParameters`.

    Returns:
        The built (and, by the hypermodel or the tuner, compiled) model.
    """
    # `clear_session` also forgets the `keras.distribution` set for the
    # process (e.g. `DataParallel`): the trial's model is built under it.
    distribution = keras.distribution.distribution()
    keras.backend.clear_session()  # frees the old graphs: one collection
    if distribution is not None:
        keras.distribution.set_distribution(distribution)
    model = tuner._build_hypermodel(hp)
    if not isinstance(model, keras.models.Model):
        raise keras_tuner.errors.FatalTypeError(
            "Expected the model-building function, or HyperModel.build() "
            "to return a valid Keras Model instance. "
            f"Received: {model} of type {type(model)}."
        )
    if tuner.max_model_size and model.built:
        size = sum(math.prod(w.shape) for w in model.trainable_weights)
        if size > tuner.max_model_size:
            raise keras_tuner.errors.FailedTrialError(
                f"Oversized model: {size} parameters. Skip model."
            )
    return model
