"""MobileNet architectures as plain Python data: `MobileNetGenotype`.

A genotype of `keras_nas.spaces.MobileNetSearchSpace` is the operation of
every searched block, in network order: an inverted-residual block
`"mbconv_{k}x{k}_e{e}"` (kernel size `k`, expansion ratio `e`) or `"zero"`
(the block is skipped: its output is its input). Nothing here imports
TensorFlow or Keras.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from keras_nas._validation import short_repr
from keras_nas.blocks.genotypes import _OpSequenceJson

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
class MobileNetGenotype(_OpSequenceJson):
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
        ops = self._op_tuple(self.ops, "op names")
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

    def __str__(self) -> str:
        return " ".join(self.ops)
