"""The one switch that makes the tutorials fast: `KERAS_NAS_FAST`.

Every notebook in `tutorials/` reads its budget (epochs, trials, data size)
through `tutorial_settings`, so that setting the environment variable
`KERAS_NAS_FAST=1` shrinks all of them at once. CI runs the notebooks that
way on CPU; on Colab (variable unset) they run at full size on a GPU.
"""

from __future__ import annotations

import os
import types
from typing import Any

__all__ = ["FAST_ENV_VAR", "is_fast", "tutorial_settings"]

#: Name of the environment variable that selects the fast setting.
FAST_ENV_VAR = "KERAS_NAS_FAST"

_FALSE = ("", "0", "false", "no", "off")


def is_fast() -> bool:
    """Returns whether `KERAS_NAS_FAST` asks for the fast setting.

    Any value other than empty, `0`, `false`, `no` or `off` (any case)
    means fast.
    """
    return os.environ.get(FAST_ENV_VAR, "").strip().lower() not in _FALSE


def tutorial_settings(**choices: tuple[Any, Any]) -> types.SimpleNamespace:
    """Picks the full or the fast value of each tutorial setting.

    Args:
        **choices: setting name -> `(full_value, fast_value)` pair.

    Returns:
        A namespace with one attribute per setting, holding the value for the
        current mode, plus `fast` (bool).

    Example:

    ```python
    S = tutorial_settings(epochs=(20, 1), max_trials=(30, 3))
    tuner.search(x, y, epochs=S.epochs)
    ```
    """
    fast = is_fast()
    values = {}
    for name, pair in choices.items():
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise ValueError(
                f"Expected `{name}` to be a (full_value, fast_value) pair. "
                f"Received: {name}={pair!r}"
            )
        values[name] = pair[1] if fast else pair[0]
    return types.SimpleNamespace(fast=fast, **values)
