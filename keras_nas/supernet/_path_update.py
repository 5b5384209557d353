"""The optimizer update of the piecewise one-shot step, in few ops.

The piecewise step of `OneShotSupernet` (`_one_shot_tensorflow`,
`_one_shot_jax`) hands the optimizer the path's variables only, ~80 of
them at the tiny and micro configurations, and Keras' eager
`optimizer.apply` spends ~6 eager ops and their Python dispatch on each
(45-55% of the TensorFlow step; benchmarks/RESULTS.md, issue #13). For
the optimizers a supernet is trained with by default, Keras' `SGD`
(momentum, Nesterov) and `Adam` / `AdamW` (without AMSGrad), the
backends run the same arithmetic in one call per variable: TensorFlow's
fused training kernels, a function jitted once per shape on JAX.

This module is the backend-neutral half: `rule(optimizer)` reads the
hyperparameters (or says None: use `optimizer.apply`), `slots` the
optimizer's slot variables of each variable, `decays` which variables
take the weight decay (the optimizer's own exclusions). Kept from
`apply`: the learning rate (or its schedule at `iterations`), read once
per step; `clipnorm` per gradient, `global_clipnorm` over the path's
gradients, `clipvalue`; the decoupled weight decay before the update;
`iterations + 1`. Anything else goes through `optimizer.apply`: other
classes and subclasses, AMSGrad, EMA, gradient accumulation, a loss
scale factor, variable constraints, `overwrite_with_gradient`, weights
other than float32.
"""

from __future__ import annotations

from dataclasses import dataclass

import keras

from keras_nas.supernet.torch_style import plain_variable

__all__ = ["Rule", "decays", "rule", "slots", "supported"]

_SGD = keras.optimizers.SGD
_ADAM = (keras.optimizers.Adam, keras.optimizers.AdamW)


@dataclass(frozen=True)
class Rule:
    """An optimizer's update, as `rule` read it (hashable: the JAX
    functions are made once per rule)."""

    kind: str  # "sgd" or "adam"
    momentum: float = 0.0
    nesterov: bool = False
    beta_1: float = 0.0
    beta_2: float = 0.0
    epsilon: float = 0.0
    weight_decay: float | None = None
    clipnorm: float | None = None
    global_clipnorm: float | None = None
    clipvalue: float | None = None

    @property
    def clip(self) -> str | None:
        """Keras' clipping (`_clip_gradients`: the first one set)."""
        if self.clipnorm and self.clipnorm > 0:
            return "clipnorm"
        if self.global_clipnorm and self.global_clipnorm > 0:
            return "global_clipnorm"
        if self.clipvalue and self.clipvalue > 0:
            return "clipvalue"
        return None


def _float(value) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def rule(optimizer) -> Rule | None:
    """The update of `optimizer`, or None where `optimizer.apply` must
    run (see the module)."""
    cls = type(optimizer)
    if (
        not (cls is _SGD or cls in _ADAM)
        or not optimizer.built
        or optimizer.use_ema
        or optimizer.gradient_accumulation_steps
        or optimizer.loss_scale_factor is not None
    ):
        return None
    common = {}
    for name in ("weight_decay", "clipnorm", "global_clipnorm", "clipvalue"):
        value = getattr(optimizer, name)
        if value is not None:
            value = _float(value)
            if value is None:
                return None
        common[name] = value
    if cls is _SGD:
        momentum = _float(optimizer.momentum)
        if momentum is None or (momentum != 0) != bool(optimizer.momentums):
            return None
        return Rule(
            "sgd", momentum=momentum, nesterov=bool(optimizer.nesterov),
            **common,
        )
    if optimizer.amsgrad:
        return None
    betas = [
        _float(getattr(optimizer, name))
        for name in ("beta_1", "beta_2", "epsilon")
    ]
    if None in betas:
        return None
    beta_1, beta_2, epsilon = betas
    return Rule(
        "adam", beta_1=beta_1, beta_2=beta_2, epsilon=epsilon, **common
    )


def supported(grads, variables) -> bool:
    """Whether the update may run on these variables (float32, no
    constraint, no `overwrite_with_gradient`, a dense gradient each)."""
    for g, v in zip(grads, variables, strict=True):
        if g is None or not hasattr(g, "shape") or not plain_variable(v):
            return False
    return True


def slots(optimizer, rule: Rule, variables) -> list[list]:
    """Per variable its slots in the rule's order: `[momentum]` (SGD with
    momentum), `[]` (plain SGD), `[momentum, velocity]` (Adam)."""
    if rule.kind == "sgd":
        lists = [optimizer.momentums] if rule.momentum else []
    else:
        lists = [optimizer._momentums, optimizer._velocities]
    out = []
    for v in variables:
        i = optimizer._get_variable_index(v)
        out.append([slot_list[i] for slot_list in lists])
    return out


def decays(optimizer, rule: Rule, variables) -> list[bool]:
    """Per variable whether the weight decay applies (Keras'
    `_apply_weight_decay`: a decay set, the variable not excluded)."""
    if rule.weight_decay is None:
        return [False] * len(variables)
    return [bool(optimizer._use_weight_decay(v)) for v in variables]
