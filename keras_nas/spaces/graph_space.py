"""A search space of graph neural networks (GraphNAS / Auto-GNN style).

The network is a stack of `num_layers` message-passing layers on padded
dense graphs `[x, a]` (see `keras_nas.blocks.graph`). For every layer `i`
(active when the network has more than `i` layers) the hyperparameters are

- `layer{i}/conv`: the graph layer, `"gcn"` (Kipf & Welling, 2017),
  `"sage"` (GraphSAGE mean, Hamilton et al., 2017), `"gin"` (Xu et al.,
  2019) or `"gat"` (Velickovic et al., 2018),
- `layer{i}/heads`: attention heads, active only when the layer is `"gat"`,
- `layer{i}/units`, `layer{i}/activation`, `layer{i}/dropout`,
- `layer{i}/residual`: add the layer's input to its output (projected by a
  bias-free dense layer when the widths differ),

plus `readout` (`"mean"`, `"max"` or `"sum"` pooling of the nodes) for
graph classification. This is the per-layer space of GraphNAS (Gao, Yang,
Zhang, Zhou & Hu, "Graph Neural Architecture Search", IJCAI 2020) and
Auto-GNN (Zhou, Song, Huang & Hu, "Auto-GNN: Neural Architecture Search of
Graph Neural Networks", arXiv:1909.03184, 2019), with the aggregation and
attention choices folded into the four standard layers, and skip
connections and readout added. It is declared with keras-tuner's
conditional scopes, so every tuner (keras-tuner's and `keras_nas.tuners`)
sees only the active choices.

Tasks:

- `task="graph"` (graph classification): inputs `[x, a]` with
  `x (graphs, nodes, features)` and `a (graphs, nodes, nodes)`, labels
  `(graphs,)`; output `(graphs, num_classes)`.
- `task="node"` (node classification on one graph): the same inputs for a
  batch of one graph, labels `(1, nodes)`; output `(1, nodes,
  num_classes)`. Train and validate on subsets of the nodes by passing the
  node masks as sample weights: `search([x, a], y, sample_weight=
  train_mask, validation_data=([x, a], y, val_mask), batch_size=1)`; the
  loss and `val_accuracy` then count only the masked nodes (see
  `keras_nas.data.make_node_classification`). The node model is
  compiled with `weighted_metrics=["accuracy"]` (Keras applies sample
  weights to weighted metrics only); its logged name is still
  `accuracy` / `val_accuracy`.

Padded nodes (zero feature rows and zero adjacency rows and columns) are
found by `NodeMask` on the inputs, so node features must not be all zero
on real isolated nodes (add a constant feature).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
import keras_tuner

from keras_nas.blocks import graph
from keras_nas.spaces import _common

__all__ = ["GraphSearchSpace", "GRAPH_CONV_TYPES", "GRAPH_TASKS"]

#: Graph layers of the space: `keras_nas.blocks.graph.GRAPH_CONVS`.
GRAPH_CONV_TYPES: tuple[str, ...] = graph.GRAPH_CONVS
#: Tasks of the space.
GRAPH_TASKS: tuple[str, ...] = ("graph", "node")
_READOUTS = graph.READOUTS


def _check_residual(value: Any) -> tuple[bool, ...]:
    values = _common.check_choices("residual", value)
    if not all(isinstance(v, bool) for v in values):
        raise ValueError(
            "Expected `residual` to be a non-empty sequence of distinct "
            f"bools. Received: residual={value!r}"
        )
    return values


class GraphSearchSpace(keras_tuner.HyperModel):
    """Graph neural networks for graph or node classification.

    See the module docstring for the hyperparameters. Each layer is the
    chosen graph convolution with the chosen activation, then the optional
    residual connection, then dropout; every layer receives the node mask
    of the input graphs, so padding never leaks into aggregations or the
    readout. Graph classification pools the last layer with the chosen
    readout; both tasks end in a softmax dense layer (per graph or per
    node), compiled with `sparse_categorical_crossentropy` and `accuracy`.
    A single choice for an argument fixes that hyperparameter.

    Args:
        num_features: node features of the input graphs.
        num_classes: number of classes.
        num_nodes: padded node count of the inputs, or None for any.
        task: `"graph"` (graph classification) or `"node"` (node
            classification).
        max_layers: the largest number of graph layers.
        min_layers: the smallest number of graph layers.
        conv_types: graph layers to choose from (subset of
            `GRAPH_CONV_TYPES`).
        units: choices of output features per layer (for `"gat"`, split
            over the concatenated heads).
        heads: choices of attention heads of `"gat"` layers.
        activations: choices of activation names.
        dropout_rates: choices of dropout after every layer.
        residual: choices of residual connection (`(False, True)`:
            searched).
        readouts: choices of graph readout (`"mean"`, `"max"`, `"sum"`;
            graph task only).
        optimizer: name of a Keras optimizer or an optimizer instance
            (copied for each model).
        learning_rate: the optimizer's learning rate.
        **kwargs: `name` and `tunable` of `keras_tuner.HyperModel`.

    Example:

    >>> space = GraphSearchSpace(num_features=1, num_classes=3,
    ...                          max_layers=2)
    >>> hp = keras_tuner.HyperParameters()
    >>> [layer["conv"] for layer in space.declare_hyperparameters(hp)]
    ['gcn']
    >>> x, a, y = keras_nas.data.make_graph_classification(90)  # doctest: +SKIP
    >>> tuner = keras_nas.tuners.AgingEvolution(
    ...     space, objective="val_accuracy", max_trials=10)  # doctest: +SKIP
    >>> tuner.search([x, a], y, validation_split=0.3)  # doctest: +SKIP
    """

    def __init__(
        self,
        num_features: int,
        num_classes: int,
        num_nodes: int | None = None,
        task: str = "graph",
        max_layers: int = 3,
        min_layers: int = 1,
        conv_types: Sequence[str] = GRAPH_CONV_TYPES,
        units: Sequence[int] = (16, 32, 64),
        heads: Sequence[int] = (1, 2, 4),
        activations: Sequence[str] = ("relu", "elu", "tanh"),
        dropout_rates: Sequence[float] = (0.0, 0.2, 0.5),
        residual: Sequence[bool] = (False, True),
        readouts: Sequence[str] = _READOUTS,
        optimizer: str | keras.optimizers.Optimizer = "adam",
        learning_rate: float = 1e-2,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.num_features = _common.check_positive_int(
            "num_features", num_features
        )
        self.num_classes = _common.check_positive_int(
            "num_classes", num_classes, minimum=2
        )
        if num_nodes is not None:
            num_nodes = _common.check_positive_int("num_nodes", num_nodes)
        self.num_nodes = num_nodes
        if task not in GRAPH_TASKS:
            raise ValueError(
                f"Expected `task` to be one of {list(GRAPH_TASKS)}. "
                f"Received: task={task!r}"
            )
        self.task = task
        self.min_layers, self.max_layers = _common.check_layer_range(
            min_layers, max_layers
        )
        self.conv_types = _common.check_choices(
            "conv_types", conv_types, GRAPH_CONV_TYPES
        )
        self.units = _common.check_int_choices("units", units, allow_int=False)
        self.heads = _common.check_int_choices("heads", heads, allow_int=False)
        self.activations = _common.check_activations(activations)
        self.dropout_rates = _common.check_rates(dropout_rates)
        self.residual = _check_residual(residual)
        self.readouts = _common.check_choices("readouts", readouts, _READOUTS)
        _common.check_optimizer(optimizer, learning_rate)
        self.optimizer = optimizer
        self.learning_rate = float(learning_rate)

    def _choice(
        self, hp: keras_tuner.HyperParameters, name: str, values: tuple
    ) -> Any:
        if len(values) == 1:
            return hp.Fixed(name, values[0])
        if isinstance(values[0], bool):
            return hp.Boolean(name, default=values[0])
        if _common.is_int(values[0]):
            return _common.declare_int(hp, name, tuple(sorted(values)))
        return hp.Choice(name, list(values))

    def declare_hyperparameters(
        self, hp: keras_tuner.HyperParameters
    ) -> list[dict[str, Any]]:
        """Declares all hyperparameters of the space in `hp`.

        Returns:
            One dict per active layer (`{"conv": ..., "units": ...,
            "heads": ..., "activation": ..., "residual": ...,
            "dropout": ...}`, `heads` for `"gat"` only) with `hp`'s current
            values. The readout is `hp.get("readout")` (graph task).
        """
        specs = _common.declare_layers(
            hp, self.min_layers, self.max_layers, self._declare_layer
        )
        if self.task == "graph":
            self._choice(hp, "readout", self.readouts)
        return specs

    def _declare_layer(
        self, hp: keras_tuner.HyperParameters, i: int
    ) -> dict[str, Any]:
        name = f"layer{i}/conv"
        spec = {"conv": self._choice(hp, name, self.conv_types)}
        if "gat" in self.conv_types:
            with hp.conditional_scope(name, ["gat"]):
                heads = self._choice(hp, f"layer{i}/heads", self.heads)
            if spec["conv"] == "gat":
                spec["heads"] = heads
        for key, values in (
            ("units", self.units),
            ("activation", self.activations),
            ("residual", self.residual),
            ("dropout", self.dropout_rates),
        ):
            spec[key] = self._choice(hp, f"layer{i}/{key}", values)
        return spec

    def build(self, hp: keras_tuner.HyperParameters) -> keras.Model:
        """Builds and compiles the graph network of `hp`'s layers.

        Layers are named by position (`layer{i}_{conv}`,
        `layer{i}_residual`, `layer{i}_dropout`, `readout`,
        `predictions`).
        """
        specs = self.declare_hyperparameters(hp)
        nodes = self.num_nodes
        x_in = keras.Input(shape=(nodes, self.num_features), name="x")
        a_in = keras.Input(shape=(nodes, nodes), name="a")
        mask = graph.NodeMask(name="node_mask")([x_in, a_in])
        h, width = x_in, self.num_features
        for i, spec in enumerate(specs):
            conv = graph.get_graph_conv(
                spec["conv"],
                spec["units"],
                activation=spec["activation"],
                heads=spec.get("heads", 1),
                name=f"layer{i}_{spec['conv']}",
            )
            out = conv([h, a_in, mask])
            if spec["residual"]:
                skip = h
                if conv.output_units != width:
                    skip = keras.layers.Dense(
                        conv.output_units,
                        use_bias=False,
                        name=f"layer{i}_projection",
                    )(h)
                out = keras.layers.Add(name=f"layer{i}_residual")([out, skip])
            if spec["dropout"]:
                out = keras.layers.Dropout(
                    spec["dropout"], name=f"layer{i}_dropout"
                )(out)
            h, width = out, conv.output_units
        if self.task == "graph":
            h = graph.GraphReadout(hp.get("readout"), name="readout")([h, mask])
        outputs = keras.layers.Dense(
            self.num_classes, activation="softmax", name="predictions"
        )(h)
        model = keras.Model([x_in, a_in], outputs, name="graph_network")
        if self.task == "graph":
            return _common.compile_classifier(
                model, self.optimizer, self.learning_rate
            )
        # Node masks arrive as sample weights: `accuracy` must use them.
        model.compile(
            optimizer=_common.make_optimizer(
                self.optimizer, self.learning_rate
            ),
            loss="sparse_categorical_crossentropy",
            weighted_metrics=["accuracy"],
        )
        _common.defer_training_state(model)
        return model
