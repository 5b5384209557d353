"""keras-nas: Neural Architecture Search for Keras 3, built on keras-tuner.

Every public name of the subpackages (`blocks`, `spaces`, `tuners`,
`supernet`, `estimation`, `benchmarks`,
`predictors`, `gan`) is re-exported here. Imports are lazy:
`import keras_nas` does not load TensorFlow until a name that needs it is used.
"""

import importlib

from keras_nas import _serializable

__version__ = "0.1.0"

_SUBPACKAGES = (
    "blocks",
    "spaces",
    "tuners",
    "supernet",
    "estimation",
    "benchmarks",
    "predictors",
    "gan",
)

# Top-level helper modules: importable as `keras_nas.<name>`; their main
# functions are re-exported below.
_MODULES = ("data", "visualize", "tensorboard", "tutorial", "cli")

_TOP_LEVEL = {
    "DataSplits": "data",
    "load_dataset": "data",
    "tfds_pipelines": "data",
    "plot_history": "visualize",
    "draw_genotype": "visualize",
    "pareto_front": "visualize",
    "tutorial_settings": "tutorial",
}


def _subpackage(name):
    return importlib.import_module(f"keras_nas.{name}")


def _exports():
    out = dict(_TOP_LEVEL)
    for sub in _SUBPACKAGES:
        for name in _subpackage(sub).__all__:
            out.setdefault(name, sub)
    return out


_EXPORTS = _exports()
# Old names the subpackages still resolve (their `_ALIASES`; not in
# `__all__`).
_ALIASES = {
    name: sub
    for sub in _SUBPACKAGES
    for name in getattr(_subpackage(sub), "_ALIASES", {})
}

# Saved models load after `import keras_nas` alone (see `_serializable`).
_serializable.install()

__all__ = (
    sorted(_EXPORTS) + list(_SUBPACKAGES) + list(_MODULES) + ["__version__"]
)


def __getattr__(attr):
    if attr in _SUBPACKAGES or attr in _MODULES:
        return _subpackage(attr)
    sub = _EXPORTS.get(attr) or _ALIASES.get(attr)
    if sub is None:
        raise AttributeError(f"module 'keras_nas' has no attribute {attr!r}")
    return getattr(_subpackage(sub), attr)


def __dir__():
    return __all__
