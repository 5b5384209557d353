"""One-shot supernet (TF): where the time to the first step goes.

One process: builds the micro `OneShotSupernet(search_space="cell")` of
`one_shot_reference.py` (8 filters, 5 cells, batch 16, 16x16x3, 10
classes), compiles it as that script does and takes two one-batch `fit`
calls. Prints the CPU time (`time.process_time`) of each stage: the
layers' construction (`Topology.make_layers`), their build
(`Topology.build`), the optimizer's build, the first `fit` call (trace of
the sampled path's pieces and one step) and the second; with the counts
of layers and variables.

`--sublayers` also times the candidate ops' Keras sublayers alone: as
many `BatchNormalization`, 1x1 `Conv2D` and 3x3 `DepthwiseConv2D` layers
as the supernet has, constructed and built through `_op_numerics._build`,
against the same variables made by `add_weight` on one layer (what ops
owning their weights would pay); both without automatic garbage
collection, as the supernet is built (`keras_nas._gc`).

Usage:

    KERAS_BACKEND=tensorflow python benchmarks/one_shot_construction.py \
        --threads 1 --sublayers
"""

import argparse
import functools
import json
import os
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import numpy as np  # noqa: E402


def _timed(table: dict, owner, name: str, label: str) -> None:
    fn = getattr(owner, name)

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        start = time.process_time()
        try:
            return fn(*args, **kwargs)
        finally:
            table[label] = table.get(label, 0.0) + (
                time.process_time() - start
            )

    setattr(owner, name, wrapper)


def stages() -> dict:
    import keras

    from keras_nas.supernet import OneShotSupernet, one_shot, topology

    table: dict = {}
    _timed(table, topology.Topology, "make_layers", "make_layers_cpu_s")
    _timed(table, topology.Topology, "build", "build_cpu_s")
    _timed(table, one_shot.OneShotSupernet, "_build_optimizer",
           "optimizer_build_cpu_s")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 16, 16, 3)).astype("float32")
    y = rng.integers(0, 10, size=16).astype("int32")
    c0 = time.process_time()
    net = OneShotSupernet(
        search_space="cell", input_shape=(16, 16, 3), num_classes=10,
        num_nodes=4, num_cells=5, filters=8, seed=0)
    net.compile(
        optimizer=keras.optimizers.SGD(
            0.025, momentum=0.9, global_clipnorm=5.0),
        step="compiled")
    c1 = time.process_time()
    net.fit(x, y, batch_size=16, epochs=1, verbose=0)
    c2 = time.process_time()
    net.fit(x, y, batch_size=16, epochs=1, verbose=0)
    c3 = time.process_time()
    kinds = {}
    for layer in net._flatten_layers(include_self=False):
        kinds[type(layer).__name__] = kinds.get(type(layer).__name__, 0) + 1
    table.update(
        construction_and_compile_cpu_s=c1 - c0,
        first_fit_cpu_s=c2 - c1,
        second_fit_cpu_s=c3 - c2,
        first_step_cpu_s=c2 - c0,
        layers=sum(kinds.values()),
        variables=len(net.variables),
        optimizer_variables=len(net.optimizer.variables),
        sublayers={k: kinds.get(k, 0) for k in (
            "BatchNormalization", "Conv2D", "DepthwiseConv2D")},
    )
    return table


def sublayers(counts: dict) -> dict:
    import keras

    from keras_nas._backend import variable_creation_scope
    from keras_nas._gc import deferred_collection
    from keras_nas.blocks._op_numerics import (
        _batch_norm,
        _build,
        _torch_uniform,
    )

    nb, nc = counts["BatchNormalization"], counts["Conv2D"]
    nd = counts["DepthwiseConv2D"]
    shape = (None, 8, 8, 8)

    def host(shape, dtype=None):
        return np.zeros(shape, np.float32)

    with deferred_collection(), variable_creation_scope():
        c0 = time.process_time()
        layers = [_batch_norm() for _ in range(nb)]
        layers += [keras.layers.Conv2D(
            8, 1, use_bias=False, kernel_initializer=_torch_uniform())
            for _ in range(nc)]
        layers += [keras.layers.DepthwiseConv2D(
            3, use_bias=False, depthwise_initializer=_torch_uniform(8))
            for _ in range(nd)]
        c1 = time.process_time()
        for layer in layers:
            _build(layer, shape)
        c2 = time.process_time()
        owner = keras.layers.Layer()
        shapes = [(8,)] * (4 * nb) + [(1, 1, 8, 8)] * nc
        for s in shapes + [(3, 3, 8, 1)] * nd:
            owner.add_weight(shape=s, initializer=host)
        c3 = time.process_time()
    return {
        "sublayers_construction_cpu_s": c1 - c0,
        "sublayers_build_cpu_s": c2 - c1,
        "same_variables_on_one_layer_cpu_s": c3 - c2,
        "variables": 4 * nb + nc + nd,
    }


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--sublayers", action="store_true")
    args = p.parse_args()
    import keras

    if keras.backend.backend() != "tensorflow":
        raise SystemExit("Expected KERAS_BACKEND=tensorflow.")
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    result = stages()
    if args.sublayers:
        result["sublayers_alone"] = sublayers(result["sublayers"])
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
