"""One-shot supernets trained with `fit`: DARTS, SPOS and ENAS."""

from keras_nas._lazy import lazy_getattr

_NAMES = {
    "DartsSupernet": ".darts",
    "MixedOp": ".darts_cells",
    "SearchCell": ".darts_cells",
    "BilevelOptimizer": ".bilevel",
    "search_data": ".darts_data",
    "derive_genotype": ".darts_derive",
    "Nb201SearchCell": ".darts_nb201",
    "derive_nb201_genotype": ".darts_nb201",
    "OneShotSupernet": ".one_shot",
    "ProxylessSupernet": ".proxyless",
    "ProxylessMixedBlock": ".proxyless_block",
    "HyperNetwork": ".hypernetwork", "HyperCell": ".hypernetwork",
    "TorchSGD": ".torch_style",
    "TorchAdam": ".torch_style",
    "EpochCosineDecay": ".torch_style",
}

__all__ = sorted(_NAMES)
__getattr__ = lazy_getattr(__name__, _NAMES)


def __dir__():
    return __all__
