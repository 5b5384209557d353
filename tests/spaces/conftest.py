import keras
import pytest


@pytest.fixture(autouse=True)
def _eager_functions():
    """Runs Keras train/predict steps eagerly in these tests.

    The models here train for one or two batches, so tracing the step
    functions would cost far more than running them.
    """
    if keras.backend.backend() != "tensorflow":
        yield
        return
    import tensorflow as tf

    previous = tf.config.functions_run_eagerly()
    tf.config.run_functions_eagerly(True)
    yield
    tf.config.run_functions_eagerly(previous)
