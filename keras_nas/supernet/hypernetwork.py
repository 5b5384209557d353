"""SMASH: a hypernetwork that generates the weights of candidate cells.

`HyperNetwork` is a network of the NAS-Bench-201 cell space whose cells have
no weights of their own: the convolution kernels of every edge are generated
by a small hypernetwork from an encoding of the whole architecture (Brock,
Lim, Ritchie and Weston, "SMASH: One-Shot Model Architecture Search through
HyperNetworks", ICLR 2018). Training samples one random architecture per
batch and updates the hypernetwork (and the ordinary stem, reduction blocks
and classifier) through the generated weights; a trained hypernetwork then
scores any candidate by its validation accuracy with generated weights,
without training it.

The generation, per cell (`HyperCell`): the architecture is encoded as the
one-hot op of each of the six edges (a 30-vector, `encode`); each edge gets
a conditioning vector `h_e = relu(W [encoding, one_hot(e)] + b)` (the whole
architecture, seen from that edge's position: SMASH's memory-bank read/write
pattern reduced to our fixed cell graph), and every convolution op of the
cell maps `h_e` linearly to its kernel (`G_op h_e + g_op`, one generator per
op and cell, shared by the six edges). The edge's output is the one-hot
weighted sum of its candidate ops, so one compiled `fit` step (TensorFlow or
JAX, plain `keras.ops`) serves every architecture and the ops that are not
chosen get no gradient.

Batch normalization in the cells has no learned parameters and uses the
statistics of the batch, in training and in scoring (the generated weights
change with every architecture, so running statistics would describe none
of them); score with batches of a few hundred images.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from typing import Any

import keras
import keras_tuner
import numpy as np
from keras import ops

from keras_nas.blocks.genotypes import NB201_EDGES, NasBench201Genotype
from keras_nas.blocks.network import ResNetBasicBlock
from keras_nas.blocks.registry import NB201_OPS

__all__ = ["HyperCell", "HyperNetwork"]

_PACKAGE = "keras_nas"
# The convolution ops of the cell and their kernel sizes: the generated ops.
_CONVS = {"nor_conv_1x1": 1, "nor_conv_3x3": 3}
_EPS = 1e-5
WEIGHTS_FILE = "hypernetwork.weights.h5"
STATE_FILE = "hypernetwork.json"


def _normalize(x):
    """Batch normalization with the batch's statistics, no parameters."""
    mean, var = ops.moments(x, axes=(0, 1, 2), keepdims=True)
    return (x - mean) * ops.rsqrt(var + _EPS)


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
        for name, value in (
            ("filters", filters),
            ("embedding_dim", embedding_dim),
        ):
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(
                    f"Expected `{name}` to be an integer >= 1. "
                    f"Received: {name}={value!r}"
                )
            if value < 1:
                raise ValueError(
                    f"Expected `{name}` to be an integer >= 1. "
                    f"Received: {name}={value!r}"
                )
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
            size = k * k * c * c
            std = math.sqrt(2.0 / (k * k * c))
            self.generators[op] = self.add_weight(
                shape=(d, size),
                initializer=keras.initializers.RandomNormal(
                    stddev=std / math.sqrt(d)
                ),
                name=f"{op}_generator",
            )
            self.generator_biases[op] = self.add_weight(
                shape=(size,),
                initializer=keras.initializers.RandomNormal(stddev=std),
                name=f"{op}_generator_bias",
            )

    def conditioning(self, encoding):
        """The `(6, embedding_dim)` conditioning vectors of the edges."""
        e = self.num_edges
        rows = ops.tile(ops.reshape(encoding, (1, -1)), (e, 1))
        rows = ops.concatenate([rows, ops.eye(e, dtype=rows.dtype)], axis=1)
        return ops.relu(
            ops.matmul(rows, self.embedding) + self.embedding_bias
        )

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
            out = out + choice[NB201_OPS.index(op)] * _normalize(y)
        pool = ops.average_pool(x, 3, strides=1, padding="same")
        return out + choice[NB201_OPS.index("avg_pool_3x3")] * pool

    def compute_output_shape(self, inputs_shape, encoding_shape=None):
        return tuple(inputs_shape)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(filters=self.filters, embedding_dim=self.embedding_dim)
        return config


class _SampledArchitectures(keras.utils.PyDataset):
    """Batches `((x, encodings), y)`, one random architecture per batch.

    The order of the images and the architectures of epoch `e` are drawn
    from `numpy.random.default_rng([seed, e])`, so that training resumed
    at epoch `e` sees what uninterrupted training would have.
    """

    def __init__(self, net, x, y, batch_size, first_epoch):
        super().__init__()
        self.net = net
        self.x, self.y = np.asarray(x), np.asarray(y)
        self.batch_size = int(batch_size)
        self.epoch = int(first_epoch)
        self._draw()

    def __len__(self):
        return -(-len(self.x) // self.batch_size)

    def _draw(self):
        rng = np.random.default_rng([self.net.data_seed, self.epoch])
        self.order = rng.permutation(len(self.x))
        self.codes = [
            self.net.encode(self.net.sample_values(rng))
            for _ in range(len(self))
        ]

    def __getitem__(self, i):
        idx = self.order[i * self.batch_size : (i + 1) * self.batch_size]
        code = np.tile(self.codes[i][None], (len(idx), 1))
        return (self.x[idx], code), self.y[idx]

    def on_epoch_end(self):
        self.epoch += 1
        self.net.trained_epochs = self.epoch
        self._draw()


@keras.saving.register_keras_serializable(package=_PACKAGE)
class HyperNetwork(keras.Model):
    """SMASH hypernetwork over the NAS-Bench-201 cell space.

    A network with the NAS-Bench-201 skeleton (3x3 conv stem, three stages
    of `cells_per_stage` cells separated by residual reduction blocks,
    global pooling and a softmax classifier) whose cells are `HyperCell`s:
    their conv kernels are generated from an encoding of the architecture
    by a hypernetwork (Brock et al., "SMASH: One-Shot Model Architecture
    Search through HyperNetworks", ICLR 2018). `train` samples a uniformly
    random architecture per batch and trains the hypernetwork end to end;
    `evaluate_architecture` then scores any candidate with its generated
    weights, without training it.

    The model is called on `(images, encodings)`, one encoding row per
    image (`encode(values)`, repeated); within a batch the first row is
    used. `fit` works on any backend Keras runs it on (TensorFlow, JAX):
    the step is Keras' own.

    Args:
        space: a `keras_nas.spaces.NasBench201SearchSpace`; its input
            shape, classes, filters and cells per stage are used unless
            given below.
        input_shape: shape of one image `(height, width, channels)`.
        num_classes: number of classes.
        filters: channels of the first stage (doubled at each stage).
        cells_per_stage: cells per stage.
        embedding_dim: size of each edge's conditioning vector.
        seed: seed of the weights' initialization and of the sampled
            architectures and image order.
        **kwargs: `keras.Model` arguments such as `name`.

    Example:

    ```python
    space = keras_nas.spaces.NasBench201SearchSpace(
        input_shape=(8, 8, 1), num_classes=10, filters=8,
        cells_per_stage=1)
    net = HyperNetwork(space, seed=0)
    net.train(x_train, y_train, epochs=40, batch_size=64)
    values = net.sample_values()
    net.evaluate_architecture(values, x_val, y_val)
    net.save_state(directory)  # weights file + JSON state
    net = HyperNetwork.load_state(directory)
    ```
    """

    def __init__(
        self,
        space: Any = None,
        *,
        input_shape: tuple[int, ...] | None = None,
        num_classes: int | None = None,
        filters: int | None = None,
        cells_per_stage: int | None = None,
        embedding_dim: int = 32,
        seed: int | None = None,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        spec = self._space_spec(space) if space is not None else {}
        given = {
            "input_shape": input_shape,
            "num_classes": num_classes,
            "filters": filters,
            "cells_per_stage": cells_per_stage,
        }
        spec.update({k: v for k, v in given.items() if v is not None})
        for name in ("input_shape", "num_classes"):
            if spec.get(name) is None:
                raise ValueError(
                    f"Expected `{name}` (or a `space`). Received: {name}=None"
                )
        self._spec = {
            "input_shape": tuple(int(v) for v in spec["input_shape"]),
            "num_classes": int(spec["num_classes"]),
            "filters": int(spec.get("filters", 16)),
            "cells_per_stage": int(spec.get("cells_per_stage", 5)),
        }
        self.embedding_dim = embedding_dim
        self.seed = seed
        self.trained_epochs = 0
        self._rng = np.random.default_rng(seed)
        # Seeds the architectures and image order of every epoch.
        self.data_seed = seed if seed is not None else int(
            self._rng.integers(2**31)
        )
        from keras_nas.spaces import NasBench201SearchSpace

        s = self._spec
        self.space = NasBench201SearchSpace(
            input_shape=s["input_shape"],
            num_classes=s["num_classes"],
            filters=s["filters"],
            cells_per_stage=s["cells_per_stage"],
        )
        self.hyperparameters = keras_tuner.HyperParameters()
        self.space.declare_hyperparameters(self.hyperparameters)
        init = keras.initializers.HeNormal(seed=seed)
        c = s["filters"]
        self.stem = keras.layers.Conv2D(
            c, 3, padding="same", use_bias=False, kernel_initializer=init,
            name="stem_conv",
        )
        self.stem_bn = keras.layers.BatchNormalization(name="stem_bn")
        self.blocks: list[keras.layers.Layer] = []
        for stage in range(3):
            if stage:
                c *= 2
                self.blocks.append(
                    ResNetBasicBlock(c, strides=2, name=f"reduction{stage}")
                )
            for i in range(s["cells_per_stage"]):
                self.blocks.append(
                    HyperCell(c, embedding_dim, name=f"stage{stage}_cell{i}")
                )
        self.head_bn = keras.layers.BatchNormalization(name="head_bn")
        self.classifier = keras.layers.Dense(
            s["num_classes"],
            activation="softmax",
            kernel_initializer=keras.initializers.GlorotUniform(seed=seed),
            name="classifier",
        )
        self._build_all()

    def _build_all(self) -> None:
        """Builds every layer from the known shapes (no forward pass)."""
        shape = (None, *self._spec["input_shape"])
        self.stem.build(shape)
        shape = self.stem.compute_output_shape(shape)
        self.stem_bn.build(shape)
        width = (len(NB201_EDGES) * len(NB201_OPS),)
        for block in self.blocks:
            if isinstance(block, HyperCell):
                block.build(shape, width)
            else:
                block.build(shape)
                shape = block.compute_output_shape(shape)
        self.head_bn.build(shape)
        self.classifier.build((None, shape[-1]))
        self.built = True

    @staticmethod
    def _space_spec(space: Any) -> dict[str, Any]:
        from keras_nas.spaces import NasBench201SearchSpace

        if not isinstance(space, NasBench201SearchSpace):
            raise ValueError(
                "Expected `space` to be a keras_nas.spaces."
                f"NasBench201SearchSpace. Received: space={space!r}"
            )
        return {
            "input_shape": space.input_shape,
            "num_classes": space.num_classes,
            "filters": space.filters,
            "cells_per_stage": space.cells_per_stage,
        }

    # ------------------------------------------------------------------
    # The network.
    # ------------------------------------------------------------------

    def call(self, inputs, training=None):
        x, encodings = inputs
        encoding = encodings[0]
        # Batch statistics always (see the module docstring).
        x = self.stem_bn(self.stem(x), training=True)
        for block in self.blocks:
            if isinstance(block, HyperCell):
                x = block(x, encoding)
            else:
                x = block(x, training=True)
        x = ops.relu(self.head_bn(x, training=True))
        return self.classifier(ops.mean(x, axis=(1, 2)))

    def compile(
        self,
        optimizer: Any = "adam",
        loss: Any = None,
        metrics: Any = None,
        **kwargs: Any,
    ) -> None:
        """Keras' `compile`, with the loss (sparse categorical
        cross-entropy) and metrics (accuracy) of the house models as
        defaults. The optimizer is built at once, so that `load_state`
        restores its state too."""
        super().compile(
            optimizer=optimizer,
            loss=loss or "sparse_categorical_crossentropy",
            metrics=["accuracy"] if metrics is None else metrics,
            **kwargs,
        )
        if not self.optimizer.built:
            self.optimizer.build(self.trainable_variables)

    # ------------------------------------------------------------------
    # Architectures.
    # ------------------------------------------------------------------

    def sample_values(
        self, rng: np.random.Generator | None = None
    ) -> dict[str, Any]:
        """Uniformly random hyperparameter values of one architecture."""
        from keras_nas.tuners._base import random_values

        return random_values(self.hyperparameters, rng or self._rng)

    @staticmethod
    def genotype(values: Any) -> NasBench201Genotype:
        """Hyperparameter values, genotype or cell string -> genotype."""
        from keras_nas.spaces import nb201_genotype_from_hyperparameters

        if isinstance(values, NasBench201Genotype):
            return values
        if isinstance(values, str):
            return NasBench201Genotype.from_string(values)
        if isinstance(values, (tuple, list)):
            return NasBench201Genotype(tuple(values))
        return nb201_genotype_from_hyperparameters(values)

    def encode(self, values: Any) -> np.ndarray:
        """The architecture's encoding: one-hot op per edge, `(30,)`.

        Args:
            values: hyperparameter values (dict or `HyperParameters`), a
                `NasBench201Genotype`, its ops or its cell string.
        """
        code = np.zeros((len(NB201_EDGES), len(NB201_OPS)), "float32")
        for edge, op in enumerate(self.genotype(values).ops):
            code[edge, NB201_OPS.index(op)] = 1.0
        return code.reshape(-1)

    def generated_weights(self, values: Any) -> dict[tuple, np.ndarray]:
        """The kernels generated for an architecture's conv edges.

        Returns:
            `{(cell_name, edge, op): kernel}` for every edge whose op is a
            convolution, `edge` as `"to<-from"`, the kernel a NumPy array
            `(k, k, filters, filters)`.
        """
        genotype = self.genotype(values)
        code = self.encode(genotype)
        out = {}
        for block in self.blocks:
            if not isinstance(block, HyperCell):
                continue
            kernels = block.generate(code)
            for edge, op in enumerate(genotype.ops):
                if op in kernels:
                    to, src = NB201_EDGES[edge]
                    key = (block.name, f"{to}<-{src}", op)
                    out[key] = ops.convert_to_numpy(kernels[op][edge])
        return out

    # ------------------------------------------------------------------
    # Training and scoring.
    # ------------------------------------------------------------------

    def sampled_data(
        self, x, y, batch_size: int = 64
    ) -> keras.utils.PyDataset:
        """`((x, encodings), y)` batches, a random architecture per batch.

        Pass it to `fit`; it continues from `trained_epochs` (see `train`).
        """
        return _SampledArchitectures(
            self, x, y, batch_size, self.trained_epochs
        )

    def train(
        self, x, y, epochs: int, batch_size: int = 64, **fit_kwargs: Any
    ):
        """Trains the hypernetwork, one random architecture per batch.

        Compiles it first (Adam, learning rate 3e-3) if it is not. Training
        continues from `trained_epochs` (also after `load_state`), so two
        calls of 10 epochs equal one of 20. Returns the `History`.
        """
        from keras_nas.spaces._common import check_positive_int

        check_positive_int("epochs", epochs)
        check_positive_int("batch_size", batch_size)
        if getattr(self, "optimizer", None) is None:
            self.compile(optimizer=keras.optimizers.Adam(3e-3))
        fit_kwargs.setdefault("verbose", 0)
        data = self.sampled_data(x, y, batch_size)
        first = self.trained_epochs
        history = self.fit(
            data, epochs=first + epochs, initial_epoch=first, **fit_kwargs
        )
        self.trained_epochs = first + epochs
        return history

    def predict_architecture(self, values: Any, x, batch_size: int = 256):
        """Class probabilities of `x` with the architecture's generated
        weights (batch statistics over batches of `batch_size`)."""
        x = np.asarray(x, dtype="float32")
        code = np.tile(self.encode(values)[None], (len(x), 1))
        return self.predict((x, code), batch_size=batch_size, verbose=0)

    def evaluate_architecture(
        self, values: Any, x_val, y_val, batch_size: int = 256
    ) -> dict[str, float]:
        """Scores a candidate with generated weights, without training it.

        Returns:
            `{"accuracy": float, "loss": float}` on `(x_val, y_val)`.
        """
        probs = self.predict_architecture(values, x_val, batch_size)
        y = np.asarray(y_val).reshape(-1).astype(int)
        p = np.clip(probs[np.arange(len(y)), y], 1e-7, 1.0)
        return {
            "accuracy": float(np.mean(np.argmax(probs, axis=-1) == y)),
            "loss": float(-np.mean(np.log(p))),
        }

    # ------------------------------------------------------------------
    # Serialization, saving and resuming.
    # ------------------------------------------------------------------

    def get_config(self) -> dict[str, Any]:
        config = {"name": self.name, "trainable": self.trainable}
        config.update(self._spec)
        config.update(embedding_dim=self.embedding_dim, seed=self.seed)
        return config

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> HyperNetwork:
        config = dict(config)
        config["input_shape"] = tuple(config["input_shape"])
        return cls(**config)

    def save_state(self, directory: str) -> None:
        """Saves weights (with the optimizer's) and a JSON state.

        Writes `hypernetwork.weights.h5` and `hypernetwork.json` (config,
        compile config, `trained_epochs`) in `directory`; `load_state`
        resumes from them.
        """
        os.makedirs(directory, exist_ok=True)
        self.save_weights(os.path.join(directory, WEIGHTS_FILE))
        compile_config = None
        if getattr(self, "optimizer", None) is not None:
            compile_config = keras.saving.serialize_keras_object(
                self.optimizer
            )
        state = {
            "config": self.get_config(),
            "optimizer": compile_config,
            "trained_epochs": self.trained_epochs,
            "data_seed": self.data_seed,
        }
        path = os.path.join(directory, STATE_FILE)
        with open(path + ".tmp", "w") as f:
            json.dump(state, f, indent=1)
        os.replace(path + ".tmp", path)

    @classmethod
    def load_state(cls, directory: str) -> HyperNetwork:
        """A hypernetwork saved by `save_state`, ready to resume training."""
        path = os.path.join(directory, STATE_FILE)
        if not os.path.exists(path):
            raise ValueError(
                "Expected a directory written by `HyperNetwork.save_state` "
                f"(with {STATE_FILE}). Received: directory={directory!r}"
            )
        with open(path) as f:
            state = json.load(f)
        net = cls.from_config(state["config"])
        if state.get("optimizer") is not None:
            net.compile(
                optimizer=keras.saving.deserialize_keras_object(
                    state["optimizer"]
                )
            )
        net.load_weights(os.path.join(directory, WEIGHTS_FILE))
        net.trained_epochs = int(state["trained_epochs"])
        net.data_seed = int(state["data_seed"])
        return net

    @staticmethod
    def has_state(directory: str) -> bool:
        """Whether `directory` holds a `save_state` of a hypernetwork."""
        return os.path.exists(os.path.join(directory, STATE_FILE))
