"""JAX: a model's variables of constant initial values made without XLA.

Keras fills a variable made with its `Zeros` or `Ones` initializer with
`jnp.zeros` / `jnp.ones`, and eager JAX compiles `broadcast_in_dim` once
per distinct shape: building a supernet's optimizer slots (one momentum
per weight) and batch-norm statistics compiled 25 times at the one-shot
micro configuration (~1 s CPU of a ~4 s build; benchmarks/RESULTS.md,
#13 o17). Within `construction_scope()` such a variable (float32, no
layout, no `keras.distribution`) gets its values from NumPy, placed on
the device by one transfer: the same values, no compilation. Any other
variable is made by Keras as before.

The scope sets `keras.Variable._initialize_with_initializer` (the JAX
backend's variable class) while any thread is inside it; spans
nest (a count under a lock). A variable made by another thread meanwhile
gets the same values as Keras would give it.
"""

from __future__ import annotations

import contextlib
import threading

import jax.numpy as jnp
import keras
import numpy as np

__all__ = ["construction_scope"]

_LOCK = threading.Lock()
_DEPTH = [0]
_KERAS: list = []  # Keras' method while a scope is open
_FILLS = {keras.initializers.Zeros: np.zeros, keras.initializers.Ones: np.ones}


def _initialize_with_initializer(self, initializer):
    fill = _FILLS.get(type(initializer))
    if (
        fill is None
        or getattr(self, "_layout", None) is not None
        or keras.distribution.distribution() is not None
        or keras.backend.standardize_dtype(self._dtype) != "float32"
    ):
        return _KERAS[0](self, initializer)
    values = fill(self._shape, np.float32)
    return self._initialize(jnp.asarray(values, dtype="float32"))


@contextlib.contextmanager
def construction_scope():
    """Constant-initialized float32 variables made from NumPy (module)."""
    cls, name = keras.Variable, "_initialize_with_initializer"
    with _LOCK:
        _DEPTH[0] += 1
        if _DEPTH[0] == 1:
            # Keras' method, and whether the class itself defines it.
            _KERAS[:] = [getattr(cls, name), name in vars(cls)]
            setattr(cls, name, _initialize_with_initializer)
    try:
        yield
    finally:
        with _LOCK:
            _DEPTH[0] -= 1
            if _DEPTH[0] == 0:
                keras_method, own = _KERAS
                if own:
                    setattr(cls, name, keras_method)
                else:
                    delattr(cls, name)
