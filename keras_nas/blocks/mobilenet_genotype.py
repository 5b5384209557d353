"""MobileNet architectures as plain Python data: `MobileNetGenotype`.

A genotype of `keras_nas.spaces.MobileNetSearchSpace` is the operation of
every searched block, in network order: an inverted-residual block
`"mbconv_{k}x{k}_e{e}"` (kernel size `k`, expansion ratio `e`) or `"zero"`
(the block is skipped: its output is its input). Nothing here imports
TensorFlow or Keras.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

from keras_nas._validation import short_repr

__all__ = ["MobileNetGenotype", "SKIP_OP", "mbconv_op", "parse_mbconv_op"]

#: The op of a skipped block (ProxylessNAS' "zero" op on a residual block).
SKIP_OP = "zero"

_MBCONV = re.compile(r"^mbconv_(\d+)x(\d+)_e(\d+)$")


def mbconv_op(kernel_size: int, expansion: int) -> str:
    """The op name of an MBConv block, e.g. `mbconv_op(5, 6)`.

    Example:

    >>> mbconv_op(5, 6)
    'mbconv_5x5_e6'
    """
    return f"mbconv_{int(kernel_size)}x{int(kernel_size)}_e{int(expansion)}"


def parse_mbconv_op(op: Any) -> tuple[int, int]:
    """`(kernel_size, expansion)` of an op name `"mbconv_{k}x{k}_e{e}"`.

    Example:

    >>> parse_mbconv_op("mbconv_7x7_e3")
    (7, 3)
    """
    match = _MBCONV.match(op) if isinstance(op, str) else None
    if match is None or match.group(1) != match.group(2):
        raise ValueError(
            "Expected an op name 'mbconv_{k}x{k}_e{e}' (e.g. "
            f"'mbconv_3x3_e6'). Received: op={short_repr(op)}"
        )
    kernel, expansion = int(match.group(1)), int(match.group(3))
    if kernel < 1 or expansion < 1:
        raise ValueError(
            "Expected a kernel size and an expansion >= 1 in the op name. "
            f"Received: op={short_repr(op)}"
        )
    return kernel, expansion


@dataclasses.dataclass(frozen=True)
class MobileNetGenotype:
    """The searched blocks of a MobileNet-style network, in order.

    Args:
        ops: one op name per searched block: `"mbconv_{k}x{k}_e{e}"` or
            `"zero"` (skip the block).

    Example:

    >>> g = MobileNetGenotype(("mbconv_3x3_e6", "zero", "mbconv_5x5_e3"))
    >>> g.num_skipped
    1
    >>> MobileNetGenotype.from_json(g.to_json()) == g
    True
    """

    ops: tuple[str, ...]

    def __post_init__(self) -> None:
        ops = self.ops
        if isinstance(ops, (str, bytes)) or not isinstance(ops, Iterable):
            raise ValueError(
                "Expected `ops` to be a sequence of op names. "
                f"Received: ops={short_repr(ops)}"
            )
        ops = tuple(ops)
        if not ops:
            raise ValueError(
                f"Expected `ops` to hold at least one op name. "
                f"Received: ops={short_repr(ops)}"
            )
        for op in ops:
            if op != SKIP_OP:
                try:
                    parse_mbconv_op(op)
                except ValueError as e:
                    raise ValueError(
                        f"Expected every op to be 'zero' or "
                        f"'mbconv_{{k}}x{{k}}_e{{e}}'. "
                        f"Received: ops={short_repr(ops)}"
                    ) from e
        object.__setattr__(self, "ops", ops)

    @property
    def num_skipped(self) -> int:
        """How many blocks are skipped (`"zero"`)."""
        return sum(op == SKIP_OP for op in self.ops)

    def to_dict(self) -> dict[str, Any]:
        return {"ops": list(self.ops)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MobileNetGenotype:
        if not isinstance(data, Mapping) or set(data) != {"ops"}:
            raise ValueError(
                "Expected `data` to be a mapping with the single key 'ops'. "
                f"Received: data={short_repr(data)}"
            )
        return cls(data["ops"])

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_json(cls, text: str) -> MobileNetGenotype:
        try:
            data = json.loads(text)
        except (TypeError, json.JSONDecodeError, RecursionError) as e:
            raise ValueError(
                "Expected `text` to be a JSON MobileNet genotype. "
                f"Received: text={short_repr(text)}"
            ) from e
        return cls.from_dict(data)

    @property
    def hash(self) -> str:
        """SHA-256 of the canonical JSON form."""
        text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def __str__(self) -> str:
        return " ".join(self.ops)
