"""TensorBoard HParams logging for trials, and readers for the event files.

keras-tuner's `Tuner.run_trial` already logs a trial trained with `fit` when
the user passes a `keras.callbacks.TensorBoard`: the callback's `log_dir` is
moved to `<log_dir>/<trial_id>/execution<k>` and an HParams callback records
the trial's hyperparameters there, so TensorBoard's HParams dashboard shows
one session per trial next to its epoch curves. Trials that are *not*
trained with `fit` (a shared-weight or lookup-table estimate) would be
missing; `log_trial_metrics` writes them in the same layout: the session's
hyperparameters plus the metrics as step-0 scalars named like the epoch
curves Keras writes (`validation/epoch_accuracy` for `val_accuracy`).

`read_hparams` and `read_scalars` read the event files back (used by the
tests and handy in notebooks).
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = [
    "tensorboard_log_dirs",
    "log_trial_metrics",
    "read_hparams",
    "read_scalars",
]


def _is_tensorboard(callback: Any) -> bool:
    # Same test as keras-tuner's `_configure_tensorboard_dir`.
    return callback.__class__.__name__ == "TensorBoard"


def tensorboard_log_dirs(
    tuner: Any, trial: Any, callbacks: Iterable[Any] | None, execution=0
) -> list[str]:
    """Returns the per-trial log dirs of the TensorBoard callbacks given.

    The layout is keras-tuner's: `<log_dir>/<trial_id>/execution<k>`. The
    callbacks are not modified.

    Args:
        tuner: The `keras_tuner.Tuner` running the trial.
        trial: The `keras_tuner.engine.trial.Trial`.
        callbacks: The callbacks passed to `tuner.search`, or `None`.
        execution: Index of the execution within the trial.

    Returns:
        One directory per `keras.callbacks.TensorBoard` in `callbacks`.
    """
    out = []
    for callback in callbacks or ():
        if _is_tensorboard(callback):
            logdir = str(callback.log_dir)
            getter = getattr(tuner, "_get_tensorboard_dir", None)
            if getter is not None:
                out.append(getter(logdir, trial.trial_id, execution))
            else:
                out.append(
                    os.path.join(
                        logdir, str(trial.trial_id), f"execution{execution}"
                    )
                )
    return out


def _split_metric(name: str) -> tuple[str, str]:
    if name.startswith("val_"):
        return "validation", "epoch_" + name[len("val_") :]
    return "train", "epoch_" + name


def log_trial_metrics(
    tuner: Any,
    trial: Any,
    callbacks: Iterable[Any] | None,
    metrics: Mapping[str, Any] | float | None,
    step: int = 0,
) -> list[str]:
    """Logs a trial that was not trained with `fit` to TensorBoard.

    Writes the trial's hyperparameters as an HParams session and each metric
    as a scalar, into the per-trial directory of every TensorBoard callback
    in `callbacks` (nothing happens without one, or when TensorFlow is not
    installed).

    Args:
        tuner: The `keras_tuner.Tuner` running the trial.
        trial: The trial; its `hyperparameters` are logged.
        callbacks: The callbacks passed to `tuner.search`, or `None`.
        metrics: Dict of metric name -> value (as returned by `run_trial`),
            or a single float (logged as the oracle's objective).
        step: The step of the scalars.

    Returns:
        The directories written to.

    Example:

    ```python
    def run_trial(self, trial, *args, **kwargs):
        metrics = self.estimator.estimate(self, trial, *args, **kwargs)
        log_trial_metrics(self, trial, kwargs.get("callbacks"), metrics)
        return metrics
    ```
    """
    logdirs = tensorboard_log_dirs(tuner, trial, callbacks)
    if not logdirs:
        return []
    try:
        import tensorflow as tf
        from keras_tuner.src.engine import tuner_utils
        from tensorboard.plugins.hparams import api as hparams_api
        from tensorboard.plugins.hparams import api_pb2
        from tensorboard.plugins.hparams import summary as hparams_summary
    except ImportError:  # pragma: no cover - TensorFlow is a dependency.
        return []
    if metrics is None:
        metrics = {}
    elif not isinstance(metrics, Mapping):
        name = _objective_name(tuner)
        metrics = {name: metrics}
    hparams = tuner_utils.convert_hyperparams_to_hparams(
        trial.hyperparameters, hparams_api
    )
    for logdir in logdirs:
        writer = tf.summary.create_file_writer(logdir)
        with writer.as_default():
            hparams_api.hparams(hparams, trial_id=str(trial.trial_id))
        writers = {}
        for name, value in metrics.items():
            try:
                value = float(value)
            except (TypeError, ValueError):
                continue
            group, tag = _split_metric(str(name))
            if group not in writers:
                writers[group] = tf.summary.create_file_writer(
                    os.path.join(logdir, group)
                )
            with writers[group].as_default():
                tf.summary.scalar(tag, value, step=step)
        with writer.as_default():
            pb = hparams_summary.session_end_pb(api_pb2.STATUS_SUCCESS)
            tf.summary.experimental.write_raw_pb(
                pb.SerializeToString(), step=0
            )
        for w in (writer, *writers.values()):
            w.flush()
            w.close()
    return logdirs


def _objective_name(tuner: Any) -> str:
    objective = getattr(getattr(tuner, "oracle", None), "objective", None)
    name = getattr(objective, "name", None)
    return name if isinstance(name, str) else "objective"


def _event_files(logdir: str) -> list[str]:
    pattern = os.path.join(str(logdir), "**", "*tfevents*")
    return sorted(glob.glob(pattern, recursive=True))


def _load(path: str):
    from tensorboard.backend.event_processing import event_file_loader

    return event_file_loader.EventFileLoader(path).Load()


def read_hparams(logdir: str) -> dict[str, dict[str, Any]]:
    """Reads the HParams sessions written under `logdir`.

    Args:
        logdir: The `log_dir` of the TensorBoard callback given to the search.

    Returns:
        Session (trial) directory relative to `logdir` -> dict of
        hyperparameter name -> value, plus the key `"_status"` holding the
        session's end status name (e.g. `"STATUS_SUCCESS"`) once it ended.
    """
    from tensorboard.plugins.hparams import api_pb2, plugin_data_pb2

    sessions: dict[str, dict[str, Any]] = {}
    for path in _event_files(logdir):
        session = os.path.relpath(os.path.dirname(path), str(logdir))
        for event in _load(path):
            for value in event.summary.value:
                plugin = value.metadata.plugin_data
                if plugin.plugin_name != "hparams":
                    continue
                data = plugin_data_pb2.HParamsPluginData.FromString(
                    plugin.content
                )
                entry = sessions.setdefault(session, {})
                if data.HasField("session_start_info"):
                    for name, v in data.session_start_info.hparams.items():
                        kind = v.WhichOneof("kind")
                        entry[name] = getattr(v, kind) if kind else None
                if data.HasField("session_end_info"):
                    entry["_status"] = api_pb2.Status.Name(
                        data.session_end_info.status
                    )
    return sessions


def read_scalars(logdir: str) -> dict[str, dict[str, list[float]]]:
    """Reads every scalar summary written under `logdir`.

    Args:
        logdir: A directory holding event files (searched recursively).

    Returns:
        Directory relative to `logdir` (e.g. `"0/execution0/validation"`) ->
        tag -> list of values in step order.
    """
    import numpy as np
    from tensorboard.util import tensor_util

    out: dict[str, dict[str, list]] = {}
    for path in _event_files(logdir):
        run = os.path.relpath(os.path.dirname(path), str(logdir))
        for event in _load(path):
            for value in event.summary.value:
                plugin = value.metadata.plugin_data.plugin_name
                if value.HasField("simple_value"):
                    number = float(value.simple_value)
                elif plugin == "scalars" and value.HasField("tensor"):
                    array = tensor_util.make_ndarray(value.tensor)
                    number = float(np.asarray(array).reshape(()))
                else:
                    continue
                tags = out.setdefault(run, {})
                tags.setdefault(value.tag, []).append((event.step, number))
    return {
        run: {tag: [v for _, v in sorted(vals)] for tag, vals in tags.items()}
        for run, tags in out.items()
    }
