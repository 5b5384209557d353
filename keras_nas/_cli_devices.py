"""`keras-nas search --devices`: the local devices every trial trains on.

- absent: Keras' default placement (the first GPU if any, else the CPU);
- `cpu`: accelerators hidden from TensorFlow and JAX (set before either is
  imported), everything on the CPU;
- `N` or `all`: data-parallel training on the first N (or all) local
  devices: GPUs when TensorFlow sees any, else its (logical) CPUs. On the
  TensorFlow backend a `tf.distribute.MirroredStrategy` over them is handed
  to the tuner as keras-tuner's `distribution_strategy=`: each trial's model
  (and the supernet of the one-shot tuners `darts`, `gdas`, `pc-darts`,
  `enas`, and `proxyless` on the cell space) is built, compiled and fitted
  in its scope, and the best architecture is retrained in it.
  `--batch-size` is the global batch, split across the devices. With 1
  device no strategy is made.

Several machines, or several trials at a time, use keras-tuner's
`KERASTUNER_*` variables (README, "Scaling out"); `--devices` then applies
to each worker's trials. Nothing here imports Keras at module level.
"""

from __future__ import annotations

import argparse
import contextlib
import os
from typing import Any

from keras_nas._cli_env import UsageError, quietly


def _one_device_only(args: argparse.Namespace) -> str | None:
    """Why the search cannot use several devices, or None."""
    # On the cell space --tuner proxyless is the DARTS supernet's binary
    # relaxation, which is distribution-aware.
    if args.tuner == "proxyless" and args.space != "cell":
        return "ProxylessSupernet's step is not distribution-aware"
    return None


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

    Returns:
        `(strategy, line)`: `strategy` is None when no strategy applies
        (option absent, `cpu`, or one device); `line` is None when the
        option is absent.

    Raises:
        UsageError: more devices asked for than are present, a backend
            other than TensorFlow, or a tuner that cannot use them.
    """
    devices = getattr(args, "devices", None)
    if devices is None:
        return None, None
    if devices == "cpu":
        return None, "devices: CPU only (--devices cpu: accelerators hidden)"
    with quietly(args.verbose):
        import keras
    backend = keras.backend.backend()
    if backend != "tensorflow":
        raise UsageError(
            "--devices N|all trains on several devices with "
            "tf.distribute.MirroredStrategy: it needs KERAS_BACKEND="
            f"tensorflow. Received: devices={devices}, backend={backend}"
        )
    import tensorflow as tf

    present = _local_devices(tf)
    names = ", ".join(_short(d) for d in present)
    if devices != "all" and devices > len(present):
        raise UsageError(
            f"--devices {devices} asks for more devices than the "
            f"{len(present)} present ({names}). Received: devices={devices}"
        )
    chosen = present if devices == "all" else present[:devices]
    reason = _one_device_only(args)
    if len(chosen) > 1 and reason:
        raise UsageError(
            f"--tuner {args.tuner} --space {args.space} trains on one device "
            f"only ({reason}). Received: devices={devices}"
        )
    shown = ", ".join(_short(d) for d in chosen)
    if len(chosen) == 1:
        return None, f"devices: 1 device ({shown}), no distribution strategy"
    strategy = tf.distribute.MirroredStrategy(chosen)
    return strategy, (
        f"devices: {shown} (MirroredStrategy: each trial data-parallel, "
        f"global batch {args.batch_size})"
    )


def strategy_scope(strategy: Any) -> contextlib.AbstractContextManager:
    """`strategy.scope()`, or nothing without a strategy."""
    if strategy is None:
        return contextlib.nullcontext()
    return strategy.scope()
