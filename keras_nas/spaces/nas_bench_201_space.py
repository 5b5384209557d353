"""The NAS-Bench-201 cell search space (Dong & Yang, ICLR 2020).

One hyperparameter per edge of the 4-node cell, named `edge_{to}_{from}`
(e.g. `edge_2_1`) in the order of `NB201_EDGES`, each a categorical choice
among the benchmark's five operations `NB201_OPS`. The hyperparameters map
one-to-one onto the benchmark's cell string
`|op~0|+|op~0|op~1|+|op~0|op~1|op~2|`, so a trial can be looked up in the
NAS-Bench-201 table.
"""

from __future__ import annotations

from typing import Any

import keras
import keras_tuner

from keras_nas._validation import MAX_FILTERS
from keras_nas.blocks.genotypes import NB201_EDGES, NasBench201Genotype
from keras_nas.blocks.registry import NB201_OPS
from keras_nas.spaces import _common

__all__ = [
    "NB201_HP_NAMES",
    "NasBench201SearchSpace",
    "nb201_genotype_from_hyperparameters",
    "nb201_hyperparameters_from_genotype",
]

#: Hyperparameter names, one per edge, in `NB201_EDGES` order.
NB201_HP_NAMES: tuple[str, ...] = tuple(
    f"edge_{to}_{src}" for to, src in NB201_EDGES
)

#: Default value of every edge (the first trial of some tuners); the
#: benchmark's first op, "none", would give a cell that outputs zeros.
DEFAULT_OP = "nor_conv_3x3"


def nb201_genotype_from_hyperparameters(values: Any) -> NasBench201Genotype:
    """Turns the hyperparameters of a trial into a `NasBench201Genotype`.

    Args:
        values: a dict or a `keras_tuner.HyperParameters` holding the six
            `edge_{to}_{from}` values. Other keys (e.g. Hyperband's
            `tuner/epochs`) are ignored.

    Returns:
        The genotype; `genotype.to_string()` is the benchmark's cell string.

    Example:

    >>> values = {name: "nor_conv_3x3" for name in NB201_HP_NAMES}
    >>> nb201_genotype_from_hyperparameters(values).to_string()[:30]
    '|nor_conv_3x3~0|+|nor_conv_3x3'
    """
    values = _common.hp_values(values)
    missing = [n for n in NB201_HP_NAMES if n not in values]
    if missing:
        raise ValueError(
            f"Expected `values` to hold the hyperparameters "
            f"{list(NB201_HP_NAMES)}; missing {missing}. "
            f"Received: values={values!r}"
        )
    ops = []
    for name in NB201_HP_NAMES:
        op = values[name]
        if op not in NB201_OPS:
            raise ValueError(
                f"Expected `values[{name!r}]` to be one of {list(NB201_OPS)}."
                f" Received: values[{name!r}]={op!r}"
            )
        ops.append(str(op))
    return NasBench201Genotype(tuple(ops))


def nb201_hyperparameters_from_genotype(
    genotype: NasBench201Genotype | str,
) -> dict[str, str]:
    """Turns a NAS-Bench-201 genotype or cell string into hyperparameters.

    Args:
        genotype: a `NasBench201Genotype` or a cell string such as
            `"|nor_conv_3x3~0|+|none~0|skip_connect~1|+|..."`.

    Returns:
        A dict `{"edge_1_0": op, "edge_2_0": op, ...}` in `NB201_EDGES`
        order.

    Example:

    >>> hp = nb201_hyperparameters_from_genotype(
    ...     "|nor_conv_3x3~0|+|none~0|skip_connect~1|"
    ...     "+|avg_pool_3x3~0|nor_conv_1x1~1|skip_connect~2|"
    ... )
    >>> hp["edge_2_1"]
    'skip_connect'
    """
    if isinstance(genotype, str):
        genotype = NasBench201Genotype.from_string(genotype)
    if not isinstance(genotype, NasBench201Genotype):
        raise ValueError(
            "Expected `genotype` to be a NasBench201Genotype or a "
            f"NAS-Bench-201 cell string. Received: genotype={genotype!r}"
        )
    bad = [op for op in genotype.ops if op not in NB201_OPS]
    if bad:
        raise ValueError(
            f"Expected every op of `genotype` to be one of {list(NB201_OPS)}."
            f" Received: genotype={genotype.to_string()!r}"
        )
    return dict(zip(NB201_HP_NAMES, genotype.ops, strict=True))


class NasBench201SearchSpace(keras_tuner.HyperModel):
    """The NAS-Bench-201 space: 6 edges x 5 operations (15,625 cells).

    The network follows the benchmark (Dong & Yang, "NAS-Bench-201:
    Extending the Scope of Reproducible Neural Architecture Search",
    ICLR 2020): a 3x3 conv stem, three stages of `cells_per_stage` copies
    of the searched cell with `filters`, `2 * filters` and `4 * filters`
    channels separated by residual reduction blocks, global pooling and a
    softmax classifier. The trial's hyperparameters are exactly the six
    edges (see `NB201_HP_NAMES`), so the tuner's search space is the
    benchmark's.

    Args:
        input_shape: shape of one input image, `(height, width, channels)`.
        num_classes: number of classes.
        filters: channels of the first stage (16 in the benchmark).
        cells_per_stage: cells per stage (5 in the benchmark).
        optimizer: name of a Keras optimizer or an optimizer instance
            (copied for each model).
        learning_rate: the optimizer's learning rate.
        bn_momentum: momentum set on every BatchNormalization layer (0.9 as
            in DARTS/NAS-Bench-201; Keras' 0.99 is too slow for the few
            steps of a trial); None keeps the layers' own.
        name: name of the hypermodel.
        tunable: whether the hyperparameters are tunable.

    Example:

    >>> space = NasBench201SearchSpace(
    ...     input_shape=(8, 8, 1), num_classes=10, filters=4,
    ...     cells_per_stage=1)
    >>> tuner = keras_tuner.RandomSearch(space, max_trials=3)  # doctest: +SKIP
    >>> tuner.search(x, y, epochs=1, validation_split=0.2)  # doctest: +SKIP
    >>> best = tuner.get_best_hyperparameters()[0]  # doctest: +SKIP
    >>> space.genotype(best).to_string()  # doctest: +SKIP
    """

    def __init__(
        self,
        input_shape: tuple[int, ...] = (32, 32, 3),
        num_classes: int = 10,
        filters: int = 16,
        cells_per_stage: int = 5,
        optimizer: str | keras.optimizers.Optimizer = "adam",
        learning_rate: float = 1e-3,
        bn_momentum: float | None = 0.9,
        name: str | None = None,
        tunable: bool = True,
    ) -> None:
        super().__init__(name=name, tunable=tunable)
        self.input_shape = _common.check_image_shape(input_shape)
        self.num_classes = _common.check_positive_int(
            "num_classes", num_classes, minimum=2
        )
        self.filters = _common.check_positive_int(
            "filters", filters, 2, MAX_FILTERS
        )
        self.cells_per_stage = _common.check_positive_int(
            "cells_per_stage", cells_per_stage
        )
        _common.set_training(self, optimizer, learning_rate, bn_momentum)

    def declare_hyperparameters(
        self, hp: keras_tuner.HyperParameters
    ) -> NasBench201Genotype:
        """Declares the six edge hyperparameters in `hp`.

        Returns:
            The genotype of `hp`'s current values.
        """
        for name in NB201_HP_NAMES:
            hp.Choice(
                name, list(NB201_OPS), ordered=False, default=DEFAULT_OP
            )
        return nb201_genotype_from_hyperparameters(hp)

    def genotype(self, hp: Any) -> NasBench201Genotype:
        """The genotype of a trial's hyperparameters (dict or `hp`)."""
        return nb201_genotype_from_hyperparameters(hp)

    def build(self, hp: keras_tuner.HyperParameters) -> keras.Model:
        """Builds and compiles the network of `hp`'s cell."""
        from keras_nas.blocks.network import build_nb201_network

        genotype = self.declare_hyperparameters(hp)
        model = build_nb201_network(
            genotype,
            input_shape=self.input_shape,
            num_classes=self.num_classes,
            filters=self.filters,
            cells_per_stage=self.cells_per_stage,
        )
        return _common.finish_classifier(self, model)
