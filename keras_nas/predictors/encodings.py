"""Architecture encodings: fixed-length vectors from keras-tuner values.

`ArchitectureEncoder` turns the values of a trial (a dict of hyperparameter
values, as in `trial.hyperparameters.values`) into a NumPy vector, for any
keras-tuner `HyperParameters` space:

- `"onehot"`: one block per hyperparameter, filled only when the
  hyperparameter is *active* for these values (conditional scopes are
  respected: an inactive block is all zeros). `Choice` and `Boolean` are
  one-hot; `Int` and `Float` are one number in [0, 1] in keras-tuner's own
  scale (`value_to_prob`, so log ranges are log-scaled), plus an "active"
  flag when they are conditional. `Fixed` hyperparameters add nothing.
- `"path"` (cell spaces only): the path encoding of White, Neiswanger &
  Savani, "BANANAS: Bayesian Optimization with Neural Architectures for
  Neural Architecture Search", AAAI 2021: one bit per sequence of
  operations that some input-to-output path of the cell carries.
- `"reduced_path"` (cell spaces only): the path encoding with the identity
  operations (`IDENTITY_OPS`) left out of every path's op sequence, so that
  paths computing the same function share a feature: input -> skip -> skip
  -> output and input -> skip -> output are both the identity path, and
  cells that differ only in how a skip is routed encode alike.
- `"adjacency"` (cell spaces only): the cell's adjacency matrix (how many
  edges go from node j to node i) and its op matrix (one-hot op of every
  edge), flattened (White et al., "A Study on Encodings for Neural
  Architecture Search", NeurIPS 2020).

The cell spaces are recognised from their hyperparameter names: the six
`edge_{to}_{from}` choices of `NasBench201SearchSpace` and the
`{normal,reduce}/node{i}/{op,input}{k}` choices of `CellSearchSpace`. The
other hyperparameters of a cell space (`num_cells`, `filters`, ...) are
appended one-hot to the path and adjacency encodings.

`ArchitectureEncoder.distance(a, b)` is the weighted L1 distance between two
encodings that counts, for the one-hot encoding, the decisions in which `a`
and `b` differ (plus the scaled difference of numbers), for the (reduced)
path encoding the paths in one cell but not the other, and for the adjacency
encoding the differing edges plus the edges whose op differs.

Nothing here imports TensorFlow, Keras or keras-tuner: the space is read
through the attributes of its hyperparameters.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from keras_nas.blocks.genotypes import NB201_EDGES

__all__ = ["ENCODINGS", "IDENTITY_OPS", "ArchitectureEncoder"]

#: The encodings `ArchitectureEncoder` offers.
ENCODINGS: tuple[str, ...] = ("onehot", "path", "reduced_path", "adjacency")

#: Operations that pass their input on unchanged (up to a reduction's
#: resolution change); the reduced path encoding leaves them out of paths.
IDENTITY_OPS: tuple[str, ...] = ("skip_connect",)

#: Longest paths of the path encoding are shortened until the encoding has
#: at most this many path features (BANANAS truncates the same way).
MAX_PATH_FEATURES = 4096

_NB201_NAMES = tuple(f"edge_{to}_{src}" for to, src in NB201_EDGES)
_CELL_NAME = re.compile(r"^(normal|reduce)/node(\d+)/(op|input)(\d+)$")
_NONE_OP = "none"


def _kind(hp: Any) -> str:
    # keras-tuner's class names; read without importing keras-tuner.
    name = type(hp).__name__
    if name not in ("Choice", "Boolean", "Fixed", "Int", "Float"):
        raise ValueError(
            "Expected the hyperparameters to be keras-tuner Choice, Boolean, "
            f"Fixed, Int or Float. Received: {hp.name}={hp!r}"
        )
    return name


def _categories(hp: Any) -> list[Any]:
    if _kind(hp) == "Boolean":
        return [False, True]
    return list(hp.values)


def _active_values(
    space: Sequence[Any], values: Mapping[str, Any]
) -> dict[str, Any]:
    """The values of the hyperparameters active for `values`, in order."""
    decided: dict[str, Any] = {}
    for hp in space:
        if hp.name in decided:
            continue
        if all(c.is_active(decided) for c in hp.conditions):
            decided[hp.name] = values.get(hp.name)
    return decided


class _OneHot:
    """One-hot / scaled blocks for a list of hyperparameters."""

    def __init__(self, space: Sequence[Any]):
        self.space = list(space)
        self.blocks = []  # (name, kind, offset, categories)
        self.names: list[str] = []
        self.weights: list[float] = []
        for hp in self.space:
            kind = _kind(hp)
            if kind == "Fixed":
                continue
            offset = len(self.names)
            if kind in ("Int", "Float"):
                if hp.conditions:
                    self.names.append(f"{hp.name}:active")
                    self.weights.append(1.0)
                self.names.append(hp.name)
                self.weights.append(1.0)
                self.blocks.append((hp, kind, offset, None))
                continue
            categories = _categories(hp)
            self.names.extend(f"{hp.name}={c!r}" for c in categories)
            # A changed decision moves two columns: half each.
            self.weights.extend([0.5] * len(categories))
            self.blocks.append((hp, kind, offset, categories))

    def fill(self, out: np.ndarray, values: Mapping[str, Any]) -> None:
        active = _active_values(self.space, values)
        for hp, _, offset, categories in self.blocks:
            if hp.name not in active:
                continue
            value = active[hp.name]
            if value is None:
                raise ValueError(
                    f"Expected `values` to hold the active hyperparameter "
                    f"{hp.name!r}. Received: values={dict(values)!r}"
                )
            if categories is None:
                if hp.conditions:
                    out[offset] = 1.0
                    offset += 1
                out[offset] = float(hp.value_to_prob(value))
                continue
            try:
                index = categories.index(value)
            except ValueError:
                raise ValueError(
                    f"Expected `values[{hp.name!r}]` to be one of "
                    f"{categories}. Received: values[{hp.name!r}]={value!r}"
                ) from None
            out[offset + index] = 1.0


class _Cell:
    """One searched cell: edges `(to, from, op_name, input_name)`.

    `input_name` is None when the edge's source is fixed (NAS-Bench-201);
    otherwise the source node is the value of that hyperparameter.
    Nodes `0 .. num_inputs - 1` are the cell's inputs; the output is
    `output_nodes` (NAS-Bench-201: the last node; DARTS: every
    intermediate node, concatenated).
    """

    def __init__(self, prefix, edges, num_nodes, num_inputs, outputs, ops):
        self.prefix = prefix
        self.edges = edges
        self.num_nodes = num_nodes
        self.num_inputs = num_inputs
        self.outputs = outputs
        self.ops = [op for op in ops if op != _NONE_OP]

    def graph(self, values: Mapping[str, Any]) -> list[tuple[int, int, str]]:
        """The edges `(to, from, op)` of the cell for `values`."""
        out = []
        for to, src, op_name, input_name in self.edges:
            op = values[op_name]
            if input_name is not None:
                src = int(values[input_name])
            out.append((to, src, op))
        return out

    def paths(self, values: Mapping[str, Any]) -> set[tuple[int, tuple]]:
        """The `(input, op sequence)` of every input-to-output path."""
        into: dict[int, list[tuple[int, str]]] = {}
        for to, src, op in self.graph(values):
            if op != _NONE_OP:
                into.setdefault(to, []).append((src, op))
        found: dict[int, set] = {i: {(i, ())} for i in range(self.num_inputs)}
        for node in range(self.num_inputs, self.num_nodes):
            found[node] = {
                (start, (*seq, op))
                for src, op in into.get(node, [])
                for start, seq in found.get(src, ())
            }
        return {p for node in self.outputs for p in found[node]}


def _nb201_cell(space: Sequence[Any]) -> _Cell | None:
    by_name = {hp.name: hp for hp in space}
    if not all(n in by_name for n in _NB201_NAMES):
        return None
    ops = _categories(by_name[_NB201_NAMES[0]])
    edges = [
        (to, src, name, None)
        for (to, src), name in zip(NB201_EDGES, _NB201_NAMES, strict=True)
    ]
    return _Cell("", edges, 4, 1, [3], ops)


def _darts_cells(space: Sequence[Any]) -> list[_Cell]:
    found: dict[str, dict[tuple[int, int], dict[str, Any]]] = {}
    for hp in space:
        match = _CELL_NAME.match(hp.name)
        if match:
            kind, node, part, k = match.groups()
            slot = found.setdefault(kind, {}).setdefault(
                (int(node), int(k)), {}
            )
            slot[part] = hp
    cells = []
    for kind, slots in found.items():
        if any(set(s) != {"op", "input"} for s in slots.values()):
            continue
        num_nodes = max(node for node, _ in slots) + 1
        ops: list[Any] = []
        for slot in slots.values():
            ops.extend(o for o in _categories(slot["op"]) if o not in ops)
        edges = [
            (
                node + 2,
                None,
                slots[(node, k)]["op"].name,
                slots[(node, k)]["input"].name,
            )
            for node, k in sorted(slots)
        ]
        outputs = list(range(2, num_nodes + 2))
        cells.append(_Cell(f"{kind}/", edges, num_nodes + 2, 2, outputs, ops))
    return cells


class ArchitectureEncoder:
    """Encodes trials' values of a keras-tuner space as vectors.

    Args:
        hyperparameters: A keras-tuner `HyperParameters` (e.g. the
            `oracle.hyperparameters` of a search, or one filled by a
            space's `declare_hyperparameters`).
        encoding: `"onehot"` (any space), `"path"`, `"reduced_path"` or
            `"adjacency"` (the cell spaces: `NasBench201SearchSpace`,
            `CellSearchSpace`).
        max_path_length: Longest op sequence of the (reduced) path
            encoding. Defaults
            to the longest that keeps at most 4096 path features per
            encoding, as BANANAS truncates long paths.

    Example:

    ```python
    hp = keras_tuner.HyperParameters()
    keras_nas.spaces.NasBench201SearchSpace().declare_hyperparameters(hp)
    encoder = ArchitectureEncoder(hp, encoding="path")
    x = encoder.encode_many([t.hyperparameters.values for t in trials])
    encoder.distance(trials[0].hyperparameters.values, values)
    ```
    """

    def __init__(
        self,
        hyperparameters: Any,
        encoding: str = "onehot",
        max_path_length: int | None = None,
    ):
        space = getattr(hyperparameters, "space", None)
        if space is None:
            raise ValueError(
                "Expected `hyperparameters` to be a keras-tuner "
                "HyperParameters. Received: "
                f"hyperparameters={hyperparameters!r}"
            )
        if encoding not in ENCODINGS:
            raise ValueError(
                f"Expected `encoding` to be one of {list(ENCODINGS)}. "
                f"Received: encoding={encoding!r}"
            )
        self.encoding = encoding
        self.space = list(space)
        self.cells: list[_Cell] = []
        rest = self.space
        if encoding != "onehot":
            nb201 = _nb201_cell(self.space)
            self.cells = [nb201] if nb201 else _darts_cells(self.space)
            if not self.cells:
                raise ValueError(
                    f"Expected a cell space (NasBench201SearchSpace or "
                    f"CellSearchSpace hyperparameters) for "
                    f"encoding={encoding!r}; this space has no cells (use "
                    f"'onehot'). Received: encoding={encoding!r}"
                )
            cell_names = {
                name
                for cell in self.cells
                for edge in cell.edges
                for name in edge[2:]
                if name is not None
            }
            rest = [hp for hp in self.space if hp.name not in cell_names]
        self._onehot = _OneHot(rest)
        self.feature_names: list[str] = []
        weights: list[float] = []
        self._index: list[dict] = []
        if encoding in ("path", "reduced_path"):
            self.max_path_length = self._path_length(max_path_length)
            for cell in self.cells:
                index = {}
                ops, shortest = self._path_ops(cell)
                for start in range(cell.num_inputs):
                    for length in range(shortest, self.max_path_length + 1):
                        for seq in itertools.product(ops, repeat=length):
                            index[(start, seq)] = len(self.feature_names)
                            name = ">".join(seq) or "identity"
                            self.feature_names.append(
                                f"{cell.prefix}path{start}:{name}"
                            )
                self._index.append(index)
            weights = [1.0] * len(self.feature_names)
        elif encoding == "adjacency":
            for cell in self.cells:
                index = {}
                for to in range(cell.num_inputs, cell.num_nodes):
                    for src in range(to):
                        index[(to, src)] = len(self.feature_names)
                        self.feature_names.append(f"{cell.prefix}adj{to}<{src}")
                        weights.append(1.0)
                for e, edge in enumerate(cell.edges):
                    index[e] = len(self.feature_names)
                    for op in cell.ops:
                        self.feature_names.append(f"{edge[2]}={op!r}")
                        weights.append(0.5)
                self._index.append(index)
        self._offset = len(self.feature_names)
        self.feature_names.extend(self._onehot.names)
        weights.extend(self._onehot.weights)
        self.weights = np.asarray(weights, dtype=np.float64)

    @staticmethod
    def has_cells(hyperparameters: Any) -> bool:
        """Whether the space has cells (path and adjacency encodings)."""
        space = list(getattr(hyperparameters, "space", []))
        return bool(_nb201_cell(space) or _darts_cells(space))

    def _path_length(self, max_path_length: int | None) -> int:
        longest = max(c.num_nodes - c.num_inputs for c in self.cells)
        if max_path_length is not None:
            if (
                isinstance(max_path_length, bool)
                or not isinstance(max_path_length, int)
                or max_path_length < 1
            ):
                raise ValueError(
                    "Expected `max_path_length` to be a positive integer. "
                    f"Received: max_path_length={max_path_length!r}"
                )
            return min(max_path_length, longest)

        def size(length):
            total = 0
            for c in self.cells:
                ops, shortest = self._path_ops(c)
                total += c.num_inputs * sum(
                    len(ops) ** k for k in range(shortest, length + 1)
                )
            return total

        length = longest
        while length > 1 and size(length) > MAX_PATH_FEATURES:
            length -= 1
        return length

    def _path_ops(self, cell: _Cell) -> tuple[list[str], int]:
        """The ops of the path features and their shortest sequence (the
        reduced encoding has the empty one, the identity path)."""
        if self.encoding == "reduced_path":
            return [o for o in cell.ops if o not in IDENTITY_OPS], 0
        return cell.ops, 1

    @property
    def size(self) -> int:
        """Length of an encoding."""
        return len(self.feature_names)

    def encode(self, values: Mapping[str, Any]) -> np.ndarray:
        """The encoding of one trial's values (a float64 vector)."""
        if not isinstance(values, Mapping):
            values = getattr(values, "values", None)
            if not isinstance(values, Mapping):
                raise ValueError(
                    "Expected `values` to be a dict of hyperparameter values "
                    f"or a HyperParameters. Received: values={values!r}"
                )
        out = np.zeros(self.size)
        self._onehot.fill(out[self._offset :], values)
        for cell, index in zip(self.cells, self._index, strict=True):
            missing = [
                n for e in cell.edges for n in e[2:] if n and n not in values
            ]
            if missing:
                raise ValueError(
                    f"Expected `values` to hold the cell hyperparameters "
                    f"{missing}. Received: values={dict(values)!r}"
                )
            if self.encoding in ("path", "reduced_path"):
                reduce = self.encoding == "reduced_path"
                for start, seq in cell.paths(values):
                    if reduce:
                        seq = tuple(o for o in seq if o not in IDENTITY_OPS)
                    if len(seq) <= self.max_path_length:
                        out[index[(start, seq)]] = 1.0
            else:
                for e, (to, src, op) in enumerate(cell.graph(values)):
                    if op == _NONE_OP:
                        continue
                    out[index[(to, src)]] += 1.0
                    out[index[e] + cell.ops.index(op)] = 1.0
        return out

    def encode_many(self, values: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """Encodings of several trials, stacked: `(len(values), size)`."""
        if not len(values):
            return np.zeros((0, self.size))
        return np.stack([self.encode(v) for v in values])

    def distance(self, a: Mapping[str, Any], b: Mapping[str, Any]) -> float:
        """The distance between two trials' values under this encoding.

        One-hot: the number of decisions that differ (numbers count their
        scaled difference); (reduced) path: the number of (reduced) paths
        only one of them has;
        adjacency: differing edges plus edges whose op differs.
        """
        diff = np.abs(self.encode(a) - self.encode(b))
        return float(diff @ self.weights)
