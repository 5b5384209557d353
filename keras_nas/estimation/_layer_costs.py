"""What each layer costs: the per-layer cost functions and their registry.

`keras_nas.estimation.hardware` runs a model once and asks
`cost_function(layer)` for every layer it records; the conventions are in
that module's docstring. The costs of the Keras layers and of the
`keras_nas.blocks` layers (ops, cells, the ResNet block, the graph layers)
are built in; `register_layer_cost` adds others.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import keras

from keras_nas.blocks import cells, graph, mbconv, network
from keras_nas.blocks import ops as nas_ops
from keras_nas.blocks.genotypes import NB201_EDGES

__all__ = [
    "CostFunction",
    "Shape",
    "cost_function",
    "num_elements",
    "register_layer_cost",
]

Shape = tuple[int, ...]
#: `cost(layer, input_shapes, output_shapes) -> (macs, flops)`.
CostFunction = Callable[[Any, list[Shape], list[Shape]], tuple[int, int]]


def num_elements(shape: Sequence[int]) -> int:
    """Number of elements of a tensor of shape `shape`."""
    return int(math.prod(int(d) for d in shape))


def _channels(layer: Any, shape: Shape) -> int:
    fmt = getattr(layer, "data_format", "channels_last")
    return int(shape[1] if fmt == "channels_first" else shape[-1])


def _bias(layer: Any, out: int) -> int:
    return out if getattr(layer, "use_bias", False) else 0


def _conv_cost(layer, inputs, outputs):
    out = num_elements(outputs[0])
    per_output = num_elements(layer.kernel_size) * _channels(layer, inputs[0])
    macs = out * per_output // int(getattr(layer, "groups", 1) or 1)
    return macs, 2 * macs + _bias(layer, out)


def _depthwise_cost(layer, inputs, outputs):
    out = num_elements(outputs[0])
    macs = out * num_elements(layer.kernel_size)
    return macs, 2 * macs + _bias(layer, out)


def _separable_cost(layer, inputs, outputs):
    out = num_elements(outputs[0])
    depth_channels = _channels(layer, inputs[0]) * layer.depth_multiplier
    positions = out // _channels(layer, outputs[0])
    macs = positions * depth_channels * num_elements(layer.kernel_size)
    macs += out * depth_channels
    return macs, 2 * macs + _bias(layer, out)


def _transpose_cost(layer, inputs, outputs):
    macs = num_elements(inputs[0]) * num_elements(layer.kernel_size)
    macs *= layer.filters
    return macs, 2 * macs + _bias(layer, num_elements(outputs[0]))


def _dense_cost(layer, inputs, outputs):
    out = num_elements(outputs[0])
    macs = out * int(inputs[0][-1])
    return macs, 2 * macs + _bias(layer, out)


def _batch_norm_cost(layer, inputs, outputs):
    return 0, 2 * num_elements(outputs[0])


def _pool_cost(layer, inputs, outputs):
    window = layer.pool_size
    if isinstance(window, int):
        window = (window,) * (len(outputs[0]) - 2)
    return 0, num_elements(outputs[0]) * num_elements(window)


def _global_pool_cost(layer, inputs, outputs):
    return 0, num_elements(inputs[0])


def _merge_cost(layer, inputs, outputs):
    return 0, (len(inputs) - 1) * num_elements(outputs[0])


def _average_cost(layer, inputs, outputs):
    return 0, len(inputs) * num_elements(outputs[0])


def _free(layer, inputs, outputs):
    return 0, 0


def _cell_cost(layer, inputs, outputs):
    # A node adds the edges it sums (not `none` ones, nor unused ones).
    node = num_elements(outputs[0]) // len(layer.concat)
    summed = layer.summed_edges
    additions = sum(
        max(sum(summed[n * layer.arity : (n + 1) * layer.arity]) - 1, 0)
        for n in range(layer.num_nodes)
    )
    return 0, additions * node


def _nb201_cell_cost(layer, inputs, outputs):
    # A node adds the edges it sums: node 2 two, node 3 three when none is
    # `none` or unused, 1 + 2 additions per element.
    summed = [0, 0, 0, 0]
    for (to, _), edge in zip(NB201_EDGES, layer.summed_edges, strict=True):
        summed[to] += edge
    additions = sum(max(n - 1, 0) for n in summed)
    return 0, additions * num_elements(outputs[0])


def _resnet_block_cost(layer, inputs, outputs):
    out = num_elements(outputs[0])
    flops = out  # The residual addition.
    if layer.strides == 2:
        # 2x2 average pooling of the shortcut, before its 1x1 conv.
        flops += 4 * (out // layer.filters) * int(inputs[0][-1])
    return 0, flops


def _mbconv_cost(layer, inputs, outputs):
    return 0, num_elements(outputs[0]) if layer.adds_input else 0


# Graph layers: dense adjacency products cost `nodes * nodes * features`
# MACs.


def _nodes_features(ins: Sequence[tuple]) -> tuple[int, int]:
    return int(ins[0][-2]), int(ins[0][-1])


def _gcn_cost(layer, ins, outs):
    n, f = _nodes_features(ins)
    u = layer.units
    macs = n * f * u + n * n * u
    return macs, 2 * macs + 3 * n * u


def _sage_cost(layer, ins, outs):
    n, f = _nodes_features(ins)
    u = layer.units
    macs = n * n * f + 2 * n * f * u
    return macs, 2 * macs + n * f + 2 * n * u


def _gin_cost(layer, ins, outs):
    n, f = _nodes_features(ins)
    u = layer.units
    macs = n * n * f + n * f * u + n * u * u
    return macs, 2 * macs + 2 * n * f + 2 * n * u


def _gat_cost(layer, ins, outs):
    n, f = _nodes_features(ins)
    hu = layer.heads * layer.units
    macs = n * f * hu + 2 * n * hu + n * n * hu
    # Attention logits: addition, LeakyReLU and softmax per edge and head.
    return macs, 2 * macs + 4 * layer.heads * n * n + n * hu


def _readout_cost(layer, ins, outs):
    return 0, int(ins[0][-2]) * int(ins[0][-1])


_COSTS: dict[type, CostFunction] = {}


def register_layer_cost(layer_class: type, cost: CostFunction) -> None:
    """Registers the cost of a layer class (and its subclasses).

    `cost(layer, input_shapes, output_shapes)` returns `(macs, flops)` of
    one call with a batch of one example, *excluding* the layer's
    sublayers, which are counted on their own. Use it for a custom layer
    whose arithmetic is written with `keras.ops`, or to change a built-in
    convention.

    Args:
        layer_class: a `keras.layers.Layer` subclass.
        cost: the cost function; shapes include the batch dimension (1).

    Example:

    >>> class Scale(keras.layers.Layer):
    ...     def call(self, x):
    ...         return 2.0 * x
    >>> register_layer_cost(
    ...     Scale, lambda layer, ins, outs: (0, math.prod(outs[0])))
    """
    if not (
        isinstance(layer_class, type)
        and issubclass(layer_class, keras.layers.Layer)
    ):
        raise ValueError(
            "Expected `layer_class` to be a keras.layers.Layer subclass. "
            f"Received: layer_class={layer_class!r}"
        )
    if not callable(cost):
        raise ValueError(
            "Expected `cost` to be a callable (layer, input_shapes, "
            f"output_shapes) -> (macs, flops). Received: cost={cost!r}"
        )
    _COSTS[layer_class] = cost


def _register_builtin_costs() -> None:
    layers = keras.layers
    groups: list[tuple[CostFunction, tuple[str, ...]]] = [
        (_conv_cost, ("Conv1D", "Conv2D", "Conv3D")),
        (_depthwise_cost, ("DepthwiseConv1D", "DepthwiseConv2D")),
        (_separable_cost, ("SeparableConv1D", "SeparableConv2D")),
        (
            _transpose_cost,
            ("Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose"),
        ),
        (_dense_cost, ("Dense",)),
        (_batch_norm_cost, ("BatchNormalization",)),
        (
            _pool_cost,
            (
                "MaxPooling1D",
                "MaxPooling2D",
                "MaxPooling3D",
                "AveragePooling1D",
                "AveragePooling2D",
                "AveragePooling3D",
            ),
        ),
        (
            _global_pool_cost,
            (
                "GlobalAveragePooling1D",
                "GlobalAveragePooling2D",
                "GlobalAveragePooling3D",
                "GlobalMaxPooling1D",
                "GlobalMaxPooling2D",
                "GlobalMaxPooling3D",
            ),
        ),
        (_merge_cost, ("Add", "Subtract", "Multiply", "Maximum", "Minimum")),
        (_average_cost, ("Average",)),
        (
            _free,
            (
                "InputLayer",
                "Activation",
                "ReLU",
                "LeakyReLU",
                "ELU",
                "Softmax",
                "Dropout",
                "SpatialDropout1D",
                "SpatialDropout2D",
                "SpatialDropout3D",
                "GaussianDropout",
                "GaussianNoise",
                "AlphaDropout",
                "Flatten",
                "Reshape",
                "Permute",
                "Concatenate",
                "ZeroPadding1D",
                "ZeroPadding2D",
                "ZeroPadding3D",
                "Cropping1D",
                "Cropping2D",
                "Cropping3D",
                "Identity",
            ),
        ),
    ]
    for cost, names in groups:
        for name in names:
            cls = getattr(layers, name, None)
            if cls is not None:
                _COSTS.setdefault(cls, cost)
    for cls, cost in (
        (nas_ops.Pool, _pool_cost),
        (nas_ops.Identity, _free),
        (nas_ops.Zero, _free),
        (cells.Cell, _cell_cost),
        (cells.NasBench201Cell, _nb201_cell_cost),
        (network.ResNetBasicBlock, _resnet_block_cost),
        (mbconv.MBConv, _mbconv_cost),
        (graph.GCNConv, _gcn_cost),
        (graph.GraphSAGEConv, _sage_cost),
        (graph.GINConv, _gin_cost),
        (graph.GATConv, _gat_cost),
        (graph.GraphReadout, _readout_cost),
        (graph.NodeMask, _free),
    ):
        _COSTS.setdefault(cls, cost)


_register_builtin_costs()


def cost_function(layer: Any) -> CostFunction | None:
    """The registered cost of `layer`'s class or nearest base class."""
    for cls in type(layer).__mro__:
        if cls in _COSTS:
            return _COSTS[cls]
    return None
