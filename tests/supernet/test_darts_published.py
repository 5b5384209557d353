"""The DARTS search as published (issue #18), without PyTorch.

A search cell on fixed weights against a NumPy reference written from the
original code's definitions (`tests/_numpy_darts.py`: batch norm after the
pools of every edge, symmetric stride-2 padding, epsilon 1e-5), the
PyTorch update rules of `TorchSGD` / `TorchAdam` / `EpochCosineDecay`, the
second-order virtual step's momentum term, and the loading of a supernet
saved before. `benchmarks/darts_reference_equivalence.py` compares with the
original code itself.
"""

import os

import _numpy_darts as ref
import keras
import numpy as np
import pytest

from keras_nas.supernet import _darts_math as darts_math
from keras_nas.supernet.darts import DartsSupernet, MixedOp, SearchCell
from keras_nas.supernet.torch_style import (
    EpochCosineDecay,
    TorchAdam,
    TorchSGD,
)

pytestmark = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow",
    reason="TensorFlow-backend tests",
)

DATA = os.path.join(os.path.dirname(os.path.dirname(__file__)), "data")
OPS = (
    "none",
    "max_pool_3x3",
    "avg_pool_3x3",
    "skip_connect",
    "sep_conv_3x3",
    "dil_conv_3x3",
)


def _np(x):
    return np.asarray(keras.ops.convert_to_numpy(x), dtype="float64")


def _op_ref(name, op, x, stride):
    if name.endswith("pool_3x3"):  # pool, then BN(affine=False)
        fn = ref.max_pool if name.startswith("max") else ref.avg_pool
        return ref.batch_norm(fn(x, stride), True)
    if name == "skip_connect":
        if stride == 1:
            return x
        k1, k2 = _np(op.conv_1.kernel), _np(op.conv_2.kernel)
        return ref.factorized_reduce(x, k1, k2, True)
    dws = [_np(d.kernel) for d in op.depthwise]
    pws = [_np(p.kernel) for p in op.pointwise]
    return ref.sep_conv(x, dws, pws, True, stride)


def _cell_ref(cell, s0, s1, w):
    if cell.reduction_prev:
        p = cell.preprocess0
        p0 = ref.factorized_reduce(
            s0, _np(p.conv_1.kernel), _np(p.conv_2.kernel), True
        )
    else:
        p0 = ref.relu_conv_bn(s0, _np(cell.preprocess0.convs[0].kernel), True)
    p1 = ref.relu_conv_bn(s1, _np(cell.preprocess1.convs[0].kernel), True)
    states, e = [p0, p1], 0
    for i in range(cell.num_nodes):
        node = 0.0
        for j in range(i + 2):
            edge = cell.edges[e]
            for op, k in zip(edge.candidates, edge._active, strict=True):
                y = _op_ref(edge.ops[k], op, states[j], edge.strides)
                node = node + w[e, k] * y
            e += 1
        states.append(node)
    return np.concatenate(states[2:], axis=-1)


@pytest.mark.parametrize(
    "reduction, reduction_prev", [(True, False), (False, True)]
)
def test_search_cell_matches_the_numpy_reference(reduction, reduction_prev):
    rng = np.random.default_rng(int(reduction))
    cell = SearchCell(
        4,
        reduction=reduction,
        reduction_prev=reduction_prev,
        num_nodes=2,
        ops=OPS,
    )
    size0 = 16 if reduction_prev else 8
    s0 = rng.normal(size=(2, size0, size0, 6)).astype("float32")
    s1 = rng.normal(size=(2, 8, 8, 5)).astype("float32")
    alpha = rng.normal(size=(5, len(OPS)))
    w = (np.exp(alpha) / np.exp(alpha).sum(-1, keepdims=True)).astype("float32")
    y = _np(cell([s0, s1], w, training=True))
    expected = _cell_ref(cell, s0.astype("float64"), s1.astype("float64"), w)
    assert (
        y.shape
        == expected.shape
        == ((2, 4, 4, 8) if reduction else (2, 8, 8, 8))
    )
    np.testing.assert_allclose(y, expected, atol=5e-5)


def test_pools_of_search_edges_have_batch_norm_and_stem_bn_as_pytorch():
    edge = MixedOp(4, ops=OPS)
    pools = [op for op, k in zip(edge.candidates, edge._active, strict=True)
             if "pool" in OPS[k]]  # fmt: skip
    assert len(pools) == 2
    for op in pools:
        bn = op.layers[1]
        assert isinstance(bn, keras.layers.BatchNormalization)
        assert not bn.scale and not bn.center and bn.epsilon == 1e-5
    assert not isinstance(MixedOp(4, ops=OPS, ops_version=1).candidates[0],
                          keras.Sequential)  # fmt: skip
    model = DartsSupernet((8, 8, 3), 3, filters=2, num_cells=1, num_nodes=1)
    assert (model.stem_bn.momentum, model.stem_bn.epsilon) == (0.9, 1e-5)
    model.compile(decay_steps=10, steps_per_epoch=5)
    weights = model.optimizer.weights_optimizer
    arch = model.optimizer.arch_optimizer
    assert isinstance(weights, TorchSGD) and weights.momentum == 0.9
    assert isinstance(weights._learning_rate, EpochCosineDecay)
    assert isinstance(arch, TorchAdam) and arch.epsilon == 1e-8


def _torch_sgd(w, grads, lrs, momentum):
    buf = np.zeros_like(w)
    for g, lr in zip(grads, lrs, strict=True):
        buf = momentum * buf + g
        w = w - lr * buf
    return w, buf


def _torch_adam(w, grads, lr, b1, b2, eps):
    m = v = np.zeros_like(w)
    for t, g in enumerate(grads, start=1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        m_hat, v_hat = m / (1 - b1**t), v / (1 - b2**t)
        w = w - lr * m_hat / (np.sqrt(v_hat) + eps)
    return w


def test_torch_optimizers_follow_pytorch_update_rules():
    rng = np.random.default_rng(0)
    w0 = rng.normal(size=(3, 4))
    # Tiny gradients: where PyTorch's and Keras' epsilon placements differ.
    grads = [rng.normal(size=(3, 4)) * 10.0 ** -rng.integers(3, 8)
             for _ in range(3)]  # fmt: skip
    schedule = EpochCosineDecay(0.1, epochs=3, steps_per_epoch=1, alpha=0.1)
    lrs = [float(schedule(t)) for t in range(3)]
    assert lrs[0] == pytest.approx(0.1) and lrs[1] < lrs[0]
    sgd = TorchSGD(schedule, momentum=0.9)
    adam = TorchAdam(3e-4, beta_1=0.5, beta_2=0.999, epsilon=1e-8)
    v_sgd = keras.Variable(w0.astype("float32"))
    v_adam = keras.Variable(w0.astype("float32"))
    for g in grads:
        sgd.apply([g.astype("float32")], [v_sgd])
        adam.apply([g.astype("float32")], [v_adam])
    expected, buf = _torch_sgd(w0, grads, lrs, 0.9)
    np.testing.assert_allclose(_np(v_sgd), expected, atol=1e-6)
    np.testing.assert_allclose(_np(sgd.momentums[0]), buf, rtol=1e-5)
    expected = _torch_adam(w0, grads, 3e-4, 0.5, 0.999, 1e-8)
    np.testing.assert_allclose(_np(v_adam), expected, atol=1e-7)
    # Steps once per epoch.
    per_epoch = EpochCosineDecay(1.0, epochs=4, steps_per_epoch=10)
    assert float(per_epoch(0)) == float(per_epoch(9)) == 1.0
    assert float(per_epoch(10)) == pytest.approx(0.5 * (1 + np.cos(np.pi / 4)))
    assert float(per_epoch(1000)) == pytest.approx(0.0, abs=1e-7)


def test_virtual_step_momentum_term_is_the_originals():
    """`w - lr * (momentum * buf + g + wd * w)` with PyTorch's buffer, also
    after learning-rate changes (Keras' SGD buffer holds past rates)."""
    rng = np.random.default_rng(1)
    w0 = rng.normal(size=(5,))
    grads = [rng.normal(size=(5,)) for _ in range(2)]
    lrs = [0.1, 0.02]
    schedule = EpochCosineDecay(0.1, epochs=1, steps_per_epoch=1, alpha=0.2)
    sgd = TorchSGD(schedule, momentum=0.9)
    var = keras.Variable(w0.astype("float32"))
    for g in grads:
        sgd.apply([g.astype("float32")], [var])
    w, buf = _torch_sgd(w0, grads, lrs, 0.9)
    g, lr, wd = rng.normal(size=(5,)), 0.02, 3e-4
    moms, momentum = darts_math.sgd_momentums(sgd)
    (out,) = darts_math.virtual_step(
        [_np(var)],
        [g],
        [_np(m) for m in moms],
        lr,
        momentum,
        wd,
        lr_in_buffer=darts_math.lr_in_buffer(sgd),
    )
    np.testing.assert_allclose(
        out, w - lr * (0.9 * buf + g + wd * w), atol=1e-6
    )


def test_supernet_saved_before_loads_with_its_numerics():
    saved = np.load(os.path.join(DATA, "v1_outputs.npz"))
    model = keras.saving.load_model(
        os.path.join(DATA, "darts_supernet_v1.keras")
    )
    assert model.ops_version == 1
    assert model.stem_bn.epsilon == 1e-3
    y = _np(model(saved["x"], training=False))
    np.testing.assert_allclose(y, saved["supernet"], atol=1e-6)
