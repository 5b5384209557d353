"""The one place that picks a backend-specific module.

Gradient steps and other backend-specific code live in sibling modules named
`_<name>_tensorflow.py` and `_<name>_jax.py`, as Keras keeps its backends
apart. `backend_module(package, name, feature)` imports the module for the
current Keras backend, or raises one `ValueError` naming the feature, the
supported backends and the current one.

Example:

```python
steps = backend_module("keras_nas.supernet", "_darts", "DARTS")
steps.train_step(...)
```
"""

from __future__ import annotations

import contextlib
import importlib
from types import ModuleType

__all__ = [
    "SUPPORTED_BACKENDS",
    "backend_module",
    "current_backend",
    "variable_creation_scope",
]

#: The Keras backends with gradient steps in keras-nas.
SUPPORTED_BACKENDS = ("tensorflow", "jax")


def current_backend() -> str:
    """The name of the current Keras backend (imports Keras)."""
    import keras  # noqa: PLC0415 - `import keras_nas` must not load Keras.

    return keras.backend.backend()


def backend_module(package: str, name: str, feature: str) -> ModuleType:
    """Imports `package.<name>_<backend>` for the current Keras backend.

    Args:
        package: the package holding the modules, e.g. `"keras_nas.supernet"`.
        name: the modules' common prefix, e.g. `"_darts"`.
        feature: what needs the module, for the error message (e.g.
            `"DARTS"`).

    Returns:
        The imported module.

    Raises:
        ValueError: the current backend has no such module.
    """
    backend = current_backend()
    if backend not in SUPPORTED_BACKENDS:
        raise ValueError(
            f"{feature} supports the Keras backends "
            f"{', '.join(repr(b) for b in SUPPORTED_BACKENDS)}. "
            f"Received: backend={backend!r} (set the KERAS_BACKEND "
            "environment variable before importing Keras)."
        )
    return importlib.import_module(f"{package}.{name}_{backend}")


def variable_creation_scope() -> contextlib.AbstractContextManager:
    """A scope for building a model's many variables cheaply.

    On TensorFlow without a distribution strategy the new variables share
    one TensorFlow-side name (Keras' `name` and `path`, which the
    optimizers and `.keras` files go by, are kept): eager TensorFlow makes
    a new kernel for every distinct variable name, ~0.6 ms a variable
    (`keras_nas._distribute_tensorflow.unnamed_variables`). On JAX the
    variables of constant initial values (optimizer slots, batch-norm
    statistics) are filled from NumPy, without an XLA compilation per
    shape (`keras_nas._variables_jax`). Elsewhere, nothing.
    """
    backend = current_backend()
    if backend == "jax":
        module = importlib.import_module("keras_nas._variables_jax")
        return module.construction_scope()
    if backend != "tensorflow":
        return contextlib.nullcontext()
    module = importlib.import_module("keras_nas._distribute_tensorflow")
    return module.construction_scope()
