"""Tests of weight inheritance, network morphisms and their estimator."""

import json
import os

import keras
import keras_tuner
import numpy as np
import pytest
from _estimation_testing import evolution

from keras_nas.estimation.network_morphisms import (
    inherit_by_morphism,
    net2deeper,
    net2wider,
)
from keras_nas.estimation.weight_inheritance import WeightInheritance
from keras_nas.estimation.weight_transfer import (
    inherit_weights,
    structural_weights,
    trial_parents,
)
from keras_nas.spaces import CellSearchSpace, ChainSearchSpace
from keras_nas.tuners.reinforce import ReinforceOracle

# Tiny models and few batches: tracing costs more than running.
pytestmark = pytest.mark.usefixtures("eager_functions")


def _build(space, values):
    hp = keras_tuner.HyperParameters()
    hp.values.update(values)
    space.declare_hyperparameters(hp)
    return space.build(hp)


def _randomize(model, seed=0):
    """Distinct random weights (positive variances) in every variable."""
    rng = np.random.default_rng(seed)
    for v in model.weights:
        value = rng.normal(size=v.shape)
        if v.name == "moving_variance":
            value = rng.uniform(0.5, 2.0, size=v.shape)
        v.assign(value.astype(v.dtype))


CHAIN = ChainSearchSpace(
    (8, 8, 1), 3, max_layers=3, filters=(4, 8), units=(8, 16),
    kernel_sizes=(3,), strides=(1,),
)
CHAIN_VALUES = {
    "num_layers": 3, "layer0/type": "conv", "layer0/filters": 4,
    "layer1/type": "conv", "layer1/filters": 4,
    "layer2/type": "dense", "layer2/units": 8,
}


def test_chain_layers_have_position_names():
    first = _build(CHAIN, CHAIN_VALUES)
    keras.layers.Dense(3)  # Advances Keras' global name counters.
    second = _build(CHAIN, CHAIN_VALUES)
    names = [layer.name for layer in first.layers[1:]]
    assert names == [layer.name for layer in second.layers[1:]]
    assert "layer1_conv" in names and names[-1] == "predictions"
    assert list(structural_weights(first)) == list(
        structural_weights(second)
    )


def test_inherit_copies_exactly_the_unchanged_chain_layers():
    parent = _build(CHAIN, CHAIN_VALUES)
    _randomize(parent, seed=1)
    # Mutation: layer 1 gets 8 filters. Its conv and BN change shape, and
    # so does the dense layer reading them; layer 0 and the classifier
    # (8 -> 3) are unchanged.
    child = _build(CHAIN, {**CHAIN_VALUES, "layer1/filters": 8})
    before = structural_weights(child)
    report = inherit_weights(child, parent)
    ours, theirs = structural_weights(child), structural_weights(parent)
    assert report.inherited == [
        "layer0_conv:Conv2D", "layer0_bn:BatchNormalization",
        "predictions:Dense",
    ]
    assert report.fresh == [
        "layer1_conv:Conv2D", "layer1_bn:BatchNormalization",
        "layer2_dense:Dense",
    ]
    for key in report.inherited:
        for name, value in ours[key].items():
            np.testing.assert_array_equal(value, theirs[key][name])
    for key in report.fresh:
        for name, value in ours[key].items():
            np.testing.assert_array_equal(value, before[key][name])
    sizes = {k: sum(a.size for a in v.values()) for k, v in ours.items()}
    assert report.inherited_params == sum(
        sizes[k] for k in report.inherited
    )
    assert report.total_params == sum(sizes.values())
    assert 0.0 < report.fraction < 1.0
    assert json.loads(json.dumps(report.to_dict()))["num_inherited"] == 3


def test_inherit_in_cell_space_matches_cell_node_op_positions():
    space = CellSearchSpace(
        input_shape=(8, 8, 1), num_classes=3, num_cells=1, filters=4,
        num_nodes=2,
    )
    hp = keras_tuner.HyperParameters()
    space.declare_hyperparameters(hp)
    values = dict(hp.values)
    # One cell (a reduction cell): mutate node 1 / op 0.
    values["reduce/node1/op0"] = "sep_conv_3x3"
    parent = _build(space, values)
    _randomize(parent, seed=2)
    child = _build(space, {**values, "reduce/node1/op0": "dil_conv_3x3"})
    before = structural_weights(child)
    report = inherit_weights(child, parent)
    ours, theirs = structural_weights(child), structural_weights(parent)
    mutated = "cell_0:Cell/edge_ops.2:"  # node 1, op 0 (arity 2).
    assert report.fresh and all(k.startswith(mutated) for k in report.fresh)
    assert any(k.startswith("cell_0:Cell/edge_ops.0") for k in ours)
    for key in report.inherited:
        assert not key.startswith(mutated)
        for name, value in ours[key].items():
            np.testing.assert_array_equal(value, theirs[key][name])
    for key in report.fresh:
        for name, value in ours[key].items():
            np.testing.assert_array_equal(value, before[key][name])
    assert set(report.inherited) == set(ours) - set(report.fresh)


def _morph_parent(global_pooling):
    space = ChainSearchSpace(
        (6, 6, 2), 3, max_layers=4, filters=(4,), units=(6,),
        kernel_sizes=(3,), strides=(1,), global_pooling=global_pooling,
        activations=("relu", "elu"),
    )
    model = _build(space, {
        "num_layers": 4, "layer0/type": "conv",
        "layer1/type": "sep_conv", "layer1/activation": "elu",
        "layer2/type": "dense", "layer2/dropout": 0.25,
        "layer3/type": "dense",
    })
    _randomize(model, seed=3)
    return model


@pytest.mark.parametrize("global_pooling", ["avg", "flatten"])
def test_morphisms_preserve_the_function(global_pooling):
    parent = _morph_parent(global_pooling)
    x = np.random.default_rng(4).normal(size=(5, 6, 6, 2)).astype("float32")
    expected = keras.ops.convert_to_numpy(parent(x, training=False))
    morphs = [
        (net2wider, "layer0_conv", 7), (net2wider, "layer1_sep_conv", 9),
        (net2wider, "layer2_dense", 10), (net2deeper, "layer0_conv"),
        (net2deeper, "layer1_sep_conv"), (net2deeper, "layer3_dense"),
    ]
    for morph, name, *args in morphs:
        model = morph(parent, name, *args)
        assert model.count_params() > parent.count_params()
        got = keras.ops.convert_to_numpy(model(x, training=False))
        np.testing.assert_allclose(got, expected, atol=1e-5, err_msg=name)
    wider = net2wider(parent, "layer0_conv", 7, seed=0)
    assert wider.get_layer("layer0_conv").filters == 7
    assert wider.get_layer("layer0_bn").moving_mean.shape == (7,)
    deeper = net2deeper(parent, "layer0_conv")
    assert deeper.get_layer("layer0_conv_deeper_act").get_config()[
        "activation"] == "relu"
    # ELU is not idempotent: the identity layer after it is linear.
    deeper = net2deeper(parent, "layer1_sep_conv")
    names = [layer.name for layer in deeper.layers]
    assert "layer1_sep_conv_deeper_bn" in names
    assert "layer1_sep_conv_deeper_act" not in names
    # The parent is untouched.
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(parent(x, training=False)), expected
    )


def test_inherit_by_morphism_starts_a_wider_child_at_its_parent():
    parent = _build(CHAIN, CHAIN_VALUES)
    _randomize(parent, seed=5)
    # Mutations "layer0/filters 4 -> 8" and "layer2/units 8 -> 16".
    values = {**CHAIN_VALUES, "layer0/filters": 8, "layer2/units": 16}
    x = np.random.default_rng(6).normal(size=(4, 8, 8, 1)).astype("float32")
    expected = keras.ops.convert_to_numpy(parent(x, training=False))
    plain = _build(CHAIN, values)
    assert inherit_weights(plain, parent).fraction < 0.5
    child = _build(CHAIN, values)
    report = inherit_by_morphism(child, parent, seed=0)
    assert report.fresh == [] and report.fraction == 1.0
    got = keras.ops.convert_to_numpy(child(x, training=False))
    np.testing.assert_allclose(got, expected, atol=1e-5)
    # A narrower child cannot preserve the function: plain inheritance.
    narrow = _build(CHAIN, {**CHAIN_VALUES, "layer2/units": 16})
    report = inherit_by_morphism(parent, narrow)
    assert "layer2_dense:Dense" in report.fresh


def test_morphism_argument_errors():
    parent = _morph_parent("avg")
    with pytest.raises(ValueError, match="Received: width=4"):
        net2wider(parent, "layer0_conv", 4)
    with pytest.raises(ValueError, match="Received: layer_name='nope'"):
        net2wider(parent, "nope", 8)
    with pytest.raises(ValueError, match="Received: layer_name='layer0_bn'"):
        net2deeper(parent, "layer0_bn")
    with pytest.raises(ValueError, match="output layer"):
        net2wider(parent, "predictions", 5)
    with pytest.raises(ValueError, match="Received: kernel_size=2"):
        net2deeper(parent, "layer0_conv", kernel_size=2)
    space = CellSearchSpace(input_shape=(8, 8, 1), num_classes=3,
                            num_cells=1, filters=4, num_nodes=2)
    hp = keras_tuner.HyperParameters()
    space.declare_hyperparameters(hp)
    with pytest.raises(ValueError, match="chain-structured"):
        net2deeper(space.build(hp), "stem_conv")
    with pytest.raises(ValueError, match="Received: epochs=0"):
        WeightInheritance(epochs=0)
    with pytest.raises(ValueError, match="Received: min_fraction=2"):
        WeightInheritance(min_fraction=2)
    with pytest.raises(ValueError, match="Received: morphisms=1"):
        WeightInheritance(morphisms=1)


def test_trial_parents_without_a_record():
    oracle = ReinforceOracle(objective="val_accuracy", max_trials=2)
    assert trial_parents(oracle, "00") == []


def test_aging_evolution_with_weight_inheritance(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 8, 8, 1)).astype("float32")
    y = (x[:, 2:6, 2:6].mean(axis=(1, 2, 3)) > 0).astype("int32")
    # Every mutation (kernel size, activation, depth) leaves layers intact.
    space = ChainSearchSpace(
        (8, 8, 1), 2, max_layers=2, filters=(4,), kernel_sizes=(3, 5),
        strides=(1,), dropout_rates=(0.0,), layer_types=("conv",),
    )
    estimator = WeightInheritance(epochs=1, full_epochs=2)
    tuner = evolution(
        space, tmp_path, estimator, objective="val_accuracy", max_trials=3,
        population_size=2, seed=0, project_name="wi",
    )
    tuner.search(x, y, validation_split=0.25, epochs=3, batch_size=32,
                 verbose=0)
    trials = tuner.oracle.trials
    assert len(trials) == 3
    assert all(t.status == "COMPLETED" for t in trials.values())
    children = [
        tid for tid in trials if trial_parents(tuner.oracle, tid)
    ]
    assert children, "AgingEvolution proposed no mutation"
    for tid in trials:
        assert trial_parents(tuner.oracle, tid) == (
            tuner.oracle.get_state()["lineage"][tid]["parents"]
        )
    for tid, trial in trials.items():
        record = estimator.reports[tid]
        inherited = trial.metrics.get_last_value("inherited_layers")
        assert inherited == record["num_inherited"]
        with open(os.path.join(tuner.get_trial_dir(tid),
                               "inheritance.json")) as f:
            assert json.load(f) == record
        if tid in children:
            assert record["parent"] == trial_parents(tuner.oracle, tid)[0]
            assert record["num_inherited"] > 0
            assert record["trained_epochs"] == 1
        else:
            assert record["parent"] is None
            assert record["trained_epochs"] == 2
    # Checkpoints where keras-tuner keeps them: the best model loads.
    best = tuner.get_best_models(1)[0]
    assert best.output_shape == (None, 2)
