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

from keras_nas._backend import backend_module, current_backend
from keras_nas._hp_values import random_values
from keras_nas._validation import check_positive_int
from keras_nas.blocks.genotypes import NB201_EDGES, NasBench201Genotype
from keras_nas.blocks.registry import NB201_OPS
from keras_nas.spaces.nas_bench_201_space import (
    NasBench201SearchSpace,
    nb201_genotype_from_hyperparameters,
)

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

    Covers `epochs` epochs from `first_epoch` as one sequence (train with
    `steps_per_epoch=steps`, so Keras keeps one iterator). Every item is a
    pure function of its index: the image order and the architectures of
    epoch `e` are drawn from `numpy.random.default_rng([data_seed, e])`, so
    prefetching threads change nothing and training resumed at epoch `e`
    sees what uninterrupted training would have.
    """

    def __init__(self, net, x, y, batch_size, first_epoch, epochs):
        super().__init__()
        self.net = net
        self.x, self.y = np.asarray(x), np.asarray(y)
        self.batch_size = int(batch_size)
        self.first_epoch, self.epochs = int(first_epoch), int(epochs)
        self.steps = -(-len(self.x) // self.batch_size)
        self._tables: dict[int, tuple] = {}

    def __len__(self):
        return self.epochs * self.steps

    def _table(self, epoch):
        if epoch not in self._tables:
            rng = np.random.default_rng([self.net.data_seed, epoch])
            order = rng.permutation(len(self.x))
            codes = [
                self.net.encode(self.net.sample_values(rng))
                for _ in range(self.steps)
            ]
            self._tables = {epoch: (order, codes)}  # Keep one epoch.
        return self._tables[epoch]

    def __getitem__(self, i):
        epoch, step = divmod(int(i), self.steps)
        order, codes = self._table(self.first_epoch + epoch)
        idx = order[step * self.batch_size : (step + 1) * self.batch_size]
        code = np.tile(codes[step][None], (len(idx), 1))
        return (self.x[idx], code), self.y[idx]


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
        seed: seed of the sampled architectures and image order, and of
            the stem, reduction and classifier initialization (the
            hypernetwork's own initial weights follow Keras' global seed,
            `keras.utils.set_random_seed`).
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
        if current_backend() == "tensorflow":
            # Plain Keras `fit`: mended there for several workers.
            backend_module("keras_nas", "_distribute", "HyperNetwork")
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
        check_positive_int("embedding_dim", embedding_dim)
        self.embedding_dim = embedding_dim
        self.seed = seed
        self.trained_epochs = 0
        self._rng = np.random.default_rng(seed)
        # Seeds the architectures and image order of every epoch.
        self.data_seed = seed if seed is not None else int(
            self._rng.integers(2**31)
        )
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
            for i in range(s["cells_per_stage"]):
                self.cells.append(
                    HyperCell(c, embedding_dim, name=f"stage{stage}_cell{i}")
                )
        self.classifier = keras.layers.Dense(
            s["num_classes"],
            activation="softmax",
            kernel_initializer=keras.initializers.GlorotUniform(seed=seed),
            name="classifier",
        )
        self._build_all()

    def _build_all(self) -> None:
        """Builds every layer from the known shapes (no forward pass)."""
        h, w, _ = self._spec["input_shape"]
        c = self._spec["filters"]
        self.stem.build((None, h, w, self._spec["input_shape"][-1]))
        width = (len(NB201_EDGES) * len(NB201_OPS),)
        per_stage = self._spec["cells_per_stage"]
        for stage in range(3):
            if stage:
                a, b, short = self.reduction_convs[3 * stage - 3 : 3 * stage]
                a.build((None, h, w, c))
                short.build((None, h // 2, w // 2, c))
                c, h, w = 2 * c, (h + 1) // 2, (w + 1) // 2
                b.build((None, h, w, c))
            for cell in self.cells[stage * per_stage : (stage + 1) * per_stage]:
                cell.build((None, h, w, c), width)
        self.classifier.build((None, c))
        self.built = True

    @staticmethod
    def _space_spec(space: Any) -> dict[str, Any]:
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
        x = _normalize(self.stem(x))
        per_stage = self._spec["cells_per_stage"]
        for stage in range(3):
            if stage:
                a, b, short = self.reduction_convs[3 * stage - 3 : 3 * stage]
                y = _normalize(a(ops.relu(x)))
                y = _normalize(b(ops.relu(y)))
                pooled = ops.average_pool(x, 2, strides=2, padding="same")
                x = y + short(pooled)
            for cell in self.cells[stage * per_stage : (stage + 1) * per_stage]:
                x = cell(x, encoding)
        x = ops.relu(_normalize(x))
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
        return random_values(self.hyperparameters, rng or self._rng)

    @staticmethod
    def genotype(values: Any) -> NasBench201Genotype:
        """Hyperparameter values, genotype or cell string -> genotype."""
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
        for block in self.cells:
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

    def train(
        self, x, y, epochs: int, batch_size: int = 64, **fit_kwargs: Any
    ):
        """Trains the hypernetwork, one random architecture per batch.

        Compiles it first (Adam, learning rate 3e-3) if it is not. Training
        continues from `trained_epochs` (also after `load_state`), so two
        calls of 10 epochs equal one of 20: the image order and the
        architectures of each epoch depend only on the seed and the epoch.
        Returns the `History` of `fit`.

        Args:
            x, y: training images and integer labels (arrays).
            epochs: epochs to train.
            batch_size: images per batch (one architecture each).
            **fit_kwargs: more `fit` arguments (`callbacks`, `verbose`...).
        """
        check_positive_int("epochs", epochs)
        check_positive_int("batch_size", batch_size)
        if getattr(self, "optimizer", None) is None:
            self.compile(optimizer=keras.optimizers.Adam(3e-3))
        fit_kwargs.setdefault("verbose", 0)
        first = self.trained_epochs
        data = _SampledArchitectures(self, x, y, batch_size, first, epochs)
        history = self.fit(
            data,
            epochs=first + epochs,
            initial_epoch=first,
            steps_per_epoch=data.steps,
            shuffle=False,  # The batches are drawn shuffled already.
            **fit_kwargs,
        )
        self.trained_epochs = first + epochs
        return history

    def predict_architecture(self, values: Any, x, batch_size: int = 256):
        """Class probabilities of `x` with the architecture's generated
        weights (batch statistics over batches of `batch_size`)."""
        x = np.asarray(x, dtype="float32")
        code = np.tile(self.encode(values)[None], (len(x), 1))
        out = [
            ops.convert_to_numpy(
                self.predict_on_batch(
                    (x[i : i + batch_size], code[i : i + batch_size])
                )
            )
            for i in range(0, len(x), batch_size)
        ]
        return np.concatenate(out, axis=0)

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
        with open(cls._state_path(directory)) as f:
            state = json.load(f)
        net = cls.from_config(state["config"])
        net.restore_state(directory)
        return net

    def restore_state(self, directory: str) -> None:
        """Loads a `save_state` of a hypernetwork of the same config into
        this one (weights, optimizer state, `trained_epochs`)."""
        with open(self._state_path(directory)) as f:
            state = json.load(f)
        # The sizes must agree (name and seed need not).
        keys = (*self._spec, "embedding_dim")
        mine = json.loads(json.dumps(self.get_config()))
        if any(state["config"].get(k) != mine[k] for k in keys):
            raise ValueError(
                "Expected a saved hypernetwork of this one's sizes "
                f"{ {k: mine[k] for k in keys} }. "
                f"Received: config={state['config']}"
            )
        if state.get("optimizer") is not None:
            if getattr(self, "optimizer", None) is None:
                self.compile(
                    optimizer=keras.saving.deserialize_keras_object(
                        state["optimizer"]
                    )
                )
        self.load_weights(os.path.join(directory, WEIGHTS_FILE))
        self.trained_epochs = int(state["trained_epochs"])
        self.data_seed = int(state["data_seed"])

    @staticmethod
    def _state_path(directory: str) -> str:
        path = os.path.join(directory, STATE_FILE)
        if not os.path.exists(path):
            raise ValueError(
                "Expected a directory written by `HyperNetwork.save_state` "
                f"(with {STATE_FILE}). Received: directory={directory!r}"
            )
        return path

    @staticmethod
    def has_state(directory: str) -> bool:
        """Whether `directory` holds a `save_state` of a hypernetwork."""
        return os.path.exists(os.path.join(directory, STATE_FILE))
