"""The two optimizers of a DARTS search as one Keras optimizer.

`BilevelOptimizer` holds the optimizer of the network weights and the one of
the architecture variables (Liu et al., "DARTS: Differentiable Architecture
Search", ICLR 2019); `default_weights_optimizer` and `default_arch_optimizer`
are the paper's (and the DARTS code's) choices.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import keras

from keras_nas._backend import variable_creation_scope
from keras_nas._validation import check_positive_int
from keras_nas.supernet.torch_style import (
    EpochCosineDecay,
    TorchAdam,
    TorchSGD,
)

__all__ = [
    "ARCH_NAMES",
    "BETA_NAMES",
    "BilevelOptimizer",
    "add_metric_trackers",
    "as_bilevel",
    "default_arch_optimizer",
    "default_weights_optimizer",
    "is_arch",
]

_PACKAGE = "keras_nas"
#: The names of the architecture variables of `DartsSupernet`.
ARCH_NAMES = ("alpha_normal", "alpha_reduce")
#: The edge-normalisation variables of PC-DARTS (`partial_channels > 1`).
BETA_NAMES = ("beta_normal", "beta_reduce")


def default_weights_optimizer(
    decay_steps: int | None = None,
    learning_rate: float = 0.025,
    min_learning_rate: float = 0.001,
    steps_per_epoch: int | None = None,
) -> keras.optimizers.Optimizer:
    """The paper's optimizer of the network weights.

    SGD with momentum 0.9, PyTorch's rule (`TorchSGD`: the learning rate
    outside the momentum buffer, as the DARTS code), and a learning rate
    annealed from 0.025 to 0.001 with a cosine schedule over `decay_steps`
    steps (the number of search steps: epochs x steps per epoch). With
    `steps_per_epoch` the rate changes once per epoch, as in the DARTS code
    (`EpochCosineDecay`); without it, every step. Without `decay_steps` the
    learning rate stays at `learning_rate`. Weight decay (3e-4) and gradient
    clipping (5) are applied by `DartsSupernet` itself, as in the DARTS code.
    """
    lr: Any = float(learning_rate)
    alpha = float(min_learning_rate) / float(learning_rate)
    if decay_steps is not None:
        decay_steps = check_positive_int("decay_steps", decay_steps)
        if steps_per_epoch is None:
            lr = keras.optimizers.schedules.CosineDecay(
                float(learning_rate), decay_steps, alpha=alpha
            )
        else:
            steps_per_epoch = check_positive_int(
                "steps_per_epoch", steps_per_epoch
            )
            lr = EpochCosineDecay(
                float(learning_rate),
                max(1, decay_steps // steps_per_epoch),
                steps_per_epoch,
                alpha=alpha,
            )
    return TorchSGD(lr, momentum=0.9, name="weights_sgd")


def default_arch_optimizer(
    learning_rate: float = 3e-4,
) -> keras.optimizers.Optimizer:
    """The paper's optimizer of `alpha`: Adam, betas (0.5, 0.999).

    Epsilon 1e-8 in PyTorch's place (`TorchAdam`), as the DARTS code. The
    architecture weight decay (1e-3) is applied by `DartsSupernet`.
    """
    return TorchAdam(
        float(learning_rate),
        beta_1=0.5,
        beta_2=0.999,
        epsilon=1e-8,
        name="arch_adam",
    )


def as_bilevel(
    optimizer: Any,
    arch_optimizer: Any,
    default_weights: Callable[[], keras.optimizers.Optimizer],
    default_arch: Callable[[], keras.optimizers.Optimizer] | None = None,
) -> BilevelOptimizer:
    """The `BilevelOptimizer` a supernet's `compile` arguments describe.

    `optimizer` itself if it is one; otherwise `optimizer` (or
    `default_weights()` if None) for the weights and `arch_optimizer` (or
    `default_arch()`, by default `default_arch_optimizer()`) for the
    architecture parameters.
    """
    if isinstance(optimizer, BilevelOptimizer):
        return optimizer
    if optimizer is None:
        optimizer = default_weights()
    if arch_optimizer is None:
        arch_optimizer = (default_arch or default_arch_optimizer)()
    return BilevelOptimizer(optimizer, arch_optimizer)


def add_metric_trackers(model: keras.Model) -> None:
    """Gives a bilevel supernet its loss and accuracy trackers: those of
    the weight step (`loss`, `accuracy`) and of the architecture step
    (`arch_loss`, `arch_accuracy`)."""
    model.loss_tracker = keras.metrics.Mean(name="loss")
    model.accuracy_tracker = keras.metrics.SparseCategoricalAccuracy(
        name="accuracy"
    )
    model.arch_loss_tracker = keras.metrics.Mean(name="arch_loss")
    model.arch_accuracy_tracker = keras.metrics.SparseCategoricalAccuracy(
        name="arch_accuracy"
    )


def is_arch(variable) -> bool:
    """Whether `variable` is an architecture variable (`alpha_*`,
    `beta_*`)."""
    return variable.name in ARCH_NAMES or variable.name in BETA_NAMES


@keras.saving.register_keras_serializable(package=_PACKAGE)
class BilevelOptimizer(keras.optimizers.Optimizer):
    """Holds the two optimizers of a DARTS search as one Keras optimizer.

    `build(variables)` gives the architecture variables (`alpha_normal`,
    `alpha_reduce`) to `arch_optimizer` and every other variable to
    `weights_optimizer`. `variables` lists both optimizers' state, so Keras'
    JAX trainer threads it through the stateless step and `.keras` files
    store it. Updates are made by `DartsSupernet.train_step` through the two
    inner optimizers; `iterations` and `learning_rate` are those of
    `weights_optimizer`.

    Args:
        weights_optimizer: optimizer of the network weights.
        arch_optimizer: optimizer of the architecture variables.
        name: the optimizer's name.
    """

    def __init__(
        self,
        weights_optimizer: Any,
        arch_optimizer: Any,
        name: str = "bilevel",
        **kwargs,
    ):
        super().__init__(learning_rate=0.0, name=name, **kwargs)
        self.weights_optimizer = keras.optimizers.get(weights_optimizer)
        self.arch_optimizer = keras.optimizers.get(arch_optimizer)

    def build(self, variables):
        if self.built:
            return
        weights = [v for v in variables if not is_arch(v)]
        arch = [v for v in variables if is_arch(v)]
        with variable_creation_scope():  # the slots, cheaply
            self.weights_optimizer.build(weights)
            self.arch_optimizer.build(arch)
            super().build(variables)

    @property
    def variables(self):
        return self.weights_optimizer.variables + self.arch_optimizer.variables

    @property
    def iterations(self):
        return self.weights_optimizer.iterations

    @property
    def learning_rate(self):
        return self.weights_optimizer.learning_rate

    @learning_rate.setter
    def learning_rate(self, value):
        self.weights_optimizer.learning_rate = value

    def split(self, values: Sequence[Any]) -> tuple[list, list]:
        """Splits a list aligned with `variables` into (weights, arch)."""
        n = len(self.weights_optimizer.variables)
        return list(values[:n]), list(values[n:])

    def apply(self, grads, trainable_variables=None):
        raise ValueError(
            "BilevelOptimizer is applied by DartsSupernet.train_step through "
            "`weights_optimizer` and `arch_optimizer`. Received: a direct "
            "call to apply()"
        )

    def get_config(self):
        return {
            "name": self.name,
            "weights_optimizer": keras.optimizers.serialize(
                self.weights_optimizer
            ),
            "arch_optimizer": keras.optimizers.serialize(self.arch_optimizer),
        }

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        for key in ("weights_optimizer", "arch_optimizer"):
            config[key] = keras.optimizers.deserialize(
                config[key], custom_objects=custom_objects
            )
        return cls(**config)
