"""The keras-nas tuners with keras-tuner's `distribution_strategy=`.

TensorFlow backend, 2 logical CPUs (`set_logical_device_configuration`)
and `tf.distribute.MirroredStrategy` over them: each tuner runs 2 trials
(`Darts`, `Proxyless`: their 1 trial) of a tiny `CellSearchSpace` (1
cell, 2 nodes, 4 filters; `Enas` a 1-cell NAS-Bench-201 space, `Proxyless`
a 2-block MobileNet space) on 256 digits images, 1 epoch, global batch 64;
keras-tuner builds and fits every trial's model in the strategy's scope
(`Darts`, `Enas` and `Proxyless` build their supernet there). Prints, per
tuner, the trial scores, the replicas of the supernet (`Darts`, `Enas`,
`Proxyless`), the best model's first weight type (`MirroredVariable`) and
the time.

`--role chief|worker` runs the same search in keras-tuner's chief/worker
mode (set `KERASTUNER_TUNER_ID`, `KERASTUNER_ORACLE_IP` and
`KERASTUNER_ORACLE_PORT` as for any keras-tuner search): the worker trains
its trials under the strategy; the chief serves the oracle.

Usage:

    python benchmarks/mirrored_tuners_check.py /tmp/mirrored
    python benchmarks/mirrored_tuners_check.py /tmp/m --tuners bananas,darts
"""

import argparse
import os
import time

os.environ["KERAS_BACKEND"] = "tensorflow"

import tensorflow as tf  # noqa: E402

CPU = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(
    CPU, [tf.config.LogicalDeviceConfiguration()] * 2
)

from keras_nas.data import load_digits_arrays  # noqa: E402
from keras_nas.spaces import (  # noqa: E402
    CellSearchSpace,
    MobileNetSearchSpace,
    NasBench201SearchSpace,
)
from keras_nas.tuners import (  # noqa: E402
    AgingEvolution,
    ArchitectureBayesianOptimization,
    Bananas,
    Darts,
    Enas,
    LocalSearch,
    MonteCarloTreeSearch,
    Proxyless,
    Reinforce,
)

TUNERS = {
    "evolution": AgingEvolution,
    "mcts": MonteCarloTreeSearch,
    "reinforce": Reinforce,
    "bananas": Bananas,
    "bo": ArchitectureBayesianOptimization,
    "local": LocalSearch,
    "darts": Darts,
    "enas": Enas,
    "proxyless": Proxyless,
}


def _tuner(cls, directory, strategy):
    space = CellSearchSpace(
        input_shape=(8, 8, 1),
        num_classes=10,
        num_cells=1,
        filters=4,
        num_nodes=2,
    )
    kwargs = dict(
        objective="val_accuracy",
        seed=1,
        directory=directory,
        project_name=cls.__name__,
        overwrite=True,
        distribution_strategy=strategy,
    )
    if cls is Darts:
        return cls(space, filters=4, num_cells=1, batch_size=64, **kwargs)
    if cls is Enas:
        nb201 = NasBench201SearchSpace(
            input_shape=(8, 8, 1), num_classes=10, filters=4,
            cells_per_stage=1,
        )  # fmt: skip
        return cls(
            nb201, max_trials=2, controller_steps=1, reward_batch_size=32,
            **kwargs,
        )  # fmt: skip
    if cls is Proxyless:
        mobilenet = MobileNetSearchSpace(
            (8, 8, 1), 10, stem_filters=4, stages=((8, 2, 1),),
            kernel_sizes=(3, 5), expansions=(1, 3),
        )  # fmt: skip
        return cls(mobilenet, batch_size=64, **kwargs)
    return cls(space, max_trials=2, **kwargs)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("directory")
    parser.add_argument("--tuners", default=",".join(TUNERS))
    parser.add_argument("--role", choices=("single", "chief", "worker"))
    args = parser.parse_args(argv)
    x, y = load_digits_arrays()
    x, y = x[:256], y[:256].astype("int32")
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    replicas = strategy.num_replicas_in_sync
    print("replicas", replicas, args.role or "", flush=True)
    for name in args.tuners.split(","):
        cls = TUNERS[name]
        t0 = time.time()
        tuner = _tuner(cls, args.directory, strategy)
        tuner.search(
            x[:192], y[:192], validation_data=(x[192:], y[192:]), epochs=1,
            batch_size=64, verbose=0,
        )  # fmt: skip
        if args.role == "worker":
            print(f"{cls.__name__}: worker done, {time.time() - t0:.1f} s")
            continue
        model = tuner.get_best_models(1)[0]
        scores = [float(t.score) for t in tuner.oracle.trials.values()]
        supernet = getattr(tuner, "supernet", None)
        replicas = (
            ""
            if supernet is None
            else "supernet replicas "
            f"{supernet.distribute_strategy.num_replicas_in_sync}, "
        )
        print(
            f"{cls.__name__}: {len(scores)} trials, scores {scores}, "
            f"{replicas}"
            f"best model weight {type(model.weights[0].value).__name__}, "
            f"{time.time() - t0:.1f} s",
            flush=True,
        )


if __name__ == "__main__":
    main()
