"""Readers of TensorBoard event files (tests, notebooks).

`read_hparams`, `read_scalars`, `read_images` and `read_text` return what
was written under a log dir; `keras_nas.tensorboard` re-exports them.
"""

from __future__ import annotations

import glob
import os
from typing import Any

__all__ = ["read_hparams", "read_images", "read_scalars", "read_text"]


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
                if data.HasField("session_start_info"):
                    entry = sessions.setdefault(session, {})
                    for name, v in data.session_start_info.hparams.items():
                        kind = v.WhichOneof("kind")
                        entry[name] = getattr(v, kind) if kind else None
                if data.HasField("session_end_info"):
                    entry = sessions.setdefault(session, {})
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


def _read_plugin(logdir: str, plugin_name: str, decode) -> dict:
    """Run -> tag -> decoded values in step order, for one plugin's tags."""
    from tensorboard.util import tensor_util

    out: dict[str, dict[str, list]] = {}
    for path in _event_files(logdir):
        run = os.path.relpath(os.path.dirname(path), str(logdir))
        plugins: dict[str, str] = {}  # tag -> plugin (metadata may be once)
        for event in _load(path):
            for value in event.summary.value:
                name = value.metadata.plugin_data.plugin_name
                if name:
                    plugins[value.tag] = name
                if plugins.get(value.tag) != plugin_name:
                    continue
                item = decode(tensor_util.make_ndarray(value.tensor))
                tags = out.setdefault(run, {})
                tags.setdefault(value.tag, []).append((event.step, item))
    return {
        run: {
            tag: [v for _, v in sorted(vals, key=lambda sv: sv[0])]
            for tag, vals in tags.items()
        }
        for run, tags in out.items()
    }


def _decode_image(array) -> Any:
    import io

    import numpy as np
    from PIL import Image

    # An image summary holds [width, height, png, ...]; keep the first.
    return np.asarray(Image.open(io.BytesIO(array.reshape(-1)[2])))


def read_images(logdir: str) -> dict[str, dict[str, list[Any]]]:
    """Reads every image summary written under `logdir`.

    Args:
        logdir: A directory holding event files (searched recursively).

    Returns:
        Directory relative to `logdir` -> tag -> list of images (NumPy
        arrays of shape `(height, width, channels)`, uint8; the first image
        of each summary) in step order.
    """
    return _read_plugin(logdir, "images", _decode_image)


def read_text(logdir: str) -> dict[str, dict[str, list[str]]]:
    """Reads every text summary written under `logdir`.

    Args:
        logdir: A directory holding event files (searched recursively).

    Returns:
        Directory relative to `logdir` -> tag -> list of strings in step
        order.
    """
    return _read_plugin(
        logdir, "text", lambda a: a.reshape(-1)[0].decode("utf-8")
    )
