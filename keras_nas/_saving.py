"""Registers keras-nas's Keras classes as soon as Keras is imported.

A saved keras-nas model names its layers `keras_nas>Cell`, ...; Keras finds
them only if the modules defining them were imported. `import keras_nas` is
lazy (it does not import Keras), so this module makes the registration
follow Keras instead: `watch_keras_import()` registers the classes at once if
Keras is already imported, otherwise right after Keras is imported. Then

```python
import keras
import keras_nas

model = keras.saving.load_model("best_model.keras")
```

works in a new process, in either import order.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings
from typing import Any

#: The modules that define keras-nas's serializable Keras classes.
SERIALIZABLE_MODULES = (
    "keras_nas.blocks.ops",
    "keras_nas.blocks.cells",
    "keras_nas.blocks.network",
    "keras_nas.blocks.gan",
    "keras_nas.blocks.gan_model",
    "keras_nas.blocks.graph",
    "keras_nas.estimation.fid",
    "keras_nas.supernet.darts",
)


def register_serializables() -> None:
    """Imports every module that registers a keras-nas Keras class."""
    for name in SERIALIZABLE_MODULES:
        importlib.import_module(name)


def _register_quietly() -> None:
    try:
        register_serializables()
    except Exception as e:  # Never break `import keras` itself.
        warnings.warn(
            f"keras-nas could not register its Keras layers ({e}); import "
            "keras_nas.blocks.network before keras.saving.load_model",
            stacklevel=2,
        )


class _AfterKerasImport(importlib.abc.MetaPathFinder):
    """Finds nothing; wraps the loader of `keras` to register afterwards."""

    def find_spec(self, name: str, path: Any, target: Any = None) -> Any:
        if name != "keras":
            return None
        _unwatch()  # One shot; also keeps the search below from recursing.
        spec = importlib.util.find_spec("keras")
        loader = getattr(spec, "loader", None)
        if loader is None or not hasattr(loader, "exec_module"):
            return spec
        exec_module = loader.exec_module

        def exec_then_register(module: Any) -> None:
            exec_module(module)
            _register_quietly()

        loader.exec_module = exec_then_register
        return spec


def _unwatch() -> None:
    sys.meta_path[:] = [
        f for f in sys.meta_path if not isinstance(f, _AfterKerasImport)
    ]


def watch_keras_import() -> None:
    """Registers the classes now if Keras is loaded, else after its import."""
    if "keras" in sys.modules:
        _register_quietly()
    elif not any(isinstance(f, _AfterKerasImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _AfterKerasImport())
