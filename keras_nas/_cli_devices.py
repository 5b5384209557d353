"""`keras-nas search --devices`: the local devices every trial trains on.

- absent: Keras' default placement (the first GPU if any, else the CPU);
- `cpu`: accelerators hidden from TensorFlow and JAX (set before either is
  imported), everything on the CPU;
- `N` or `all`: data-parallel training on the first N (or all) local
  devices, each trial's model (and the supernet of the one-shot tuners
  `darts`, `gdas`, `pc-darts`, `enas`, `proxyless`) built, compiled and
  fitted on them, and the best architecture retrained on them.
  `--batch-size` is the global batch, split across the devices. With 1
  device no distribution is set up.
  - TensorFlow backend: a `tf.distribute.MirroredStrategy` over its GPUs if
    any, else its (logical) CPUs, handed to the tuner as keras-tuner's
    `distribution_strategy=`.
  - JAX backend: `keras.distribution.DataParallel` over JAX's devices
    (`keras.distribution.list_devices()`), set for the whole process with
    `keras.distribution.set_distribution` before any model is built (the
    tuners keep it across the Keras session they clear before each trial,
    `keras_nas.tuners._build`). Every batch must split evenly over the
    devices (Keras' JAX data sharding): `--batch-size` must be a multiple
    of N, and `fit_to_devices` drops the last few (< N) examples of each
    array split so that the last batch splits too.

Several machines, or several trials at a time, use keras-tuner's
`KERASTUNER_*` variables (README, "Scaling out"); `--devices` then applies
to each worker's trials. Nothing here imports Keras at module level.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
from typing import Any

from keras_nas._cli_env import UsageError, quietly


def hide_accelerators(args: argparse.Namespace) -> None:
    """`--devices cpu`: hides GPUs from TensorFlow and JAX; must run before
    either is imported (tfds imports TensorFlow when the data loads)."""
    if getattr(args, "devices", None) == "cpu":
        os.environ["CUDA_VISIBLE_DEVICES"] = "-1"
        os.environ["JAX_PLATFORMS"] = "cpu"


def _local_devices(tf: Any) -> list[str]:
    """TensorFlow's logical GPUs, else its logical CPUs, as names."""
    devices = tf.config.list_logical_devices("GPU")
    devices = devices or tf.config.list_logical_devices("CPU")
    return [d.name for d in devices]


def _short(name: str) -> str:
    # "/job:localhost/replica:0/task:0/device:CPU:1" -> "cpu:1"
    return name.rsplit("device:", 1)[-1].lower()


def make_strategy(args: argparse.Namespace) -> tuple[Any, str | None]:
    """The `distribution_strategy` for `--devices`, and a line saying so.

    On the JAX backend the strategy is always None: `keras.distribution.
    DataParallel` is set for the process instead (module docstring).

    Returns:
        `(strategy, line)`: `strategy` is None when no `tf.distribute`
        strategy applies (option absent, `cpu`, one device, JAX); `line`
        is None when the option is absent.

    Raises:
        UsageError: more devices asked for than are present, a backend
            other than TensorFlow or JAX, or (JAX) a `--batch-size` that
            does not split over the devices.
    """
    devices = getattr(args, "devices", None)
    if devices is None:
        return None, None
    if devices == "cpu":
        return None, "devices: CPU only (--devices cpu: accelerators hidden)"
    with quietly(args.verbose):
        import keras
    backend = keras.backend.backend()
    if backend == "jax":
        present = list(keras.distribution.list_devices())
    elif backend == "tensorflow":
        import tensorflow as tf

        present = _local_devices(tf)
    else:
        raise UsageError(
            "--devices N|all trains on several devices with "
            "tf.distribute.MirroredStrategy (KERAS_BACKEND=tensorflow) or "
            "keras.distribution.DataParallel (KERAS_BACKEND=jax). "
            f"Received: devices={devices}, backend={backend}"
        )
    names = ", ".join(_short(d) for d in present)
    if devices != "all" and devices > len(present):
        raise UsageError(
            f"--devices {devices} asks for more devices than the "
            f"{len(present)} present ({names}). Received: devices={devices}"
        )
    chosen = present if devices == "all" else present[:devices]
    shown = ", ".join(_short(d) for d in chosen)
    if len(chosen) == 1:
        if backend == "jax":  # One device: no distribution left set.
            keras.distribution.set_distribution(None)
        return None, f"devices: 1 device ({shown}), no distribution"
    if backend == "jax":
        if args.batch_size % len(chosen):
            raise UsageError(
                f"--batch-size must be a multiple of the {len(chosen)} "
                "devices: keras.distribution.DataParallel splits every "
                "batch evenly over them. Received: "
                f"batch_size={args.batch_size}, devices={devices}"
            )
        keras.distribution.set_distribution(
            keras.distribution.DataParallel(devices=chosen)
        )
        return None, (
            f"devices: {shown} (keras.distribution.DataParallel: each trial "
            f"data-parallel, global batch {args.batch_size})"
        )
    strategy = tf.distribute.MirroredStrategy(chosen)
    return strategy, (
        f"devices: {shown} (MirroredStrategy: each trial data-parallel, "
        f"global batch {args.batch_size})"
    )


def fit_to_devices(data: Any, batch_size: int) -> tuple[Any, str | None]:
    """`data` with every batch splittable over the devices of the JAX
    `DataParallel` distribution in effect, and a line saying what was
    dropped (None if nothing).

    Each array split keeps its first `len - len % N` examples (N devices),
    so that its last, partial batch splits too (`batch_size`, the
    pipelines' batch size, is a multiple of N); each batch of a `tf.data`
    pipeline keeps its first `size - size % N`. Without a distribution
    (TensorFlow, one device), `data` as it is.
    """
    import keras

    if keras.backend.backend() != "jax":
        return data, None
    distribution = keras.distribution.distribution()
    if distribution is None:
        return data, None
    n = int(distribution.device_mesh.shape[0])
    kept, dropped = {}, []
    for split in ("train", "validation", "test"):
        if data.is_arrays:
            x, y = getattr(data, split)
            size = len(y) - len(y) % n
            kept[split] = (x[:size], y[:size])
            lost = len(y) - size
        else:
            size = data.sizes()[split]
            kept[split] = _trim_batches(
                getattr(data, split), n, size, batch_size
            )
            # Only the last, partial batch can lose rows.
            lost = 0 if size is None else size % batch_size % n
        if lost:
            dropped.append(f"{lost} {split}")
    return dataclasses.replace(data, **kept), (
        f"devices: dropped the last {', '.join(dropped)} example(s), so "
        f"that every batch splits over the {n} devices"
        if dropped
        else None
    )


def _trim_batches(
    dataset: Any, n: int, size: int | None, batch_size: int
) -> Any:
    """Each `(x, y)` batch of `dataset` cut to a multiple of `n` rows;
    batches of fewer than `n` rows left out (an empty batch would make a
    NaN loss).

    The filter hides the number of batches from tf.data; when the split's
    `size` (examples) is known, the batches of `batch_size` (a multiple of
    `n`) that remain are counted and asserted, so Keras knows the epoch's
    length (without it Keras warns "Your input ran out of data" at the end
    of every `fit`'s first epoch).
    """
    import tensorflow as tf

    def trim(x, y):
        rows = tf.shape(y)[0] - tf.shape(y)[0] % n
        return x[:rows], y[:rows]

    trimmed = dataset.map(trim).filter(lambda x, y: tf.shape(y)[0] > 0)
    if size is None:
        return trimmed
    batches = size // batch_size + (size % batch_size >= n)
    return trimmed.apply(tf.data.experimental.assert_cardinality(batches))


def strategy_scope(strategy: Any) -> contextlib.AbstractContextManager:
    """`strategy.scope()`, or nothing without a strategy."""
    if strategy is None:
        return contextlib.nullcontext()
    return strategy.scope()
