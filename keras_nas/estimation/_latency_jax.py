"""The timed inference function of `measure_latency` on JAX."""

from __future__ import annotations

from typing import Any

import jax


def inference_function(model: Any, jit_compile: bool):
    """`run(x)`: a jitted `model.stateless_call`, waited for.

    JAX always compiles; `jit_compile` is accepted for symmetry.
    """
    trainable = [v.value for v in model.trainable_variables]
    non_trainable = [v.value for v in model.non_trainable_variables]

    @jax.jit
    def forward(trainable, non_trainable, x):
        outputs, _ = model.stateless_call(
            trainable, non_trainable, x, training=False
        )
        return outputs

    def run(x):
        return jax.block_until_ready(forward(trainable, non_trainable, x))

    return run
