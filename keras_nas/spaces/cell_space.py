"""The DARTS/NASNet cell ("micro") search space with macro choices.

Every intermediate node `i` (0-based) of a cell sums two operations, each
applied to one of the nodes before it: the two cell inputs (0, 1) or an
earlier intermediate node (2 .. i + 1). The hyperparameters are

- `normal/node{i}/input{k}`: Choice of the ints `0 .. i + 1`,
- `normal/node{i}/op{k}`: Choice of the op names,
- the same with `reduce/` for the reduction cell (unless it mirrors the
  normal cell),
- `num_cells` and `filters` (Fixed when a single value is given).

`cell_genotype_from_hyperparameters` and `cell_hyperparameters_from_genotype`
convert between a trial's values and a `Genotype` exactly.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import keras
import keras_tuner

from keras_nas._validation import (
    MAX_CELLS,
    MAX_FILTERS,
    MAX_NODES,
    check_bool,
    check_number,
)
from keras_nas.blocks import registry
from keras_nas.blocks.genotypes import Genotype
from keras_nas.spaces import _common

__all__ = [
    "CellSearchSpace",
    "cell_genotype_from_hyperparameters",
    "cell_hyperparameters_from_genotype",
    "genotype_from_hyperparameters",
    "hyperparameters_from_genotype",
]

#: Default op set: the DARTS operations without `none`.
DEFAULT_OPS: tuple[str, ...] = tuple(
    op for op in registry.DARTS_OPS if op != "none"
)

_KINDS = ("normal", "reduce")


def _input_name(kind: str, node: int, k: int) -> str:
    return f"{kind}/node{node}/input{k}"


def _op_name(kind: str, node: int, k: int) -> str:
    return f"{kind}/node{node}/op{k}"


def _cell_pairs(
    values: dict[str, Any], kind: str
) -> tuple[list[tuple[str, int]], int]:
    """The `(op, input)` pairs of one cell and the arity, from `values`."""
    pattern = re.compile(rf"^{kind}/node(\d+)/(?:input|op)(\d+)$")
    found = [pattern.match(key) for key in values]
    found = [(int(m.group(1)), int(m.group(2))) for m in found if m]
    if not found:
        return [], 0
    num_nodes = max(i for i, _ in found) + 1
    arity = max(k for _, k in found) + 1
    pairs = []
    for i in range(num_nodes):
        for k in range(arity):
            keys = (_op_name(kind, i, k), _input_name(kind, i, k))
            missing = [key for key in keys if key not in values]
            if missing:
                raise ValueError(
                    f"Expected `values` to hold {list(keys)} (node {i} of "
                    f"the {kind} cell has {arity} inputs); missing "
                    f"{missing}. Received: values={values!r}"
                )
            op, index = values[keys[0]], values[keys[1]]
            if not isinstance(op, str) or not _common.is_int(index):
                raise ValueError(
                    f"Expected `values[{keys[0]!r}]` to be an op name and "
                    f"`values[{keys[1]!r}]` an integer. Received: "
                    f"values[{keys[0]!r}]={op!r}, "
                    f"values[{keys[1]!r}]={index!r}"
                )
            pairs.append((str(op), int(index)))
    return pairs, arity


def cell_genotype_from_hyperparameters(values: Any) -> Genotype:
    """Turns the hyperparameters of a `CellSearchSpace` trial into a genotype.

    The number of nodes and of inputs per node are read from the keys. When
    the values hold no `reduce/...` keys (a space with
    `search_reduction=False`) the reduction cell is the normal cell. Keys of
    other hyperparameters (`num_cells`, `filters`, `tuner/epochs`, ...) are
    ignored.

    Args:
        values: a dict or a `keras_tuner.HyperParameters`.

    Returns:
        A `Genotype` whose cells concatenate all their intermediate nodes.

    Example:

    >>> g = cell_genotype_from_hyperparameters({
    ...     "normal/node0/input0": 0, "normal/node0/op0": "sep_conv_3x3",
    ...     "normal/node0/input1": 1, "normal/node0/op1": "skip_connect",
    ... })
    >>> g.normal
    (('sep_conv_3x3', 0), ('skip_connect', 1))
    >>> g.reduce == g.normal
    True
    """
    values = _common.hp_values(values)
    normal, arity = _cell_pairs(values, "normal")
    if not normal:
        raise ValueError(
            "Expected `values` to hold the hyperparameters "
            "'normal/node{i}/input{k}' and 'normal/node{i}/op{k}'. "
            f"Received: values={values!r}"
        )
    reduce, reduce_arity = _cell_pairs(values, "reduce")
    if not reduce:
        reduce, reduce_arity = normal, arity
    if reduce_arity != arity:
        raise ValueError(
            "Expected the normal and the reduction cell to have the same "
            f"number of inputs per node. Received: {arity} inputs per normal "
            f"node and {reduce_arity} per reduction node in values={values!r}"
        )
    return Genotype(normal=normal, reduce=reduce, arity=arity)


def cell_hyperparameters_from_genotype(
    genotype: Genotype | str,
    search_reduction: bool = True,
    num_cells: int | None = None,
    filters: int | None = None,
) -> dict[str, Any]:
    """Turns a genotype into the hyperparameters of a `CellSearchSpace`.

    Args:
        genotype: a `Genotype` (or its JSON) whose cells concatenate all
            their intermediate nodes, as the cells of the space do.
        search_reduction: whether to emit the `reduce/...` values. If False,
            the genotype's reduction cell must equal its normal cell.
        num_cells: if given, added as `num_cells`.
        filters: if given, added as `filters`.

    Returns:
        A dict of hyperparameter values; `cell_genotype_from_hyperparameters`
        maps it back to `genotype`.

    Example:

    >>> from keras_nas.blocks.genotypes import DARTS_V2
    >>> hp = cell_hyperparameters_from_genotype(DARTS_V2)
    >>> hp["normal/node3/op1"], hp["normal/node3/input1"]
    ('dil_conv_3x3', 2)
    >>> cell_genotype_from_hyperparameters(hp) == DARTS_V2
    True
    """
    if isinstance(genotype, str):
        try:
            genotype = Genotype.from_json(genotype)
        except ValueError as e:
            raise ValueError(
                "Expected `genotype` to be a Genotype or its JSON. "
                f"Received: genotype={genotype!r}"
            ) from e
    if not isinstance(genotype, Genotype):
        raise ValueError(
            "Expected `genotype` to be a keras_nas Genotype. "
            f"Received: genotype={genotype!r}"
        )
    for kind in _KINDS:
        pairs, concat = genotype.cell(kind)
        expected = tuple(range(2, 2 + len(pairs) // genotype.arity))
        if tuple(concat) != expected:
            raise ValueError(
                f"Expected `genotype.{kind}_concat` to be all intermediate "
                f"nodes {expected}, as in the cells of CellSearchSpace. "
                f"Received: genotype.{kind}_concat={concat!r}"
            )
    if not search_reduction and genotype.reduce != genotype.normal:
        raise ValueError(
            "Expected the reduction cell of `genotype` to equal its normal "
            "cell when search_reduction=False. Received: "
            f"genotype={genotype}"
        )
    values: dict[str, Any] = {}
    if num_cells is not None:
        values["num_cells"] = _common.check_positive_int(
            "num_cells", num_cells
        )
    if filters is not None:
        values["filters"] = _common.check_positive_int("filters", filters)
    for kind in _KINDS if search_reduction else ("normal",):
        for i, node in enumerate(genotype.nodes(kind)):
            for k, (op, index) in enumerate(node):
                values[_input_name(kind, i, k)] = index
                values[_op_name(kind, i, k)] = op
    return values


# The names before issue 14 (other spaces' functions carry their prefix:
# `nb201_...`, `gan_...`); `keras_nas.spaces` resolves them too.
genotype_from_hyperparameters = cell_genotype_from_hyperparameters
hyperparameters_from_genotype = cell_hyperparameters_from_genotype


class CellSearchSpace(keras_tuner.HyperModel):
    """The DARTS/NASNet cell search space, with macro choices.

    Searches a normal and a reduction cell (Zoph et al., "Learning
    Transferable Architectures for Scalable Image Recognition", CVPR 2018;
    Liu et al., "DARTS: Differentiable Architecture Search", ICLR 2019):
    each of `num_nodes` intermediate nodes picks two inputs among the
    earlier nodes and an operation for each. Jointly, the number of cells
    and the initial number of filters are searched. The network is
    `keras_nas.blocks.network.build_network`: a stem, `num_cells` cells with
    reduction cells at 1/3 and 2/3 of the depth, global pooling and a
    softmax classifier.

    The defaults (`num_cells=(2, 3)`, `filters=(8, 16)`) are sized for small
    images such as the 8x8 scikit-learn digits on a CPU; use
    e.g. `num_cells=(8, 14, 20)`, `filters=(16, 36)` for CIFAR-10.

    Args:
        input_shape: shape of one input image, `(height, width, channels)`.
        num_classes: number of classes.
        ops: candidate op names (see `keras_nas.blocks.known_ops()`).
            Defaults to the DARTS ops without `none`.
        num_nodes: intermediate nodes per cell.
        num_cells: number of cells: an int (fixed) or a sequence of ints
            (searched, hyperparameter `num_cells`).
        filters: initial number of filters: an int or a sequence of ints
            (hyperparameter `filters`).
        search_reduction: whether the reduction cell is searched; if False
            it is the normal cell (applied with stride 2).
        optimizer: name of a Keras optimizer or an optimizer instance
            (copied for each model).
        learning_rate: the optimizer's learning rate.
        bn_momentum: momentum set on every BatchNormalization layer (0.9 as
            in DARTS/NAS-Bench-201; Keras' 0.99 is too slow for the few
            steps of a trial); None keeps the layers' own.
        auxiliary: whether the network has an auxiliary head.
        drop_path_rate: drop-path rate of the cells.
        **kwargs: `name` and `tunable` of `keras_tuner.HyperModel`.

    Example:

    >>> space = CellSearchSpace(input_shape=(8, 8, 1), num_classes=10)
    >>> hp = keras_tuner.HyperParameters()
    >>> genotype = space.declare_hyperparameters(hp)
    >>> genotype.num_nodes
    4
    >>> tuner = keras_tuner.RandomSearch(space, max_trials=3)  # doctest: +SKIP
    >>> tuner.search(x, y, epochs=3, validation_split=0.2)  # doctest: +SKIP
    >>> space.genotype(tuner.get_best_hyperparameters()[0])  # doctest: +SKIP
    """

    def __init__(
        self,
        input_shape: tuple[int, ...] = (8, 8, 1),
        num_classes: int = 10,
        ops: Sequence[str] | None = None,
        num_nodes: int = 4,
        num_cells: int | Sequence[int] = (2, 3),
        filters: int | Sequence[int] = (8, 16),
        search_reduction: bool = True,
        optimizer: str | keras.optimizers.Optimizer = "adam",
        learning_rate: float = 5e-3,
        auxiliary: bool = False,
        drop_path_rate: float = 0.0,
        bn_momentum: float | None = 0.9,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.input_shape = _common.check_image_shape(input_shape)
        self.num_classes = _common.check_positive_int(
            "num_classes", num_classes, minimum=2
        )
        self.ops = _common.check_choices(
            "ops", DEFAULT_OPS if ops is None else ops, registry.known_ops()
        )
        self.num_nodes = _common.check_positive_int(
            "num_nodes", num_nodes, 1, MAX_NODES
        )
        self.num_cells = _common.check_int_choices(
            "num_cells", num_cells, maximum=MAX_CELLS
        )
        # A cell splits its filters in two when it reduces: at least 2.
        self.filters = _common.check_int_choices(
            "filters", filters, minimum=2, maximum=MAX_FILTERS
        )
        self.search_reduction = check_bool("search_reduction", search_reduction)
        _common.set_training(self, optimizer, learning_rate, bn_momentum)
        self.auxiliary = check_bool("auxiliary", auxiliary)
        self.drop_path_rate = check_number(
            "drop_path_rate", drop_path_rate, 0.0, 1.0, high_open=True
        )

    def declare_hyperparameters(
        self, hp: keras_tuner.HyperParameters
    ) -> Genotype:
        """Declares all hyperparameters of the space in `hp`.

        Returns:
            The genotype of `hp`'s current values.
        """
        _common.declare_int(hp, "num_cells", self.num_cells)
        _common.declare_int(hp, "filters", self.filters)
        for kind in _KINDS if self.search_reduction else ("normal",):
            for i in range(self.num_nodes):
                for k in range(2):
                    hp.Choice(
                        _input_name(kind, i, k),
                        list(range(i + 2)),
                        ordered=False,
                        default=i + 1 - k,
                    )
                    hp.Choice(
                        _op_name(kind, i, k),
                        list(self.ops),
                        default=self._default_op(k),
                    )
        return cell_genotype_from_hyperparameters(hp)

    def _default_op(self, k: int) -> str:
        # The default (first) architecture of some tuners: a conv on the
        # newest state plus a residual, rather than `ops[0]` everywhere.
        preferred = ("sep_conv_3x3", "skip_connect")[k % 2]
        return preferred if preferred in self.ops else self.ops[0]

    def genotype(self, hp: Any) -> Genotype:
        """The genotype of a trial's hyperparameters (dict or `hp`)."""
        return cell_genotype_from_hyperparameters(hp)

    def hyperparameters(
        self, genotype: Genotype | str, num_cells: int | None = None,
        filters: int | None = None,
    ) -> dict[str, Any]:
        """The values of this space that encode `genotype`."""
        return cell_hyperparameters_from_genotype(
            genotype,
            search_reduction=self.search_reduction,
            num_cells=num_cells,
            filters=filters,
        )

    def build(self, hp: keras_tuner.HyperParameters) -> keras.Model:
        """Builds and compiles the network of `hp`'s cells."""
        from keras_nas.blocks.network import build_network

        genotype = self.declare_hyperparameters(hp)
        model = build_network(
            genotype,
            input_shape=self.input_shape,
            num_classes=self.num_classes,
            filters=hp.get("filters"),
            num_cells=hp.get("num_cells"),
            auxiliary=self.auxiliary,
            drop_path_rate=self.drop_path_rate,
        )
        return _common.finish_classifier(self, model)

    def fit(
        self,
        hp: keras_tuner.HyperParameters,
        model: keras.Model,
        *args: Any,
        **kwargs: Any,
    ) -> Any:
        """Fits `model`; with `auxiliary=True` the labels feed both heads."""
        if isinstance(model.output, dict):
            return _common.fit_auxiliary(model, *args, **kwargs)
        return model.fit(*args, **kwargs)
