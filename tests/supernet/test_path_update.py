"""The piecewise one-shot step's optimizer update equals `optimizer.apply`.

`_path_update` reads Keras' SGD / Adam / AdamW; TensorFlow runs the update
in fused training kernels (`_path_update_tensorflow`), JAX in functions
jitted per shape on the state's values (`_path_update_jax`). For every
supported optimizer and option (momentum, Nesterov, weight decay and its
exclusions, `clipnorm`,
`global_clipnorm`, `clipvalue`, a schedule, a learning rate set between
steps), three updates, the second on a subset of the variables as a path
is, leave the variables and every optimizer variable (slots, iterations)
as `optimizer.apply` does, to 1e-6 (relative and absolute: float32
rounding, e.g. TensorFlow's Adam kernel computes `1 - beta` in float32).
Anything else falls back to `optimizer.apply`.
"""

import json
import textwrap

import keras
import numpy as np
import pytest

from keras_nas.supernet import _path_update as update
from keras_nas.supernet._path_update_tensorflow import apply_update

SCRIPT = textwrap.dedent(
    """
    import json
    import keras, numpy as np
    from keras_nas.supernet import _path_update as update
    JAX = keras.backend.backend() == "jax"
    if JAX:
        from keras_nas.supernet import _one_shot_variables_jax as variables_jax
        from keras_nas.supernet import _path_update_jax as backend_update
    else:
        from keras_nas.supernet import (
            _path_update_tensorflow as backend_update)
    O = keras.optimizers
    schedule = O.schedules.ExponentialDecay(0.05, 2, 0.5)
    CASES = {
        "sgd": lambda: O.SGD(0.1),
        "sgd momentum decay global_clipnorm": lambda: O.SGD(
            0.1, momentum=0.9, weight_decay=1e-2, global_clipnorm=0.5),
        "sgd nesterov clipnorm": lambda: O.SGD(
            0.1, momentum=0.8, nesterov=True, clipnorm=0.3),
        "sgd clipvalue, learning rate set": lambda: O.SGD(
            0.1, momentum=0.5, clipvalue=0.2),
        "adam": lambda: O.Adam(0.01),
        "adam schedule clipnorm decay": lambda: O.Adam(
            schedule, clipnorm=0.2, weight_decay=0.01),
        "adamw global_clipnorm": lambda: O.AdamW(0.01, global_clipnorm=0.1),
        "adamw schedule, bias excluded": lambda: O.AdamW(schedule),
    }

    def run(name, ours):
        keras.utils.set_random_seed(0)
        model = keras.Sequential([
            keras.Input((5,)), keras.layers.Dense(4),
            keras.layers.BatchNormalization(), keras.layers.Dense(3)])
        opt = CASES[name]()
        if "excluded" in name:
            opt.exclude_from_weight_decay(var_names=["bias"])
        model.compile(optimizer=opt, loss="mse")
        variables = model.trainable_variables
        opt.build(variables)
        for k in range(3):
            rng = np.random.default_rng(10 + k)
            grads = [rng.normal(size=v.shape).astype("float32")
                     for v in variables]
            on = [0, 1, 4] if k == 1 else list(range(len(variables)))
            if k == 2 and "set" in name:
                opt.learning_rate = 0.05
            if not ours:
                opt.apply([grads[i] for i in on], [variables[i] for i in on])
                continue
            assert update.rule(opt) is not None, name
            if not JAX:
                backend_update.apply_update(
                    opt, [keras.ops.convert_to_tensor(grads[i]) for i in on],
                    [variables[i] for i in on])
                continue
            step = variables_jax.StepVariables(model)
            state = ([v.value for v in step.trainable],
                     [v.value for v in step.optimizer_variables])
            full = [keras.ops.convert_to_tensor(g) if i in on else None
                    for i, g in enumerate(grads)]
            # Step 2 in one call per "layer"; step 3 with the gradients'
            # summed squares given (as the piecewise step's backward pass).
            chunks = [on[:2], on[2:]] if k == 1 else None
            squared = None
            if k == 2:
                squared = keras.ops.convert_to_tensor(
                    sum(float(np.sum(np.square(grads[i]))) for i in on),
                    "float32")
            trainable, optimizer_vars = backend_update.apply_rule(
                model, step, update.rule(opt), full, on, state,
                chunks=chunks, squared=squared)
            for v, value in zip(step.trainable, trainable):
                v.assign(value)
            for v, value in zip(step.optimizer_variables, optimizer_vars):
                v.assign(value)
        return [np.asarray(v.numpy(), "float64")
                for v in variables + opt.variables]

    errors = {}
    for name in CASES:
        pairs = zip(run(name, False), run(name, True), strict=True)
        errors[name] = max(
            float(np.max(np.abs(a - b) / (1.0 + np.abs(a)))) for a, b in pairs)
    print("ERRORS " + json.dumps(errors))
    """
)


@pytest.mark.parametrize("backend", ["tensorflow", "jax"])
def test_update_equals_optimizer_apply(backend, run_on_backend):
    out = run_on_backend(SCRIPT, backend, timeout=300)
    line = next(x for x in out.splitlines() if x.startswith("ERRORS "))
    errors = json.loads(line[len("ERRORS ") :])
    assert len(errors) == 8
    for name, error in errors.items():
        assert error <= 1e-6, (backend, name, error)


class _Subclass(keras.optimizers.SGD):
    pass


@pytest.mark.parametrize(
    "make",
    [
        lambda: keras.optimizers.Nadam(),
        lambda: keras.optimizers.RMSprop(),
        lambda: _Subclass(0.1, momentum=0.9),
        lambda: keras.optimizers.SGD(use_ema=True),
        lambda: keras.optimizers.SGD(gradient_accumulation_steps=2),
        lambda: keras.optimizers.SGD(loss_scale_factor=2.0),
        lambda: keras.optimizers.Adam(amsgrad=True),
        lambda: keras.optimizers.LossScaleOptimizer(keras.optimizers.SGD()),
    ],
)
def test_other_optimizers_fall_back_to_apply(make):
    variables = [keras.Variable(np.ones((3, 2), "float32"))]
    optimizer = make()
    optimizer.build(variables)
    assert update.rule(optimizer) is None
    grads = [keras.ops.ones((3, 2))]
    reference = [keras.Variable(np.ones((3, 2), "float32"))]
    twin = make()
    twin.build(reference)
    apply_update(optimizer, grads, variables)
    twin.apply(grads, reference)
    np.testing.assert_array_equal(variables[0].numpy(), reference[0].numpy())


def test_constrained_variables_fall_back_to_apply():
    layer = keras.layers.Dense(
        2, use_bias=False, kernel_constraint=keras.constraints.NonNeg()
    )
    layer.build((None, 1))
    variable = layer.kernel
    variable.assign(np.ones((1, 2), "float32"))
    optimizer = keras.optimizers.SGD(10.0)
    optimizer.build([variable])
    assert update.rule(optimizer) is not None
    grads = [keras.ops.ones((1, 2))]
    assert not update.supported(grads, [variable])
    apply_update(optimizer, grads, [variable])  # 1 - 10, then >= 0
    np.testing.assert_array_equal(variable.numpy(), [[0.0, 0.0]])
    assert int(optimizer.iterations.numpy()) == 1
