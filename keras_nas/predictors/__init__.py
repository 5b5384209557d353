"""Architecture encodings and performance predictors.

Usable on their own or inside a search (`keras_nas.tuners.Bananas`,
`ArchitectureBayesianOptimization`): `ArchitectureEncoder` turns a trial's
values into a vector (one-hot of the active decisions, or for the cell
spaces the path, reduced path or adjacency encoding) and the predictors
share one interface, `fit(encodings, scores)` and
`predict(encodings) -> (mean, std)`.
Nothing here imports TensorFlow.
"""

from keras_nas._lazy import lazy_module

_NAMES = {
    "ArchitectureEncoder": ".encodings",
    "ENCODINGS": ".encodings",
    "GaussianProcessPredictor": ".models",
    "GradientBoostingPredictor": ".models",
    "MLPEnsemblePredictor": ".models",
    "Predictor": ".models",
}

__all__, __getattr__, __dir__ = lazy_module(__name__, _NAMES)
