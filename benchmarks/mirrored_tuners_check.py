"""The multi-trial tuners with keras-tuner's `distribution_strategy=`.

TensorFlow backend, 2 logical CPUs (`set_logical_device_configuration`)
and `tf.distribute.MirroredStrategy` over them: `AgingEvolution`,
`MonteCarloTreeSearch` and `Reinforce` each run 2 trials of a tiny
`CellSearchSpace` (1 cell, 2 nodes, 4 filters) on 256 digits images, 1
epoch, global batch 64; keras-tuner builds and fits every trial's model in
the strategy's scope. Prints, per tuner, the trial scores, the best model's
first weight type and the time.

Usage:

    python benchmarks/mirrored_tuners_check.py /tmp/mirrored
"""

import os
import sys
import time

os.environ["KERAS_BACKEND"] = "tensorflow"

import tensorflow as tf  # noqa: E402

CPU = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(
    CPU, [tf.config.LogicalDeviceConfiguration()] * 2
)

from keras_nas.data import load_digits_arrays  # noqa: E402
from keras_nas.spaces import CellSearchSpace  # noqa: E402
from keras_nas.tuners import (  # noqa: E402
    AgingEvolution,
    MonteCarloTreeSearch,
    Reinforce,
)


def main(directory: str) -> None:
    x, y = load_digits_arrays()
    x, y = x[:256], y[:256].astype("int32")
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    print("replicas", strategy.num_replicas_in_sync)
    for cls in (AgingEvolution, MonteCarloTreeSearch, Reinforce):
        space = CellSearchSpace(
            input_shape=(8, 8, 1),
            num_classes=10,
            num_cells=1,
            filters=4,
            num_nodes=2,
        )
        t0 = time.time()
        tuner = cls(
            space,
            objective="val_accuracy",
            max_trials=2,
            seed=1,
            directory=directory,
            project_name=cls.__name__,
            overwrite=True,
            distribution_strategy=strategy,
        )
        tuner.search(
            x, y, validation_split=0.25, epochs=1, batch_size=64, verbose=0
        )
        model = tuner.get_best_models(1)[0]
        scores = [float(t.score) for t in tuner.oracle.trials.values()]
        print(
            f"{cls.__name__}: {len(scores)} trials, scores {scores}, "
            f"best model weight {type(model.weights[0]).__name__}, "
            f"{time.time() - t0:.1f} s",
            flush=True,
        )


if __name__ == "__main__":
    main(sys.argv[1])
