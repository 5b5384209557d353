"""The recorded forward that the hand-chained one-shot steps walk back.

Both backends' piecewise one-shot steps (`_one_shot_chain_tensorflow`,
`_one_shot_chain_jax`) run a path's layers as calls of compiled pieces
and differentiate it by hand. What they share is here, backend-neutral:
the values between the layers (`Value`, whose sums and concatenation
`topology.forward` makes), the record of those sums and concatenations
(`Recorder`) and the backward routing of their cotangents. A backend's
recorder adds its piece calls (`piece`), its concatenation and split
(`_concat`, `_split`) and the walk of its piece entries.
"""

from __future__ import annotations

__all__ = ["ADD", "CONCAT", "PIECE", "TAPED", "Recorder", "Value", "send"]

# Kinds of record entry: `(kind, output index, ...)`.
PIECE, TAPED, ADD, CONCAT = range(4)


class Value:
    """A tensor of the recorded forward: its array and its record index."""

    __slots__ = ("array", "index", "tape")

    def __init__(self, array, tape, index):
        self.array, self.tape, self.index = array, tape, index

    @property
    def shape(self):
        return self.array.shape

    @property
    def dtype(self):
        return self.array.dtype

    def __add__(self, other):
        if not isinstance(other, Value):
            return NotImplemented
        return self.tape.add(self, other)

    def keras_nas_concatenate(self, values, axis):
        """`topology.concatenate` of recorded values."""
        return self.tape.concatenate(values, axis)


def send(sums: dict, key, value) -> None:
    """`value` added to `sums[key]` (set where there is none yet)."""
    sums[key] = value if key not in sums else sums[key] + value


class Recorder:
    """A path's recorded forward: `entries` in the order they ran."""

    def __init__(self):
        self.entries: list[tuple] = []
        self.count = 0

    def value(self, array) -> Value:
        self.count += 1
        return Value(array, self, self.count - 1)

    def use(self, layer):
        """`use(layer)` of `topology.forward`: a recorded piece call."""

        def call(x, training=None):
            return self.piece(layer, x, bool(training))

        return call

    def piece(self, layer, x: Value, training: bool) -> Value:
        raise NotImplementedError

    def _concat(self, arrays, axis):
        raise NotImplementedError

    def _split(self, cotangent, sizes: tuple, axis: int):
        raise NotImplementedError

    def add(self, a: Value, b: Value) -> Value:
        out = self.value(a.array + b.array)
        self.entries.append((ADD, out.index, a.index, b.index))
        return out

    def concatenate(self, values, axis) -> Value:
        arrays = [v.array for v in values]
        out = self.value(self._concat(arrays, axis))
        sizes = tuple(a.shape[axis] for a in arrays)
        indices = tuple(v.index for v in values)
        self.entries.append((CONCAT, out.index, indices, sizes, axis))
        return out

    def send_back(self, entry: tuple, cotangent, cts: dict) -> None:
        """The cotangent of a sum's or a concatenation's output (`entry`)
        sent to its inputs in `cts`."""
        if entry[0] == ADD:
            send(cts, entry[2], cotangent)
            send(cts, entry[3], cotangent)
            return
        parts = self._split(cotangent, entry[3], entry[4])
        for index, part in zip(entry[2], parts, strict=True):
            send(cts, index, part)
