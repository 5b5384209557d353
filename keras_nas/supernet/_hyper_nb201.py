"""The SMASH hypernetwork's body on the NAS-Bench-201 cell space.

`HyperCell`: a NAS-Bench-201 cell whose conv kernels are generated from
the architecture's encoding; `Nb201HyperBody`: the NAS-Bench-201 skeleton
(3x3 conv stem, three stages of `cells_per_stage` cells separated by
residual reduction blocks, global pooling, softmax classifier) of those
cells. `keras_nas.supernet.HyperNetwork` holds one (see its module).
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from keras_nas._validation import check_positive_int
from keras_nas.blocks.genotypes import NB201_EDGES
from keras_nas.blocks.registry import NB201_OPS
from keras_nas.supernet._hyper_common import (
    add_generator,
    classifier,
    conditioning,
    normalize,
)

__all__ = ["HyperCell", "Nb201HyperBody"]

_PACKAGE = "keras_nas"
# The convolution ops of the cell and their kernel sizes: the generated ops.
_CONVS = {"nor_conv_1x1": 1, "nor_conv_3x3": 3}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class HyperCell(keras.layers.Layer):
    """A NAS-Bench-201 cell whose conv kernels are generated (SMASH).

    Called on `(x, encoding)`: `x` the cell input `(batch, h, w, filters)`,
    `encoding` the architecture's one-hot ops, shape `(6 * 5,)` (see
    `HyperNetwork.encode`). Every edge computes the one-hot weighted sum of
    its candidate ops (`none`, `skip_connect`, ReLU-conv-BN 1x1 and 3x3,
    3x3 average pooling), the conv kernels generated from the encoding (see
    `generate`). Node 3 is the output, as in NAS-Bench-201.

    Args:
        filters: channels of the cell (input and output).
        embedding_dim: size of the conditioning vector of each edge.
        **kwargs: `keras.layers.Layer` arguments.
    """

    def __init__(self, filters: int, embedding_dim: int = 32, **kwargs: Any):
        super().__init__(**kwargs)
        check_positive_int("filters", filters)
        check_positive_int("embedding_dim", embedding_dim)
        self.filters = filters
        self.embedding_dim = embedding_dim
        self.num_edges = len(NB201_EDGES)
        self.num_ops = len(NB201_OPS)

    def build(self, inputs_shape, encoding_shape=None):
        c, d, e = self.filters, self.embedding_dim, self.num_edges
        width = e * self.num_ops + e
        self.embedding = self.add_weight(
            shape=(width, d),
            initializer=keras.initializers.GlorotUniform(),
            name="embedding",
        )
        self.embedding_bias = self.add_weight(
            shape=(d,), initializer="zeros", name="embedding_bias"
        )
        self.generators, self.generator_biases = {}, {}
        for op, k in _CONVS.items():
            self.generators[op], self.generator_biases[op] = add_generator(
                self, op, d, k * k * c * c, k * k * c
            )

    def conditioning(self, encoding):
        """The `(6, embedding_dim)` conditioning vectors of the edges."""
        return conditioning(self, encoding, self.num_edges)

    def generate(self, encoding) -> dict[str, Any]:
        """The generated kernels: op -> `(6, k, k, filters, filters)`."""
        h = self.conditioning(ops.cast(encoding, self.compute_dtype))
        c, out = self.filters, {}
        for op, k in _CONVS.items():
            flat = ops.matmul(h, self.generators[op])
            flat = flat + self.generator_biases[op]
            out[op] = ops.reshape(flat, (self.num_edges, k, k, c, c))
        return out

    def call(self, inputs, encoding):
        x = inputs
        encoding = ops.cast(encoding, self.compute_dtype)
        choice = ops.reshape(encoding, (self.num_edges, self.num_ops))
        kernels = self.generate(encoding)
        nodes = [x]
        for to in (1, 2, 3):
            total = None
            for edge, (dst, src) in enumerate(NB201_EDGES):
                if dst != to:
                    continue
                out = self._edge(nodes[src], choice[edge], kernels, edge)
                total = out if total is None else total + out
            nodes.append(total)
        return nodes[3]

    def _edge(self, x, choice, kernels, edge):
        out = choice[NB201_OPS.index("skip_connect")] * x
        relu = ops.relu(x)
        for op in _CONVS:
            y = ops.conv(relu, kernels[op][edge], padding="same")
            out = out + choice[NB201_OPS.index(op)] * normalize(y)
        pool = ops.average_pool(x, 3, strides=1, padding="same")
        return out + choice[NB201_OPS.index("avg_pool_3x3")] * pool

    def compute_output_shape(self, inputs_shape, encoding_shape=None):
        return tuple(inputs_shape)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(filters=self.filters, embedding_dim=self.embedding_dim)
        return config


class Nb201HyperBody(keras.layers.Layer):
    """The NAS-Bench-201 network of `HyperCell`s (see the module).

    Args:
        spec: the hypernetwork's spec (`input_shape`, `num_classes`,
            `filters`, `cells_per_stage`).
        embedding_dim: size of each edge's conditioning vector.
        seed: seed of the stem, reduction and classifier initialization.
        **kwargs: `keras.layers.Layer` arguments.
    """

    def __init__(self, spec, embedding_dim, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.spec = dict(spec)
        init = keras.initializers.HeNormal(seed=seed)
        c = self.spec["filters"]

        def conv(filters, k, strides=1, name=None):
            return keras.layers.Conv2D(
                filters, k, strides=strides, padding="same", use_bias=False,
                kernel_initializer=init, name=name,
            )

        self.stem = conv(c, 3, name="stem_conv")
        # Per reduction: ReLU-conv-BN 3x3 (stride 2), ReLU-conv-BN 3x3, and
        # the shortcut's 1x1 conv after 2x2 average pooling (the residual
        # block of NAS-Bench-201), normalized with batch statistics.
        self.reduction_convs: list[keras.layers.Layer] = []
        self.cells: list[HyperCell] = []
        for stage in range(3):
            if stage:
                c *= 2
                self.reduction_convs += [
                    conv(c, 3, 2, name=f"reduction{stage}_conv_a"),
                    conv(c, 3, name=f"reduction{stage}_conv_b"),
                    conv(c, 1, name=f"reduction{stage}_shortcut"),
                ]
            for i in range(self.spec["cells_per_stage"]):
                self.cells.append(
                    HyperCell(c, embedding_dim, name=f"stage{stage}_cell{i}")
                )
        self.classifier = classifier(self.spec["num_classes"], seed)

    def build(self, input_shape=None, encoding_shape=None):
        """Builds every layer from the known shapes (no forward pass)."""
        h, w, channels = self.spec["input_shape"]
        c = self.spec["filters"]
        self.stem.build((None, h, w, channels))
        width = (len(NB201_EDGES) * len(NB201_OPS),)
        for stage in range(3):
            if stage:
                a, b, short = self.reduction_convs[3 * stage - 3 : 3 * stage]
                a.build((None, h, w, c))
                short.build((None, h // 2, w // 2, c))
                c, h, w = 2 * c, (h + 1) // 2, (w + 1) // 2
                b.build((None, h, w, c))
            for cell in self._stage_cells(stage):
                cell.build((None, h, w, c), width)
        self.classifier.build((None, c))
        self.built = True

    def _stage_cells(self, stage):
        per_stage = self.spec["cells_per_stage"]
        return self.cells[stage * per_stage : (stage + 1) * per_stage]

    def call(self, x, encoding):
        # Batch statistics always (see `HyperNetwork`).
        x = normalize(self.stem(x))
        for stage in range(3):
            if stage:
                a, b, short = self.reduction_convs[3 * stage - 3 : 3 * stage]
                y = normalize(a(ops.relu(x)))
                y = normalize(b(ops.relu(y)))
                pooled = ops.average_pool(x, 2, strides=2, padding="same")
                x = y + short(pooled)
            for cell in self._stage_cells(stage):
                x = cell(x, encoding)
        x = ops.relu(normalize(x))
        return self.classifier(ops.mean(x, axis=(1, 2)))

    def generated_weights(self, path, code) -> dict[tuple, Any]:
        """`{(cell_name, "to<-from", op): kernel}` of the conv edges."""
        out = {}
        for block in self.cells:
            kernels = block.generate(code)
            for edge, op in enumerate(path):
                if op in kernels:
                    to, src = NB201_EDGES[edge]
                    key = (block.name, f"{to}<-{src}", op)
                    out[key] = ops.convert_to_numpy(kernels[op][edge])
        return out
