"""The data of a DARTS search: training and validation batches zipped.

Each element given to `DartsSupernet.fit` is `((x_train, y_train), (x_val,
y_val))`; `search_data` builds such data from two pairs of arrays
(`SearchData`) or two `tf.data` datasets.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

from keras_nas._validation import check_positive_int

__all__ = ["SearchData", "search_data"]


class SearchData(keras.utils.PyDataset):
    """Batches of `((x_train, y_train), (x_val, y_val))` from four arrays.

    Each epoch has `min(len(x_train), len(x_val)) // batch_size` full
    batches (static shapes for XLA); both halves are reshuffled every epoch
    when `shuffle` is True. Works with every Keras backend.

    Args:
        train: `(x_train, y_train)` arrays.
        val: `(x_val, y_val)` arrays.
        batch_size: samples per batch of each half.
        shuffle: whether to reshuffle every epoch.
        seed: seed of the shuffling.
    """

    def __init__(
        self,
        train: tuple[Any, Any],
        val: tuple[Any, Any],
        batch_size: int = 64,
        shuffle: bool = True,
        seed: int | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.x_train, self.y_train = (np.asarray(a) for a in train)
        self.x_val, self.y_val = (np.asarray(a) for a in val)
        self.batch_size = check_positive_int("batch_size", batch_size)
        n = min(len(self.x_train), len(self.x_val))
        if n < self.batch_size:
            raise ValueError(
                "Expected at least `batch_size` training and validation "
                f"samples. Received: batch_size={batch_size} with "
                f"{len(self.x_train)} training and {len(self.x_val)} "
                "validation samples"
            )
        self.shuffle = bool(shuffle)
        self._rng = np.random.default_rng(seed)
        self._new_order()

    def _new_order(self):
        nt, nv = len(self.x_train), len(self.x_val)
        if self.shuffle:
            self._train_idx = self._rng.permutation(nt)
            self._val_idx = self._rng.permutation(nv)
        else:
            self._train_idx, self._val_idx = np.arange(nt), np.arange(nv)

    def __len__(self):
        return min(len(self.x_train), len(self.x_val)) // self.batch_size

    def __getitem__(self, index):
        s = slice(index * self.batch_size, (index + 1) * self.batch_size)
        t, v = self._train_idx[s], self._val_idx[s]
        return (
            (self.x_train[t], self.y_train[t]),
            (self.x_val[v], self.y_val[v]),
        )

    def on_epoch_end(self):
        self._new_order()


def search_data(
    train: Any,
    val: Any,
    batch_size: int = 64,
    shuffle: bool = True,
    seed: int | None = None,
) -> Any:
    """Zips training and validation data into DARTS search batches.

    Args:
        train: `(x_train, y_train)` arrays, or a batched `tf.data.Dataset`
            of `(x, y)`.
        val: the same for the validation data (same kind as `train`).
        batch_size: batch size when arrays are given.
        shuffle: reshuffle the arrays every epoch.
        seed: seed of the shuffling.

    Returns:
        A `SearchData` (arrays) or a zipped `tf.data.Dataset` (datasets),
        each element `((x_train, y_train), (x_val, y_val))`, for
        `DartsSupernet.fit`.

    Example:

    >>> data = search_data((x, y), (x_val, y_val))  # doctest: +SKIP
    >>> supernet.fit(data, epochs=10)  # doctest: +SKIP
    """
    if type(train).__module__.startswith("tensorflow"):
        import tensorflow as tf

        if not isinstance(val, tf.data.Dataset):
            raise ValueError(
                "Expected `val` to be a tf.data.Dataset like `train`. "
                f"Received: val={type(val).__name__}"
            )
        return tf.data.Dataset.zip((train, val))
    for name, value in (("train", train), ("val", val)):
        if not isinstance(value, (tuple, list)) or len(value) != 2:
            raise ValueError(
                f"Expected `{name}` to be an (x, y) pair of arrays or a "
                f"tf.data.Dataset. Received: {name}={type(value).__name__}"
            )
    return SearchData(
        train, val, batch_size=batch_size, shuffle=shuffle, seed=seed
    )
