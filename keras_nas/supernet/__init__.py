"""One-shot supernets trained with `fit`: DARTS, SPOS and ENAS."""

from keras_nas._lazy import lazy_getattr

_NAMES = {
    "DartsSupernet": ".darts",
    "MixedOp": ".darts",
    "SearchCell": ".darts",
    "BilevelOptimizer": ".darts",
    "search_data": ".darts",
    "derive_genotype": ".darts",
    "OneShotSupernet": ".one_shot",
    "HyperNetwork": ".hypernetwork", "HyperCell": ".hypernetwork",
    "TorchSGD": ".torch_style",
    "TorchAdam": ".torch_style",
    "EpochCosineDecay": ".torch_style",
}

__all__ = sorted(_NAMES)
__getattr__ = lazy_getattr(__name__, _NAMES)


def __dir__():
    return __all__
