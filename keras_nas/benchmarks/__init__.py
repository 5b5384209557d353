"""Tabular benchmarks: run any keras-tuner oracle against a lookup table."""

from keras_nas._lazy import lazy_getattr

_NAMES = {
    "TabularBenchmark": ".tabular",
    "run_oracle_on_table": ".tabular",
}

__all__ = sorted(_NAMES)
__getattr__ = lazy_getattr(__name__, _NAMES)


def __dir__():
    return __all__
