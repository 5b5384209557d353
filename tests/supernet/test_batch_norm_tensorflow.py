"""TensorFlow's fused batch norm computes what Keras' layer computes.

`keras_nas/supernet/_batch_norm_tensorflow.py` runs a model's Keras
`BatchNormalization` layers in training mode through `FusedBatchNormV3`
while a DARTS pass runs; outputs, gradients and the new moving statistics
must equal Keras' own computation to float32 rounding, and the layers be
Keras' own again after the pass.
"""

import keras
import numpy as np
import pytest

from keras_nas.supernet import darts_cells

pytestmark = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow", reason="TensorFlow kernels"
)


def _run(model, bns, x, fused, training=True):
    import tensorflow as tf

    from keras_nas.supernet._batch_norm_tensorflow import fused_batch_norm

    before = [v.numpy() for v in model.non_trainable_variables]
    with tf.GradientTape() as tape:
        tape.watch(x)
        if fused:
            with fused_batch_norm(model):
                assert all("call" in vars(bn) for bn in bns)
                y = model(x, training=training)
        else:
            y = model(x, training=training)
        loss = tf.reduce_sum(y * tf.sin(y))
    grads = tape.gradient(loss, [x] + model.trainable_variables)
    stats = [v.numpy() for v in model.non_trainable_variables]
    for v, value in zip(model.non_trainable_variables, before, strict=True):
        v.assign(value)
    return [y.numpy()] + [g.numpy() for g in grads] + stats


@pytest.mark.parametrize("shape", [(4, 5, 6, 3), (1, 1, 1, 3)])
def test_fused_batch_norm_equals_keras(shape):
    import tensorflow as tf

    affine = keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5)
    plain = keras.layers.BatchNormalization(center=False, scale=False)
    model = keras.Sequential([affine, keras.layers.ReLU(), plain])
    model.build(shape)
    rng = np.random.default_rng(0)
    for v in model.variables:
        v.assign(rng.uniform(0.5, 1.5, v.shape).astype("float32"))
    x = tf.constant(rng.normal(2.0, 3.0, shape).astype("float32"))
    for training in (True, False):
        keras_run = _run(model, [affine, plain], x, False, training)
        fused_run = _run(model, [affine, plain], x, True, training)
        for a, b in zip(keras_run, fused_run, strict=True):
            np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-5)
    assert not any("call" in vars(bn) for bn in (affine, plain))


def test_fused_mixed_op_batch_norm_runs_the_fused_kernel():
    """A traced DARTS edge holds `FusedBatchNormV3`, not Keras' moments."""
    import tensorflow as tf

    op = darts_cells.MixedOp(4, 1)
    op.build((2, 6, 6, 4))
    w = tf.ones((len(op.candidates),)) / len(op.candidates)
    graph = (
        tf.function(lambda x: op._call_ops(x, w, training=True))
        .get_concrete_function(tf.TensorSpec((None, 6, 6, 4)))
        .graph
    )
    types = {node.type for node in graph.get_operations()}
    assert "FusedBatchNormV3" in types
    assert "SquaredDifference" not in types
