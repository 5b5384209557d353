"""MobileNetSearchSpace, the MBConv block and MobileNetGenotype."""

import subprocess
import sys

import keras
import keras_tuner
import numpy as np
import pytest
from sklearn.datasets import load_digits

from keras_nas.blocks import MBConv, MobileNetGenotype
from keras_nas.estimation import count_flops, count_macs
from keras_nas.spaces import MobileNetSearchSpace
from keras_nas.tuners import (
    AgingEvolution,
    LocalSearch,
    MonteCarloTreeSearch,
)


def tiny_space(**kwargs):
    args = dict(
        input_shape=(8, 8, 1),
        num_classes=10,
        stem_filters=8,
        stages=((8, 2, 1), (16, 2, 2)),
        kernel_sizes=(3, 5),
        expansions=(3, 6),
    )
    args.update(kwargs)
    return MobileNetSearchSpace(**args)


# ---------------------------------------------------------------------------
# The block.
# ---------------------------------------------------------------------------


def test_mbconv_shapes_and_residual():
    x = keras.ops.convert_to_tensor(
        np.random.default_rng(0).standard_normal((2, 8, 8, 8)), "float32"
    )
    block = MBConv(16, kernel_size=5, expansion=6, strides=2)
    assert tuple(block(x).shape) == (2, 4, 4, 16)
    assert tuple(block.compute_output_shape((None, 7, 7, 8))) == (
        None, 4, 4, 16,
    )  # fmt: skip
    assert not block.adds_input
    assert block.expand.filters == 48 and block.op == "mbconv_5x5_e6"
    # Stride 1, same width: the input is added. With the projection's
    # batch norm zeroed the block is the identity.
    same = MBConv(8, kernel_size=3, expansion=3)
    same(x)
    assert same.adds_input
    same.project_bn.gamma.assign(np.zeros(8, "float32"))
    np.testing.assert_allclose(same(x, training=False), x, atol=1e-6)
    plain = MBConv(8, residual=False)
    plain(x)
    assert not plain.adds_input
    # Expansion 1 has no expanding convolution.
    one = MBConv(8, expansion=1)
    one(x)
    assert one.expand is None and len(one.weights) == 1 + 4 + 1 + 4


def test_mbconv_costs():
    inputs = keras.Input((8, 8, 8))
    model = keras.Model(inputs, MBConv(8, kernel_size=5, expansion=3)(inputs))
    hidden, pixels = 24, 64
    macs = pixels * (8 * hidden + 25 * hidden + hidden * 8)
    assert count_macs(model) == macs
    # 2 FLOPs per MAC, batch norms (2 per element) and the residual add.
    bn = 2 * pixels * (hidden + hidden + 8)
    assert count_flops(model) == 2 * macs + bn + pixels * 8


def test_mbconv_config_round_trip_and_errors():
    block = MBConv(12, kernel_size=7, expansion=3, strides=2, name="b")
    clone = MBConv.from_config(block.get_config())
    assert clone.get_config() == block.get_config()
    for kwargs, name in (
        ({"strides": 3}, "strides"),
        ({"kernel_size": 0}, "kernel_size"),
        ({"expansion": 1.5}, "expansion"),
        ({"residual": "yes"}, "residual"),
    ):
        with pytest.raises(ValueError, match=f"Received: {name}="):
            MBConv(8, **kwargs)


# ---------------------------------------------------------------------------
# The genotype.
# ---------------------------------------------------------------------------


def test_genotype_module_imports_no_framework():
    code = (
        "import sys, keras_nas.blocks.mobilenet_genotype;"
        "print(sorted(m for m in ('tensorflow', 'keras', 'jax')"
        " if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True,
        check=True,
    )  # fmt: skip
    assert out.stdout.strip() == "[]"


def test_genotype_validation_and_json():
    g = MobileNetGenotype(["mbconv_3x3_e6", "zero", "mbconv_7x7_e3"])
    assert g.ops == ("mbconv_3x3_e6", "zero", "mbconv_7x7_e3")
    assert MobileNetGenotype.from_json(g.to_json()) == g
    assert g.hash == MobileNetGenotype(tuple(g.ops)).hash
    assert g.hash != MobileNetGenotype(("zero",) * 3).hash
    for bad in ((), ("conv",), ("mbconv_3x5_e6",), "mbconv_3x3_e6"):
        with pytest.raises(ValueError, match="Received: ops="):
            MobileNetGenotype(bad)
    with pytest.raises(ValueError, match="Received: text="):
        MobileNetGenotype.from_json("{")


# ---------------------------------------------------------------------------
# The space.
# ---------------------------------------------------------------------------


def test_topology_skip_rules_and_width():
    space = tiny_space()
    ops = ("mbconv_3x3_e3", "mbconv_3x3_e6", "mbconv_5x5_e3", "mbconv_5x5_e6")
    assert space.ops == ops
    # Stage 0 keeps the stem's width and stride: both blocks may be skipped;
    # stage 1 halves the resolution and doubles the width: its first block
    # never is.
    assert [b.choices for b in space.blocks] == [
        ops + ("zero",), ops + ("zero",), ops, ops + ("zero",),
    ]  # fmt: skip
    assert [b.input_shape for b in space.blocks] == [
        (8, 8, 8), (8, 8, 8), (8, 8, 8), (4, 4, 16),
    ]  # fmt: skip
    assert space.output_shape == (4, 4, 16)
    assert [b.hp_name for b in space.blocks][-1] == "stage1/block1"
    # A width multiplier rounds to multiples of 8 (MobileNetV2).
    wide = tiny_space(width_multiplier=1.5)
    assert [b.filters for b in wide.blocks] == [16, 16, 24, 24]
    assert wide.stem_output_shape == (8, 8, 16)
    assert all("zero" not in b.choices for b in tiny_space(allow_skip=False)
               .blocks)  # fmt: skip


def test_hyperparameters_genotype_and_build():
    space = tiny_space(head_filters=32, dropout=0.1)
    hp = keras_tuner.HyperParameters()
    assert space.declare_hyperparameters(hp).ops == ("mbconv_3x3_e3",) * 4
    assert sorted(hp.values) == [
        "stage0/block0", "stage0/block1", "stage1/block0", "stage1/block1",
    ]  # fmt: skip
    g = MobileNetGenotype(
        ("zero", "mbconv_5x5_e6", "mbconv_3x3_e3", "zero")
    )
    values = space.hyperparameters(g)
    assert space.genotype({**values, "tuner/epochs": 2}) == g
    for name, value in values.items():
        hp.values[name] = value
    model = space.build(hp)
    names = [layer.name for layer in model.layers]
    assert "stage0_block0" not in names and "stage1_block1" not in names
    assert model.get_layer("stage0_block1").op == "mbconv_5x5_e6"
    assert "head_conv" in names and "dropout" in names
    assert model.optimizer is not None
    assert model.predict(np.zeros((3, 8, 8, 1)), verbose=0).shape == (3, 10)
    with pytest.raises(ValueError, match="stage1/block0"):
        space.check_genotype(("zero",) * 4)  # a stride-2 block skipped
    with pytest.raises(ValueError, match="missing"):
        space.genotype({"stage0/block0": "zero"})


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"stages": ()}, "stages"),
        ({"stages": ((8, 1, 3),)}, "stages"),
        ({"stages": ((8, 0, 1),)}, "stages"),
        ({"stem_strides": 4}, "stem_strides"),
        ({"width_multiplier": 0}, "width_multiplier"),
        ({"kernel_sizes": ()}, "kernel_sizes"),
        ({"expansions": (3, 0)}, "expansions"),
        ({"allow_skip": 1}, "allow_skip"),
        ({"input_shape": (8, 8)}, "input_shape"),
        ({"head_filters": 0}, "head_filters"),
    ],
)
def test_argument_errors(kwargs, name):
    with pytest.raises(ValueError, match=f"Received: {name}="):
        tiny_space(**kwargs)


# ---------------------------------------------------------------------------
# Searching with keras-tuner's tuners and ours.
# ---------------------------------------------------------------------------

OBJ = "val_accuracy"
TUNERS = {
    "random": lambda space, d: keras_tuner.RandomSearch(
        space, max_trials=2, seed=0, directory=d, objective=OBJ
    ),
    "hyperband": lambda space, d: keras_tuner.Hyperband(
        space, max_epochs=1, hyperband_iterations=2, seed=0, directory=d,
        objective=OBJ,
    ),
    "evolution": lambda space, d: AgingEvolution(
        space, objective=OBJ, max_trials=2, population_size=1, seed=0,
        directory=d,
    ),
    "local_search": lambda space, d: LocalSearch(
        space, objective=OBJ, max_trials=2, seed=0, directory=d
    ),
    "mcts": lambda space, d: MonteCarloTreeSearch(
        space, objective=OBJ, max_trials=2, seed=0, directory=d
    ),
}  # fmt: skip


@pytest.fixture(scope="module")
def digits():
    data = load_digits()
    x = (data.images[:64] / 16.0).reshape(-1, 8, 8, 1).astype("float32")
    return x, data.target[:64]


@pytest.mark.parametrize("tuner_name", sorted(TUNERS))
def test_tiny_search_on_digits(tuner_name, digits, tmp_path):
    x, y = digits
    space = tiny_space(expansions=(3,))
    tuner = TUNERS[tuner_name](space, str(tmp_path))
    tuner.search(
        x, y, epochs=1, batch_size=64, validation_split=0.25, verbose=0
    )
    trials = [
        t for t in tuner.oracle.trials.values() if t.status == "COMPLETED"
    ]
    assert len(trials) >= 2
    for trial in trials:
        assert 0.0 <= trial.score <= 1.0
        genotype = space.genotype(trial.hyperparameters)
        assert len(genotype.ops) == len(space.blocks)
    model = tuner.get_best_models()[0]
    assert model.predict(x[:4], verbose=0).shape == (4, 10)
