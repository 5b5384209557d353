"""Lazy attribute loading for package `__init__` modules (PEP 562).

Importing `keras_nas` or one of its subpackages stays cheap and free of
TensorFlow until a name that needs it is used. This keeps `Genotype` and the
search strategies importable without a deep-learning framework.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
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
def lazy_aliases(
    package: str, names: Mapping[str, str], aliases: Mapping[str, str]
) -> Callable[[str], Any]:
    """`lazy_getattr` that also resolves old public names.

    Args:
        package: the `__name__` of the package.
        names: public name -> module that defines it (as `lazy_getattr`).
        aliases: old name -> current public name (kept for users' code;
            not in `__all__`).
    """
    current = lazy_getattr(package, names)

    def __getattr__(attr: str) -> Any:
        return current(aliases.get(attr, attr))

    return __getattr__


class _ModuleAliases(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Makes `import package.old` load and return `package.new`."""

    def __init__(self, modules: Mapping[str, str]):
        self.modules = dict(modules)

    def find_spec(self, fullname, path=None, target=None):
        if fullname not in self.modules:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec):
        # The renamed module itself: one module object, two names.
        return importlib.import_module(self.modules[spec.name])

    def exec_module(self, module):
        pass


def alias_modules(package: str, modules: Mapping[str, str]) -> None:
    """Keeps renamed submodules importable under their old names.

    Args:
        package: the `__name__` of the package.
        modules: old submodule name -> new one, e.g.
            `{"inheritance": "weight_transfer"}`: `import
            package.inheritance` returns the module `package.weight_transfer`.
    """
    full = {f"{package}.{old}": f"{package}.{n}" for old, n in modules.items()}
    sys.meta_path.append(_ModuleAliases(full))
