"""GraphSearchSpace: hyperparameters, models, and searches with tuners."""

import keras
import keras_tuner
import numpy as np
import pytest

from keras_nas.data import make_graph_classification, make_node_classification
from keras_nas.spaces import GraphSearchSpace
from keras_nas.tuners import AgingEvolution, MonteCarloTreeSearch, Reinforce


@pytest.fixture(autouse=True)
def _eager_functions(request):
    """Searches that train for hundreds of steps run compiled; the other
    tests eagerly, as everywhere in tests/spaces (see conftest)."""
    if "beats_chance" not in request.node.name:
        request.getfixturevalue("eager_functions")
    yield


def declared(space, values=None):
    hp = keras_tuner.HyperParameters()
    if values:
        hp.values.update(values)
    return hp, space.declare_hyperparameters(hp)


def random_values(space, seed):
    hp, _ = declared(space)
    oracle = keras_tuner.oracles.RandomSearchOracle(
        hyperparameters=hp, seed=seed, max_trials=1
    )
    return oracle._random_values()


def test_conditional_hyperparameters():
    space = GraphSearchSpace(1, 3, max_layers=3)
    hp, specs = declared(space)
    names = {p.name for p in hp.space}
    for i in range(3):
        for key in ("conv", "heads", "units", "activation", "residual",
                    "dropout"):
            assert f"layer{i}/{key}" in names
    assert "readout" in names and hp.is_active("readout")
    assert [s["conv"] for s in specs] == ["gcn"]
    assert not hp.is_active("layer0/heads")
    assert not hp.is_active("layer1/conv")

    hp, specs = declared(
        space, {"num_layers": 2, "layer0/conv": "gat", "layer1/conv": "gin"}
    )
    assert [s["conv"] for s in specs] == ["gat", "gin"]
    assert specs[0]["heads"] == 1 and "heads" not in specs[1]
    assert hp.is_active("layer0/heads") and not hp.is_active("layer1/heads")
    assert not hp.is_active("layer2/units")

    node = GraphSearchSpace(4, 2, task="node", conv_types=("gcn",),
                            residual=(False,))
    hp, _ = declared(node)
    names = {p.name for p in hp.space}
    assert "readout" not in names and "layer0/heads" not in names
    assert isinstance(hp.space[1], keras_tuner.engine.hyperparameters.Fixed)


def test_arguments_are_checked():
    with pytest.raises(ValueError, match="task"):
        GraphSearchSpace(1, 3, task="edge")
    with pytest.raises(ValueError, match="conv_types"):
        GraphSearchSpace(1, 3, conv_types=("gcn", "cheb"))
    with pytest.raises(ValueError, match="min_layers"):
        GraphSearchSpace(1, 3, min_layers=3, max_layers=2)
    with pytest.raises(ValueError, match="residual"):
        GraphSearchSpace(1, 3, residual=(0, 1))
    with pytest.raises(ValueError, match="readouts"):
        GraphSearchSpace(1, 3, readouts=("median",))


@pytest.mark.parametrize("task", ["graph", "node"])
def test_random_architectures_build_and_ignore_padding(task):
    x, a, _ = make_graph_classification(4, min_nodes=5, max_nodes=7,
                                        num_features=2, seed=1)
    space = GraphSearchSpace(2, 3, task=task, max_layers=3,
                             units=(4, 8), heads=(1, 2))
    xp = np.pad(x, ((0, 0), (0, 3), (0, 0)))
    ap = np.pad(a, ((0, 0), (0, 3), (0, 3)))
    convs = set()
    for seed in range(5):
        hp, specs = declared(space, random_values(space, seed))
        convs |= {s["conv"] for s in specs}
        model = space.build(hp)
        assert model.loss == "sparse_categorical_crossentropy"
        out = keras.ops.convert_to_numpy(model([x, a]))
        padded = keras.ops.convert_to_numpy(model([xp, ap]))
        if task == "graph":
            assert out.shape == (4, 3)
            np.testing.assert_allclose(padded, out, rtol=1e-5, atol=1e-6)
        else:
            assert out.shape == (4, 7, 3)
            np.testing.assert_allclose(padded[:, :7], out, 1e-5, 1e-6)
        np.testing.assert_allclose(out.sum(-1), 1.0, rtol=1e-5)
    assert len(convs) >= 3


@pytest.fixture(scope="module")
def node_data():
    return make_node_classification(150, seed=0)


def search_node_task(tuner, data, epochs):
    inputs = [data.x, data.a]
    tuner.search(inputs, data.y, sample_weight=data.train_mask,
                 validation_data=(inputs, data.y, data.val_mask),
                 batch_size=1, epochs=epochs, verbose=0)


def test_node_accuracy_counts_only_masked_nodes(node_data, tmp_path):
    d = node_data
    space = GraphSearchSpace(8, 3, task="node", max_layers=1)
    model = space.build(keras_tuner.HyperParameters())
    model.fit([d.x, d.a], d.y, sample_weight=d.train_mask, epochs=2,
              batch_size=1, verbose=0)
    got = model.evaluate([d.x, d.a], d.y, sample_weight=d.val_mask,
                         return_dict=True, verbose=0)["accuracy"]
    pred = model.predict([d.x, d.a], verbose=0).argmax(-1)
    mask = d.val_mask > 0
    assert got == pytest.approx((pred == d.y)[mask].mean(), abs=1e-6)


def test_random_search_on_node_task_beats_chance(node_data, tmp_path):
    d = node_data
    space = GraphSearchSpace(8, 3, task="node", max_layers=2,
                             conv_types=("gcn", "sage", "gin"))
    tuner = keras_tuner.RandomSearch(space, objective="val_accuracy",
                                     max_trials=2, seed=0,
                                     directory=str(tmp_path))
    search_node_task(tuner, d, epochs=20)
    best = tuner.oracle.get_best_trials(1)[0]
    assert best.score > 0.7  # chance: 1/3
    model = tuner.get_best_models()[0]
    test = model.evaluate([d.x, d.a], d.y, sample_weight=d.test_mask,
                          return_dict=True, verbose=0)
    assert test["accuracy"] > 0.6


def test_aging_evolution_on_graph_task_beats_chance(tmp_path):
    x, a, y = make_graph_classification(210, seed=0)
    space = GraphSearchSpace(1, 3, num_nodes=20, max_layers=2,
                             conv_types=("gin", "gcn"), units=(16, 32),
                             dropout_rates=(0.0,), readouts=("sum", "mean"))
    tuner = AgingEvolution(space, objective="val_accuracy", max_trials=3,
                           population_size=2, seed=0,
                           directory=str(tmp_path))
    tuner.search([x[:150], a[:150]], y[:150],
                 validation_data=([x[150:], a[150:]], y[150:]),
                 batch_size=30, epochs=30, verbose=0)
    scores = [t.score for t in tuner.oracle.get_best_trials(3)]
    assert len(scores) == 3
    assert scores[0] > 0.55  # chance: 1/3


TUNERS = {
    "bayesian": lambda s, d: keras_tuner.BayesianOptimization(
        s, objective="val_accuracy", max_trials=2, num_initial_points=1,
        seed=0, directory=d),
    "hyperband": lambda s, d: keras_tuner.Hyperband(
        s, objective="val_accuracy", max_epochs=2, hyperband_iterations=1,
        seed=0, directory=d),
    "reinforce": lambda s, d: Reinforce(
        s, objective="val_accuracy", max_trials=2, seed=0, directory=d),
    "mcts": lambda s, d: MonteCarloTreeSearch(
        s, objective="val_accuracy", max_trials=2, seed=0, directory=d),
}


@pytest.mark.parametrize("name", sorted(TUNERS))
def test_every_tuner_runs_on_the_space(name, node_data, tmp_path):
    space = GraphSearchSpace(8, 3, task="node", max_layers=2)
    tuner = TUNERS[name](space, str(tmp_path))
    search_node_task(tuner, node_data, epochs=2)
    trials = tuner.oracle.get_best_trials(10)
    assert len(trials) >= 2
    assert all(0.0 <= t.score <= 1.0 for t in trials)


def test_space_trains_on_jax(run_on_backend):
    code = """
import keras_tuner, numpy as np
from keras_nas.data import make_graph_classification
from keras_nas.spaces import GraphSearchSpace
x, a, y = make_graph_classification(12, min_nodes=5, max_nodes=8, seed=0)
space = GraphSearchSpace(1, 3, num_nodes=8, max_layers=3)
hp = keras_tuner.HyperParameters()
hp.values.update({"num_layers": 3, "layer0/conv": "gat", "layer0/heads": 2,
                  "layer1/conv": "gin", "layer1/residual": True,
                  "layer2/conv": "sage", "readout": "max"})
model = space.build(hp)
history = model.fit([x, a], y, epochs=2, batch_size=6, verbose=0)
assert np.isfinite(history.history["loss"]).all()
xp = np.pad(x, ((0, 0), (0, 2), (0, 0)))
ap = np.pad(a, ((0, 0), (0, 2), (0, 2)))
space = GraphSearchSpace(1, 3, max_layers=3)
other = space.build(hp)
other.set_weights(model.get_weights())
assert np.allclose(other.predict([xp, ap], verbose=0),
                   model.predict([x, a], verbose=0), atol=1e-5)
print("ok")
"""
    assert run_on_backend(code).strip().endswith("ok")
