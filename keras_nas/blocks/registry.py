"""Names of the candidate operations, kept free of any TensorFlow import.

The Keras layers behind the names live in `keras_nas.blocks.ops`; this module
only knows which names exist, so that `Genotype` validation stays pure Python.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = [
    "DARTS_OPS",
    "NB201_OPS",
    "EXTRA_OPS",
    "known_ops",
    "is_known_op",
]

#: The eight candidate operations of DARTS (Liu et al., 2019), in the order of
#: the original code (`genotypes.PRIMITIVES`).
DARTS_OPS: tuple[str, ...] = (
    "none",
    "max_pool_3x3",
    "avg_pool_3x3",
    "skip_connect",
    "sep_conv_3x3",
    "sep_conv_5x5",
    "dil_conv_3x3",
    "dil_conv_5x5",
)

#: The five operations of the NAS-Bench-201 cell (Dong & Yang, 2020), in the
#: benchmark's order.
NB201_OPS: tuple[str, ...] = (
    "none",
    "skip_connect",
    "nor_conv_1x1",
    "nor_conv_3x3",
    "avg_pool_3x3",
)

#: Further operations used by the published NASNet-A and AmoebaNet-A cells.
EXTRA_OPS: tuple[str, ...] = ("sep_conv_7x7", "conv_7x1_1x7")

_BUILTIN = tuple(dict.fromkeys(DARTS_OPS + NB201_OPS + EXTRA_OPS))

# name -> factory(filters, strides, affine) -> keras.layers.Layer. The built-in
# factories are filled in by `keras_nas.blocks.ops` when it is imported; user
# ops registered with `keras_nas.blocks.register_op` land here too.
_FACTORIES: dict[str, Callable[..., Any]] = {}


def known_ops() -> tuple[str, ...]:
    """Returns every operation name that can be used in a genotype."""
    extra = tuple(n for n in _FACTORIES if n not in _BUILTIN)
    return _BUILTIN + extra


def is_known_op(name: str) -> bool:
    return name in _BUILTIN or name in _FACTORIES
