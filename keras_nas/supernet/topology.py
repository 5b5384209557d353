"""Topologies: what a one-shot search space is to `OneShotSupernet`.

`OneShotSupernet` samples paths, trains them (an eager step for Python
samplers, a compiled step for in-graph sampling), scores, extracts and saves
them; everything that depends on the search space lives in one `Topology`
object per space, used by the eager and the compiled code alike:

- construction: `spec_from_space` (a keras-nas space -> the supernet's
  arguments), `check_spec` (defaults and types of those arguments),
  `make_space` (the `keras_tuner.HyperModel` whose hyperparameters name a
  path) and `make_layers` (the shared layers: stem, cell plumbing, one layer
  per candidate op of every edge of every cell, head);
- the path encoding: `to_path` (hyperparameter values, a genotype, ... -> a
  hashable Python path), `path_indices` / `indices_path` (that path <-> one
  integer per *decision slot*), `slot_sizes`, `drawn_slot_sizes` and
  `expand_drawn` (slots that repeat others, e.g. a reduction cell that
  mirrors the normal cell);
- `forward(x, dispatch, training, use)`: the whole network. At every
  decision slot it calls `dispatch(slot, branches, operands)`, where
  `branches` lists `(op_layer, operand_position)` in the slot's encoding
  order; the eager step dispatches on Python integers (`python_dispatch`:
  runs the chosen branch only), the compiled step on an integer tensor
  (`switch_dispatch`: `keras.ops.switch`-like, one traced function for all
  paths). The same method thus serves `call`, the compiled step, the
  compiled evaluation and `extract` (`use(layer)` maps a layer to what is
  called: itself, a cached `tf.function`, or a copy);
- `liveness(indices)`: which layers the path trains (those it runs whose
  output reaches the classifier), as Python booleans for Python integers
  and as boolean tensors in the compiled step (`_path_logic` computes on
  both).

Encoding rule shared by all topologies (the strictly fair sampler relies on
it): every slot chooses among `len(ops)` candidate ops and, possibly, one of
several inputs; its integer is `source * len(ops) + op_index`, so
`slot_sizes()[j] == num_sources_j * len(ops)`.

Adding a space means writing one subclass and decorating it with
`register_topology`; `OneShotSupernet(space)` then finds it through
`spec_from_space`, and `OneShotSupernet(search_space=name, ...)` (and a
saved supernet's config) through its `name`. A NAS-Bench-201 DARTS-style
space or a MobileNet space of MBConv choices per block fits the same
protocol: stem, blocks of per-slot candidate layers, head.

Subclasses fill, in `_make_layers`, the lists the model passes to
`make_layers` (`stem`, `cell_layers` through `add_cell_layer`, `op_layers`
through `add_op`, `head`) and record the input shapes `build` uses. A
topology never holds the model.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import keras
import numpy as np

__all__ = [
    "TOPOLOGIES",
    "Topology",
    "concatenate",
    "identity",
    "make_spec",
    "python_dispatch",
    "register_topology",
    "switch_dispatch",
]

#: `name` (the supernet's `search_space`) -> registered `Topology` class.
TOPOLOGIES: dict[str, type[Topology]] = {}


def register_topology(cls: type[Topology]) -> type[Topology]:
    """Class decorator: makes a `Topology` known to `OneShotSupernet`."""
    if not (isinstance(cls, type) and issubclass(cls, Topology)):
        raise ValueError(
            "Expected a subclass of keras_nas.supernet.topology.Topology. "
            f"Received: cls={cls!r}"
        )
    if not isinstance(cls.name, str) or not cls.name:
        raise ValueError(
            "Expected the topology's `name` to be a non-empty string. "
            f"Received: name={cls.name!r}"
        )
    TOPOLOGIES[cls.name] = cls
    return cls


def make_spec(
    space: Any, given: dict[str, Any], extra: dict[str, Any]
) -> dict[str, Any]:
    """The supernet's arguments, checked and completed with defaults.

    Args:
        space: a search space (or None) some topology's `spec_from_space`
            reads.
        given: the supernet's arguments; those not None override the
            space's (`search_space` defaults to "cell").
        extra: other keyword arguments; the topology's own `arguments`
            are taken (popped) from it.

    Returns:
        `search_space`, `input_shape`, `num_classes` and the topology's
        `check_spec`.
    """
    spec = {}
    if space is not None:
        for topology in TOPOLOGIES.values():
            spec = topology.spec_from_space(space)
            if spec is not None:
                break
        else:
            raise ValueError(
                "Expected `space` to be a keras_nas.spaces.CellSearchSpace "
                "or NasBench201SearchSpace (or the space of a registered "
                f"topology: {sorted(TOPOLOGIES)}). Received: space={space!r}"
            )
    spec.update({k: v for k, v in given.items() if v is not None})
    kind = spec.get("search_space", "cell")
    if kind not in TOPOLOGIES:
        raise ValueError(
            f"Expected `search_space` to be one of {list(TOPOLOGIES)}. "
            f"Received: search_space={kind!r}"
        )
    for name in TOPOLOGIES[kind].arguments:
        if extra.get(name) is not None:
            spec[name] = extra.pop(name)
    for name in ("input_shape", "num_classes"):
        if spec.get(name) is None:
            raise ValueError(
                f"Expected `{name}` (or a `space`). Received: {name}=None"
            )
    out = {
        "search_space": kind,
        "input_shape": tuple(int(v) for v in spec["input_shape"]),
        "num_classes": int(spec["num_classes"]),
    }
    out.update(TOPOLOGIES[kind].check_spec(spec))
    return out


# ----------------------------------------------------------------------
# Dispatch of a decision slot.
# ----------------------------------------------------------------------


def identity(layer):
    """Calls a layer as it is."""
    return layer


def python_dispatch(indices, training, use: Callable = identity):
    """`dispatch` of a Python path: runs the chosen branch of every slot.

    Args:
        indices: one Python integer per slot (`Topology.path_indices`).
        training: the layers' `training` argument.
        use: maps a layer to what is called (itself, a cached
            `tf.function`, a copy for `extract`).
    """

    def dispatch(slot, branches, operands):
        layer, position = branches[indices[slot]]
        return use(layer)(operands[position], training=training)

    return dispatch


def concatenate(values: list, axis: int = -1):
    """`keras.ops.concatenate(values, axis)`, or the values' own
    `keras_nas_concatenate` where they have one (the recorded forward of
    JAX's piecewise one-shot step, `_one_shot_chain_jax`). For the glue
    between a topology's layers."""
    own = getattr(values[0], "keras_nas_concatenate", None)
    if own is not None:
        return own(values, axis)
    return keras.ops.concatenate(values, axis=axis)


def switch_dispatch(indices, switch: Callable, training):
    """`dispatch` of a path tensor: `switch(index, branches, operands,
    training)` of the backend runs the taken branch only."""

    def dispatch(slot, branches, operands):
        return switch(indices[slot], branches, operands, training)

    return dispatch


# ----------------------------------------------------------------------
# The protocol.
# ----------------------------------------------------------------------


class Topology:
    """One one-shot search space as `OneShotSupernet` sees it.

    Subclasses implement the methods that raise `NotImplementedError` (see
    the module docstring for the protocol) and are registered with
    `register_topology`.

    Args:
        spec: the supernet's arguments, as `check_spec` returns them (plus
            `search_space`, `input_shape` and `num_classes`).
        affine: whether the ops' batch normalizations learn scale/offset.
    """

    #: The supernet's `search_space` value (saved in its config).
    name: ClassVar[str] = ""
    #: The search space class this topology reads (`spec_from_space`).
    space_class: ClassVar[type | None] = None
    #: This topology's arguments (besides `input_shape`, `num_classes`):
    #: read from its space, saved in the supernet's config, and taken from
    #: the supernet's keyword arguments where its signature lacks them.
    arguments: ClassVar[tuple[str, ...]] = ()
    #: The form of an op key of `op_layer`, for error messages.
    key_doc: ClassVar[str] = "(cell, ..., op)"

    def __init__(self, spec: dict[str, Any], affine: bool = True):
        self.spec = dict(spec)
        self.affine = bool(affine)
        self.op_index: dict[tuple, int] = {}
        self.op_layers: list = []
        self.stem: list = []
        self.cell_layers: list = []
        self.head: list = []
        self._op_shapes: list = []
        self._cell_shapes: list = []
        self._head_shape: tuple = ()
        self._positions: dict[int, int] = {}

    # -- construction -------------------------------------------------

    @classmethod
    def spec_from_space(cls, space: Any) -> dict[str, Any] | None:
        """The supernet's arguments read from `space`; None if `space` is
        not a `space_class` (by default its attributes named in
        `arguments`, with `input_shape` and `num_classes`)."""
        if cls.space_class is None or not isinstance(space, cls.space_class):
            return None
        spec = {
            "search_space": cls.name,
            "input_shape": space.input_shape,
            "num_classes": space.num_classes,
        }
        spec.update({name: getattr(space, name) for name in cls.arguments})
        return spec

    @classmethod
    def check_spec(cls, spec: dict[str, Any]) -> dict[str, Any]:
        """This topology's arguments of `spec`, with defaults and types."""
        raise NotImplementedError

    @property
    def ops(self) -> tuple[str, ...]:
        """The candidate ops of every decision slot."""
        raise NotImplementedError

    @property
    def num_cells(self) -> int:
        """The number of cells (the first key of every op layer)."""
        raise NotImplementedError

    def make_space(self) -> Any:
        """The `keras_tuner.HyperModel` whose hyperparameters name a path
        (with `declare_hyperparameters(hp)`); by default `space_class` of
        the spec's `input_shape`, `num_classes` and `arguments`."""
        s = self.spec
        return self.space_class(
            input_shape=s["input_shape"],
            num_classes=s["num_classes"],
            **{name: s[name] for name in self.arguments},
        )

    def make_layers(self, stem, cell_layers, op_layers, head) -> None:
        """Creates the layers into the given (model-owned, tracked) lists.

        The lists are filled in the order the layers are tracked and saved
        (stem, then cell plumbing and op layers as `_make_layers` adds
        them, then head).
        """
        self.stem, self.cell_layers = stem, cell_layers
        self.op_layers, self.head = op_layers, head
        self._make_layers()
        self._positions = {id(v): i for i, v in enumerate(self.op_layers)}

    def _make_layers(self) -> None:
        """Appends the layers to `stem`, then uses `add_cell_layer` and
        `add_op`, then appends to `head` and sets `_head_shape`."""
        raise NotImplementedError

    def add_op(self, key: tuple, layer, input_shape: tuple) -> None:
        """Records an op layer under `key` with its input shape."""
        self.op_index[key] = len(self.op_layers)
        self.op_layers.append(layer)
        self._op_shapes.append(input_shape)

    def add_cell_layer(self, layer, input_shape: tuple) -> None:
        """Records a cell-plumbing layer with its input shape."""
        self.cell_layers.append(layer)
        self._cell_shapes.append(input_shape)

    def build(self) -> None:
        """Builds every layer from the recorded shapes."""
        shape = (None, *self.spec["input_shape"])
        for layer in self.stem:
            layer.build(shape)
            shape = layer.compute_output_shape(shape)
        for layer, shape in zip(
            self.cell_layers, self._cell_shapes, strict=True
        ):
            layer.build(shape)
        for layer, shape in zip(self.op_layers, self._op_shapes, strict=True):
            layer.build(shape)
        shape = self._head_shape
        for layer in self.head:
            layer.build(shape)
            shape = layer.compute_output_shape(shape)

    # -- paths ----------------------------------------------------------

    def to_path(self, values: Any) -> tuple:
        """Hyperparameter values, a genotype, ... -> a hashable path."""
        raise NotImplementedError

    def path_indices(self, path: tuple) -> np.ndarray:
        """The int32 slot vector of a (validated) path."""
        raise NotImplementedError

    def indices_path(self, indices: Any) -> tuple:
        """Inverse of `path_indices`."""
        raise NotImplementedError

    def slot_sizes(self) -> list[int]:
        """Number of candidates of each decision slot."""
        raise NotImplementedError

    def drawn_slot_sizes(self) -> list[int]:
        """The sizes of the slots drawn independently (default: all)."""
        return self.slot_sizes()

    def expand_drawn(self, indices):
        """All slots from the drawn ones (last axis); default: as given."""
        return indices

    def cell_slots(self, cell: int) -> list[tuple[int, list]]:
        """`(slot, branches)` of one cell, in forward order."""
        raise NotImplementedError

    # -- the network ---------------------------------------------------

    def forward(self, x, dispatch: Callable, training, use=identity):
        """The network's output; `dispatch` runs every decision slot."""
        for layer in self.stem:
            x = use(layer)(x, training=training)
        x = self.forward_cells(x, dispatch, training, use)
        for layer in self.head:
            x = use(layer)(x, training=training)
        return x

    def forward_cells(self, x, dispatch: Callable, training, use):
        """The cells between stem and head."""
        raise NotImplementedError

    def liveness(self, indices) -> dict[Any, Any]:
        """Whether each trainable layer is live on the path `indices`.

        Keys: `("op", i)` for `op_layers[i]`, `("cell", i)` for
        `cell_layers[i]`, `"stem"` and `"head"`. Python booleans for
        Python integers, boolean tensors (or Python constants) for a
        tensor.
        """
        raise NotImplementedError

    def path_layers(self, path: tuple) -> list:
        """The layers connected to the output on `path` (forward order)."""
        indices = [int(v) for v in self.path_indices(path)]
        return self._layers_on(indices, self.liveness(indices))

    def run_layers(self, path: tuple) -> list:
        """Every layer `forward` calls on `path`, connected to the output
        or not: the stem, the cell layers, each slot's chosen op layer
        (once), the head."""
        return self._layers_on([int(v) for v in self.path_indices(path)])

    def _layers_on(self, indices: list, live: dict | None = None) -> list:
        """The layers of the path of `indices` (forward order, each once)
        that `live` (`liveness`) marks, all of them without it."""

        def on(key) -> bool:
            return live is None or live[key]

        layers = list(self.stem) if on("stem") else []
        layers += [
            layer
            for i, layer in enumerate(self.cell_layers)
            if on(("cell", i))
        ]
        seen = set()
        for cell in range(self.num_cells):
            for slot, branches in self.cell_slots(cell):
                layer = branches[indices[slot]][0]
                i = self._positions[id(layer)]
                if on(("op", i)) and i not in seen:
                    seen.add(i)
                    layers.append(layer)
        return layers + list(self.head)

    def op_layer(self, key: tuple):
        """The shared layer of an op key."""
        index = self.op_index.get(key)
        if index is None:
            raise ValueError(
                f"Unknown op key. Expected {self.key_doc}. "
                f"Received: key={key!r}"
            )
        return self.op_layers[index]


def reduced(size: tuple[int, ...]) -> tuple[int, ...]:
    """A spatial size after a stride-2 op (`same` padding)."""
    return tuple((v + 1) // 2 for v in size)


def conv_stem(filters: int) -> list:
    """The stem of the one-shot supernets: 3x3 conv and batch norm."""
    return [
        keras.layers.Conv2D(
            filters, 3, padding="same", use_bias=False, name="stem_conv"
        ),
        keras.layers.BatchNormalization(name="stem_bn"),
    ]


def classifier(num_classes: int):
    """The softmax classifier of the one-shot supernets."""
    return keras.layers.Dense(
        num_classes, activation="softmax", name="classifier"
    )
