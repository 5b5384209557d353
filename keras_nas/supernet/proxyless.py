"""ProxylessNAS: the MobileNet space as a binary-gated supernet.

Cai, Zhu and Han, "ProxylessNAS: Direct Neural Architecture Search on
Target Task and Hardware" (ICLR 2019). Every searched block of a
`keras_nas.spaces.MobileNetSearchSpace` becomes a `ProxylessMixedBlock`:
all its candidate MBConv ops (`{k3, k5, k7} x {e3, e6}` by default) and,
where the space allows it, the zero op (the block is skipped), with one
vector of path logits. `ProxylessSupernet` trains them with `fit` on
`((x_train, y_train), (x_val, y_val))` batches
(`keras_nas.supernet.search_data`), each step with binarised path gates
(`keras_nas.supernet.binary_gates`): the logits on the validation batch
(two sampled paths per block, the paper's gradient estimator), then the
weights on the training batch (one sampled path per block: only its ops
run). An optional latency term, the expected latency of the architecture
from a `keras_nas.estimation.LatencyTable`, joins the architecture loss.

The gradient code of each backend (TensorFlow, JAX) lives in
`_proxyless_tensorflow.py` / `_proxyless_jax.py`; the two optimizers are
the DARTS search's `BilevelOptimizer`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import keras
import numpy as np
from keras import ops

from keras_nas._backend import variable_creation_scope
from keras_nas._validation import (
    check_choice,
    check_number,
    check_positive_int,
    check_seed,
    short_repr,
)
from keras_nas.blocks.mobilenet_genotype import MobileNetGenotype
from keras_nas.estimation.latency_table import STATISTICS, LatencyTable
from keras_nas.spaces.mobilenet_space import MobileNetSearchSpace
from keras_nas.supernet import _proxyless_paths as paths
from keras_nas.supernet import binary_gates
from keras_nas.supernet._darts_math import (
    clip_and_decay,
    cross_entropy,
    unpack_search,
)
from keras_nas.supernet.bilevel import (
    add_metric_trackers,
    as_bilevel,
    default_weights_optimizer,
)
from keras_nas.supernet.proxyless_block import (
    ProxylessMixedBlock,
    steps_module,
)
from keras_nas.supernet.torch_style import TorchAdam

__all__ = ["ProxylessMixedBlock", "ProxylessSupernet"]

_PACKAGE = "keras_nas"
# The arguments of `MobileNetSearchSpace` that shape the network.
_SPACE_ARGS = (
    "input_shape", "num_classes", "stages", "stem_filters", "stem_strides",
    "head_filters", "kernel_sizes", "expansions", "allow_skip",
    "width_multiplier", "dropout", "bn_momentum",
)  # fmt: skip


def space_config(space: MobileNetSearchSpace) -> dict[str, Any]:
    """The JSON arguments that rebuild `space`'s network."""
    config = {}
    for name in _SPACE_ARGS:
        value = getattr(space, name)
        if isinstance(value, tuple):
            value = json.loads(json.dumps(value))
        config[name] = value
    return config


def default_arch_optimizer(learning_rate: float = 1e-3) -> Any:
    """The paper's optimizer of the path logits: Adam, betas (0, 0.999),
    epsilon 1e-8 (PyTorch's rule, `TorchAdam`), learning rate 1e-3."""
    return TorchAdam(
        float(learning_rate),
        beta_1=0.0,
        beta_2=0.999,
        epsilon=1e-8,
        name="path_adam",
    )


def _check_table(table: Any, space: MobileNetSearchSpace) -> Any:
    if table is None:
        return None
    if isinstance(table, dict):
        table = LatencyTable.from_dict(table)
    if not isinstance(table, LatencyTable):
        raise ValueError(
            "Expected `latency_table` to be a LatencyTable of the space (or "
            f"None). Received: latency_table={short_repr(table)}"
        )
    blocks = table.layout["blocks"]
    ok = len(blocks) == len(space.blocks) and all(
        b["layer"] == block.layer_name and tuple(b["choices"]) == block.choices
        for b, block in zip(blocks, space.blocks, strict=False)
    )
    if not ok:
        raise ValueError(
            "Expected `latency_table` to be measured on the same space (the "
            "same blocks and choices; `LatencyTable.measure(space)`). "
            f"Received: latency_table with {len(blocks)} blocks for a space "
            f"with {len(space.blocks)}"
        )
    return table


@keras.saving.register_keras_serializable(package=_PACKAGE)
class ProxylessSupernet(keras.Model):
    """The ProxylessNAS supernet of a MobileNet space, trained with `fit`.

    Cai, Zhu and Han, "ProxylessNAS: Direct Neural Architecture Search on
    Target Task and Hardware" (ICLR 2019). The network is the space's stem,
    one `ProxylessMixedBlock` per searched block, and the space's head,
    returning **logits**. Each `fit` step takes `((x_train, y_train),
    (x_val, y_val))` (see `keras_nas.supernet.search_data`):

    1. architecture step (after `warmup_steps` weight steps): per block two
       paths are sampled from `softmax(path_alpha)` and one of them made
       active (`binary_gates.sample_pair`); the validation loss is computed
       with the active paths, the inactive ones behind zero gates, and the
       logits get the binary-gate estimator of the paper (Eq. 4 over the
       two paths). The loss is the **additive** form of the paper's
       latency-aware loss (Eq. 6):

           loss = cross_entropy + latency_weight * E[latency] / 1 ms,

       with `E[latency] = LatencyTable.expected_latency(softmax(alpha))`
       (exact and differentiable in every logit). The two updated logits
       of every block are then shifted so that the other paths keep their
       probabilities (`binary_gates.rescale_pair`);
    2. weight step: one path per block is sampled from
       `softmax(path_alpha)` and only its ops run (the only activations
       kept); only the weights of the stem, the head and the sampled ops
       are differentiated and updated (gradient clipped at `grad_clip`,
       then L2 decay `weight_decay`).

    The paths are drawn inside the step from a counter-based hash of
    `(seed, step)` (`relaxations.hash_uniform`: the Gumbel-max and
    Gumbel-top-2 tricks of `binary_gates`; the seed and the draw counter
    are non-trainable variables, saved with the model, the same numbers on
    TensorFlow and JAX), so `fit` runs one compiled step (a `tf.function`
    or a jitted JAX function, traced once) in which every block dispatches
    to its sampled op (`tf.switch_case` / `jax.lax.switch`: only that op
    runs) and the weight update is masked to the sampled path. With
    `compile(run_eagerly=True)` the same step runs eagerly (same numbers).
    Logs: `loss`, `accuracy` (training batch, sampled path), `arch_loss`,
    `arch_accuracy` (validation batch; 0 until the first architecture
    step), `expected_latency` (ms, with a table). `evaluate`, `predict`
    and `call` run the derived network (the largest logit of every block).

    Args:
        space: the `MobileNetSearchSpace`.
        latency_table: a `keras_nas.estimation.LatencyTable` measured on
            `space` (`LatencyTable.measure(space)`) on the target device,
            or None (no latency term). `HardwareAware(metrics=
            ("predicted_latency",), latency_table=table)` reads the same
            table.
        latency_weight: weight of the expected latency (per ms) in the
            architecture loss; 0 searches for accuracy only.
        latency_statistic: which measured statistic of the table to use
            (`"median_ms"`, `"min_ms"`, ...).
        weight_decay: L2 decay of the network weights.
        arch_weight_decay: L2 decay of the path logits.
        grad_clip: global-norm clipping of the weight gradients (None:
            off).
        warmup_steps: weight steps before the first architecture step (the
            paper trains the weights alone first).
        seed: seed of the path sampling.
        **kwargs: `keras.Model` keyword arguments, such as `name`.

    Example:

    >>> space = MobileNetSearchSpace((8, 8, 1), 10, stem_filters=8,
    ...                              stages=((8, 2, 1), (16, 2, 2)))
    >>> model = ProxylessSupernet(space, seed=0)
    >>> model.compile()
    >>> data = search_data((x, y), (xv, yv), 32)  # doctest: +SKIP
    >>> model.fit(data, epochs=10)  # doctest: +SKIP
    >>> space.build_network(model.derive_genotype())  # doctest: +SKIP
    """

    def __init__(
        self,
        space: MobileNetSearchSpace | dict,
        latency_table: LatencyTable | dict | None = None,
        latency_weight: float = 0.0,
        latency_statistic: str = "median_ms",
        weight_decay: float = 4e-5,
        arch_weight_decay: float = 0.0,
        grad_clip: float | None = 5.0,
        warmup_steps: int = 0,
        seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self._steps = steps_module()
        if isinstance(space, dict):
            space = MobileNetSearchSpace(**space)
        if not isinstance(space, MobileNetSearchSpace):
            raise ValueError(
                "Expected `space` to be a MobileNetSearchSpace. "
                f"Received: space={short_repr(space)}"
            )
        self.space = space
        self.latency_table = _check_table(latency_table, space)
        self.latency_weight = check_number(
            "latency_weight", latency_weight, 0.0, float("inf"), high_open=True
        )
        if self.latency_weight and self.latency_table is None:
            raise ValueError(
                "Expected a `latency_table` when `latency_weight` is not 0. "
                f"Received: latency_weight={latency_weight!r}, "
                "latency_table=None"
            )
        self.latency_statistic = check_choice(
            "latency_statistic", latency_statistic, STATISTICS
        )
        self.weight_decay = check_number(
            "weight_decay", weight_decay, 0.0, float("inf"), high_open=True
        )
        self.arch_weight_decay = check_number(
            "arch_weight_decay", arch_weight_decay, 0.0, float("inf"),
            high_open=True,
        )  # fmt: skip
        self.grad_clip = (
            None
            if grad_clip is None
            else check_number(
                "grad_clip", grad_clip, 0.0, float("inf"), high_open=True
            )
        )
        self.warmup_steps = check_positive_int(
            "warmup_steps", warmup_steps, minimum=0
        )
        self.seed = check_seed(seed)
        self._make_layers()
        add_metric_trackers(self)
        self.latency_tracker = keras.metrics.Mean(name="expected_latency")
        with variable_creation_scope():  # many variables, cheaply
            self.build((None,) + tuple(space.input_shape))

    def _make_layers(self) -> None:
        space = self.space
        momentum = space.bn_momentum

        def bn(name):
            if momentum is None:
                return keras.layers.BatchNormalization(name=name)
            return keras.layers.BatchNormalization(
                momentum=momentum, name=name
            )

        self.stem_conv = keras.layers.Conv2D(
            space.stem_output_shape[-1],
            3,
            strides=space.stem_strides,
            padding="same",
            use_bias=False,
            name="stem_conv",
        )
        self.stem_bn = bn("stem_bn")
        self.mixed_blocks = [
            ProxylessMixedBlock(
                b.filters, b.strides, b.choices, name=b.layer_name
            )
            for b in space.blocks
        ]
        for block in self.mixed_blocks:
            for candidate in block.candidates:
                if momentum is not None:
                    for layer in (
                        candidate.depthwise_bn, candidate.project_bn,
                    ):  # fmt: skip
                        layer.momentum = momentum
        self.head_conv = self.head_bn = None
        if space.head_filters is not None:
            self.head_conv = keras.layers.Conv2D(
                space.head_filters, 1, use_bias=False, name="head_conv"
            )
            self.head_bn = bn("head_bn")
        self.pool = keras.layers.GlobalAveragePooling2D(name="pooling")
        self.dropout = keras.layers.Dropout(space.dropout, name="dropout")
        self.classifier = keras.layers.Dense(
            space.num_classes, name="predictions"
        )

    def build(self, input_shape):
        if self.built:
            return
        shape = tuple(input_shape)
        self.stem_conv.build(shape)
        shape = self.stem_conv.compute_output_shape(shape)
        self.stem_bn.build(shape)
        for block in self.mixed_blocks:
            block.build(shape)
            shape = block.compute_output_shape(shape)
        if self.head_conv is not None:
            self.head_conv.build(shape)
            shape = self.head_conv.compute_output_shape(shape)
            self.head_bn.build(shape)
        self.classifier.build((None, shape[-1]))
        seed = self.seed
        if seed is None:
            seed = int(np.random.randint(0, 2**31 - 1))
        # The path sampler's state: a seed and the number of steps drawn.
        for name, value in (("path_seed", seed), ("path_draws", 0)):
            variable = self.add_weight(
                shape=(),
                initializer=keras.initializers.Constant(value),
                name=name,
                dtype="int32",
                trainable=False,
                autocast=False,
            )
            setattr(self, name, variable)
        if self.space.bn_momentum is not None:
            for block in self.mixed_blocks:
                for candidate in block.candidates:
                    if candidate.expand_bn is not None:
                        candidate.expand_bn.momentum = self.space.bn_momentum
        self.built = True

    # ---------------------------------------------------------- forward

    def _stem(self, x, training):
        x = self.stem_bn(self.stem_conv(x), training=training)
        return ops.relu6(x)

    def _head(self, x, training):
        if self.head_conv is not None:
            x = ops.relu6(self.head_bn(self.head_conv(x), training=training))
        x = self.dropout(self.pool(x), training=training)
        return self.classifier(x)

    def forward_path(self, x, path: Sequence[Any], training=None):
        """Logits of the network with op `path[i]` in block `i` (only
        those ops run; Python ints or int32 scalar tensors)."""
        x = self._stem(x, training)
        for block, index in zip(self.mixed_blocks, path, strict=True):
            x = block.run_indexed(x, index, training=training)
        return self._head(x, training)

    def forward_gated(self, x, pairs: Sequence[Any], training=None):
        """Logits of the architecture step: in block `i` the `(active,
        inactive)` paths `pairs[i]` (ints, or an int32 tensor of shape
        `(2,)`) behind their binary gates."""
        x = self._stem(x, training)
        for block, pair in zip(self.mixed_blocks, pairs, strict=True):
            x = block.gated(x, pair, training=training)
        return self._head(x, training)

    def call(self, inputs, training=None):
        """Logits of the derived network (the largest logit per block)."""
        x = self._stem(inputs, training)
        for block in self.mixed_blocks:
            x = block(x, training=training)
        return self._head(x, training)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.space.num_classes)

    @property
    def metrics(self):
        return [
            self.loss_tracker,
            self.accuracy_tracker,
            self.arch_loss_tracker,
            self.arch_accuracy_tracker,
            self.latency_tracker,
        ]

    @property
    def arch_variables(self) -> list:
        """The path logits, one vector per block."""
        return [block.alpha for block in self.mixed_blocks]

    @property
    def weight_variables(self) -> list:
        """The trainable network weights (every trainable but the logits)."""
        arch = {id(v) for v in self.arch_variables}
        return [v for v in self.trainable_variables if id(v) not in arch]

    def path_weight_variables(self, path: Sequence[int]) -> list:
        """The weights a path uses: stem, head and its ops."""
        used = {id(v) for v in self._fixed_weights()}
        for block, index in zip(self.mixed_blocks, path, strict=True):
            layer = block.op_layer(index)
            if layer is not None:
                used.update(id(v) for v in layer.trainable_variables)
        return [v for v in self.weight_variables if id(v) in used]

    def _fixed_weights(self) -> list:
        layers = [self.stem_conv, self.stem_bn, self.classifier]
        if self.head_conv is not None:
            layers += [self.head_conv, self.head_bn]
        return [v for layer in layers for v in layer.trainable_variables]

    # ---------------------------------------------------------- sampling

    def probabilities(self) -> list[np.ndarray]:
        """`softmax(path_alpha)` of every block (NumPy)."""
        return [
            binary_gates.probabilities(ops.convert_to_numpy(a))
            for a in self.arch_variables
        ]

    def sample_path(self) -> tuple[int, ...]:
        """The path the next step's weight update draws under the current
        logits (Python ints; nothing advances)."""
        path = paths.draw_path(self, self.path_draws.value)
        return tuple(int(k) for k in path)

    def sample_pairs(self) -> tuple[tuple[int, int], ...]:
        """The `(active, inactive)` paths per block that the next step's
        architecture update draws (Python ints; nothing advances)."""
        return tuple(
            tuple(int(k) for k in ops.convert_to_numpy(pair))
            for pair in paths.draw_pairs(self, self.path_draws.value)
        )

    def expected_latency(self) -> Any:
        """Expected latency (ms) under the path probabilities, a tensor
        differentiable in the logits (requires a `latency_table`)."""
        if self.latency_table is None:
            raise ValueError(
                "Expected a `latency_table` to compute the expected latency."
                " Received: latency_table=None"
            )
        return self.latency_table.expected_latency(
            [ops.softmax(a) for a in self.arch_variables],
            self.latency_statistic,
        )

    # ---------------------------------------------------------- training

    def compile(
        self,
        optimizer: Any = None,
        arch_optimizer: Any = None,
        *,
        learning_rate: float = 0.025,
        decay_steps: int | None = None,
        **kwargs: Any,
    ) -> None:
        """Configures the two optimizers.

        Args:
            optimizer: optimizer of the network weights, or a
                `BilevelOptimizer` holding both. Default: SGD with momentum
                0.9 (PyTorch's rule) and `learning_rate`, cosine-decayed
                over `decay_steps` (see
                `keras_nas.supernet.bilevel.default_weights_optimizer`).
            arch_optimizer: optimizer of the path logits. Default:
                `default_arch_optimizer()` (Adam 1e-3, betas (0, 0.999)).
            learning_rate: initial learning rate of the default weights
                optimizer.
            decay_steps: total search steps, for the default schedule.
            **kwargs: accepted for `compile_from_config`; `loss`,
                `metrics`, `jit_compile` and `steps_per_execution` are
                ignored (the supernet computes its losses itself; JAX jits
                the step, TensorFlow runs it as a graph without XLA), and
                `run_eagerly=True` runs the same step eagerly.
        """
        run_eagerly = bool(kwargs.pop("run_eagerly", False))
        for key in (
            "loss", "metrics", "loss_weights", "weighted_metrics",
            "jit_compile", "steps_per_execution",
        ):  # fmt: skip
            kwargs.pop(key, None)
        if kwargs:
            raise ValueError(
                "Unexpected arguments to ProxylessSupernet.compile. "
                f"Received: {sorted(kwargs)}"
            )
        bilevel = as_bilevel(
            optimizer,
            arch_optimizer,
            lambda: _default_weights_optimizer(learning_rate, decay_steps),
            default_arch_optimizer,
        )
        super().compile(
            optimizer=bilevel,
            jit_compile=self._steps.JIT_COMPILE and not run_eagerly,
            run_eagerly=run_eagerly,
            auto_scale_loss=False,
        )
        self._build_optimizer()

    def _build_optimizer(self) -> None:
        # `BilevelOptimizer.build` splits by the DARTS variable names; the
        # path logits are split here (Keras' later `build` is a no-op).
        bilevel = self.optimizer
        if bilevel.built:
            return
        with variable_creation_scope():  # the slots, cheaply
            bilevel.weights_optimizer.build(self.weight_variables)
            bilevel.arch_optimizer.build(self.arch_variables)
            keras.optimizers.Optimizer.build(
                bilevel, self.trainable_variables
            )

    def get_compile_config(self):
        if not self.compiled:
            return None
        return {"optimizer": keras.optimizers.serialize(self.optimizer)}

    def compile_from_config(self, config):
        self.compile(optimizer=keras.optimizers.deserialize(config["optimizer"]))

    def train_step(self, *args):
        return self._steps.train_step(self, *args)

    def test_step(self, *args):
        return self._steps.test_step(self, *args)

    def arch_loss(self, x, y, pairs, training=True) -> tuple[Any, Any]:
        """`(loss, logits)` of the architecture step on `(x, y)`."""
        logits = self.forward_gated(x, pairs, training=training)
        loss = cross_entropy(y, logits)
        if self.latency_table is not None and self.latency_weight:
            loss = loss + self.latency_weight * ops.cast(
                self.expected_latency(), loss.dtype
            )
        return loss, logits

    def arch_gradients(self, x, y, pairs=None) -> tuple[list, Any]:
        """Gradients of the architecture loss on `(x, y)` with respect to
        every block's logits (NumPy), for `pairs` (sampled if None); and
        the pairs. Nothing is updated but batch-norm statistics."""
        pairs = self.sample_pairs() if pairs is None else tuple(pairs)
        _, _, grads = self._steps.value_and_grads(
            self, lambda: self.arch_loss(x, y, pairs), self.arch_variables
        )
        return [np.asarray(ops.convert_to_numpy(g)) for g in grads], pairs

    def _arch_step(self, xv, yv, draw) -> None:
        alphas = self.arch_variables
        pairs = paths.draw_pairs(self, draw)
        old = [ops.copy(ops.convert_to_tensor(a)) for a in alphas]
        loss, logits, grads = self._steps.value_and_grads(
            self, lambda: self.arch_loss(xv, yv, pairs), alphas
        )
        grads = clip_and_decay(grads, alphas, None, self.arch_weight_decay)
        self._steps.apply(self.optimizer.arch_optimizer, grads, alphas)
        for a, before, pair in zip(alphas, old, pairs, strict=True):
            if int(a.shape[0]) < 2:
                continue
            new = binary_gates.rescale_pairs(
                before[None], ops.convert_to_tensor(a)[None],
                ops.reshape(pair, (1, 2)),
            )  # fmt: skip
            a.assign(new[0])
        self.arch_loss_tracker.update_state(loss)
        self.arch_accuracy_tracker.update_state(yv, logits)

    def _weight_step(self, xt, yt, draw) -> None:
        path = paths.draw_path(self, draw)
        masks = None
        if all(self._steps.is_concrete(k) for k in path):
            # Eager: only the path's variables reach the optimizer.
            path = tuple(int(k) for k in path)
            variables = self.path_weight_variables(path)
        else:
            # Compiled: every weight is differentiated (zeros off the path)
            # and updated, then the off-path ones are put back, with their
            # optimizer slots: the eager step's result.
            variables = self.weight_variables
            masks = paths.path_masks(self, path)

        def loss_fn():
            logits = self.forward_path(xt, path, training=True)
            return cross_entropy(yt, logits), logits

        loss, logits, grads = self._steps.value_and_grads(
            self, loss_fn, variables
        )
        grads = clip_and_decay(
            grads, variables, self.grad_clip, self.weight_decay
        )
        optimizer = self.optimizer.weights_optimizer
        if masks is None:
            self._steps.apply(optimizer, grads, variables)
        else:
            paths.masked_apply(
                optimizer, grads, variables, masks, self._steps.apply
            )
        self.loss_tracker.update_state(loss)
        self.accuracy_tracker.update_state(yt, logits)

    def train_batch(self, data) -> dict[str, Any]:
        """One search step on `((x_train, y_train), (x_val, y_val))`
        (backend-neutral; the backend's `train_step` calls it, eagerly or
        traced)."""
        xt, yt, xv, yv = unpack_search(data)
        draw = ops.copy(ops.convert_to_tensor(self.path_draws))
        iterations = self.optimizer.weights_optimizer.iterations
        searching = self.warmup_steps == 0 or ops.greater_equal(
            ops.convert_to_tensor(iterations), self.warmup_steps
        )
        self._steps.when(
            self, searching, lambda: self._arch_step(xv, yv, draw)
        )
        self._weight_step(xt, yt, draw)
        self.path_draws.assign(draw + 1)
        logs = {
            "loss": self.loss_tracker.result(),
            "accuracy": self.accuracy_tracker.result(),
            "arch_loss": self.arch_loss_tracker.result(),
            "arch_accuracy": self.arch_accuracy_tracker.result(),
        }
        if self.latency_table is not None:
            self.latency_tracker.update_state(self.expected_latency())
            logs["expected_latency"] = self.latency_tracker.result()
        return logs

    # -------------------------------------------------------- derivation

    def derive_genotype(self) -> MobileNetGenotype:
        """The derived architecture: every block's largest path logit."""
        ops_ = tuple(
            block.choices[binary_gates.derive_index(ops.convert_to_numpy(a))]
            for block, a in zip(
                self.mixed_blocks, self.arch_variables, strict=True
            )
        )
        return self.space.check_genotype(MobileNetGenotype(ops_))

    def derive_hyperparameters(self) -> dict[str, str]:
        """The derived architecture as the space's hyperparameter values."""
        return self.space.hyperparameters(self.derive_genotype())

    def predicted_latency(self) -> float:
        """The table's latency (ms) of the derived network."""
        if self.latency_table is None:
            raise ValueError(
                "Expected a `latency_table` to predict the latency. "
                "Received: latency_table=None"
            )
        return self.latency_table.predict(
            self.derive_genotype(), self.latency_statistic
        )

    # ------------------------------------------------------------ saving

    def get_config(self):
        config = super().get_config()
        config.update(
            space=space_config(self.space),
            latency_table=(
                None
                if self.latency_table is None
                else self.latency_table.to_dict()
            ),
            latency_weight=self.latency_weight,
            latency_statistic=self.latency_statistic,
            weight_decay=self.weight_decay,
            arch_weight_decay=self.arch_weight_decay,
            grad_clip=self.grad_clip,
            warmup_steps=self.warmup_steps,
            seed=self.seed,
        )
        return config

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def _default_weights_optimizer(learning_rate, decay_steps):
    # The DARTS default with ProxylessNAS' own initial rate.
    check_number(
        "learning_rate", learning_rate, 0.0, float("inf"), low_open=True
    )
    return default_weights_optimizer(
        decay_steps,
        learning_rate=learning_rate,
        min_learning_rate=min(1e-3, learning_rate),
    )
