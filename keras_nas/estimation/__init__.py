"""Performance estimation: cheaper ways to score a candidate architecture."""

from keras_nas._lazy import alias_modules, lazy_module

_NAMES = {
    "Estimator": "._protocol",
    "SharedWeights": ".shared_weights",
    "HyperNetworkScores": ".hypernetwork_scores",
    "MedianStopping": ".early_stopping",
    "LearningCurveStopping": ".early_stopping",
    "PartialTraining": ".partial_training",
    "fit_learning_curve": ".learning_curves",
    "HardwareAware": ".hardware_aware",
    "mnas_reward": ".hardware_aware",
    "check_budget": ".budget",
    "count_params": ".hardware",
    "count_macs": ".hardware",
    "count_flops": ".hardware",
    "measure_latency": ".hardware",
    "profile_model": ".hardware",
    "LatencyTable": ".latency_table",
    "retrain_top_k": ".retrain",
    "RetrainResult": ".retrain",
    "WeightInheritance": ".weight_inheritance",
    "inherit_weights": ".weight_transfer",
    "InheritanceReport": ".weight_transfer",
    "structural_weights": ".weight_transfer",
    "trial_parents": ".weight_transfer",
    "net2wider": ".network_morphisms",
    "net2deeper": ".network_morphisms",
    "inherit_by_morphism": ".network_morphisms",
    "ZeroCost": ".zero_cost",
    "zero_cost_score": ".zero_cost",
    "ZERO_COST_PROXIES": ".zero_cost",
    # Defined in `keras_nas.gan`.
    "FrechetDistance": "keras_nas.gan.fid",
    "frechet_distance": "keras_nas.gan.fid",
    "train_feature_extractor": "keras_nas.gan.fid",
}

# Renamed modules (issue 14), importable under their old names too:
# `weight_inheritance` is the estimator, `weight_transfer` copies matching
# weights between two models, `network_morphisms` widens/deepens (Net2Net).
_OLD_MODULES = {
    "inheritance": "weight_transfer",
    "morphisms": "network_morphisms",
}
alias_modules(__name__, _OLD_MODULES)

__all__, __getattr__, __dir__ = lazy_module(__name__, _NAMES)
