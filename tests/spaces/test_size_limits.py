"""Arguments that make every build fail, or exhaust memory, fail at once.

`filters` is bounded by `MAX_FILTERS` (2**16), cells per network by
`MAX_CELLS` and nodes per cell by `MAX_NODES` (`keras_nas._validation`).
"""

import math

import pytest

from keras_nas._validation import MAX_CELLS, MAX_FILTERS, MAX_NODES
from keras_nas.blocks import (
    DARTS,
    NasBench201Cell,
    NormalCell,
    SepConv,
    build_network,
)
from keras_nas.spaces import (
    CellSearchSpace,
    ChainSearchSpace,
    NasBench201SearchSpace,
)
from keras_nas.supernet import DartsSupernet

BIG = 10**12


@pytest.mark.parametrize(
    "make, received",
    [
        (lambda: CellSearchSpace(learning_rate=math.inf), "learning_rate=inf"),
        (lambda: CellSearchSpace(learning_rate=math.nan), "learning_rate=nan"),
        (lambda: CellSearchSpace(filters=1), "filters=1"),
        (lambda: CellSearchSpace(filters=(8, BIG)), f"filters=\\(8, {BIG}\\)"),
        (lambda: CellSearchSpace(num_nodes=10**6), "num_nodes=1000000"),
        (lambda: CellSearchSpace(num_cells=10**5), "num_cells=100000"),
        (lambda: NasBench201SearchSpace(filters=1), "filters=1"),
        (lambda: ChainSearchSpace(filters=(BIG,)), f"filters=\\({BIG},\\)"),
        (lambda: NormalCell(DARTS, filters=BIG), f"filters={BIG}"),
        (lambda: NasBench201Cell(["none"] * 6, filters=BIG), f"filters={BIG}"),
        (lambda: SepConv(BIG, 3), f"filters={BIG}"),
        (lambda: build_network(DARTS, (8, 8, 1), 10, BIG), f"filters={BIG}"),
        (
            lambda: build_network(DARTS, (8, 8, 1), 10, num_cells=10**5),
            "num_cells=100000",
        ),
        (lambda: DartsSupernet((8, 8, 1), 10, filters=BIG), f"filters={BIG}"),
        (lambda: DartsSupernet((8, 8, 1), 10, num_nodes=999), "num_nodes=999"),
    ],
)
def test_invalid_sizes_fail_at_construction(make, received):
    with pytest.raises(ValueError, match=f"Received: {received}$"):
        make()


def test_the_limits_themselves_are_accepted():
    space = CellSearchSpace(
        filters=(2, MAX_FILTERS), num_nodes=MAX_NODES, num_cells=MAX_CELLS
    )
    assert space.filters == (2, MAX_FILTERS)
    assert NormalCell(DARTS, filters=MAX_FILTERS).filters == MAX_FILTERS
