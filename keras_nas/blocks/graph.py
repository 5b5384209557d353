"""Graph neural network layers on padded dense graphs, as Keras 3 layers.

A batch of graphs is a pair `[x, a]`: node features `x` of shape
`(batch, nodes, features)` and a dense adjacency `a` of shape
`(batch, nodes, nodes)`, where `a[b, i, j] != 0` means an edge from node `j`
to node `i` (node `i` aggregates row `i`; use a symmetric `a` for undirected
graphs). Graphs with fewer nodes than `nodes` are padded with zero rows and
columns. A third input, a node mask `(batch, nodes)` with 1 for real nodes
and 0 for padding, can be passed as `[x, a, mask]`; without it every layer
derives the mask from its own inputs with `node_mask` (a node is real when
its feature row or its adjacency row or column is non-zero). Inside a stack
of layers, pass the mask of the raw input explicitly (`NodeMask` computes
it): a hidden feature row can be all zero after a ReLU.

Padding never leaks: every layer ignores edges to and from padded nodes,
adds self loops only to real nodes and returns zero rows for padded nodes,
and `GraphReadout` pools real nodes only, so adding padded nodes changes no
output. All layers use `keras.ops` only (TensorFlow and JAX).

- `GCNConv`: Kipf & Welling, "Semi-Supervised Classification with Graph
  Convolutional Networks", ICLR 2017.
- `GraphSAGEConv`: the mean aggregator of Hamilton, Ying & Leskovec,
  "Inductive Representation Learning on Large Graphs", NeurIPS 2017.
- `GINConv`: Xu, Hu, Leskovec & Jegelka, "How Powerful are Graph Neural
  Networks?", ICLR 2019.
- `GATConv`: Velickovic et al., "Graph Attention Networks", ICLR 2018.
- `GraphReadout`: mean / max / sum pooling of node features per graph.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from keras_nas._validation import check_number, check_positive_int

__all__ = [
    "GATConv",
    "GCNConv",
    "GINConv",
    "GraphReadout",
    "GraphSAGEConv",
    "NodeMask",
    "node_mask",
    "GRAPH_CONVS",
    "get_graph_conv",
]

_PACKAGE = "keras_nas"
_NEG_INF = -1e9


def node_mask(x: Any, a: Any) -> Any:
    """The node mask of padded graphs: 1.0 for real nodes, 0.0 for padding.

    A node is real when its feature row, its adjacency row or its adjacency
    column holds a non-zero value. An isolated node with all-zero features
    counts as padding: give such graphs a constant feature or pass an
    explicit mask.

    Args:
        x: node features `(batch, nodes, features)`.
        a: adjacency `(batch, nodes, nodes)`.

    Returns:
        A float tensor `(batch, nodes)` of the dtype of `x`.
    """
    nonzero_a = ops.not_equal(a, 0)
    real = ops.logical_or(
        ops.any(ops.not_equal(x, 0), axis=-1),
        ops.logical_or(ops.any(nonzero_a, axis=-1), ops.any(nonzero_a, -2)),
    )
    return ops.cast(real, x.dtype)


def _check_graph_inputs(inputs: Any, layer: str) -> None:
    if not isinstance(inputs, (list, tuple)) or len(inputs) not in (2, 3):
        raise ValueError(
            f"Expected the inputs of {layer} to be a list [x, a] or "
            "[x, a, mask] with x (batch, nodes, features), a (batch, "
            "nodes, nodes) and mask (batch, nodes). "
            f"Received: inputs={inputs!r}"
        )


def _unpack(inputs: Any, layer: str) -> tuple[Any, Any, Any]:
    """`(x, a, mask)` with `a` restricted to edges between real nodes."""
    _check_graph_inputs(inputs, layer)
    x = inputs[0]
    a = ops.cast(inputs[1], x.dtype)
    if len(inputs) == 3:
        mask = ops.cast(inputs[2], x.dtype)
    else:
        mask = node_mask(x, a)
    a = a * mask[:, :, None] * mask[:, None, :]
    return x, a, mask


def _self_loops(mask: Any) -> Any:
    """`diag(mask)` as a `(batch, nodes, nodes)` tensor (dynamic sizes)."""
    index = ops.cumsum(ops.ones_like(mask), axis=-1)
    eye = ops.cast(ops.equal(index[:, :, None], index[:, None, :]), mask.dtype)
    return eye * mask[:, :, None]


def _input_shapes(input_shape: Any, layer: str) -> tuple[tuple, tuple]:
    shapes = list(input_shape)
    if (
        len(shapes) not in (2, 3)
        or not all(isinstance(s, (list, tuple)) for s in shapes)
        or len(shapes[0]) != 3
    ):
        raise ValueError(
            f"Expected {layer} to be called on [x, a] or [x, a, mask] with "
            "x of shape (batch, nodes, features). "
            f"Received: input_shape={input_shape!r}"
        )
    x_shape = tuple(shapes[0])
    if x_shape[-1] is None:
        raise ValueError(
            f"Expected the feature axis of x to be known in {layer}. "
            f"Received: input_shape={input_shape!r}"
        )
    return x_shape, tuple(shapes[1])


class _GraphConv(keras.layers.Layer):
    """Shared arguments of the graph convolutions (not registered)."""

    def __init__(
        self,
        units: int,
        activation: Any = None,
        use_bias: bool = True,
        kernel_initializer: Any = "glorot_uniform",
        bias_initializer: Any = "zeros",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.units = check_positive_int("units", units)
        self.activation = keras.activations.get(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)

    @property
    def output_units(self) -> int:
        return self.units

    def _kernel(self, name: str, shape: tuple) -> Any:
        return self.add_weight(
            name=name, shape=shape, initializer=self.kernel_initializer
        )

    def _bias(self, name: str = "bias", size: int | None = None) -> Any:
        if not self.use_bias:
            return None
        return self.add_weight(
            name=name,
            shape=(size or self.output_units,),
            initializer=self.bias_initializer,
        )

    def _finish(self, out: Any, mask: Any) -> Any:
        if self.use_bias:
            out = out + self.bias
        return self.activation(out) * mask[:, :, None]

    def compute_output_shape(self, input_shape: Any) -> tuple:
        x_shape, _ = _input_shapes(input_shape, type(self).__name__)
        return (*x_shape[:2], self.output_units)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            units=self.units,
            activation=keras.activations.serialize(self.activation),
            use_bias=self.use_bias,
            kernel_initializer=keras.initializers.serialize(
                self.kernel_initializer
            ),
            bias_initializer=keras.initializers.serialize(
                self.bias_initializer
            ),
        )
        return config


@keras.saving.register_keras_serializable(package=_PACKAGE)
class GCNConv(_GraphConv):
    """Graph convolution with symmetric normalization (Kipf & Welling).

    `out = activation(D^-1/2 (A + I) D^-1/2 x W + b)`, where `A` is the
    adjacency restricted to real nodes, `I` adds a self loop to every real
    node and `D` is the diagonal of the row sums of `A + I` (Kipf &
    Welling, "Semi-Supervised Classification with Graph Convolutional
    Networks", ICLR 2017, eq. 2). Edge weights of `A` are used as given.

    Args:
        units: output features per node.
        activation: activation applied to the output.
        use_bias: whether to add a bias.
        kernel_initializer: initializer of `W`.
        bias_initializer: initializer of `b`.
        **kwargs: base layer keyword arguments, such as `name`.

    Example:

    >>> x = keras.ops.ones((2, 5, 3))
    >>> a = keras.ops.ones((2, 5, 5))
    >>> tuple(GCNConv(4)([x, a]).shape)
    (2, 5, 4)
    """

    def build(self, input_shape: Any) -> None:
        x_shape, _ = _input_shapes(input_shape, "GCNConv")
        self.kernel = self._kernel("kernel", (x_shape[-1], self.units))
        self.bias = self._bias()

    def call(self, inputs: Any) -> Any:
        x, a, mask = _unpack(inputs, "GCNConv")
        h = ops.matmul(x, self.kernel)
        degree = ops.sum(a, axis=-1) + mask
        inv_sqrt = ops.where(
            degree > 0, ops.rsqrt(ops.maximum(degree, 1e-12)), 0.0
        )[:, :, None]
        # D^-1/2 (A + I) D^-1/2 h without materializing A + I.
        out = inv_sqrt * ops.matmul(a, inv_sqrt * h)
        out = out + inv_sqrt * inv_sqrt * mask[:, :, None] * h
        return self._finish(out, mask)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class GraphSAGEConv(_GraphConv):
    """GraphSAGE with the mean aggregator (Hamilton et al., 2017).

    `out = activation(x W_self + mean_{j in N(i)} x_j W_neigh + b)`: the
    concatenation `[x_i, mean(x_N(i))] W` of Hamilton, Ying & Leskovec,
    "Inductive Representation Learning on Large Graphs", NeurIPS 2017
    (Algorithm 1), written as two kernels. The mean is weighted by the edge
    weights; a node without neighbours aggregates zeros. With
    `normalize=True` the output rows are scaled to unit L2 norm, as in the
    paper.

    Args:
        units: output features per node.
        activation: activation applied to the output.
        use_bias: whether to add a bias.
        normalize: whether to L2-normalize the output rows.
        kernel_initializer: initializer of the kernels.
        bias_initializer: initializer of the bias.
        **kwargs: base layer keyword arguments, such as `name`.

    Example:

    >>> x = keras.ops.ones((2, 5, 3))
    >>> a = keras.ops.ones((2, 5, 5))
    >>> tuple(GraphSAGEConv(4)([x, a]).shape)
    (2, 5, 4)
    """

    def __init__(self, units: int, normalize: bool = False, **kwargs: Any):
        super().__init__(units, **kwargs)
        self.normalize = bool(normalize)

    def build(self, input_shape: Any) -> None:
        x_shape, _ = _input_shapes(input_shape, "GraphSAGEConv")
        features = x_shape[-1]
        self.self_kernel = self._kernel("self_kernel", (features, self.units))
        self.neighbor_kernel = self._kernel(
            "neighbor_kernel", (features, self.units)
        )
        self.bias = self._bias()

    def call(self, inputs: Any) -> Any:
        x, a, mask = _unpack(inputs, "GraphSAGEConv")
        degree = ops.sum(a, axis=-1, keepdims=True)
        mean = ops.matmul(a, x) / ops.where(degree > 0, degree, 1.0)
        out = ops.matmul(x, self.self_kernel)
        out = out + ops.matmul(mean, self.neighbor_kernel)
        out = self._finish(out, mask)
        if self.normalize:
            norm = ops.sqrt(ops.sum(ops.square(out), -1, keepdims=True))
            out = out / ops.maximum(norm, 1e-12)
        return out

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(normalize=self.normalize)
        return config


@keras.saving.register_keras_serializable(package=_PACKAGE)
class GINConv(_GraphConv):
    """Graph isomorphism network layer with a learnable epsilon (Xu et al.).

    `out = activation(MLP((1 + eps) x_i + sum_{j in N(i)} x_j))` with a
    two-layer MLP `relu(h W1 + b1) W2 + b2` (Xu, Hu, Leskovec & Jegelka,
    "How Powerful are Graph Neural Networks?", ICLR 2019, eq. 4.1, the
    GIN-eps variant). The sum aggregator can count neighbours, which the
    mean and attention aggregators cannot. Edge weights scale the sum.

    Args:
        units: output features per node (and hidden width of the MLP).
        activation: activation applied to the output.
        use_bias: whether the MLP layers have biases.
        epsilon: initial value of `eps`.
        train_epsilon: whether `eps` is learned (GIN-eps) or fixed (GIN-0
            with `epsilon=0`).
        kernel_initializer: initializer of the MLP kernels.
        bias_initializer: initializer of the MLP biases.
        **kwargs: base layer keyword arguments, such as `name`.

    Example:

    >>> x = keras.ops.ones((2, 5, 3))
    >>> a = keras.ops.ones((2, 5, 5))
    >>> tuple(GINConv(4)([x, a]).shape)
    (2, 5, 4)
    """

    def __init__(
        self,
        units: int,
        epsilon: float = 0.0,
        train_epsilon: bool = True,
        **kwargs: Any,
    ):
        super().__init__(units, **kwargs)
        if isinstance(epsilon, bool) or not isinstance(epsilon, (int, float)):
            raise ValueError(
                "Expected `epsilon` to be a number. "
                f"Received: epsilon={epsilon!r}"
            )
        self.initial_epsilon = float(epsilon)
        self.train_epsilon = bool(train_epsilon)

    def build(self, input_shape: Any) -> None:
        x_shape, _ = _input_shapes(input_shape, "GINConv")
        self.epsilon = self.add_weight(
            name="epsilon",
            shape=(),
            initializer=keras.initializers.Constant(self.initial_epsilon),
            trainable=self.train_epsilon,
        )
        self.kernel_1 = self._kernel("kernel_1", (x_shape[-1], self.units))
        self.bias_1 = self._bias("bias_1")
        self.kernel_2 = self._kernel("kernel_2", (self.units, self.units))
        self.bias = self._bias("bias_2")

    def call(self, inputs: Any) -> Any:
        x, a, mask = _unpack(inputs, "GINConv")
        h = (1.0 + self.epsilon) * x + ops.matmul(a, x)
        h = ops.matmul(h, self.kernel_1)
        if self.use_bias:
            h = h + self.bias_1
        out = ops.matmul(ops.relu(h), self.kernel_2)
        return self._finish(out, mask)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            epsilon=self.initial_epsilon, train_epsilon=self.train_epsilon
        )
        return config


@keras.saving.register_keras_serializable(package=_PACKAGE)
class GATConv(_GraphConv):
    """Multi-head graph attention layer (Velickovic et al., 2018).

    For every head, `e_ij = LeakyReLU(a_dst . W x_i + a_src . W x_j)` for
    the neighbours `j` of `i` and `i` itself, `alpha_ij = softmax_j(e_ij)`
    over those nodes only (padding and non-neighbours get no weight), and
    `out_i = sum_j alpha_ij W x_j`; the heads are concatenated
    (`units * heads` features) or averaged (`units`), then the bias and
    activation are applied (Velickovic et al., "Graph Attention Networks",
    ICLR 2018, eqs. 1-6). Only the edge structure is used: edge weights
    do not scale the attention.

    Args:
        units: output features per head.
        heads: number of attention heads.
        concat_heads: concatenate the heads (else average them).
        negative_slope: slope of the LeakyReLU of the attention logits.
        attention_dropout: dropout rate on the attention coefficients
            during training.
        activation: activation applied to the output.
        use_bias: whether to add a bias.
        kernel_initializer: initializer of `W` and the attention vectors.
        bias_initializer: initializer of the bias.
        seed: seed of the attention dropout.
        **kwargs: base layer keyword arguments, such as `name`.

    Example:

    >>> x = keras.ops.ones((2, 5, 3))
    >>> a = keras.ops.ones((2, 5, 5))
    >>> tuple(GATConv(4, heads=2)([x, a]).shape)
    (2, 5, 8)
    """

    def __init__(
        self,
        units: int,
        heads: int = 1,
        concat_heads: bool = True,
        negative_slope: float = 0.2,
        attention_dropout: float = 0.0,
        seed: int | None = None,
        **kwargs: Any,
    ):
        super().__init__(units, **kwargs)
        self.heads = check_positive_int("heads", heads)
        self.concat_heads = bool(concat_heads)
        self.negative_slope = float(negative_slope)
        self.attention_dropout = check_number(
            "attention_dropout", attention_dropout, 0.0, 1.0, high_open=True
        )
        self.seed = seed
        self.seed_generator = (
            keras.random.SeedGenerator(seed)
            if self.attention_dropout > 0
            else None
        )

    @property
    def output_units(self) -> int:
        return self.units * self.heads if self.concat_heads else self.units

    def build(self, input_shape: Any) -> None:
        x_shape, _ = _input_shapes(input_shape, "GATConv")
        self.kernel = self._kernel(
            "kernel", (x_shape[-1], self.heads, self.units)
        )
        self.attention_source = self._kernel(
            "attention_source", (self.heads, self.units)
        )
        self.attention_target = self._kernel(
            "attention_target", (self.heads, self.units)
        )
        self.bias = self._bias()

    def call(self, inputs: Any, training: bool | None = None) -> Any:
        x, a, mask = _unpack(inputs, "GATConv")
        h = ops.einsum("bnf,fhu->bnhu", x, self.kernel)
        target = ops.einsum("bnhu,hu->bhn", h, self.attention_target)
        source = ops.einsum("bnhu,hu->bhn", h, self.attention_source)
        logits = ops.leaky_relu(
            target[:, :, :, None] + source[:, :, None, :],
            negative_slope=self.negative_slope,
        )
        edges = ops.not_equal(a + _self_loops(mask), 0)[:, None, :, :]
        logits = ops.where(edges, logits, _NEG_INF)
        alpha = ops.softmax(logits, axis=-1) * ops.cast(edges, x.dtype)
        if training and self.attention_dropout > 0:
            alpha = keras.random.dropout(
                alpha, self.attention_dropout, seed=self.seed_generator
            )
        out = ops.einsum("bhij,bjhu->bihu", alpha, h)
        if self.concat_heads:
            out = ops.concatenate(
                [out[:, :, k, :] for k in range(self.heads)], axis=-1
            )
        else:
            out = ops.mean(out, axis=2)
        return self._finish(out, mask)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            heads=self.heads,
            concat_heads=self.concat_heads,
            negative_slope=self.negative_slope,
            attention_dropout=self.attention_dropout,
            seed=self.seed,
        )
        return config


@keras.saving.register_keras_serializable(package=_PACKAGE)
class NodeMask(keras.layers.Layer):
    """Computes the node mask `(batch, nodes)` of padded graphs `[x, a]`.

    See `node_mask`: 1.0 for nodes with a non-zero feature row or
    adjacency row/column, 0.0 for padding. Feed the result to every graph
    layer of a stack as the third input `[h, a, mask]`.

    Example:

    >>> x = keras.ops.convert_to_tensor([[[1.0], [1.0], [0.0]]])
    >>> a = keras.ops.zeros((1, 3, 3))
    >>> keras.ops.convert_to_numpy(NodeMask()([x, a])).tolist()
    [[1.0, 1.0, 0.0]]
    """

    def call(self, inputs: Any) -> Any:
        _check_graph_inputs(inputs, "NodeMask")
        x = inputs[0]
        return node_mask(x, ops.cast(inputs[1], x.dtype))

    def compute_output_shape(self, input_shape: Any) -> tuple:
        x_shape, _ = _input_shapes(input_shape, "NodeMask")
        return x_shape[:2]


#: Readout modes of `GraphReadout`.
READOUTS: tuple[str, ...] = ("mean", "max", "sum")


@keras.saving.register_keras_serializable(package=_PACKAGE)
class GraphReadout(keras.layers.Layer):
    """Pools the node features of each graph into one vector.

    Called on `x` (the mask is derived with `node_mask` from `x` alone) or
    on `[x, mask]`; padded nodes are ignored. `"mean"` averages the real
    nodes, `"sum"` adds them (as GIN's readout, Xu et al., 2019) and
    `"max"` takes the feature-wise maximum; a graph without real nodes
    gives zeros.

    Args:
        mode: `"mean"`, `"max"` or `"sum"`.
        **kwargs: base layer keyword arguments, such as `name`.

    Example:

    >>> x = keras.ops.convert_to_tensor([[[1.0], [3.0], [0.0]]])
    >>> mask = keras.ops.convert_to_tensor([[1.0, 1.0, 0.0]])
    >>> keras.ops.convert_to_numpy(GraphReadout("mean")([x, mask])).tolist()
    [[2.0]]
    """

    def __init__(self, mode: str = "mean", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if mode not in READOUTS:
            raise ValueError(
                f"Expected `mode` to be one of {list(READOUTS)}. "
                f"Received: mode={mode!r}"
            )
        self.mode = mode

    def call(self, inputs: Any) -> Any:
        if isinstance(inputs, (list, tuple)):
            if len(inputs) != 2:
                raise ValueError(
                    "Expected the inputs of GraphReadout to be x or "
                    f"[x, mask]. Received: inputs={inputs!r}"
                )
            x, mask = inputs[0], ops.cast(inputs[1], inputs[0].dtype)
        else:
            x = inputs
            mask = ops.cast(ops.any(ops.not_equal(x, 0), axis=-1), x.dtype)
        weights = mask[:, :, None]
        if self.mode == "max":
            count = ops.sum(weights, axis=1)
            top = ops.max(ops.where(weights > 0, x, _NEG_INF), axis=1)
            return ops.where(count > 0, top, 0.0)
        total = ops.sum(x * weights, axis=1)
        if self.mode == "sum":
            return total
        return total / ops.maximum(ops.sum(weights, axis=1), 1.0)

    def compute_output_shape(self, input_shape: Any) -> tuple:
        if isinstance(input_shape, list) or (
            isinstance(input_shape, tuple)
            and input_shape
            and isinstance(input_shape[0], (list, tuple))
        ):
            input_shape = input_shape[0]
        shape = tuple(input_shape)
        return (shape[0], shape[-1])

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(mode=self.mode)
        return config


#: Names of the graph convolutions of `get_graph_conv`.
GRAPH_CONVS: tuple[str, ...] = ("gcn", "sage", "gin", "gat")


def get_graph_conv(
    conv: str,
    units: int,
    activation: Any = None,
    heads: int = 1,
    **kwargs: Any,
) -> keras.layers.Layer:
    """Builds the graph convolution called `conv` with `units` outputs.

    Args:
        conv: one of `GRAPH_CONVS`: `"gcn"`, `"sage"`, `"gin"`, `"gat"`.
        units: output features per node. For `"gat"` they are split over
            the concatenated heads (`units // heads` per head, at least 1).
        activation: activation of the layer.
        heads: attention heads (`"gat"` only).
        **kwargs: further layer arguments, such as `name`.

    Returns:
        A new layer called on `[x, a]` or `[x, a, mask]`.

    Example:

    >>> layer = get_graph_conv("gat", 8, heads=2)
    >>> (layer.units, layer.heads, layer.output_units)
    (4, 2, 8)
    """
    if conv == "gat":
        per_head = max(1, check_positive_int("units", units) // heads)
        return GATConv(per_head, heads=heads, activation=activation, **kwargs)
    classes = {"gcn": GCNConv, "sage": GraphSAGEConv, "gin": GINConv}
    if conv not in classes:
        raise ValueError(
            f"Expected `conv` to be one of {list(GRAPH_CONVS)}. "
            f"Received: conv={conv!r}"
        )
    return classes[conv](units, activation=activation, **kwargs)
