"""Tabular benchmarks: run any keras-tuner oracle against a lookup table."""

from keras_nas._lazy import lazy_module

_NAMES = {
    "TabularBenchmark": ".tabular",
    "run_oracle_on_table": ".tabular",
}

__all__, __getattr__, __dir__ = lazy_module(__name__, _NAMES)
