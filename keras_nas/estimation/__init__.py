"""Performance estimation: cheaper ways to score a candidate architecture."""

from keras_nas._lazy import lazy_getattr

_NAMES = {
    "SharedWeights": ".shared_weights",
    "HyperNetworkScores": ".hypernetwork_scores",
    "MedianStopping": ".early_stopping",
    "LearningCurveStopping": ".early_stopping",
    "PartialTraining": ".partial_training",
    "fit_learning_curve": ".learning_curves",
    "HardwareAware": ".hardware_aware",
    "mnas_reward": ".hardware_aware",
    "count_params": ".hardware",
    "count_macs": ".hardware",
    "count_flops": ".hardware",
    "measure_latency": ".hardware",
    "profile_model": ".hardware",
    "retrain_top_k": ".shared_weights",
    "RetrainResult": ".shared_weights",
    "WeightInheritance": ".weight_inheritance",
    "inherit_weights": ".inheritance",
    "InheritanceReport": ".inheritance",
    "structural_weights": ".inheritance",
    "trial_parents": ".inheritance",
    "net2wider": ".morphisms",
    "net2deeper": ".morphisms",
    "inherit_by_morphism": ".morphisms",
    "ZeroCost": ".zero_cost",
    "zero_cost_score": ".zero_cost",
    "ZERO_COST_PROXIES": ".zero_cost",
    "FrechetDistance": ".fid", "frechet_distance": ".fid", "train_feature_extractor": ".fid",  # noqa: E501
}

__all__ = sorted(_NAMES)
__getattr__ = lazy_getattr(__name__, _NAMES)


def __dir__():
    return __all__
