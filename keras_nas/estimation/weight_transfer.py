"""Weight inheritance between architectures of a search space.

In the evolution of Real et al. ("Large-Scale Evolution of Image
Classifiers", ICML 2017, Section 3.6) a child keeps its parent's trained
weights wherever its layers are unchanged by the mutation and starts from a
fresh initialization only where they changed. `inherit_weights` does that
for two Keras models: layers *correspond* when they have the same
**structural key** and their weights have the same shapes.

The structural key of a layer is its path from the model: top-level layers
of a functional model by name (the networks of `keras_nas.blocks.network`
and the spaces of `keras_nas.spaces` name them by position: `stem_conv`,
`cell_3`, `layer2_conv`, `predictions`, ...), and sublayers by the
attribute that holds them, e.g. `cell_1:Cell/edge_ops.4:SepConv/
pointwise.0:Conv2D` (edge 4 = node 2, op 0 of cell 1), so the key does not
depend on Keras' global name counters. The class name is part of the key:
an op replaced by another op is never inherited, even with equal shapes.

`trial_parents` asks an oracle for the parents of a trial (the tuners of
`keras_nas.tuners.evolution` record them).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import keras
import numpy as np

__all__ = [
    "InheritanceReport",
    "inherit_weights",
    "structural_weights",
    "trial_parents",
]

#: Variables whose name ends like this are random-generator states, not
#: learned weights (Keras `SeedGenerator`); never inherited.
_SKIPPED = ("seed_generator_state",)


def _is_graph_model(layer: Any) -> bool:
    """Functional or Sequential models: sublayers by their names."""
    if isinstance(layer, keras.Sequential):
        return True
    try:
        from keras.src.models.functional import Functional
    except ImportError:  # pragma: no cover - Keras internals moved.
        return False
    return isinstance(layer, Functional)


def _children(layer: Any) -> list[tuple[str, Any]]:
    """`(key, sublayer)` pairs of a layer, in a stable order."""
    out: list[tuple[str, Any]] = []
    seen: set[int] = set()

    def add(key: str, value: Any) -> None:
        if isinstance(value, keras.layers.Layer) and id(value) not in seen:
            seen.add(id(value))
            out.append((f"{key}:{type(value).__name__}", value))

    if _is_graph_model(layer):
        for sub in layer.layers:
            add(sub.name, sub)
        return out
    for attr, value in vars(layer).items():
        if attr.startswith("_"):
            continue
        if isinstance(value, (list, tuple)):
            for i, item in enumerate(value):
                add(f"{attr}.{i}", item)
        elif isinstance(value, Mapping):
            for name, item in value.items():
                add(f"{attr}.{name}", item)
        else:
            add(attr, value)
    # Sublayers held only in private attributes: by position.
    subs = layer._flatten_layers(include_self=False, recursive=False)
    for i, sub in enumerate(subs):
        add(f"_{i}", sub)
    return out


def _walk(layer: Any, prefix: str, out: dict[str, dict[str, Any]]) -> None:
    inner: set[int] = set()
    for key, sub in _children(layer):
        _walk(sub, f"{prefix}/{key}" if prefix else key, out)
        inner.update(id(v) for v in sub.weights)
    own = {}
    for variable in layer.weights:
        name = variable.name
        if id(variable) in inner or name.endswith(_SKIPPED):
            continue
        while name in own:  # Two variables of one layer with one name.
            name += "'"
        own[name] = variable
    if own:
        out[prefix or type(layer).__name__] = own


def _layer_variables(model: Any) -> dict[str, dict[str, Any]]:
    """Structural key -> {variable name -> variable} of every layer with
    its own weights."""
    if not isinstance(model, keras.layers.Layer):
        raise ValueError(
            f"Expected a keras.Model (or Layer). Received: model={model!r}"
        )
    if not model.built:
        raise ValueError(
            "Expected a built model (call it once or build it) to inherit "
            f"weights. Received: model={model.name!r} (not built)"
        )
    out: dict[str, dict[str, Any]] = {}
    _walk(model, "", out)
    return out


def structural_weights(model: Any) -> dict[str, dict[str, np.ndarray]]:
    """A copy of a model's weights, keyed by structural layer key.

    Args:
        model: a built `keras.Model` (or layer).

    Returns:
        A dict `{layer key: {variable name: numpy array}}` holding every
        layer that has weights of its own (e.g. `"layer0_conv:Conv2D":
        {"kernel": ...}`; batch-norm moving statistics included).

    Example:

    >>> inputs = keras.Input((4,))
    >>> outputs = keras.layers.Dense(2, name="predictions")(inputs)
    >>> weights = structural_weights(keras.Model(inputs, outputs))
    >>> sorted(weights["predictions:Dense"])
    ['bias', 'kernel']
    """
    return {
        key: {
            name: np.array(keras.ops.convert_to_numpy(v))
            for name, v in variables.items()
        }
        for key, variables in _layer_variables(model).items()
    }


@dataclasses.dataclass
class InheritanceReport:
    """What `inherit_weights` copied.

    Attributes:
        inherited: structural keys of the child's layers that got the
            parent's weights.
        fresh: keys of the child's layers with weights that kept their own
            (new or changed layers).
        inherited_params: number of scalars copied.
        total_params: number of scalars in the child's layers with weights
            (batch-norm statistics included).
    """

    inherited: list[str]
    fresh: list[str]
    inherited_params: int
    total_params: int

    @property
    def num_inherited(self) -> int:
        """Number of layers inherited."""
        return len(self.inherited)

    @property
    def fraction(self) -> float:
        """Share of the child's weights (scalars) that were inherited."""
        return self.inherited_params / max(self.total_params, 1)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serializable dict (with `num_inherited`, `fraction`)."""
        out = dataclasses.asdict(self)
        out.update(num_inherited=self.num_inherited, fraction=self.fraction)
        return out


def inherit_weights(child_model: Any, parent_model: Any) -> InheritanceReport:
    """Copies the parent's weights into the child's corresponding layers.

    A child layer gets the parent's weights when the parent has a layer with
    the same structural key (see the module docstring) whose variables have
    the same names and shapes; such a layer is copied as a whole (weights
    and batch-norm statistics). Every other layer keeps the child's weights
    (its fresh initialization). This is the weight inheritance of Real et
    al., "Large-Scale Evolution of Image Classifiers", ICML 2017: a mutated
    child resumes training from its parent wherever the mutation left the
    network unchanged.

    Layers correspond by position in the architecture, not by Keras' layer
    names (which depend on how many layers were created before): build both
    models with position-stable names at the top level, as
    `keras_nas.blocks.network` and the spaces of `keras_nas.spaces` do.

    Args:
        child_model: the built `keras.Model` to initialize (modified in
            place).
        parent_model: a built `keras.Model` with trained weights, or the
            dict returned by `structural_weights(parent)`.

    Returns:
        An `InheritanceReport`.

    Example:

    ```python
    space = keras_nas.spaces.ChainSearchSpace((8, 8, 1), 10, max_layers=3)
    parent = space.build(parent_hp)
    parent.fit(x, y, epochs=5)
    child = space.build(child_hp)  # one mutation away
    report = inherit_weights(child, parent)
    print(report.num_inherited, f"{report.fraction:.0%}")
    child.fit(x, y, epochs=1)  # resumes from the parent's weights
    ```
    """
    if isinstance(parent_model, Mapping):
        source = parent_model
    else:
        source = structural_weights(parent_model)
    inherited, fresh = [], []
    copied = total = 0
    for key, variables in _layer_variables(child_model).items():
        size = sum(int(np.prod(v.shape)) for v in variables.values())
        total += size
        theirs = source.get(key)
        same = theirs is not None and set(theirs) == set(variables)
        same = same and all(
            tuple(np.shape(theirs[name])) == tuple(v.shape)
            for name, v in variables.items()
        )
        if not same:
            fresh.append(key)
            continue
        for name, variable in variables.items():
            variable.assign(np.asarray(theirs[name], dtype=variable.dtype))
        inherited.append(key)
        copied += size
    return InheritanceReport(inherited, fresh, copied, total)


def trial_parents(oracle: Any, trial_id: str) -> list[str]:
    """The ids of the trials a trial was derived from (empty if unknown).

    An oracle declares its lineage by a `trial_parents(trial_id)` method
    returning a list of trial ids; `keras_nas.tuners.AgingEvolutionOracle`
    records it for every trial (the parent of a mutation; two for a
    crossover, the first being the one mutated). Oracles without a record
    (random search, MCTS, REINFORCE) give `[]`.

    Args:
        oracle: a `keras_tuner.Oracle`.
        trial_id: the trial's id.

    Returns:
        A list of trial ids, the main parent first.

    Example:

    ```python
    parents = trial_parents(tuner.oracle, trial.trial_id)
    parent = parents[0] if parents else None
    ```
    """
    method = getattr(oracle, "trial_parents", None)
    if not callable(method):
        return []
    return [str(p) for p in (method(trial_id) or [])]
