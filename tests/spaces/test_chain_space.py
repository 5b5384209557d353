import keras_tuner
import numpy as np
import pytest

from keras_nas.spaces import ChainSearchSpace


def declared(space, values=None):
    hp = keras_tuner.HyperParameters()
    if values:
        hp.values.update(values)
    specs = space.declare_hyperparameters(hp)
    return hp, specs


def test_conditional_hyperparameters():
    space = ChainSearchSpace((8, 8, 1), 10, max_layers=3)
    hp, specs = declared(space)
    names = {p.name for p in hp.space}
    for i in range(3):
        for key in ("type", "filters", "kernel_size", "strides", "pool_type",
                    "units", "activation", "dropout"):
            assert f"layer{i}/{key}" in names
    # Defaults: one conv layer; pool/dense parameters are inactive.
    assert [s["type"] for s in specs] == ["conv"]
    assert hp.is_active("layer0/filters")
    assert not hp.is_active("layer0/units")
    assert not hp.is_active("layer1/type")

    hp, specs = declared(
        space,
        {"num_layers": 2, "layer0/type": "pool", "layer1/type": "dense"},
    )
    assert [s["type"] for s in specs] == ["pool", "dense"]
    assert set(specs[0]) == {"type", "pool_type"}
    assert set(specs[1]) == {"type", "units", "activation", "dropout"}
    assert hp.is_active("layer1/units")
    assert not hp.is_active("layer1/filters")
    assert not hp.is_active("layer2/type")


def random_values(space, seed):
    hp, _ = declared(space)
    oracle = keras_tuner.oracles.RandomSearchOracle(
        hyperparameters=hp, seed=seed, max_trials=1
    )
    return oracle._random_values()


@pytest.mark.parametrize("input_shape", [(8, 8, 1), (2, 2, 3), (1, 1, 1)])
def test_random_architectures_build_on_small_inputs(input_shape):
    space = ChainSearchSpace(
        input_shape, 4, max_layers=5, filters=(2, 4), units=(4,),
        strides=(2,), kernel_sizes=(3,),
    )
    x = np.zeros((2,) + input_shape, "float32")
    for seed in range(6):
        hp, _ = declared(space, random_values(space, seed))
        model = space.build(hp)
        assert model(x).shape == (2, 4)


def test_skips_strides_and_pools_below_one_pixel():
    space = ChainSearchSpace((2, 2, 1), 3, max_layers=4, filters=(2,))
    values = {"num_layers": 4}
    for i in range(4):
        values[f"layer{i}/type"] = "pool" if i % 2 else "conv"
        values[f"layer{i}/strides"] = 2
    hp, _ = declared(space, values)
    model = space.build(hp)
    convs = [layer for layer in model.layers if "conv" in layer.name]
    pools = [layer for layer in model.layers if "pool" in layer.name
             and "global" not in layer.name]
    assert [c.strides for c in convs] == [(2, 2), (1, 1)]
    assert pools == []
    assert model.output_shape == (None, 3)


def test_vector_inputs_and_flatten():
    space = ChainSearchSpace((5,), 3, max_layers=2, layer_types=("dense",))
    hp, specs = declared(space, {"num_layers": 2})
    assert [s["type"] for s in specs] == ["dense", "dense"]
    assert space.build(hp).output_shape == (None, 3)
    space = ChainSearchSpace((4, 4, 1), 3, global_pooling="flatten")
    hp, _ = declared(space, {"num_layers": 2, "layer1/type": "dense"})
    model = space.build(hp)
    assert any(layer.__class__.__name__ == "Flatten" for layer in model.layers)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"input_shape": (4, 4)}, "input_shape"),
        ({"input_shape": (4,)}, "layer_types"),
        ({"num_classes": 1}, "num_classes"),
        ({"max_layers": 0}, "max_layers"),
        ({"min_layers": 3, "max_layers": 2}, "min_layers"),
        ({"layer_types": ("conv", "lstm")}, "layer_types"),
        ({"filters": 16}, "filters"),
        ({"kernel_sizes": (3, -1)}, "kernel_sizes"),
        ({"pool_types": ("median",)}, "pool_types"),
        ({"activations": ("relu", "nope")}, "activations"),
        ({"dropout_rates": (0.0, 1.0)}, "dropout_rates"),
        ({"global_pooling": "sum"}, "global_pooling"),
        ({"batch_norm": None}, "batch_norm"),
        ({"optimizer": 3}, "optimizer"),
    ],
)
def test_bad_arguments(kwargs, name):
    with pytest.raises(ValueError, match=f"Received: {name}="):
        ChainSearchSpace(**kwargs)


def test_build_and_train_one_step():
    space = ChainSearchSpace((8, 8, 1), 3, max_layers=3, filters=(4,))
    hp, _ = declared(
        space,
        {"num_layers": 3, "layer0/type": "sep_conv", "layer1/type": "pool",
         "layer2/type": "dense", "layer2/dropout": 0.25},
    )
    model = space.build(hp)
    assert model.loss == "sparse_categorical_crossentropy"
    x = np.random.default_rng(0).random((4, 8, 8, 1)).astype("float32")
    history = model.fit(x, np.array([0, 1, 2, 0]), epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert "accuracy" in history.history
    np.testing.assert_allclose(
        model.predict(x, verbose=0).sum(axis=1), 1.0, rtol=1e-5
    )
