"""Lazy attribute loading for package `__init__` modules (PEP 562).

Importing `keras_nas` or one of its subpackages stays cheap and free of
TensorFlow until a name that needs it is used. This keeps `Genotype` and the
search strategies importable without a deep-learning framework.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_getattr(
    package: str, names: Mapping[str, str]
) -> Callable[[str], Any]:
    """Returns a module `__getattr__` that imports `names[attr]` on demand.

    Args:
        package: the `__name__` of the package.
        names: public name -> module (relative to `package`) that defines it.
    """

    def __getattr__(attr: str) -> Any:
        module = names.get(attr)
        if module is None:
            raise AttributeError(
                f"module {package!r} has no attribute {attr!r}"
            )
        value = getattr(importlib.import_module(module, package), attr)
        return value

    return __getattr__


def lazy_module(
    package: str, names: Mapping[str, str]
) -> tuple[list[str], Callable[[str], Any], Callable[[], list[str]]]:
    """`__all__`, `__getattr__` and `__dir__` of a package's lazy exports.

    Args:
        package: the `__name__` of the package.
        names: public name -> module that defines it (relative to
            `package` when it starts with a dot).

    Example:

    ```python
    __all__, __getattr__, __dir__ = lazy_module(__name__, _NAMES)
    ```
    """
    public = sorted(names)
    return public, lazy_getattr(package, names), lambda: public
