"""NumPy references of the DARTS ops, written from the original code's
definitions (`cnn/operations.py`, `cnn/model_search.py` of
github.com/quark0/darts): PyTorch's symmetric `padding=k // 2`, max pooling
padded with -inf, average pooling with `count_include_pad=False`, batch norm
with epsilon 1e-5. NHWC arrays; kernels in Keras' layouts.
"""

import numpy as np

EPS = 1e-5


def pad(x, p, value=0.0):
    return np.pad(x, ((0, 0), (p, p), (p, p), (0, 0)), constant_values=value)


def windows(x, k, stride, dilation=1):
    """`(B, Ho, Wo, C, k, k)` views of the (already padded) input."""
    b, h, w, c = x.shape
    span = dilation * (k - 1) + 1
    ho, wo = (h - span) // stride + 1, (w - span) // stride + 1
    out = np.empty((b, ho, wo, c, k, k), x.dtype)
    for i in range(k):
        for j in range(k):
            out[..., i, j] = x[
                :,
                i * dilation : i * dilation + stride * (ho - 1) + 1 : stride,
                j * dilation : j * dilation + stride * (wo - 1) + 1 : stride,
                :,
            ]
    return out


def conv(x, kernel, stride=1, padding=0, dilation=1):
    """Dense conv; `kernel` (kh, kw, in, out) (square kernels)."""
    k = kernel.shape[0]
    win = windows(pad(x, padding), k, stride, dilation)
    return np.einsum("bhwcij,ijco->bhwo", win, kernel)


def depthwise(x, kernel, stride=1, padding=0, dilation=1):
    """Depthwise conv; `kernel` (kh, kw, C, 1)."""
    k = kernel.shape[0]
    win = windows(pad(x, padding), k, stride, dilation)
    return np.einsum("bhwcij,ijc->bhwc", win, kernel[..., 0])


def max_pool(x, stride):
    return windows(pad(x, 1, -np.inf), 3, stride).max(axis=(-2, -1))


def avg_pool(x, stride):
    total = windows(pad(x, 1), 3, stride).sum(axis=(-2, -1))
    ones = np.ones(x.shape[:3] + (1,), x.dtype)
    count = windows(pad(ones, 1), 3, stride).sum(axis=(-2, -1))
    return total / count


def batch_norm(x, training, mean=None, var=None, gamma=None, beta=None):
    if training:
        mean, var = x.mean(axis=(0, 1, 2)), x.var(axis=(0, 1, 2))
    y = (x - mean) / np.sqrt(var + EPS)
    if gamma is not None:
        y = y * gamma + beta
    return y


def relu(x):
    return np.maximum(x, 0.0)


def relu_conv_bn(x, kernel, training, stride=1):
    k = kernel.shape[0]
    y = conv(relu(x), kernel, stride, k // 2)
    return batch_norm(y, training, 0.0, 1.0)


def sep_conv(x, dws, pws, training, stride=1):
    """DARTS `SepConv` (two repeats) or `DilConv` (one, dilation 2)."""
    dilation = 2 if len(dws) == 1 else 1
    for r, (dw, pw) in enumerate(zip(dws, pws, strict=True)):
        k = dw.shape[0]
        s = stride if r == 0 else 1
        x = depthwise(relu(x), dw, s, dilation * (k // 2), dilation)
        x = batch_norm(conv(x, pw), training, 0.0, 1.0)
    return x


def factorized_reduce(x, k1, k2, training):
    x = relu(x)
    a = conv(x, k1, 2)
    b = conv(x[:, 1:, 1:, :], k2, 2)
    return batch_norm(np.concatenate([a, b], -1), training, 0.0, 1.0)
