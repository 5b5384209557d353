"""Architectures as plain Python data: `Genotype` and `NasBench201Genotype`.

Nothing here imports TensorFlow or Keras, so genotypes can be created,
validated, hashed and stored by search strategies and tabular benchmarks
without loading a deep-learning framework.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from keras_nas._validation import short_repr
from keras_nas.blocks import registry

__all__ = [
    "Genotype",
    "NasBench201Genotype",
    "NB201_EDGES",
    "DARTS_V1",
    "DARTS_V2",
    "DARTS",
    "NASNET_A",
    "AMOEBANET_A",
]

Pair = tuple[str, int]

#: Edges of the NAS-Bench-201 cell as (to_node, from_node), in the order of the
#: benchmark's cell string.
NB201_EDGES: tuple[tuple[int, int], ...] = (
    (1, 0),
    (2, 0),
    (2, 1),
    (3, 0),
    (3, 1),
    (3, 2),
)


def _digest(obj: Any) -> str:
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _loads(text: Any) -> Any:
    """`json.loads(text)`; bad or too deeply nested JSON -> ValueError."""
    try:
        return json.loads(text)
    except (TypeError, json.JSONDecodeError, RecursionError) as e:
        why = "nested too deeply" if isinstance(e, RecursionError) else e
        raise ValueError(
            f"Expected `text` to be a JSON genotype ({why}). "
            f"Received: text={short_repr(text)}"
        ) from e


def _as_pairs(value: Any, name: str) -> tuple[Pair, ...]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise ValueError(
            f"Expected `{name}` to be a sequence of (op, input) pairs. "
            f"Received: {name}={short_repr(value)}"
        )
    pairs = []
    for k, item in enumerate(value):
        if (
            isinstance(item, (str, bytes))
            or not isinstance(item, Sequence)
            or len(item) != 2
        ):
            raise ValueError(
                f"Expected each entry of `{name}` to be an (op, input) pair. "
                f"Received: {name}[{k}]={short_repr(item)}"
            )
        op, index = item
        if not isinstance(op, str):
            raise ValueError(
                f"Expected the op of `{name}[{k}]` to be a string. "
                f"Received: {name}[{k}]={short_repr(item)}"
            )
        if isinstance(index, bool) or not isinstance(index, int):
            raise ValueError(
                f"Expected the input of `{name}[{k}]` to be an integer. "
                f"Received: {name}[{k}]={short_repr(item)}"
            )
        pairs.append((op, int(index)))
    return tuple(pairs)


def _as_concat(value: Any, name: str) -> tuple[int, ...]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise ValueError(
            f"Expected `{name}` to be a sequence of node indices. "
            f"Received: {name}={short_repr(value)}"
        )
    out = tuple(value)
    for v in out:
        if isinstance(v, bool) or not isinstance(v, int):
            raise ValueError(
                f"Expected `{name}` to hold integer node indices. "
                f"Received: {name}={short_repr(value)}"
            )
    return tuple(int(v) for v in out)


def _validate_cell(
    pairs: tuple[Pair, ...], concat: tuple[int, ...], kind: str, arity: int
) -> None:
    if not pairs:
        raise ValueError(
            f"Expected `{kind}` to hold at least one node. "
            f"Received: {kind}={pairs!r}"
        )
    if len(pairs) % arity:
        raise ValueError(
            f"Expected `{kind}` to hold {arity} (op, input) pairs per node, "
            f"so a multiple of {arity} entries. "
            f"Received: {kind} with {len(pairs)} entries"
        )
    for k, (op, index) in enumerate(pairs):
        node = 2 + k // arity
        if not registry.is_known_op(op):
            raise ValueError(
                f"Unknown op {op!r} in `{kind}[{k}]`. Expected one of "
                f"{list(registry.known_ops())} (register custom ops with "
                "`keras_nas.blocks.register_op`, also before loading a saved "
                f"model that uses them). Received: {kind}[{k}]={(op, index)!r}"
            )
        if not 0 <= index < node:
            raise ValueError(
                f"Input index out of range in `{kind}[{k}]`: node {node} can "
                f"read nodes 0 to {node - 1}. Received: {kind}[{k}]="
                f"{(op, index)!r}"
            )
    num_states = 2 + len(pairs) // arity
    if not concat:
        raise ValueError(
            f"Expected `{kind}_concat` to name at least one node. "
            f"Received: {kind}_concat={concat!r}"
        )
    if len(set(concat)) != len(concat):
        raise ValueError(
            f"Expected `{kind}_concat` to hold distinct node indices. "
            f"Received: {kind}_concat={concat!r}"
        )
    for v in concat:
        if not 0 <= v < num_states:
            raise ValueError(
                f"Expected `{kind}_concat` indices in [0, {num_states - 1}]. "
                f"Received: {kind}_concat={concat!r}"
            )


@dataclasses.dataclass(frozen=True)
class Genotype:
    """A DARTS/NASNet-style architecture: one normal and one reduction cell.

    Each cell has two input states (node 0: the output of the cell before the
    previous one, node 1: the previous cell's output) and intermediate nodes
    2, 3, .... Every intermediate node sums `arity` (default 2) operations,
    each applied to an earlier node; `normal` and `reduce` list these
    `(op, input)` pairs node after node, exactly as in the DARTS code. The
    cell's output concatenates the nodes named in `normal_concat` (or
    `reduce_concat`) along the channel axis.

    The class is pure Python: it validates itself, round-trips through JSON
    and has a canonical hash that ignores the order of a node's inputs.

    Args:
        normal: `(op, input)` pairs of the normal cell.
        normal_concat: nodes concatenated into the normal cell's output.
            Defaults to every intermediate node.
        reduce: `(op, input)` pairs of the reduction cell.
        reduce_concat: nodes concatenated into the reduction cell's output.
            Defaults to every intermediate node.
        arity: number of inputs per intermediate node.

    Example:

    >>> g = Genotype(
    ...     normal=[("sep_conv_3x3", 0), ("skip_connect", 1)],
    ...     reduce=[("max_pool_3x3", 0), ("max_pool_3x3", 1)],
    ... )
    >>> g.num_nodes
    1
    >>> Genotype.from_json(g.to_json()) == g
    True
    """

    normal: tuple[Pair, ...]
    normal_concat: tuple[int, ...] | None = None
    reduce: tuple[Pair, ...] = ()
    reduce_concat: tuple[int, ...] | None = None
    arity: int = 2

    def __post_init__(self) -> None:
        if isinstance(self.arity, bool) or not isinstance(self.arity, int):
            raise ValueError(
                "Expected `arity` to be a positive integer. "
                f"Received: arity={short_repr(self.arity)}"
            )
        if self.arity < 1:
            raise ValueError(
                "Expected `arity` to be a positive integer. "
                f"Received: arity={short_repr(self.arity)}"
            )
        for kind in ("normal", "reduce"):
            pairs = _as_pairs(getattr(self, kind), kind)
            concat = getattr(self, f"{kind}_concat")
            if concat is None:
                concat = tuple(range(2, 2 + len(pairs) // self.arity))
            concat = _as_concat(concat, f"{kind}_concat")
            _validate_cell(pairs, concat, kind, self.arity)
            object.__setattr__(self, kind, pairs)
            object.__setattr__(self, f"{kind}_concat", concat)

    @property
    def num_nodes(self) -> int:
        """Number of intermediate nodes of the normal cell."""
        return len(self.normal) // self.arity

    @property
    def num_reduce_nodes(self) -> int:
        """Number of intermediate nodes of the reduction cell."""
        return len(self.reduce) // self.arity

    def cell(self, kind: str) -> tuple[tuple[Pair, ...], tuple[int, ...]]:
        """Returns `(pairs, concat)` of the `"normal"` or `"reduce"` cell."""
        if kind not in ("normal", "reduce"):
            raise ValueError(
                "Expected `kind` to be 'normal' or 'reduce'. "
                f"Received: kind={kind!r}"
            )
        return getattr(self, kind), getattr(self, f"{kind}_concat")

    def nodes(self, kind: str = "normal") -> list[tuple[Pair, ...]]:
        """Returns the cell's pairs grouped per intermediate node."""
        pairs, _ = self.cell(kind)
        a = self.arity
        return [pairs[i : i + a] for i in range(0, len(pairs), a)]

    def to_dict(self) -> dict[str, Any]:
        return {
            "normal": [list(p) for p in self.normal],
            "normal_concat": list(self.normal_concat),
            "reduce": [list(p) for p in self.reduce],
            "reduce_concat": list(self.reduce_concat),
            "arity": self.arity,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Genotype:
        if not isinstance(data, Mapping):
            raise ValueError(
                "Expected `data` to be a mapping with keys 'normal' and "
                f"'reduce'. Received: data={short_repr(data)}"
            )
        unknown = set(data) - {
            "normal",
            "normal_concat",
            "reduce",
            "reduce_concat",
            "arity",
        }
        if unknown or "normal" not in data or "reduce" not in data:
            raise ValueError(
                "Expected `data` to have keys 'normal', 'reduce' and "
                "optionally 'normal_concat', 'reduce_concat', 'arity'. "
                f"Received: data keys={short_repr(sorted(map(str, data)))}"
            )
        # The constructor checks each field's type and names it.
        return cls(
            normal=data["normal"],
            normal_concat=data.get("normal_concat"),
            reduce=data["reduce"],
            reduce_concat=data.get("reduce_concat"),
            arity=data.get("arity", 2),
        )

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_json(cls, text: str) -> Genotype:
        return cls.from_dict(_loads(text))

    def canonical(self) -> dict[str, Any]:
        """The genotype with each node's inputs in sorted order."""
        out = self.to_dict()
        for kind in ("normal", "reduce"):
            nodes = self.nodes(kind)
            out[kind] = [list(p) for node in nodes for p in sorted(node)]
            out[f"{kind}_concat"] = sorted(out[f"{kind}_concat"])
        return out

    @property
    def hash(self) -> str:
        """A SHA-256 hex digest equal for genotypes that compute the same."""
        return _digest(self.canonical())

    def __str__(self) -> str:
        def fmt(kind: str) -> str:
            nodes = self.nodes(kind)
            return " | ".join(
                "+".join(f"{op}({i})" for op, i in node) for node in nodes
            )

        return f"normal: {fmt('normal')} ; reduce: {fmt('reduce')}"


class _OpSequenceJson:
    """JSON form `{"ops": [...]}` and hash of a genotype that is a tuple
    `ops` of op names (`NasBench201Genotype`, `MobileNetGenotype`)."""

    ops: tuple[str, ...]

    @staticmethod
    def _op_tuple(ops: Any, what: str) -> tuple:
        """`ops` as a tuple; a string or a non-iterable -> ValueError."""
        if isinstance(ops, (str, bytes)) or not isinstance(ops, Iterable):
            raise ValueError(
                f"Expected `ops` to be a sequence of {what}. "
                f"Received: ops={short_repr(ops)}"
            )
        return tuple(ops)

    def to_dict(self) -> dict[str, Any]:
        return {"ops": list(self.ops)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Any:
        if not isinstance(data, Mapping) or set(data) != {"ops"}:
            raise ValueError(
                "Expected `data` to be a mapping with the single key 'ops'. "
                f"Received: data={short_repr(data)}"
            )
        return cls(data["ops"])

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_json(cls, text: str) -> Any:
        return cls.from_dict(_loads(text))

    @property
    def hash(self) -> str:
        """SHA-256 of the canonical JSON form."""
        return _digest(self.to_dict())


@dataclasses.dataclass(frozen=True)
class NasBench201Genotype(_OpSequenceJson):
    """A NAS-Bench-201 cell: one operation on each edge of a 4-node DAG.

    `ops` follows the benchmark's edge order: `1<-0, 2<-0, 2<-1, 3<-0, 3<-1,
    3<-2` (see `NB201_EDGES`), matching its cell string
    `|op~0|+|op~0|op~1|+|op~0|op~1|op~2|` (Dong & Yang, "NAS-Bench-201",
    ICLR 2020).

    Args:
        ops: six operation names.

    Example:

    >>> g = NasBench201Genotype.from_string(
    ...     "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|"
    ...     "+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
    ... )
    >>> g.ops[2]
    'avg_pool_3x3'
    >>> NasBench201Genotype.from_string(g.to_string()) == g
    True
    """

    ops: tuple[str, ...]

    def __post_init__(self) -> None:
        ops = self._op_tuple(self.ops, "6 op names")
        if len(ops) != len(NB201_EDGES):
            raise ValueError(
                f"Expected `ops` to hold {len(NB201_EDGES)} op names, one per "
                f"edge. Received: ops={short_repr(ops)}"
            )
        for k, op in enumerate(ops):
            if not isinstance(op, str) or not registry.is_known_op(op):
                raise ValueError(
                    f"Unknown op {short_repr(op)} on edge {k}. Expected one "
                    f"of {list(registry.NB201_OPS)}. "
                    f"Received: ops={short_repr(ops)}"
                )
        object.__setattr__(self, "ops", ops)

    @property
    def edges(self) -> list[tuple[int, int, str]]:
        """`(to_node, from_node, op)` for each edge."""
        pairs = zip(NB201_EDGES, self.ops, strict=True)
        return [(i, j, op) for (i, j), op in pairs]

    def to_string(self) -> str:
        groups = []
        for node in (1, 2, 3):
            parts = [
                f"{op}~{j}"
                for (i, j), op in zip(NB201_EDGES, self.ops, strict=True)
                if i == node
            ]
            groups.append("|" + "|".join(parts) + "|")
        return "+".join(groups)

    @classmethod
    def from_string(cls, text: str) -> NasBench201Genotype:
        def fail() -> ValueError:
            return ValueError(
                "Expected `text` to be a NAS-Bench-201 cell string like "
                "'|op~0|+|op~0|op~1|+|op~0|op~1|op~2|'. "
                f"Received: text={short_repr(text)}"
            )

        if not isinstance(text, str):
            raise fail()
        groups = text.strip().split("+")
        if len(groups) != 3:
            raise fail()
        ops = []
        for node, group in enumerate(groups, start=1):
            parts = [p for p in group.split("|") if p]
            if len(parts) != node:
                raise fail()
            for j, part in enumerate(parts):
                op, sep, src = part.rpartition("~")
                if not sep or src != str(j):
                    raise fail()
                ops.append(op)
        return cls(tuple(ops))

    def __str__(self) -> str:
        return self.to_string()


_C = (2, 3, 4, 5)

#: DARTS first-order cell (Liu et al., ICLR 2019).
DARTS_V1 = Genotype(
    normal=[
        ("sep_conv_3x3", 1), ("sep_conv_3x3", 0),
        ("skip_connect", 0), ("sep_conv_3x3", 1),
        ("skip_connect", 0), ("sep_conv_3x3", 1),
        ("sep_conv_3x3", 0), ("skip_connect", 2),
    ],
    normal_concat=_C,
    reduce=[
        ("max_pool_3x3", 0), ("max_pool_3x3", 1),
        ("skip_connect", 2), ("max_pool_3x3", 0),
        ("max_pool_3x3", 0), ("skip_connect", 2),
        ("skip_connect", 2), ("avg_pool_3x3", 0),
    ],
    reduce_concat=_C,
)

#: DARTS second-order cell (Liu et al., ICLR 2019), the paper's best.
DARTS_V2 = Genotype(
    normal=[
        ("sep_conv_3x3", 0), ("sep_conv_3x3", 1),
        ("sep_conv_3x3", 0), ("sep_conv_3x3", 1),
        ("sep_conv_3x3", 1), ("skip_connect", 0),
        ("skip_connect", 0), ("dil_conv_3x3", 2),
    ],
    normal_concat=_C,
    reduce=[
        ("max_pool_3x3", 0), ("max_pool_3x3", 1),
        ("skip_connect", 2), ("max_pool_3x3", 1),
        ("max_pool_3x3", 0), ("skip_connect", 2),
        ("skip_connect", 2), ("max_pool_3x3", 1),
    ],
    reduce_concat=_C,
)

DARTS = DARTS_V2

#: NASNet-A (Zoph et al., CVPR 2018), as transcribed in the DARTS code.
NASNET_A = Genotype(
    normal=[
        ("sep_conv_5x5", 1), ("sep_conv_3x3", 0),
        ("sep_conv_5x5", 0), ("sep_conv_3x3", 0),
        ("avg_pool_3x3", 1), ("skip_connect", 0),
        ("avg_pool_3x3", 0), ("avg_pool_3x3", 0),
        ("sep_conv_3x3", 1), ("skip_connect", 1),
    ],
    normal_concat=(2, 3, 4, 5, 6),
    reduce=[
        ("sep_conv_5x5", 1), ("sep_conv_7x7", 0),
        ("max_pool_3x3", 1), ("sep_conv_7x7", 0),
        ("avg_pool_3x3", 1), ("sep_conv_5x5", 0),
        ("skip_connect", 3), ("avg_pool_3x3", 2),
        ("sep_conv_3x3", 2), ("max_pool_3x3", 1),
    ],
    reduce_concat=(4, 5, 6),
)

#: AmoebaNet-A (Real et al., AAAI 2019), as transcribed in the DARTS code.
AMOEBANET_A = Genotype(
    normal=[
        ("avg_pool_3x3", 0), ("max_pool_3x3", 1),
        ("sep_conv_3x3", 0), ("sep_conv_5x5", 2),
        ("sep_conv_3x3", 0), ("avg_pool_3x3", 3),
        ("sep_conv_3x3", 1), ("skip_connect", 1),
        ("skip_connect", 0), ("avg_pool_3x3", 1),
    ],
    normal_concat=(4, 5, 6),
    reduce=[
        ("avg_pool_3x3", 0), ("sep_conv_3x3", 1),
        ("max_pool_3x3", 0), ("sep_conv_7x7", 2),
        ("sep_conv_7x7", 0), ("avg_pool_3x3", 1),
        ("max_pool_3x3", 0), ("max_pool_3x3", 1),
        ("conv_7x1_1x7", 0), ("sep_conv_3x3", 5),
    ],
    reduce_concat=(3, 4, 6),
)
