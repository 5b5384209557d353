"""Search strategies: keras-tuner `Oracle` and `Tuner` subclasses."""

from keras_nas._lazy import lazy_module

_NAMES = {
    "AgingEvolution": ".evolution",
    "AgingEvolutionOracle": ".evolution",
    "Reinforce": ".reinforce",
    "ReinforceOracle": ".reinforce",
    "FactorizedController": ".controller",
    "LSTMController": ".controller",
    "MonteCarloTreeSearch": ".mcts",
    "MonteCarloTreeSearchOracle": ".mcts",
    "Darts": ".darts",
    "DartsOracle": ".darts",
    "Enas": ".enas",
    "EnasOracle": ".enas",
    "Proxyless": ".proxyless",
    "ArchitectureBayesianOptimization": ".bayesian",
    "ArchitectureBayesianOptimizationOracle": ".bayesian",
    "Bananas": ".bananas",
    "BananasOracle": ".bananas",
    "LocalSearch": ".local_search",
    "LocalSearchOracle": ".local_search",
}

__all__, __getattr__, __dir__ = lazy_module(__name__, _NAMES)
