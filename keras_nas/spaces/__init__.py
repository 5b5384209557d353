"""Search spaces as `keras_tuner.HyperModel`s."""

from keras_nas._lazy import lazy_getattr

_NAMES = {
    "CellSearchSpace": ".cell_space",
    "genotype_from_hyperparameters": ".cell_space",
    "hyperparameters_from_genotype": ".cell_space",
    "ChainSearchSpace": ".chain_space",
    "GanSearchSpace": ".gan_space", "FID_OBJECTIVE": ".gan_space", "gan_cells_from_hyperparameters": ".gan_space",  # noqa: E501
    "GraphSearchSpace": ".graph_space",
    "MobileNetSearchSpace": ".mobilenet_space", "MobileNetBlock": ".mobilenet_space", "PROXYLESS_STAGES": ".mobilenet_space",  # noqa: E501
    "NasBench201SearchSpace": ".nas_bench_201",
    "NB201_HP_NAMES": ".nas_bench_201",
    "nb201_genotype_from_hyperparameters": ".nas_bench_201",
    "nb201_hyperparameters_from_genotype": ".nas_bench_201",
}

__all__ = sorted(_NAMES)
__getattr__ = lazy_getattr(__name__, _NAMES)


def __dir__():
    return __all__
