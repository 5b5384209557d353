import csv
import itertools
import os

import keras_tuner
import numpy as np
import pytest

from keras_nas.blocks.genotypes import NB201_EDGES, NasBench201Genotype
from keras_nas.blocks.registry import NB201_OPS
from keras_nas.spaces import (
    NasBench201SearchSpace,
    nb201_genotype_from_hyperparameters,
    nb201_hyperparameters_from_genotype,
)
from keras_nas.spaces.nas_bench_201_space import NB201_HP_NAMES

TABLE = "/work/shared/benchmarks/nas-bench-201/cifar10.csv"
ARCHS = [
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|"
    "+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|",
    "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|"
    "+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|",
    "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|",
]


@pytest.mark.parametrize("arch", ARCHS)
def test_round_trip_arch_strings(arch):
    hp = nb201_hyperparameters_from_genotype(arch)
    g = nb201_genotype_from_hyperparameters(hp)
    assert g.to_string() == arch
    assert nb201_hyperparameters_from_genotype(g) == hp


@pytest.mark.skipif(not os.path.exists(TABLE), reason="no NB201 table")
def test_round_trip_benchmark_table():
    with open(TABLE) as f:
        archs = [row["arch"] for row in csv.DictReader(f)]
    assert len(archs) == 5**6
    for arch in archs:
        hp = nb201_hyperparameters_from_genotype(arch)
        assert nb201_genotype_from_hyperparameters(hp).to_string() == arch


def test_one_to_one_on_whole_space():
    seen = set()
    for ops in itertools.product(NB201_OPS, repeat=len(NB201_EDGES)):
        hp = dict(zip(NB201_HP_NAMES, ops, strict=True))
        text = nb201_genotype_from_hyperparameters(hp).to_string()
        seen.add(text)
        assert nb201_hyperparameters_from_genotype(text) == hp
    assert len(seen) == 5**6


def test_declared_hyperparameters():
    space = NasBench201SearchSpace((8, 8, 1), 10, filters=4, cells_per_stage=1)
    hp = keras_tuner.HyperParameters()
    g = space.declare_hyperparameters(hp)
    assert isinstance(g, NasBench201Genotype)
    assert [p.name for p in hp.space] == list(NB201_HP_NAMES)
    for p in hp.space:
        assert isinstance(p, keras_tuner.engine.hyperparameters.Choice)
        assert tuple(p.values) == NB201_OPS
        assert not p.ordered
    # From a HyperParameters object, extra keys ignored.
    hp.Fixed("tuner/epochs", 3)
    assert space.genotype(hp) == g


def test_conversion_errors():
    with pytest.raises(ValueError, match="missing.*edge_3_2"):
        nb201_genotype_from_hyperparameters(
            {n: "none" for n in NB201_HP_NAMES[:5]}
        )
    bad = {n: "none" for n in NB201_HP_NAMES}
    bad["edge_2_1"] = "sep_conv_3x3"
    with pytest.raises(ValueError, match="Received: values\\['edge_2_1'\\]"):
        nb201_genotype_from_hyperparameters(bad)
    with pytest.raises(ValueError, match="Received: values="):
        nb201_genotype_from_hyperparameters([1, 2])
    with pytest.raises(ValueError, match="Received: genotype="):
        nb201_hyperparameters_from_genotype(42)
    with pytest.raises(ValueError, match="Received: genotype="):
        nb201_hyperparameters_from_genotype(
            NasBench201Genotype(("sep_conv_3x3",) + ("none",) * 5)
        )


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"input_shape": (8, 8)}, "input_shape"),
        ({"num_classes": 1}, "num_classes"),
        ({"filters": 0}, "filters"),
        ({"cells_per_stage": 1.5}, "cells_per_stage"),
        ({"learning_rate": -1}, "learning_rate"),
        ({"optimizer": "nope"}, "optimizer"),
    ],
)
def test_bad_arguments(kwargs, name):
    with pytest.raises(ValueError, match=f"Received: {name}="):
        NasBench201SearchSpace(**kwargs)


def test_build_and_train_one_step():
    space = NasBench201SearchSpace((8, 8, 1), 3, filters=4, cells_per_stage=1)
    hp = keras_tuner.HyperParameters()
    for name, value in nb201_hyperparameters_from_genotype(ARCHS[0]).items():
        hp.values[name] = value
    model = space.build(hp)
    assert model.loss == "sparse_categorical_crossentropy"
    x = np.random.default_rng(0).random((4, 8, 8, 1)).astype("float32")
    y = np.array([0, 1, 2, 0])
    history = model.fit(x, y, epochs=1, batch_size=4, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert "accuracy" in history.history
    probs = model.predict(x, verbose=0)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
