"""Per-epoch progress lines of the `keras-nas` command.

`EpochLine` is a Keras callback that prints one compact line per epoch:

```
  epoch 2/6  loss 1.1830  accuracy 0.6210  val_accuracy 0.6824  1.9s
```

It imports Keras, so the command imports it only after
`keras_nas._cli_env.import_backend`.
"""

from __future__ import annotations

import time
from typing import Any

import keras

#: At most this many metrics per line (the loss and the validation metrics
#: first); a supernet may log many more.
MAX_METRICS = 6


def format_metrics(logs: dict[str, Any] | None) -> str:
    """The scalar metrics of `logs`, training ones before validation ones."""
    items = []
    for key, value in (logs or {}).items():
        try:
            number = float(value)
        except (TypeError, ValueError):
            continue
        train_key = key.removeprefix("val_")
        items.append((train_key != key, train_key != "loss", key, number))
    items.sort(key=lambda item: item[:2])
    shown = [f"{key} {number:.4f}" for _, _, key, number in items]
    return "  ".join(shown[:MAX_METRICS])


class EpochLine(keras.callbacks.Callback):
    """Prints `  epoch E/N  <metrics>  <seconds>s` at the end of each epoch.

    Args:
        indent: text put before each line.
    """

    def __init__(self, indent: str = "  "):
        super().__init__()
        self.indent = indent
        self._started = None

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._started = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        seconds = time.perf_counter() - (self._started or time.perf_counter())
        total = (self.params or {}).get("epochs", "?")
        print(
            f"{self.indent}epoch {epoch + 1}/{total}  "
            f"{format_metrics(logs)}  {seconds:.1f}s",
            flush=True,
        )
