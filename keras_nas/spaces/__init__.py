"""Search spaces as `keras_tuner.HyperModel`s."""

from keras_nas._lazy import alias_modules, lazy_aliases

_NAMES = {
    "CellSearchSpace": ".cell_space",
    "cell_genotype_from_hyperparameters": ".cell_space",
    "cell_hyperparameters_from_genotype": ".cell_space",
    "ChainSearchSpace": ".chain_space",
    "GanSearchSpace": ".gan_space", "FID_OBJECTIVE": ".gan_space", "gan_cells_from_hyperparameters": ".gan_space",  # noqa: E501
    "GraphSearchSpace": ".graph_space",
    "MobileNetSearchSpace": ".mobilenet_space", "MobileNetBlock": ".mobilenet_space", "PROXYLESS_STAGES": ".mobilenet_space",  # noqa: E501
    "NasBench201SearchSpace": ".nas_bench_201_space",
    "NB201_HP_NAMES": ".nas_bench_201_space",
    "nb201_genotype_from_hyperparameters": ".nas_bench_201_space",
    "nb201_hyperparameters_from_genotype": ".nas_bench_201_space",
}

# Old names, still resolved (not in `__all__`): each space's functions are
# `<space>_genotype_from_hyperparameters` / `..._hyperparameters_from_...`,
# and each space module is `<space>_space.py`.
_ALIASES = {
    "genotype_from_hyperparameters": "cell_genotype_from_hyperparameters",
    "hyperparameters_from_genotype": "cell_hyperparameters_from_genotype",
}
alias_modules(__name__, {"nas_bench_201": "nas_bench_201_space"})

__all__ = sorted(_NAMES)
__getattr__ = lazy_aliases(__name__, _NAMES, _ALIASES)


def __dir__():
    return __all__
