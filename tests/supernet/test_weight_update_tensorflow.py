"""The DARTS weight update with few graph ops per tensor (TensorFlow) equals
the optimizer's own update and `_darts_math.clip_and_decay`."""

import keras
import numpy as np
import pytest

from keras_nas.supernet._darts_math import clip_and_decay
from keras_nas.supernet.torch_style import TorchSGD

pytestmark = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow",
    reason="TensorFlow's fused kernels",
)

SHAPES = [(3, 3, 2, 1), (1, 1, 2, 2), (3, 3, 2, 1), (4,), (1, 1, 2, 2)]


def _variables(rng):
    return [
        keras.Variable(rng.normal(size=s).astype("float32")) for s in SHAPES
    ]


@pytest.mark.parametrize("clip", [None, 0.5, 100.0])
def test_grouped_clip_and_decay_equals_the_per_tensor_one(clip):
    from keras_nas.supernet import _weight_update_tensorflow as update

    rng = np.random.default_rng(0)
    variables = _variables(rng)
    grads = [rng.normal(size=s).astype("float32") for s in SHAPES]
    got = update.clip_and_decay(grads, variables, clip, 3e-4)
    want = clip_and_decay(
        [keras.ops.convert_to_tensor(g) for g in grads], variables, clip, 3e-4
    )
    assert [tuple(g.shape) for g in got] == SHAPES
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-6, atol=1e-7)


def test_fused_sgd_equals_torch_sgd_in_a_traced_step():
    import tensorflow as tf

    from keras_nas.supernet import _weight_update_tensorflow as update

    rng = np.random.default_rng(1)
    schedule = keras.optimizers.schedules.CosineDecay(0.1, 5, alpha=0.1)
    models, opts = [], []
    for _ in range(2):
        models.append(_variables(np.random.default_rng(1)))
        opts.append(TorchSGD(schedule, momentum=0.9))
        opts[-1].build(models[-1])
    fused = tf.function(lambda g: update.apply(opts[0], g, models[0]))
    for _ in range(3):
        grads = [
            tf.constant(rng.normal(size=s).astype("float32")) for s in SHAPES
        ]
        fused(grads)
        opts[1].apply(grads, models[1])
    assert int(opts[0].iterations) == int(opts[1].iterations) == 3
    fused_state = models[0] + opts[0].momentums
    for a, b in zip(fused_state, models[1] + opts[1].momentums, strict=True):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6, atol=1e-7)
    # A setting the kernel does not cover goes through the optimizer.
    plain = TorchSGD(0.1, momentum=0.0)
    v = _variables(rng)
    plain.build(v)
    before = [x.numpy() for x in v]
    update.apply(plain, [tf.ones(s) for s in SHAPES], v)
    np.testing.assert_allclose(v[3].numpy(), before[3] - 0.1, rtol=1e-6)
    assert int(plain.iterations) == 1
