"""Pins the public API: the names users import from `keras_nas`.

Adding a public name means adding it here on purpose; removing or renaming
one breaks users and must be a deliberate change too.
"""

import importlib
import subprocess
import sys

import keras_nas

SUBPACKAGES = (
    "blocks",
    "spaces",
    "tuners",
    "supernet",
    "estimation",
    "benchmarks",
    "predictors",
    "gan",
)
MODULES = ("data", "visualize", "tensorboard", "tutorial", "cli")

EXPECTED = {
    "blocks": {
        "AMOEBANET_A",
        "AuxiliaryHead",
        "Cell",
        "DARTS",
        "DARTS_OPS",
        "DARTS_V1",
        "DARTS_V2",
        "DilConv",
        "DropPathSchedule",
        "MBConv", "MobileNetGenotype",
        "GAN", "GanOptimizer", "GeneratorCell", "build_discriminator", "build_generator",  # noqa: E501
        "GCNConv", "GraphSAGEConv", "GINConv", "GATConv", "GraphReadout", "NodeMask", "GRAPH_CONVS", "get_graph_conv", "node_mask",  # noqa: E501
        "EXTRA_OPS",
        "FactorizedReduce",
        "Genotype",
        "Identity",
        "NASNET_A",
        "NB201_EDGES",
        "NB201_OPS",
        "NasBench201Cell",
        "NasBench201Genotype",
        "NetworkFromGenotype",
        "NormalCell",
        "Pool",
        "ReLUConvBN",
        "ReductionCell",
        "ResNetBasicBlock",
        "SepConv",
        "Zero",
        "build_nb201_network",
        "build_network",
        "get_op",
        "known_ops",
        "register_op",
    },
    "spaces": {
        "CellSearchSpace",
        "ChainSearchSpace",
        "FID_OBJECTIVE", "GanSearchSpace", "gan_cells_from_hyperparameters",  # noqa: E501
        "GraphSearchSpace",
        "MobileNetBlock", "MobileNetSearchSpace", "PROXYLESS_STAGES",
        "NB201_HP_NAMES",
        "NasBench201SearchSpace",
        "cell_genotype_from_hyperparameters",
        "cell_hyperparameters_from_genotype",
        "nb201_genotype_from_hyperparameters",
        "nb201_hyperparameters_from_genotype",
    },
    "tuners": {
        "AgingEvolution",
        "AgingEvolutionOracle",
        "Darts",
        "DartsOracle",
        "Proxyless",
        "Enas",
        "EnasOracle",
        "FactorizedController",
        "LSTMController",
        "MonteCarloTreeSearch",
        "MonteCarloTreeSearchOracle",
        "Reinforce",
        "ReinforceOracle",
        "ArchitectureBayesianOptimization",
        "ArchitectureBayesianOptimizationOracle",
        "Bananas",
        "BananasOracle",
        "LocalSearch",
        "LocalSearchOracle",
    },
    "supernet": {
        "BilevelOptimizer",
        "DartsSupernet",
        "MixedOp",
        "OneShotSupernet",
        "ProxylessSupernet",
        "ProxylessMixedBlock",
        "HyperNetwork",
        "HyperCell",
        "SearchCell",
        "derive_genotype",
        "Nb201SearchCell",
        "derive_nb201_genotype",
        "search_data",
        "TorchSGD",
        "TorchAdam",
        "EpochCosineDecay",
    },
    "estimation": {"Estimator", "RetrainResult", "SharedWeights", "HyperNetworkScores", "MedianStopping", "LearningCurveStopping", "PartialTraining", "fit_learning_curve", "retrain_top_k", "WeightInheritance", "inherit_weights", "InheritanceReport", "structural_weights", "trial_parents", "net2wider", "net2deeper", "inherit_by_morphism", "ZeroCost", "zero_cost_score", "ZERO_COST_PROXIES", "FrechetDistance", "frechet_distance", "train_feature_extractor", "HardwareAware", "mnas_reward", "count_params", "count_macs", "count_flops", "measure_latency", "profile_model", "LatencyTable", "check_budget"},  # noqa: E501
    "benchmarks": {"TabularBenchmark", "run_oracle_on_table"},
    # Also exported by `blocks` (GAN, GanOptimizer) and `estimation` (FID).
    "gan": {
        "FrechetDistance",
        "GAN",
        "GanOptimizer",
        "frechet_distance",
        "train_feature_extractor",
    },
    "predictors": {
        "ArchitectureEncoder",
        "ENCODINGS",
        "GaussianProcessPredictor",
        "GradientBoostingPredictor",
        "MLPEnsemblePredictor",
        "Predictor",
    },
}
TOP_LEVEL_ONLY = {
    "DataSplits", "load_dataset", "tfds_pipelines", "draw_genotype",
    "pareto_front", "plot_history", "tutorial_settings",
}  # fmt: skip


#: Old names kept working (issue 14), outside `__all__`: subpackage ->
#: {old name: the public name it resolves to}.
ALIASES = {
    "spaces": {
        "genotype_from_hyperparameters": "cell_genotype_from_hyperparameters",
        "hyperparameters_from_genotype": "cell_hyperparameters_from_genotype",
    },
}
#: Renamed modules, importable under their old names: old -> new.
MODULE_ALIASES = {
    "keras_nas.estimation.inheritance": "keras_nas.estimation.weight_transfer",
    "keras_nas.estimation.morphisms": "keras_nas.estimation.network_morphisms",
    "keras_nas.spaces.nas_bench_201": "keras_nas.spaces.nas_bench_201_space",
}


def test_old_names_resolve_to_the_public_objects():
    for sub, aliases in ALIASES.items():
        module = importlib.import_module(f"keras_nas.{sub}")
        for old, new in aliases.items():
            assert old not in module.__all__ and old not in keras_nas.__all__
            assert getattr(module, old) is getattr(module, new), old
            assert getattr(keras_nas, old) is getattr(module, new), old


def test_renamed_modules_import_under_their_old_names():
    from keras_nas.estimation.inheritance import inherit_weights

    from keras_nas.spaces import nas_bench_201

    for old, new in MODULE_ALIASES.items():
        assert importlib.import_module(old) is importlib.import_module(new)
    assert inherit_weights is keras_nas.estimation.inherit_weights
    assert nas_bench_201.NasBench201SearchSpace is (
        keras_nas.spaces.NasBench201SearchSpace
    )


def test_subpackage_all_is_pinned():
    for sub, names in EXPECTED.items():
        module = importlib.import_module(f"keras_nas.{sub}")
        assert set(module.__all__) == names, sub


def test_top_level_reexports_everything():
    expected = set().union(*EXPECTED.values()) | TOP_LEVEL_ONLY
    expected |= set(SUBPACKAGES) | set(MODULES) | {"__version__"}
    assert set(keras_nas.__all__) == expected


def test_every_public_name_resolves_to_the_same_object():
    for sub, names in EXPECTED.items():
        module = importlib.import_module(f"keras_nas.{sub}")
        for name in names:
            assert getattr(keras_nas, name) is getattr(module, name), name
    for name in TOP_LEVEL_ONLY:
        assert getattr(keras_nas, name) is not None
    for name in MODULES:
        assert importlib.import_module(f"keras_nas.{name}")


def test_unknown_attribute_raises_attribute_error():
    for module in [keras_nas] + [
        importlib.import_module(f"keras_nas.{s}") for s in SUBPACKAGES
    ]:
        try:
            module.no_such_name  # noqa: B018
        except AttributeError as error:
            assert "no_such_name" in str(error)
        else:
            raise AssertionError(module.__name__)


def test_import_is_lazy():
    code = (
        "import sys, keras_nas, keras_nas.tuners, keras_nas.blocks;"
        "keras_nas.Genotype;"
        "print('tensorflow' in sys.modules, 'keras' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True,
        check=True,
    )  # fmt: skip
    assert out.stdout.split() == ["False", "False"]
