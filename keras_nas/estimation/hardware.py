"""Hardware costs of Keras models: parameters, MACs, FLOPs and latency.

Hardware-aware NAS scores an architecture by its size and speed as well as
its accuracy (MnasNet: Tan et al., "MnasNet: Platform-Aware Neural
Architecture Search for Mobile", CVPR 2019; FBNet: Wu et al., CVPR 2019).
This module measures those costs for any built Keras 3 model, including
models made of the nested `keras_nas.blocks` layers (ops inside cells inside
a functional network):

- `count_params`: number of weights (all of them, or the trainable ones).
- `count_macs`: multiply-accumulates of the convolutions and dense layers,
  the "mult-adds" that NAS papers report (NASNet, DARTS, MnasNet; often
  called "FLOPs" there, e.g. "DARTS: 3.3M params, ~530M FLOPs" on CIFAR-10).
- `count_flops`: floating-point operations, `2 * MACs` plus the other
  arithmetic (biases, batch normalization, pooling, element-wise merges and
  the node sums of cells). This is the convention of hardware FLOP counts
  (one MAC = one multiply + one add); divide by 2 for the NAS-paper figure
  or use `count_macs`.
- `profile_model`: the per-layer breakdown (input/output shapes, MACs,
  FLOPs) the counts are sums of.
- `measure_latency`: inference time of a compiled forward pass.

Counting is analytic: the model is run once, eagerly, on a batch of one
example while every leaf layer (and every layer with a registered cost,
such as a `Cell`) records the shapes it sees; each layer's cost follows from
its configuration and those shapes. Nested layers are walked, shared layers
are counted at every call, and costs scale linearly with `batch_size`.

What is counted, per example (`out` = number of output elements; every
MAC also counts as 2 FLOPs, and a bias adds `out` FLOPs):

- `Conv1D/2D/3D`: `out * prod(kernel) * in_channels / groups` MACs.
- `DepthwiseConv1D/2D`: `out * prod(kernel)` MACs.
- `SeparableConv1D/2D`: the depthwise MACs plus the pointwise ones
  (`out * depthwise_channels`).
- `Conv1D/2D/3DTranspose`: `input_elements * prod(kernel) * filters` MACs.
- `Dense`: `out * input_features` MACs.
- `BatchNormalization`: `2 * out` FLOPs (scale and shift), no MACs.
- `MaxPooling*`, `AveragePooling*`, the `Pool` op: `out * prod(pool_size)`
  FLOPs; `GlobalAveragePooling*`, `GlobalMaxPooling*`: one FLOP per input
  element.
- `Add`, `Subtract`, `Multiply`, `Maximum`, `Minimum`: `(n_inputs - 1) *
  out` FLOPs; `Average`: `n_inputs * out`.
- `Cell`: its node sums, `(arity - 1) * out / len(concat)` FLOPs per
  node (fewer where edges are `none` or unused); `NasBench201Cell`: `out`
  per addition of its node sums (`3 * out` when every edge is used: nodes
  2 and 3 sum 2 and 3 edges);
  `ResNetBasicBlock`: the residual addition (and the 2x2 average pooling
  of a stride-2 shortcut); `MBConv`: its residual addition, if any.
- Activations, dropout, reshapes, `Concatenate`, padding, cropping,
  `Identity` and `Zero` ops: nothing.

Activation functions (fused or as layers) are free, as in most NAS
counters. Element-wise work written with `keras.ops` inside a custom layer
(e.g. the ReLU in `ReLUConvBN`, the padding in `FactorizedReduce`, the
mean in `AuxiliaryHead`) is not seen; add a cost for such a layer with
`register_layer_cost`. Leaf layers with no known cost appear in
`profile_model` with `counted=False` and add nothing.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from typing import Any

import keras
import numpy as np

from keras_nas._backend import backend_module
from keras_nas._validation import check_positive_int
from keras_nas.estimation._layer_costs import (
    Shape,
    cost_function,
    num_elements,
    register_layer_cost,
)

__all__ = [
    "LayerCost",
    "count_flops",
    "count_macs",
    "count_params",
    "measure_latency",
    "profile_model",
    "register_layer_cost",
]

_UNSET = object()


@dataclasses.dataclass(frozen=True)
class LayerCost:
    """The cost of one layer call, as recorded by `profile_model`.

    Attributes:
        path: the layer's name and its parents' (`"cell_3/sep_conv/..."`).
        class_name: the layer's class.
        input_shapes: shapes of the tensors it was called on.
        output_shapes: shapes of the tensors it returned.
        macs: multiply-accumulates of this call.
        flops: floating-point operations of this call (`2 * macs` + other
            arithmetic).
        counted: `False` for a leaf layer whose cost is unknown (counted as
            zero).
    """

    path: str
    class_name: str
    input_shapes: tuple[Shape, ...]
    output_shapes: tuple[Shape, ...]
    macs: int
    flops: int
    counted: bool = True


# ---------------------------------------------------------------------------
# Tracing.
# ---------------------------------------------------------------------------


def _children(layer: Any) -> list[Any]:
    return list(layer._flatten_layers(include_self=False, recursive=False))


def _shapes(structure: Any) -> tuple[Shape, ...]:
    out = []
    for x in keras.tree.flatten(structure):
        shape = getattr(x, "shape", None)
        if shape is not None:
            out.append(tuple(int(d) for d in shape))
    return tuple(out)


def _example_inputs(model: Any, input_shape: Any) -> Any:
    """A batch of one zero example for every input of `model`."""
    if input_shape is not None:
        shapes = (
            list(input_shape)
            if input_shape and isinstance(input_shape[0], (list, tuple))
            else [input_shape]
        )
        dtypes = ["float32"] * len(shapes)
    else:
        try:
            inputs = list(model.inputs or [])
        except (AttributeError, ValueError):
            inputs = []
        if not inputs:
            raise ValueError(
                "Expected a model with known inputs (a functional model, or "
                "a built Sequential), or an `input_shape`. "
                f"Received: model={model.name!r}, input_shape=None"
            )
        shapes = [tuple(x.shape[1:]) for x in inputs]
        dtypes = [x.dtype for x in inputs]
    for shape in shapes:
        if any(
            d is None or isinstance(d, bool) or not isinstance(d, int) or d < 1
            for d in shape
        ):
            raise ValueError(
                "Expected a fully known input shape (no batch dimension) to "
                "count costs; pass `input_shape=(height, width, channels)`. "
                f"Received: input_shape={tuple(shape)!r}"
            )
    tensors = [
        keras.ops.zeros((1, *shape), dtype=dtype)
        for shape, dtype in zip(shapes, dtypes, strict=True)
    ]
    return tensors[0] if len(tensors) == 1 else tensors


def _check_model(model: Any) -> None:
    if not isinstance(model, keras.layers.Layer):
        raise ValueError(
            "Expected `model` to be a Keras model or layer. "
            f"Received: model={model!r}"
        )


def profile_model(model: Any, input_shape: Any = None) -> list[LayerCost]:
    """Per-layer costs of one forward pass on a batch of one example.

    Runs the model once, eagerly and in inference mode, on zeros, with every
    leaf layer and every layer that has a registered cost (e.g. a `Cell`)
    recording its input and output shapes; see the module docstring for
    what each layer costs. The model is left unchanged (built if it was
    not).

    Args:
        model: a Keras model (functional, sequential or subclassed) or
            layer.
        input_shape: shape of one example (no batch dimension), or a list
            of them for several inputs. Taken from `model.inputs` when
            omitted.

    Returns:
        One `LayerCost` per layer call, in call order. Sum `macs` / `flops`
        for the totals (what `count_macs` and `count_flops` do).

    Example:

    >>> model = keras.Sequential(
    ...     [keras.Input((8, 8, 16)), keras.layers.Conv2D(32, 3)])
    >>> [(c.class_name, c.output_shapes[0], c.macs)
    ...  for c in profile_model(model)]
    [('Conv2D', (1, 6, 6, 32), 165888)]
    """
    _check_model(model)
    example = _example_inputs(model, input_shape)
    if not model.built:
        # Layers may create sublayers in `build` (a `Cell` does): build
        # first, so that the walk below sees all of them.
        model(example, training=False)
    records: list[LayerCost] = []
    patched: list[tuple[Any, Any]] = []

    def hook(layer, path, cost):
        original = layer.call

        def call(*args, **kwargs):
            outputs = original(*args, **kwargs)
            inputs = args[0] if args else kwargs.get("inputs")
            ins, outs = _shapes(inputs), _shapes(outputs)
            macs, flops = cost(layer, ins, outs) if cost else (0, 0)
            records.append(
                LayerCost(
                    path,
                    type(layer).__name__,
                    ins,
                    outs,
                    int(macs),
                    int(flops),
                    cost is not None,
                )
            )
            return outputs

        patched.append((layer, layer.__dict__.get("call", _UNSET)))
        object.__setattr__(layer, "call", call)

    seen: set[int] = set()

    def walk(layer, prefix):
        for child in _children(layer):
            if id(child) in seen:
                continue
            seen.add(id(child))
            path = f"{prefix}{child.name}"
            cost = cost_function(child)
            grandchildren = _children(child)
            if cost is not None or not grandchildren:
                hook(child, path, cost)
            walk(child, path + "/")

    try:
        walk(model, "")
        own = cost_function(model)
        if own is not None or not _children(model):
            hook(model, model.name, own)
        model(example, training=False)
    finally:
        for layer, previous in reversed(patched):
            if previous is _UNSET:
                layer.__dict__.pop("call", None)
            else:
                object.__setattr__(layer, "call", previous)
    return records


def count_macs(model: Any, batch_size: int = 1, input_shape: Any = None) -> int:
    """Multiply-accumulates of one forward pass (the NAS "mult-adds").

    Sums the MACs of convolutions (regular, depthwise, separable,
    transposed) and dense layers: the figure NAS papers report, often under
    the name FLOPs. See the module docstring for the convention.

    Args:
        model: a Keras model or layer.
        batch_size: examples per forward pass (costs are linear in it).
        input_shape: shape of one example, if the model has no known inputs.

    Returns:
        The number of multiply-accumulates.

    Example:

    >>> model = keras.Sequential(
    ...     [keras.Input((8, 8, 16)),
    ...      keras.layers.Conv2D(32, 3, padding="same")])
    >>> count_macs(model) == 8 * 8 * 3 * 3 * 16 * 32
    True
    """
    batch_size = _check_batch_size(batch_size)
    costs = profile_model(model, input_shape)
    return batch_size * sum(c.macs for c in costs)


def count_flops(
    model: Any, batch_size: int = 1, input_shape: Any = None
) -> int:
    """Floating-point operations of one forward pass, `2 * MACs` + the rest.

    One multiply-accumulate counts as 2 FLOPs; biases, batch normalization
    (scale and shift), pooling windows, element-wise merges and the node
    sums of cells add their own operations; activations are free. Use
    `count_macs` for the MAC ("mult-adds") convention of NAS papers.

    Args:
        model: a Keras model or layer.
        batch_size: examples per forward pass (costs are linear in it).
        input_shape: shape of one example, if the model has no known inputs.

    Returns:
        The number of floating-point operations.

    Example:

    >>> model = keras.Sequential(
    ...     [keras.Input((4,)), keras.layers.Dense(3)])
    >>> count_flops(model)  # 2 * 4 * 3 MACs + 3 bias additions.
    27
    """
    batch_size = _check_batch_size(batch_size)
    costs = profile_model(model, input_shape)
    return batch_size * sum(c.flops for c in costs)


def count_params(
    model: Any, trainable_only: bool = False, input_shape: Any = None
) -> int:
    """Number of weights of a model (shared weights counted once).

    Args:
        model: a Keras model or layer. An unbuilt model is built by one
            forward pass on `input_shape`.
        trainable_only: count only trainable weights. This is the
            convention of NAS papers (PyTorch parameters: batch-norm moving
            statistics are buffers there, non-trainable weights here).
        input_shape: shape of one example, to build an unbuilt model.

    Returns:
        The number of scalar weights.

    Example:

    >>> model = keras.Sequential(
    ...     [keras.Input((4,)), keras.layers.BatchNormalization()])
    >>> count_params(model), count_params(model, trainable_only=True)
    (16, 8)
    """
    _check_model(model)
    if not model.built:
        model(_example_inputs(model, input_shape), training=False)
    weights = model.trainable_weights if trainable_only else model.weights
    return int(sum(num_elements(w.shape) for w in weights))


def _check_batch_size(batch_size: Any) -> int:
    return check_positive_int("batch_size", batch_size)


# ---------------------------------------------------------------------------
# Latency.
# ---------------------------------------------------------------------------


def _inference_function(model: Any, jit_compile: bool | None):
    impl = backend_module("keras_nas.estimation", "_latency", "latency")
    if jit_compile is None:
        jit_compile = getattr(model, "jit_compile", False) is True
    run = impl.inference_function(model, bool(jit_compile))
    run.jit_compile = bool(jit_compile) or keras.backend.backend() == "jax"
    return run


def measure_latency(
    model: Any,
    input_shape: Sequence[int] | None = None,
    batch_size: int = 1,
    warmup: int = 5,
    runs: int = 30,
    seed: int = 0,
    jit_compile: bool | None = None,
) -> dict[str, Any]:
    """Inference latency of a model on the current device.

    Method: one batch of `batch_size` standard-normal examples (drawn with
    `seed`) is made once and placed on the device; the forward pass
    `model(x, training=False)` is compiled into a graph function
    (`tf.function` on TensorFlow, `jax.jit` of `model.stateless_call` on
    JAX), which is what `predict` runs per batch, without its data-adapter
    and callback overhead. The first call (tracing and compilation) is
    timed apart as `first_call_ms`; `warmup` more calls are discarded; then
    each of `runs` calls is timed with `time.perf_counter`, waiting for the
    result (copied to NumPy on TensorFlow, `block_until_ready` on JAX).

    Timings depend on the machine, its load and the thread settings of the
    backend; compare models measured on the same machine in one session.

    Args:
        model: a built Keras model.
        input_shape: shape of one example; from `model.inputs` if omitted.
        batch_size: examples per call.
        warmup: untimed calls after the first one.
        runs: timed calls.
        seed: seed of the input batch.
        jit_compile: compile with XLA (TensorFlow). `None`: the model's own
            `jit_compile` setting if it is `True`, else `False`. JAX always
            compiles.

    Returns:
        A dict with `median_ms`, `p90_ms`, `mean_ms`, `min_ms`, `max_ms`
        (per call, milliseconds), `first_call_ms`, `runs`, `warmup`,
        `batch_size`, `backend` and `jit_compile`.

    Example:

    >>> model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(4)])
    >>> stats = measure_latency(model, runs=5)
    >>> stats["median_ms"] > 0
    True
    """
    _check_model(model)
    batch_size = _check_batch_size(batch_size)
    # The message shows the value passed (it once showed -1 for `"3"`).
    warmup = check_positive_int("warmup", warmup, minimum=0)
    runs = check_positive_int("runs", runs)
    example = _example_inputs(model, input_shape)
    if not model.built:
        model(example, training=False)
    rng = np.random.default_rng(seed)

    def batch_like(x):
        shape = (batch_size, *tuple(x.shape)[1:])
        dtype = keras.backend.standardize_dtype(x.dtype)
        data = rng.standard_normal(shape).astype(dtype)
        return keras.ops.convert_to_tensor(data)

    inputs = keras.tree.map_structure(batch_like, example)
    run = _inference_function(model, jit_compile)
    start = time.perf_counter()
    run(inputs)
    first = time.perf_counter() - start
    for _ in range(warmup):
        run(inputs)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        run(inputs)
        times.append(time.perf_counter() - start)
    ms = np.asarray(times) * 1000.0
    return {
        "median_ms": float(np.median(ms)),
        "p90_ms": float(np.percentile(ms, 90)),
        "mean_ms": float(ms.mean()),
        "min_ms": float(ms.min()),
        "max_ms": float(ms.max()),
        "first_call_ms": first * 1000.0,
        "runs": runs,
        "warmup": warmup,
        "batch_size": batch_size,
        "backend": keras.backend.backend(),
        "jit_compile": run.jit_compile,
    }
