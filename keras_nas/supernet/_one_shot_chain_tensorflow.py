"""TensorFlow's piecewise one-shot step differentiated by hand.

The piecewise step (`_one_shot_tensorflow`) runs every layer of the
sampled path as one call of its kind's compiled piece. Under a
`tf.GradientTape` each call is recorded with TensorFlow's Python
bookkeeping (the backward function's captures mapped per call, the
trainable outputs checked, the gradients gathered per op), and every sum,
concatenation and layer without variables between them is an eager op the
tape records and differentiates in Python: at the tiny configuration the
tape's forward and backward cost about twice the pieces' own executions
(benchmarks/RESULTS.md, #13 j16). Here the forward is recorded instead, as
JAX's chained step does (`_one_shot_chain_jax`):

- every layer is one call of its kind's forward function with the side
  outputs its gradient needs, and its backward function is called on
  them (the pair TensorFlow's tape calls for the piece's concrete
  function, `Pair`: the same kernels, the same values), layers without
  variables (pooling, the head's global pooling) too; the identity is its
  input;
- the values between the layers are `Value`s: their sums and their
  concatenation (`topology.concatenate`) run eagerly and are recorded
  (`_one_shot_chain`, shared with JAX);
- the backward pass walks the record in reverse from the loss's gradient
  (taken on a tape of the loss alone), adding the gradients of a value
  used more than once and splitting those of a concatenation. Layers not
  connected to the output (`liveness`) run forward (their moving
  statistics move) and get no gradient, as under the tape.

A piece whose concrete function cannot be called on its variables'
handles (`_HandlePiece`) runs under a tape of its own.
"""

from __future__ import annotations

import itertools

import tensorflow as tf
from tensorflow.python.eager import backprop_util, context, execute
from tensorflow.python.framework import ops as tf_ops
from tensorflow.python.ops import gradients_util

from keras_nas.blocks.pool_ops import Identity
from keras_nas.supernet._one_shot_chain import (
    PIECE,
    TAPED,
    Recorder,
    Value,
    send,
)

__all__ = ["Pair", "path_grads"]

_FIRST_ORDER = gradients_util.POSSIBLE_GRADIENT_TYPES_FIRST_ORDER


class Pair:
    """TensorFlow's first-order tape functions of one concrete function
    (what `ConcreteFunction._call_flat` runs under a tape): the forward
    function, whose first output is the piece's and the others the side
    outputs its gradient reads, and the backward function, called on the
    output's gradient and those side outputs (`captures`: their positions
    among the forward's outputs, or a constant). `grads`: the position,
    among the concrete function's inputs, of each backward output."""

    __slots__ = ("forward", "backward", "captures", "grads", "calls")

    def __init__(self, forward, backward, captures, grads):
        self.forward, self.backward = forward, backward
        self.captures, self.grads = captures, grads
        # (name, number of outputs) of the forward and the backward.
        self.calls = tuple(
            (f.name.decode(), len(f.function_type.flat_outputs))
            for f in (forward, backward)
        )

    @classmethod
    def of(cls, concrete, args) -> Pair | None:
        """The pair of `concrete` called on the flat `args`, None where its
        forward has another output than the piece's (then the tape)."""
        call = concrete._select_forward_and_backward_functions(
            args, _FIRST_ORDER, True
        )
        forward, _ = call.forward()
        functions = call._functions
        backward = functions._backward
        graph = functions._forward_graph
        captured = backward.captured_inputs
        if (
            functions._num_inference_outputs != 1
            or not backprop_util.IsTrainable(graph.outputs[0])
            or len(backward.inputs) - len(captured) != 1
            or len(forward.function_type.flat_outputs) != len(graph.outputs)
        ):
            return None
        position = {tf_ops.tensor_id(t): i for i, t in enumerate(graph.outputs)}
        captures = tuple(
            (position.get(tf_ops.tensor_id(c)), c) for c in captured
        )
        grads = tuple(
            i
            for i, g in enumerate(backward.structured_outputs)
            if g is not None
        )
        return cls(forward, backward._inference_function, captures, grads)

    def gradients(self, outputs, cotangent, run) -> list:
        """The backward function's outputs (`grads` says whose)."""
        args = [cotangent]
        for i, constant in self.captures:
            args.append(constant if i is None else outputs[i])
        return run(self.calls[1], args)


class _Tape(Recorder):
    """The recorded forward of one path (see the module). `record(layer)`:
    the layer's `_HandlePiece`; `live`: the ids of the layers connected
    to the output."""

    def __init__(self, record, live):
        super().__init__()
        self.record, self.live = record, live
        # The functions run as `AtomicFunction.call_flat` runs them, past
        # its per-call Python (the call options read once, no tape to
        # pause, no resource outputs): ~40 us CPU a call, 2 a piece.
        ctx = context.context()
        attrs = tuple(
            itertools.chain(*ctx.function_call_options.as_attrs().items())
        )
        self.ctx, self.attrs = ctx, attrs

    def run(self, call, args) -> list:
        """The function `call` (`(name, number of outputs)`) on `args`."""
        return execute.execute(call[0], call[1], args, self.attrs, self.ctx)

    def use(self, layer):
        """`use(layer)` of `topology.forward`: a recorded piece call (the
        identity: its input)."""
        if type(layer) is Identity:
            return _identity
        return super().use(layer)

    def piece(self, layer, x, training) -> Value:
        record = self.record(layer)
        if id(layer) not in self.live:
            return self.value(record(x.array, training))
        pair = record.pair(x.array, training)
        if pair is None:
            with tf.GradientTape() as tape:
                tape.watch(x.array)
                y = record(x.array, training)
            out = self.value(y)
            self.entries.append(
                (TAPED, out.index, x.index, tape, (x.array, y), record)
            )
            return out
        outputs = self.run(pair.calls[0], [*record.handles, x.array])
        out = self.value(outputs[0])
        self.entries.append((PIECE, out.index, x.index, pair, outputs, record))
        return out

    def _concat(self, arrays, axis):
        return tf.concat(arrays, axis)

    def _split(self, cotangent, sizes, axis):
        return tf.split(cotangent, list(sizes), axis=axis)

    def backward(self, out: Value, cotangent) -> dict:
        """`{id(variable): gradient}` of the live layers' trainable
        variables, from the cotangent of `out`."""
        cts = {out.index: cotangent}
        grads: dict = {}
        for entry in reversed(self.entries):
            g = cts.pop(entry[1], None)
            if g is None:
                continue
            kind = entry[0]
            if kind == PIECE:
                _, _, x_index, pair, outputs, record = entry
                trainable = record.trainable
                n = len(record.handles)
                for i, d in zip(
                    pair.grads,
                    pair.gradients(outputs, g, self.run),
                    strict=True,
                ):
                    if i == n:
                        send(cts, x_index, d)
                    elif i < len(trainable):
                        send(grads, id(trainable[i]), d)
            elif kind == TAPED:
                _, _, x_index, tape, (x, y), record = entry
                variables = [v.value for v in record.trainable]
                d_x, *d_vars = tape.gradient(y, [x, *variables], g)
                if d_x is not None:
                    send(cts, x_index, d_x)
                for v, d in zip(record.trainable, d_vars, strict=True):
                    if d is not None:
                        send(grads, id(v), d)
            else:
                self.send_back(entry, g, cts)
        self.entries = []
        return grads


def _identity(x, training=None):
    return x


def path_grads(model, x, y, sample_weight, path, record, loss_gradient):
    """`(loss, y_pred, variables, grads)` of one Python path, as the tape
    step computes them: the recorded forward of the path's pieces
    (`record(layer)`: its `_HandlePiece`), `loss_gradient(x, y, y_pred,
    sample_weight) -> (loss, the gradient of the optimizer's scaled loss
    with respect to y_pred)`, the backward walked by hand. `variables`:
    the path's trainable variables, as `path_trainable_variables` lists
    them (read from the records), `grads` theirs (None where none came)."""
    layers = model._path_layers(path)
    variables, seen = [], set()
    for layer in layers:
        for v in record(layer).trainable:
            if id(v) not in seen:
                seen.add(id(v))
                variables.append(v)
    tape = _Tape(record, {id(layer) for layer in layers})
    y_pred = model._forward(tape.value(x), path, True, tape.use)
    loss, d_pred = loss_gradient(x, y, y_pred.array, sample_weight)
    grads = tape.backward(y_pred, d_pred)
    return loss, y_pred.array, variables, [grads.get(id(v)) for v in variables]
