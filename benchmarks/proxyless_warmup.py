"""Does the ProxylessNAS supernet learn? Weight warm-up on digits.

Trains the weights of a `ProxylessSupernet` alone (no architecture step:
`warmup_steps` larger than the run) on the digits of
`proxyless_search.py` (800 training images upsampled to 16x16x1, the
`search_data` epochs of min(800, 400) // batch steps), either with a
uniformly sampled single path per step (the paper's warm-up) or with one
fixed path (`--fixed`: every block's first op, by path logits of 50 on
it), and prints the training-batch accuracy and loss of the sampled path
per epoch with the CPU and wall seconds so far. The compiled step of
`fit` is used (`--eager`: `compile(run_eagerly=True)`).

Usage:

    python benchmarks/proxyless_warmup.py --stages 16,2,1 32,2,2 \\
        --stem-filters 8 --width 1 --epochs 80
    python benchmarks/proxyless_warmup.py --stages 16,2,1 32,2,2 \\
        --stem-filters 8 --width 1 --epochs 12 --fixed
"""

import argparse
import os
import time

import numpy as np
from _common import digits_split
from proxyless_search import upsample


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stages", nargs="+", default=None)
    parser.add_argument("--stem-filters", type=int, default=16)
    parser.add_argument("--width", type=float, default=0.5)
    parser.add_argument("--fixed", action="store_true")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--learning-rate", type=float, default=3e-3)
    parser.add_argument(
        "--sgd", action="store_true", help="SGD (Nesterov 0.9), not Adam"
    )
    parser.add_argument("--eager", action="store_true")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    import keras

    if args.threads and keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.threads)

    from keras_nas.spaces import MobileNetSearchSpace
    from keras_nas.supernet import ProxylessSupernet, search_data

    (xt, yt), (rest, y_rest) = digits_split(0, 800, 0)
    xv, yv = upsample(rest[:400], 2), y_rest[:400]
    xt = upsample(xt, 2)
    shape = {}
    if args.stages:
        shape["stages"] = [tuple(map(int, t.split(","))) for t in args.stages]
    space = MobileNetSearchSpace(
        (16, 16, 1), 10, stem_filters=args.stem_filters,
        width_multiplier=args.width, **shape,
    )  # fmt: skip
    print(
        "blocks (filters, strides, choices):",
        [(b.filters, b.strides, len(b.choices)) for b in space.blocks],
        f"fixed path: {args.fixed}; load {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    keras.utils.set_random_seed(0)
    model = ProxylessSupernet(space, warmup_steps=10**9, seed=0)
    if args.fixed:
        for alpha in model.arch_variables:
            alpha.assign(50.0 * np.eye(alpha.shape[0])[0])
    lr = args.learning_rate
    optimizer = (
        keras.optimizers.SGD(lr, momentum=0.9, nesterov=True)
        if args.sgd
        else keras.optimizers.Adam(lr)
    )
    model.compile(optimizer=optimizer, run_eagerly=args.eager)
    data = search_data((xt, yt), (xv, yv), args.batch_size, seed=0)
    cpu, wall = time.process_time(), time.perf_counter()

    def report(epoch, logs):
        print(
            f"epoch {epoch + 1} ({(epoch + 1) * len(data)} steps): accuracy "
            f"{logs['accuracy']:.3f}, loss {logs['loss']:.3f}; CPU "
            f"{time.process_time() - cpu:.1f} s, wall "
            f"{time.perf_counter() - wall:.1f} s",
            flush=True,
        )

    model.fit(
        data, epochs=args.epochs, verbose=0,
        callbacks=[keras.callbacks.LambdaCallback(on_epoch_end=report)],
    )  # fmt: skip
    print(f"load {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
