"""The sampled paths of `ProxylessSupernet`'s step, in `keras.ops`.

Draws the weight step's path and the architecture step's pairs from the
counter hash of `(path_seed, draw)` (`relaxations.hash_uniform` through
the Gumbel-max / Gumbel-top-2 samplers of `binary_gates`), the same numbers
eagerly and traced, on TensorFlow and JAX; and the masked optimizer update
of the compiled step (every weight updated, the off-path ones and their
optimizer slots put back).
"""

from __future__ import annotations

from keras import ops

from keras_nas.supernet import binary_gates
from keras_nas.supernet._one_shot_indexed import optimizer_slots
from keras_nas.supernet.relaxations import hash_uniform


def _noise(model, draw, shape, stream):
    return hash_uniform(model.path_seed, draw, shape, stream=stream)


def draw_path(model, draw) -> list:
    """The weight step's path of draw `draw`: one int32 index per block
    from `softmax(path_alpha)` (Gumbel-max)."""
    n = len(model.mixed_blocks)
    path = []
    for b, a in enumerate(model.arch_variables):
        size = int(a.shape[0])
        if size == 1:
            path.append(0)
            continue
        u = _noise(model, draw, (size,), 2 * n + b)
        path.append(binary_gates.path_from_noise(a, u))
    return path


def draw_pairs(model, draw) -> list:
    """The architecture step's `(active, inactive)` pair per block of
    draw `draw` (`binary_gates.pair_from_noise`: Gumbel-top-2)."""
    n = len(model.mixed_blocks)
    pairs = []
    for b, a in enumerate(model.arch_variables):
        size = int(a.shape[0])
        if size == 1:
            pairs.append((0, 0))
            continue
        u = _noise(model, draw, (size,), b)
        active = _noise(model, draw, (), n + b)
        pairs.append(binary_gates.pair_from_noise(a, u, active))
    return pairs


def state_variables(model) -> list:
    """Every variable of `model`, its optimizers and its metrics, once."""
    variables = (
        *model.variables,
        *model.optimizer.variables,
        *model.metrics_variables,
    )
    return list({id(v): v for v in variables}.values())


def path_masks(model, path) -> list:
    """Per weight variable: True (stem, head) or a boolean tensor, whether
    the sampled `path` uses it."""
    masks = {}
    for block, index in zip(model.mixed_blocks, path, strict=True):
        for k in range(len(block.choices)):
            layer = block.op_layer(k)
            if layer is not None:
                taken = ops.equal(index, k)
                for v in layer.trainable_variables:
                    masks[id(v)] = taken
    return [masks.get(id(v), True) for v in model.weight_variables]


def masked_apply(optimizer, grads, variables, masks, apply) -> None:
    """Applies `optimizer` to `variables` with `apply(optimizer, grads,
    variables)` (the backend's), then puts back every variable whose mask
    is False, with its optimizer slots."""
    slots = optimizer_slots(optimizer, variables)
    saved = []
    for v, mask, v_slots in zip(variables, masks, slots, strict=True):
        if mask is True:
            continue
        for w in (v, *v_slots):
            saved.append((w, ops.copy(ops.convert_to_tensor(w)), mask))
    apply(optimizer, grads, variables)
    for w, old, mask in saved:
        w.assign(ops.where(mask, ops.convert_to_tensor(w), old))
