"""`_batch_norm_jax`: the JAX DARTS edges' batch normalization with a lean
backward pass.

In a JAX process: `normalize` and `normalized_sum` give the values and
the gradients (input and weights) of Keras' op-by-op computation
(`keras.ops.moments`, `batch_normalization`, the weighted sum of the
blocks) to float32 rounding, the biased batch variance included; their
backward passes keep only the normalized output (one tensor of the
input's size) and per-channel vectors, where JAX's differentiation of the
op-by-op computation keeps more than one such tensor.
"""

import json
import textwrap

SCRIPT = textwrap.dedent(
    """
    import json
    import jax, jax.numpy as jnp, numpy as np
    from keras import ops
    from keras_nas.supernet import _batch_norm_jax as bn

    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(4, 5, 5, 6)) * 3 + 1, jnp.float32)
    w = jnp.asarray(rng.normal(size=(3,)), jnp.float32)
    up = jnp.asarray(rng.normal(size=(4, 5, 5, 2)), jnp.float32)
    up6 = jnp.asarray(rng.normal(size=(4, 5, 5, 6)), jnp.float32)
    eps = 1e-5

    def plain(x):
        mean, var = ops.moments(x, axes=[0, 1, 2])
        y = ops.batch_normalization(x, mean, var, axis=-1, epsilon=eps)
        return y, mean, var

    def plain_sum(x, w):
        y, mean, var = plain(x)
        blocks = jnp.reshape(y, (4, 5, 5, 3, 2))
        return jnp.sum(blocks * w[:, None], -2), mean, var

    def loss(f, up):
        return lambda *a: jnp.sum(f(*a)[0] * up)

    def close(a, b):
        return all(np.allclose(p, q, rtol=1e-4, atol=1e-5)
                   for p, q in zip(a, b))

    def residual_bytes(f, *args):
        _, pullback = jax.vjp(lambda *a: f(*a)[0], *args)
        leaves = jax.tree.leaves(pullback)
        return sum(l.size for l in leaves if l.size > 12)

    out = {}
    out["normalize_values"] = close(bn.normalize(x, eps), plain(x))
    out["normalize_grad"] = close(
        [jax.grad(loss(lambda x: bn.normalize(x, eps), up6))(x)],
        [jax.grad(loss(plain, up6))(x)])
    out["sum_values"] = close(
        bn.normalized_sum(x, w, eps), plain_sum(x, w))
    out["sum_grads"] = close(
        jax.grad(loss(lambda x, w: bn.normalized_sum(x, w, eps), up),
                 argnums=(0, 1))(x, w),
        jax.grad(loss(plain_sum, up), argnums=(0, 1))(x, w))
    out["kept"] = residual_bytes(lambda x: bn.normalize(x, eps), x)
    out["kept_sum"] = residual_bytes(
        lambda x, w: bn.normalized_sum(x, w, eps), x, w)
    out["kept_plain"] = residual_bytes(plain_sum, x, w)
    out["size"] = int(x.size)
    print("RESULT", json.dumps(out))
    """
)


def test_lean_batch_norm_matches_keras_and_keeps_one_tensor(run_on_backend):
    stdout = run_on_backend(SCRIPT, "jax")
    line = next(s for s in stdout.splitlines() if s.startswith("RESULT"))
    out = json.loads(line[len("RESULT ") :])
    assert out["normalize_values"] and out["normalize_grad"]
    assert out["sum_values"] and out["sum_grads"]
    # one tensor of the input's size (the normalized output) is kept
    assert out["kept"] == out["size"]
    assert out["kept_sum"] == out["size"]
    assert out["kept_plain"] >= 2 * out["size"]
