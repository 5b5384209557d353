"""Exact acquisition maximisation on small finite spaces.

The model-based oracles (BO, BANANAS) maximise their acquisition over a
candidate set. On a large or continuous space the candidates are mutations
of the best trials plus random points (`_model_based.SurrogateOracle`); on
a space that enumerates to a few thousand points every point not proposed
yet can be scored instead, which maximises the acquisition exactly (a GP
or MLP prediction on 15,625 NAS-Bench-201 cells costs milliseconds).

- `SpaceEnumeration`: every point of a finite space (conditional scopes
  respected, `_base.enumerate_values`) with keras-tuner's values hash of
  each, built once per space; `unseen(tried)` gives the indices of the
  points not proposed yet.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from keras_nas.tuners import _base

__all__ = ["EXHAUSTIVE_LIMIT", "SpaceEnumeration"]

#: A size limit for `exhaustive_limit` (the oracles' default is 0, off):
#: NAS-Bench-201's 15,625 cells fit, and a GP prediction on 20,000
#: encodings costs milliseconds.
EXHAUSTIVE_LIMIT = 20_000


class SpaceEnumeration:
    """Every point of a small finite space, with hashes and encodings.

    Args:
        oracle: The keras-tuner oracle (its `hyperparameters` and values
            hash).
        limit: The largest number of points to enumerate (0: none).

    Attributes:
        points: The value dicts (active hyperparameters only), or None if
            the space is continuous or larger than `limit`.
        hashes: keras-tuner's values hash of each point.
    """

    def __init__(self, oracle: Any, limit: int = EXHAUSTIVE_LIMIT):
        self.limit = limit
        self.points = (
            _base.enumerate_values(oracle.hyperparameters, limit=limit)
            if limit > 0
            else None
        )
        self.hashes = (
            []
            if self.points is None
            else [_base.values_hash(oracle, v) for v in self.points]
        )
        self._encodings: np.ndarray | None = None

    @property
    def finite(self) -> bool:
        """Whether the space was enumerated."""
        return self.points is not None

    def unseen(self, tried: Any) -> np.ndarray:
        """Indices of the points whose hash is not in `tried`."""
        return np.asarray(
            [i for i, h in enumerate(self.hashes) if h not in tried],
            dtype=np.int64,
        )

    def encodings(self, encode: Any) -> np.ndarray:
        """`encode(points)`, computed on the first call and kept."""
        if self._encodings is None:
            self._encodings = encode(self.points)
        return self._encodings
