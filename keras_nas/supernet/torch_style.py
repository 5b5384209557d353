"""Optimizers and a schedule with the update rules of the DARTS code.

The DARTS search (Liu et al., "DARTS: Differentiable Architecture Search",
ICLR 2019) was written with PyTorch's optimizers, whose updates differ from
Keras' in two places that matter for reproducing it:

- `TorchSGD`: PyTorch's SGD keeps the learning rate *outside* the momentum
  buffer (`buf = momentum * buf + g; w -= lr * buf`), Keras' SGD inside it
  (`m = momentum * m - lr * g; w += m`). They agree while the learning rate
  is constant, not under a schedule; and the second-order DARTS step reads
  the buffer itself (`w' = w - lr * (momentum * buf + g + wd * w)`).
- `TorchAdam`: PyTorch's Adam adds `epsilon` to the bias-corrected
  `sqrt(v_hat)`, Keras' Adam to the uncorrected `sqrt(v)` (an effective
  epsilon `1 / sqrt(1 - beta_2 ** t)` times larger: ~32x at the first step
  with `beta_2=0.999`).
- `EpochCosineDecay`: PyTorch's `CosineAnnealingLR` stepped once per epoch,
  as in the DARTS search (`train_search.py`), instead of every batch.

They are plain Keras optimizers and schedules and work on every backend.
"""

from __future__ import annotations

import math
from typing import Any

import keras
from keras import ops

from keras_nas._validation import check_positive_int

__all__ = ["TorchSGD", "TorchAdam", "EpochCosineDecay"]

_PACKAGE = "keras_nas"


@keras.saving.register_keras_serializable(package=_PACKAGE)
class TorchSGD(keras.optimizers.SGD):
    """SGD with PyTorch's momentum: the learning rate outside the buffer.

    `buf = momentum * buf + g; w = w - lr * buf` (PyTorch's `optim.SGD`
    with `dampening=0`), the rule of the DARTS code's weights optimizer. The
    buffers are `momentums` (as `keras.optimizers.SGD`'s, but without the
    learning rate in them).

    Args:
        learning_rate: a float or a `LearningRateSchedule`.
        momentum: momentum in `[0, 1)`.
        name: the optimizer's name.
        **kwargs: `keras.optimizers.Optimizer` keyword arguments (no
            `nesterov`).

    Example:

    >>> opt = TorchSGD(0.025, momentum=0.9)
    """

    def __init__(
        self,
        learning_rate: Any = 0.01,
        momentum: float = 0.0,
        name: str = "torch_sgd",
        **kwargs,
    ):
        if kwargs.pop("nesterov", False):
            raise ValueError(
                "TorchSGD implements PyTorch's plain momentum only. "
                "Received: nesterov=True"
            )
        super().__init__(
            learning_rate=learning_rate, momentum=momentum, name=name, **kwargs
        )

    def update_step(self, gradient, variable, learning_rate):
        learning_rate = ops.cast(learning_rate, variable.dtype)
        gradient = ops.cast(gradient, variable.dtype)
        if self.momentum != 0:
            buf = self.momentums[self._get_variable_index(variable)]
            momentum = ops.cast(self.momentum, variable.dtype)
            self.assign(buf, ops.add(ops.multiply(buf, momentum), gradient))
            gradient = buf
        self.assign_sub(variable, ops.multiply(gradient, learning_rate))

    def get_config(self):
        config = super().get_config()
        config.pop("nesterov", None)
        return config


def plain_variable(variable: Any) -> bool:
    """Whether an update written outside Keras' optimizer may step
    `variable`: float32, without a constraint or
    `overwrite_with_gradient` (which Keras' `apply` would honour)."""
    return (
        variable.dtype == "float32"
        and variable.constraint is None
        and not getattr(variable, "overwrite_with_gradient", False)
    )


def fusable(optimizer: Any, variables: Any) -> bool:
    """Whether `optimizer`'s step on `variables` is `TorchSGD.update_step`
    alone: a built `TorchSGD` (its own `update_step`) without Keras-side
    clipping, weight decay, EMA, gradient accumulation or loss scale, on
    plain variables (`plain_variable`). The
    DARTS weights updates that run this step in kernels of their own
    (`_weight_update_tensorflow`, `_weight_update_jax`) ask it first."""
    if (
        not isinstance(optimizer, TorchSGD)
        or type(optimizer).update_step is not TorchSGD.update_step
        or not optimizer.built
        or optimizer.use_ema
        or optimizer.clipnorm
        or optimizer.clipvalue
        or optimizer.global_clipnorm
        or optimizer.weight_decay
        or optimizer.gradient_accumulation_steps
        or optimizer.loss_scale_factor is not None
    ):
        return False
    return all(plain_variable(v) for v in variables)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class TorchAdam(keras.optimizers.Adam):
    """Adam with PyTorch's epsilon: `m_hat / (sqrt(v_hat) + epsilon)`.

    The update of PyTorch's `optim.Adam` (the DARTS code's architecture
    optimizer); `keras.optimizers.Adam` adds `epsilon` to `sqrt(v)` before
    the bias correction. Same arguments as `keras.optimizers.Adam`
    (`amsgrad` is not supported).

    Example:

    >>> opt = TorchAdam(3e-4, beta_1=0.5, beta_2=0.999, epsilon=1e-8)
    """

    def __init__(self, *args, name: str = "torch_adam", **kwargs):
        super().__init__(*args, name=name, **kwargs)
        if self.amsgrad:
            raise ValueError(
                "TorchAdam does not implement amsgrad. Received: amsgrad=True"
            )

    def update_step(self, gradient, variable, learning_rate):
        lr = ops.cast(learning_rate, variable.dtype)
        gradient = ops.cast(gradient, variable.dtype)
        local_step = ops.cast(self.iterations + 1, variable.dtype)
        beta_1_power = ops.power(
            ops.cast(self.beta_1, variable.dtype), local_step
        )
        beta_2_power = ops.power(
            ops.cast(self.beta_2, variable.dtype), local_step
        )
        m = self._momentums[self._get_variable_index(variable)]
        v = self._velocities[self._get_variable_index(variable)]
        correction = ops.sqrt(1 - beta_2_power)
        alpha = lr * correction / (1 - beta_1_power)
        self.assign_add(
            m, ops.multiply(ops.subtract(gradient, m), 1 - self.beta_1)
        )
        self.assign_add(
            v,
            ops.multiply(
                ops.subtract(ops.square(gradient), v), 1 - self.beta_2
            ),
        )
        # m_hat / (sqrt(v_hat) + eps) == alpha * m / (sqrt(v) + eps * c).
        denominator = ops.add(ops.sqrt(v), self.epsilon * correction)
        self.assign_sub(
            variable, ops.divide(ops.multiply(m, alpha), denominator)
        )


@keras.saving.register_keras_serializable(package=_PACKAGE)
class EpochCosineDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Cosine annealing stepped once per epoch (PyTorch's
    `CosineAnnealingLR` as the DARTS search uses it).

    During epoch `e = step // steps_per_epoch` the learning rate is
    `min + (initial - min) * (1 + cos(pi * min(e, epochs) / epochs)) / 2`
    with `min = alpha * initial`: the formula of
    `keras.optimizers.schedules.CosineDecay`, at the epoch instead of the
    step.

    Args:
        initial_learning_rate: learning rate of the first epoch.
        epochs: epochs of the annealing (`T_max`).
        steps_per_epoch: optimizer steps per epoch.
        alpha: final learning rate as a fraction of the initial one.
        name: the schedule's name.

    Example:

    >>> lr = EpochCosineDecay(0.025, epochs=50, steps_per_epoch=100,
    ...                       alpha=0.04)
    >>> round(float(lr(99)), 6), round(float(lr(100)), 6)
    (0.025, 0.024976)
    """

    def __init__(
        self,
        initial_learning_rate: float,
        epochs: int,
        steps_per_epoch: int,
        alpha: float = 0.0,
        name: str = "EpochCosineDecay",
    ):
        super().__init__()
        self.initial_learning_rate = float(initial_learning_rate)
        self.epochs = check_positive_int("epochs", epochs)
        self.steps_per_epoch = check_positive_int(
            "steps_per_epoch", steps_per_epoch
        )
        self.alpha = float(alpha)
        self.name = name

    def __call__(self, step):
        epoch = ops.floor_divide(
            ops.cast(step, "int64"), ops.cast(self.steps_per_epoch, "int64")
        )
        fraction = ops.minimum(ops.cast(epoch, "float32") / self.epochs, 1.0)
        cosine = 0.5 * (1.0 + ops.cos(math.pi * fraction))
        return self.initial_learning_rate * (
            (1.0 - self.alpha) * cosine + self.alpha
        )

    def get_config(self):
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "epochs": self.epochs,
            "steps_per_epoch": self.steps_per_epoch,
            "alpha": self.alpha,
            "name": self.name,
        }
