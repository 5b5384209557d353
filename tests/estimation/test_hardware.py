"""Tests of the hardware costs (params, MACs, FLOPs, latency) and of the
`HardwareAware` estimator."""

import math

import keras
import keras_tuner
import numpy as np
import pytest
from _estimation_testing import evolution, wrapped_random_search

from keras_nas.blocks import DARTS_V2, build_nb201_network, build_network
from keras_nas.blocks.cells import Cell, NasBench201Cell
from keras_nas.blocks.ops import SepConv
from keras_nas.estimation.hardware import (
    count_flops,
    count_macs,
    count_params,
    measure_latency,
    profile_model,
    register_layer_cost,
)
from keras_nas.estimation.hardware_aware import HardwareAware, mnas_reward
from keras_nas.estimation.partial_training import PartialTraining
from keras_nas.estimation.zero_cost import ZeroCost
from keras_nas.spaces import (
    CellSearchSpace,
    ChainSearchSpace,
    NasBench201SearchSpace,
)
from keras_nas.tensorboard import read_scalars
from keras_nas.visualize import pareto_front, plot_history

L = keras.layers


def _seq(input_shape, *layers):
    return keras.Sequential([keras.Input(input_shape), *layers])


# --- Exact counts -----------------------------------------------------------


def test_conv2d_hand_count():
    model = _seq((8, 8, 16), L.Conv2D(32, 3, padding="same"))
    macs = 8 * 8 * 3 * 3 * 16 * 32
    assert count_macs(model) == macs
    assert count_flops(model) == 2 * macs + 8 * 8 * 32  # + bias
    assert count_macs(model, batch_size=4) == 4 * macs
    assert count_params(model) == 3 * 3 * 16 * 32 + 32 == model.count_params()


def test_every_counted_layer_by_hand():
    inputs = keras.Input((8, 8, 3))
    a = L.Conv2D(8, 3, strides=2, padding="same", use_bias=False)(inputs)
    a = L.BatchNormalization()(a)  # (4, 4, 8)
    b = L.DepthwiseConv2D(3, padding="same", use_bias=False)(a)
    c = L.SeparableConv2D(16, 3, padding="same", use_bias=False)(a)
    d = L.Conv2D(16, 1, use_bias=False)(L.Add()([a, b]))
    e = L.MaxPooling2D(2)(L.Concatenate()([c, d]))  # (2, 2, 32)
    f = L.ReLU()(L.Dropout(0.5)(e))
    g = L.GlobalAveragePooling2D()(f)
    outputs = L.Dense(10, activation="softmax")(g)
    model = keras.Model(inputs, outputs)

    conv = 4 * 4 * 8 * 9 * 3
    depthwise = 4 * 4 * 8 * 9
    separable = 4 * 4 * 8 * 9 + 4 * 4 * 16 * 8
    pointwise = 4 * 4 * 16 * 8
    dense = 32 * 10
    macs = conv + depthwise + separable + pointwise + dense
    assert count_macs(model) == macs
    other = (
        2 * 4 * 4 * 8  # batch norm
        + 4 * 4 * 8  # add
        + 2 * 2 * 32 * 4  # max pooling 2x2
        + 2 * 2 * 32  # global pooling
        + 10  # dense bias
    )
    assert count_flops(model) == 2 * macs + other
    assert all(c.counted for c in profile_model(model))
    assert count_params(model) == model.count_params()
    moving_statistics = 2 * 8  # batch-norm mean and variance
    trainable = model.count_params() - moving_statistics
    assert count_params(model, trainable_only=True) == trainable


def test_flops_agree_with_tensorflow_profiler():
    if keras.backend.backend() != "tensorflow":
        pytest.skip("TensorFlow's profiler needs the TensorFlow backend")
    import tensorflow as tf
    from tensorflow.python.framework import convert_to_constants

    model = _seq(
        (8, 8, 3),
        L.Conv2D(16, 3, padding="same"),
        L.DepthwiseConv2D(3),
        L.Conv2D(8, 1, use_bias=False),
        L.Flatten(),
        L.Dense(10),
    )
    forward = tf.function(lambda x: model(x, training=False))
    concrete = forward.get_concrete_function(
        tf.TensorSpec((1, 8, 8, 3), tf.float32)
    )
    graph = convert_to_constants.convert_variables_to_constants_v2(
        concrete
    ).graph
    options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    profile = tf.compat.v1.profiler.profile(graph=graph, options=options)
    assert profile.total_float_ops == count_flops(model) == 82250


def test_nested_keras_nas_layers():
    # A SepConv op: two (depthwise 3x3 + pointwise 1x1 + BN) repeats.
    x = keras.Input((6, 6, 4))
    model = keras.Model(x, SepConv(4, 3)(x))
    per_repeat = 6 * 6 * 4 * 9 + 6 * 6 * 4 * 4
    assert count_macs(model) == 2 * per_repeat
    assert count_flops(model) == 2 * (2 * per_repeat + 2 * 6 * 6 * 4)
    paths = [c.path for c in profile_model(model)]
    assert len(paths) == 6 and all(p.startswith("sep_conv") for p in paths)

    # A DARTS_V2 normal cell: the sum of its ops' costs plus the node sums.
    s = keras.Input((4, 4, 8))
    cell = Cell(DARTS_V2, "normal", filters=8)
    model = keras.Model(s, cell(s))
    costs = profile_model(model)
    own = [c for c in costs if c.class_name == "Cell"]
    assert len(own) == 1
    assert own[0].flops == 4 * 1 * 4 * 4 * 8  # 4 nodes, one addition each
    pre = 4 * 4 * 8 * 8  # 1x1 ReLUConvBN preprocessing of s0 and s1
    sep3 = 2 * (4 * 4 * 8 * 9 + 4 * 4 * 8 * 8)
    dil3 = 4 * 4 * 8 * 9 + 4 * 4 * 8 * 8
    ops = [op for op, _ in DARTS_V2.normal]
    expected = 2 * pre + sum(
        {"sep_conv_3x3": sep3, "dil_conv_3x3": dil3}.get(op, 0) for op in ops
    )
    assert count_macs(model) == expected
    # The same cell, unbuilt and profiled on its own (it creates its
    # preprocessing layers in `build`).
    alone = Cell(DARTS_V2, "normal", filters=8)
    assert count_macs(alone, input_shape=(4, 4, 8)) == expected
    assert count_flops(alone, input_shape=(4, 4, 8)) == count_flops(model)


def test_registered_cost_of_a_custom_layer():
    @keras.saving.register_keras_serializable(package="test_hardware")
    class Scale(keras.layers.Layer):
        def call(self, x):
            return 2.0 * x

    model = _seq((3, 5), Scale())
    costs = profile_model(model)
    assert [c.counted for c in costs] == [False]
    register_layer_cost(Scale, lambda layer, ins, outs: (0, math.prod(outs[0])))
    assert count_flops(model) == 15
    with pytest.raises(ValueError, match="layer_class"):
        register_layer_cost(int, lambda *a: (0, 0))


def test_input_shape_errors():
    model = keras.Sequential([L.Dense(3)])
    with pytest.raises(ValueError, match="input_shape"):
        count_flops(model)
    assert count_macs(model, input_shape=(4,)) == 12
    fully_conv = keras.Sequential(
        [keras.Input((None, None, 3)), L.Conv2D(2, 1)]
    )
    with pytest.raises(ValueError, match="input_shape"):
        count_macs(fully_conv)
    assert count_macs(fully_conv, input_shape=(5, 5, 3)) == 5 * 5 * 3 * 2
    with pytest.raises(ValueError, match="batch_size"):
        count_flops(fully_conv, batch_size=0, input_shape=(5, 5, 3))


# --- Networks of the package ------------------------------------------------


def _cell_macs(costs, prefix):
    return sum(c.macs for c in costs if c.path.startswith(prefix + "/"))


def test_darts_network_counts_scale_with_cells():
    macs = {}
    for n in (6, 12):
        model = build_network(DARTS_V2, (8, 8, 1), 10, filters=4, num_cells=n)
        costs = profile_model(model)
        assert all(c.counted for c in costs)
        macs[n] = sum(c.macs for c in costs)
        assert count_flops(model) > 2 * macs[n] > 0
        assert count_params(model, trainable_only=True) > 0
    # 12 cells: reductions at 4 and 8; cells 2, 3 (and 6, 7) read normal
    # cells of their own stage, so they cost the same.
    assert _cell_macs(costs, "cell_2") == _cell_macs(costs, "cell_3") > 0
    assert _cell_macs(costs, "cell_6") == _cell_macs(costs, "cell_7") > 0
    assert 1.6 < macs[12] / macs[6] < 2.4


def test_spaces_and_nb201_network_are_fully_counted():
    hp = keras_tuner.HyperParameters()
    models = [
        CellSearchSpace(num_cells=2, filters=4).build(hp),
        NasBench201SearchSpace(filters=4, cells_per_stage=1).build(
            keras_tuner.HyperParameters()
        ),
        ChainSearchSpace(max_layers=3).build(keras_tuner.HyperParameters()),
        build_nb201_network(("nor_conv_3x3",) * 6, (8, 8, 1), 10, filters=4),
    ]
    for model in models:
        costs = profile_model(model)
        assert all(c.counted for c in costs), model.name
        assert count_macs(model) > 0
        assert count_params(model) == model.count_params()


def test_keras_applications_mobilenet_matches_its_paper():
    # Howard et al., 2017: 1.0 MobileNet-224 has 569M mult-adds, 4.2M params.
    model = keras.applications.MobileNet(
        weights=None, input_shape=(224, 224, 3)
    )
    costs = profile_model(model)
    assert all(c.counted for c in costs)
    assert abs(sum(c.macs for c in costs) / 569e6 - 1) < 0.002
    assert round(count_params(model, trainable_only=True) / 1e6, 1) == 4.2


def test_nb201_cell_and_resnet_block_own_flops():
    model = build_nb201_network(
        ("skip_connect",) * 6, (8, 8, 1), 10, filters=4, cells_per_stage=1
    )
    own = {c.path: c.flops for c in profile_model(model) if c.macs == 0}
    assert own["cell_0_0"] == 3 * 8 * 8 * 4
    # Node 2 reaches the output only through `none`: node 3's two other
    # edges make the only addition, and node 2's edges are not run.
    cell = NasBench201Cell(
        "|nor_conv_3x3~0|+|nor_conv_1x1~0|avg_pool_3x3~1|"
        "+|skip_connect~0|nor_conv_3x3~1|none~2|",
        4,
    )
    costs = profile_model(cell, (8, 8, 4))
    assert [c.flops for c in costs if c.class_name == "NasBench201Cell"] == [
        8 * 8 * 4
    ]
    assert "Pool" not in {c.class_name for c in costs}
    # Residual add (4x4x8) + 2x2 average pooling of the 8x8x4 shortcut.
    assert own["resblock_1"] == 4 * 4 * 8 + 4 * 4 * 4 * 4


# --- Latency ----------------------------------------------------------------


def test_measure_latency():
    model = _seq((8, 8, 1), L.Conv2D(4, 3), L.Flatten(), L.Dense(3))
    stats = measure_latency(model, batch_size=2, warmup=1, runs=5, seed=1)
    assert stats["median_ms"] > 0 and stats["p90_ms"] >= stats["min_ms"] > 0
    assert stats["runs"] == 5 and stats["batch_size"] == 2
    assert stats["backend"] == keras.backend.backend()
    with pytest.raises(ValueError, match="runs"):
        measure_latency(model, runs=0)


def test_jax_backend_counts_and_latency(run_on_backend):
    code = (
        "import keras\n"
        "from keras_nas.blocks.ops import SepConv\n"
        "from keras_nas.estimation.hardware import count_macs, "
        "measure_latency\n"
        "x = keras.Input((6, 6, 4))\n"
        "m = keras.Model(x, SepConv(4, 3)(x))\n"
        "print(keras.backend.backend(), count_macs(m), "
        "measure_latency(m, runs=2, warmup=1)['median_ms'] > 0)\n"
    )
    stdout = run_on_backend(code, "jax", timeout=120)
    macs = 2 * (6 * 6 * 4 * 9 + 6 * 6 * 4 * 4)
    assert stdout.split() == ["jax", str(macs), "True"]


# --- HardwareAware ----------------------------------------------------------


def test_mnas_reward():
    assert mnas_reward(0.8, 10.0, 10.0) == pytest.approx(0.8)
    assert mnas_reward(0.8, 20.0, 10.0) == pytest.approx(0.8 * 2**-0.07)
    assert mnas_reward(0.8, 5.0, 10.0, alpha=0.0, beta=-1.0) == 0.8
    assert mnas_reward(0.8, 20.0, 10.0, alpha=0.0, beta=-1.0) == 0.4
    with pytest.raises(ValueError, match="target"):
        mnas_reward(0.8, 1.0, 0.0)


def test_hardware_aware_arguments():
    with pytest.raises(ValueError, match="metrics"):
        HardwareAware(metrics=("watts",))
    with pytest.raises(ValueError, match="target_metric"):
        HardwareAware(metrics=("params",), target_metric="flops")
    with pytest.raises(ValueError, match="target"):
        HardwareAware(target=-1.0)
    with pytest.raises(ValueError, match="target"):
        _ = HardwareAware().objective
    assert HardwareAware(("params", "latency")).target_metric == "latency"


SPACE = ChainSearchSpace(
    max_layers=2,
    layer_types=("conv", "pool"),
    filters=(4, 16),
    kernel_sizes=(3,),
    strides=(1,),
    activations=("relu",),
    dropout_rates=(0.0,),
)


class _FixedAccuracy:
    """An inner estimator: a made-up accuracy from the hyperparameters."""

    def __init__(self, accuracy=None):
        self.accuracy = accuracy
        self.calls = 0

    def estimate(self, tuner, trial, *args, **kwargs):
        self.calls += 1
        if self.accuracy is not None:
            return {"val_accuracy": self.accuracy}
        values = trial.hyperparameters.values
        filters = sum(v for k, v in values.items() if k.endswith("/filters"))
        return {"val_accuracy": 0.5 + 0.01 * filters}


def _data(n=64):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 8, 8, 1)).astype("float32")
    return x, (x.mean(axis=(1, 2, 3)) > 0).astype("int32")


def _evolution(
    tmp_path, estimator, objective, max_trials=2, population_size=2, seed=0
):
    """An `AgingEvolution` over `SPACE` that scores with `estimator`."""
    return evolution(
        SPACE,
        tmp_path,
        estimator,
        objective=objective,
        max_trials=max_trials,
        population_size=population_size,
        seed=seed,
    )


def test_reward_objective_ranks_by_cost(tmp_path):
    estimator = HardwareAware(
        ("params", "flops"),
        _FixedAccuracy(0.9),
        target=1000.0,
        target_metric="params",
    )
    tuner = _evolution(
        tmp_path,
        estimator,
        estimator.objective,
        max_trials=8,
        population_size=4,
    )
    x, y = _data()
    tuner.search(x, y, validation_data=(x, y))
    trials = [
        t for t in tuner.oracle.trials.values() if t.status == "COMPLETED"
    ]
    assert len(trials) == 8
    for t in trials:
        params = t.metrics.get_last_value("params")
        assert t.metrics.get_last_value("flops") > 0
        assert t.score == pytest.approx(mnas_reward(0.9, params, 1000.0))
    # Equal accuracy: the reward ranks the smallest model first.
    best = tuner.oracle.get_best_trials(1)[0]
    assert best.metrics.get_last_value("params") == min(
        t.metrics.get_last_value("params") for t in trials
    )
    # Costs are cached per architecture: the inner estimator ran each trial.
    assert estimator.estimator.calls == 8
    assert estimator.num_measurements <= 8


def test_multi_objective_pareto_front(tmp_path):
    estimator = HardwareAware(("params",), _FixedAccuracy())
    tuner = _evolution(
        tmp_path,
        estimator,
        estimator.pareto_objectives(),
        max_trials=10,
        population_size=4,
        seed=1,
    )
    x, y = _data()
    tuner.search(x, y, validation_data=(x, y))
    trials = sorted(tuner.oracle.trials.values(), key=lambda t: int(t.trial_id))
    points = [
        (
            t.metrics.get_last_value("val_accuracy"),
            t.metrics.get_last_value("params"),
        )
        for t in trials
    ]
    front = pareto_front(points, ["max", "min"])
    assert front
    for i in front:  # no trial is better on both objectives
        assert not any(
            p[0] >= points[i][0] and p[1] <= points[i][1] and p != points[i]
            for p in points
        )
    fig = plot_history(tuner)
    ax = fig.axes[0]
    assert ax.get_xlabel() == "val_accuracy (max)"
    assert ax.get_ylabel() == "params (min)"
    line = [a for a in ax.get_lines() if a.get_gid() == "pareto-front"][0]
    assert sorted(line.get_xdata()) == sorted(points[i][0] for i in front)


def _hparams_sessions(logdir):
    """HParams session starts written directly in `logdir`."""
    from tensorboard.backend.event_processing import event_file_loader
    from tensorboard.plugins.hparams import plugin_data_pb2

    count = 0
    for path in logdir.glob("*tfevents*"):
        for event in event_file_loader.EventFileLoader(str(path)).Load():
            for value in event.summary.value:
                plugin = value.metadata.plugin_data
                if plugin.plugin_name == "hparams":
                    data = plugin_data_pb2.HParamsPluginData.FromString(
                        plugin.content
                    )
                    count += data.HasField("session_start_info")
    return count


def test_fit_path_is_keras_tuners_run_trial(tmp_path):
    estimator = HardwareAware(
        ("params", "flops", "latency"), target=1.0, latency_runs=3
    )
    tuner = _evolution(tmp_path, estimator, estimator.objective)
    x, y = _data()
    board = keras.callbacks.TensorBoard(str(tmp_path / "logs"))
    tuner.search(
        x, y, validation_data=(x, y), epochs=2, verbose=0, callbacks=[board]
    )
    for trial in tuner.oracle.trials.values():
        assert trial.status == "COMPLETED"
        metrics = trial.metrics
        for name in ("params", "flops", "latency", "val_accuracy", "loss"):
            assert metrics.exists(name)
        assert trial.score == pytest.approx(
            mnas_reward(
                metrics.get_last_value("val_accuracy"),
                metrics.get_last_value("latency"),
                1.0,
            )
        )
        model = tuner.hypermodel.build(trial.hyperparameters)
        assert metrics.get_last_value("params") == count_params(model)
        # keras-tuner's per-trial TensorBoard directories and checkpoint.
        run = f"{trial.trial_id}/execution0"
        scalars = read_scalars(str(tmp_path / "logs"))
        # The costs and the reward are epoch curves; nothing is logged twice
        # (`NasTuner` leaves the logging to `fit`).
        assert len(scalars[f"{run}/train"]["epoch_params"]) == 2
        assert len(scalars[f"{run}/train"]["epoch_hardware_reward"]) == 2
        assert len(scalars[f"{run}/validation"]["epoch_accuracy"]) == 2
        assert _hparams_sessions(tmp_path / "logs" / run) == 1
    assert len(tuner.get_best_models(1)) == 1
    assert estimator.logs_to_tensorboard


def test_inner_estimator_that_fits_sees_the_reward(tmp_path):
    estimator = HardwareAware(
        ("params",),
        PartialTraining(epochs=1, fraction=0.5),
        target=500.0,
        target_metric="params",
    )
    tuner = _evolution(tmp_path, estimator, estimator.objective)
    x, y = _data()
    tuner.search(x, y, validation_data=(x, y), verbose=0)
    for trial in tuner.oracle.trials.values():
        assert trial.status == "COMPLETED"
        params = trial.metrics.get_last_value("params")
        accuracy = trial.metrics.get_last_value("val_accuracy")
        assert trial.score == pytest.approx(mnas_reward(accuracy, params, 500))


def test_composes_with_zero_cost(tmp_path):
    inner = ZeroCost("synflow", batch_size=16)
    estimator = HardwareAware(("params", "flops"), inner)
    tuner = _evolution(tmp_path, estimator, inner.objective, max_trials=3)
    x, y = _data(32)
    tuner.search(x, y, validation_data=(x, y))
    for trial in tuner.oracle.trials.values():
        model = SPACE.build(trial.hyperparameters.copy())
        assert trial.metrics.get_last_value("flops") == count_flops(model)
        assert trial.score == trial.metrics.get_last_value("zero_cost_synflow")
    assert inner.num_estimates == 3


def test_zero_cost_accepts_the_reward_objective(tmp_path):
    inner = ZeroCost("synflow", batch_size=16)
    estimator = HardwareAware(
        ("params",), inner, target=500, accuracy_metric="zero_cost_synflow"
    )
    tuner = _evolution(tmp_path, estimator, estimator.objective)
    x, y = _data(32)
    tuner.search(x, y, validation_data=(x, y))
    for trial in tuner.oracle.trials.values():
        proxy = trial.metrics.get_last_value("zero_cost_synflow")
        params = trial.metrics.get_last_value("params")
        assert trial.score == pytest.approx(mnas_reward(proxy, params, 500))
    # Alone, ZeroCost still refuses an objective it does not report.
    with pytest.raises(ValueError, match="hardware_reward"):
        inner.estimate(tuner, next(iter(tuner.oracle.trials.values())), x, y)


def test_wrap_keras_tuner_tuner(tmp_path):
    estimator = HardwareAware(("macs",), _FixedAccuracy())
    tuner = wrapped_random_search(
        estimator,
        SPACE,
        tmp_path,
        objective="val_accuracy",
        max_trials=3,
        seed=0,
    )
    x, y = _data()
    tuner.search(x, y, validation_data=(x, y))
    for trial in tuner.oracle.trials.values():
        model = SPACE.build(trial.hyperparameters.copy())
        assert trial.metrics.get_last_value("macs") == count_macs(model)
