"""ProxylessNAS: the compiled `fit` step against the same step run eagerly.

`equal`: on a tiny MobileNet space (3 searched blocks, 8x8x1, batch 8),
`fit` for 2 epochs of 2 steps with `compile(run_eagerly=True)` and with
the compiled step (`tf.function` on TensorFlow, `jax.jit` on JAX: the
backend of `KERAS_BACKEND`), the same seeds and data; prints how often
`train_batch` ran (the compiled step: once, its trace) and the largest
absolute difference over all variables.

`speed`: CPU seconds per epoch of both steps on the space of
`benchmarks/proxyless_search.py` (16x16x1, width 0.5), batch 64 + 64.

Usage:

    python benchmarks/proxyless_compiled.py equal
    KERAS_BACKEND=jax python benchmarks/proxyless_compiled.py equal
    python benchmarks/proxyless_compiled.py speed --epochs 3 --steps 6
"""

from __future__ import annotations

import argparse
import time

import keras
import numpy as np

from keras_nas.spaces import MobileNetSearchSpace
from keras_nas.supernet import search_data
from keras_nas.supernet.proxyless import ProxylessSupernet


def run_equal():
    space = MobileNetSearchSpace(
        (8, 8, 1), 10, stem_filters=8, stages=((8, 2, 1), (16, 1, 2)),
        kernel_sizes=(3, 5), expansions=(3,),
    )  # fmt: skip
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 8, 8, 1)).astype("float32")
    y = rng.integers(0, 10, 32)
    states = []
    for eager in (True, False):
        data = search_data(
            (x[:16], y[:16]), (x[16:], y[16:]), batch_size=8, seed=0
        )
        keras.utils.set_random_seed(1)
        model = ProxylessSupernet(space, seed=3, warmup_steps=1)
        model.compile(run_eagerly=eager)
        calls = []
        step = model.train_batch
        model.train_batch = lambda d, s=step, c=calls: c.append(1) or s(d)
        c0 = time.process_time()
        history = model.fit(data, epochs=2, verbose=0)
        print(
            "eager" if eager else "compiled",
            f"train_batch ran {len(calls)} times,",
            f"{time.process_time() - c0:.1f} s CPU,",
            {k: [round(v, 4) for v in vs] for k, vs in history.history.items()},
            flush=True,
        )
        states.append([np.asarray(v, "float64") for v in model.variables])
    pairs = zip(*states, strict=True)
    diff = max(float(np.max(np.abs(a - b))) for a, b in pairs)
    print(f"{keras.backend.backend()}: max |compiled - eager| = {diff:.2e}")


def run_speed(args):
    space = MobileNetSearchSpace((16, 16, 1), 10, width_multiplier=0.5)
    rng = np.random.default_rng(0)
    n = 64 * args.steps
    x = rng.normal(size=(2 * n, 16, 16, 1)).astype("float32")
    y = rng.integers(0, 10, 2 * n)
    for eager in (False, True):
        keras.utils.set_random_seed(0)
        model = ProxylessSupernet(space, seed=0, warmup_steps=0)
        model.compile(run_eagerly=eager)
        data = search_data(
            (x[:n], y[:n]), (x[n:], y[n:]), batch_size=64, seed=0
        )
        marks = [time.process_time()]
        done = keras.callbacks.LambdaCallback(
            on_epoch_end=lambda e, logs, m=marks: m.append(time.process_time())
        )
        model.fit(data, epochs=args.epochs, verbose=0, callbacks=[done])
        spans = zip(marks, marks[1:], strict=False)
        per_epoch = [round(b - a, 2) for a, b in spans]
        print(
            "eager" if eager else "compiled",
            f"CPU s per epoch of {args.steps} steps:",
            per_epoch,
            flush=True,
        )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("equal")
    speed = sub.add_parser("speed")
    speed.add_argument("--epochs", type=int, default=3)
    speed.add_argument("--steps", type=int, default=6)
    args = parser.parse_args()
    if args.command == "equal":
        run_equal()
    else:
        run_speed(args)


if __name__ == "__main__":
    main()
