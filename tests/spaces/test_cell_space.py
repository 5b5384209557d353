import random

import keras_tuner
import numpy as np
import pytest

from keras_nas.blocks.genotypes import (
    AMOEBANET_A,
    DARTS_V1,
    DARTS_V2,
    Genotype,
)
from keras_nas.blocks.registry import DARTS_OPS
from keras_nas.spaces import (
    CellSearchSpace,
    genotype_from_hyperparameters,
    hyperparameters_from_genotype,
)


def random_genotype(rng, num_nodes, ops=DARTS_OPS, same=False):
    def cell():
        return [
            (rng.choice(ops), rng.randrange(i + 2))
            for i in range(num_nodes)
            for _ in range(2)
        ]

    normal = cell()
    return Genotype(normal=normal, reduce=normal if same else cell())


@pytest.mark.parametrize("genotype", [DARTS_V1, DARTS_V2])
def test_round_trip_published(genotype):
    values = hyperparameters_from_genotype(genotype, num_cells=8, filters=16)
    assert values["num_cells"] == 8 and values["filters"] == 16
    assert genotype_from_hyperparameters(values) == genotype
    assert hyperparameters_from_genotype(
        genotype_from_hyperparameters(values), num_cells=8, filters=16
    ) == values


def test_darts_v2_values():
    values = hyperparameters_from_genotype(DARTS_V2)
    assert values["normal/node0/op0"] == "sep_conv_3x3"
    assert values["normal/node0/input0"] == 0
    assert values["normal/node3/op1"] == "dil_conv_3x3"
    assert values["normal/node3/input1"] == 2
    assert values["reduce/node3/input1"] == 1
    assert len(values) == 2 * 4 * 2 * 2


@pytest.mark.parametrize("num_nodes", [1, 2, 5])
def test_round_trip_random_infers_num_nodes(num_nodes):
    rng = random.Random(num_nodes)
    for _ in range(20):
        g = random_genotype(rng, num_nodes)
        values = hyperparameters_from_genotype(g)
        back = genotype_from_hyperparameters(values)
        assert back == g and back.num_nodes == num_nodes


def test_mirrored_reduction_cell():
    g = random_genotype(random.Random(0), 3, same=True)
    values = hyperparameters_from_genotype(g, search_reduction=False)
    assert not any(k.startswith("reduce/") for k in values)
    assert genotype_from_hyperparameters(values) == g
    with pytest.raises(ValueError, match="search_reduction=False"):
        hyperparameters_from_genotype(DARTS_V2, search_reduction=False)


def test_conversion_errors():
    with pytest.raises(ValueError, match="normal_concat"):
        hyperparameters_from_genotype(AMOEBANET_A)
    with pytest.raises(ValueError, match="Received: genotype="):
        hyperparameters_from_genotype("not json")
    values = hyperparameters_from_genotype(DARTS_V2)
    del values["normal/node2/input1"]
    with pytest.raises(ValueError, match="missing.*normal/node2/input1"):
        genotype_from_hyperparameters(values)
    with pytest.raises(ValueError, match="Received: values="):
        genotype_from_hyperparameters({"num_cells": 3})
    values = hyperparameters_from_genotype(DARTS_V2)
    values["normal/node0/input0"] = 5
    with pytest.raises(ValueError, match="out of range"):
        genotype_from_hyperparameters(values)


def test_declared_hyperparameters():
    space = CellSearchSpace(
        (8, 8, 1), 10, num_nodes=3, num_cells=(1, 2), filters=4
    )
    hp = keras_tuner.HyperParameters()
    g = space.declare_hyperparameters(hp)
    assert g.num_nodes == 3
    by_name = {p.name: p for p in hp.space}
    assert by_name["num_cells"].values == [1, 2]
    assert by_name["filters"].__class__.__name__ == "Fixed"
    for kind in ("normal", "reduce"):
        for i in range(3):
            for k in range(2):
                assert by_name[f"{kind}/node{i}/input{k}"].values == list(
                    range(i + 2)
                )
                assert "none" not in by_name[f"{kind}/node{i}/op{k}"].values
    assert len(hp.space) == 2 + 2 * 3 * 2 * 2
    assert space.hyperparameters(g) == {
        k: v for k, v in hp.values.items() if "/" in k
    }
    mirrored = CellSearchSpace(search_reduction=False, num_nodes=2)
    hp = keras_tuner.HyperParameters()
    g = mirrored.declare_hyperparameters(hp)
    assert g.reduce == g.normal
    assert not any(p.name.startswith("reduce/") for p in hp.space)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"input_shape": (64,)}, "input_shape"),
        ({"input_shape": "8x8"}, "input_shape"),
        ({"num_classes": 0}, "num_classes"),
        ({"ops": ["sep_conv_3x3", "bogus"]}, "ops"),
        ({"ops": []}, "ops"),
        ({"num_nodes": 0}, "num_nodes"),
        ({"num_cells": (2, 0)}, "num_cells"),
        ({"filters": "16"}, "filters"),
        ({"search_reduction": "yes"}, "search_reduction"),
        ({"learning_rate": 0}, "learning_rate"),
        ({"drop_path_rate": 1.0}, "drop_path_rate"),
        ({"auxiliary": 1}, "auxiliary"),
    ],
)
def test_bad_arguments(kwargs, name):
    with pytest.raises(ValueError, match=f"Received: {name}="):
        CellSearchSpace(**kwargs)


def test_build_and_train_one_step():
    space = CellSearchSpace(
        (8, 8, 1), 3, num_nodes=2, num_cells=(1, 2), filters=4
    )
    hp = keras_tuner.HyperParameters()
    hp.values.update(
        hyperparameters_from_genotype(
            random_genotype(random.Random(1), 2), num_cells=2, filters=4
        )
    )
    model = space.build(hp)
    assert model.output_shape == (None, 3)
    x = np.random.default_rng(0).random((4, 8, 8, 1)).astype("float32")
    y = np.array([0, 1, 2, 0])
    history = model.fit(x, y, epochs=1, batch_size=4, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert "accuracy" in history.history
    np.testing.assert_allclose(
        model.predict(x, verbose=0).sum(axis=1), 1.0, rtol=1e-5
    )


def test_auxiliary_head_fits_with_plain_labels(tmp_path):
    space = CellSearchSpace(
        (8, 8, 1), 3, num_nodes=1, num_cells=3, filters=4, auxiliary=True
    )
    x = np.random.default_rng(0).random((8, 8, 8, 1)).astype("float32")
    y = np.array([0, 1, 2, 0, 1, 2, 0, 1])
    tuner = keras_tuner.RandomSearch(
        space,
        objective="val_accuracy",
        max_trials=1,
        directory=str(tmp_path),
    )
    tuner.search(x, y, epochs=1, validation_data=(x, y), verbose=0)
    trial = tuner.oracle.get_best_trials()[0]
    assert 0.0 <= trial.score <= 1.0
    model = tuner.get_best_models()[0]
    assert set(model.output) == {"predictions", "auxiliary"}
    history = space.fit(
        tuner.get_best_hyperparameters()[0], model, x, y=y,
        validation_split=0.25, epochs=1, verbose=0,
    )
    assert "accuracy" in history.history
    assert "val_accuracy" in history.history
