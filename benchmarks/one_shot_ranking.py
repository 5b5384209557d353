"""How well do shared weights rank architectures? (digits, NAS-Bench-201 space)

Samples `--archs` distinct architectures of the NAS-Bench-201 cell space,
trains each from scratch (the space's own network, `fit`) and scores it on a
validation split; trains one `OneShotSupernet` with uniform single-path
sampling (SPOS) and scores the same architectures with inherited weights
(after batch-norm recalibration). Prints Kendall's tau and Spearman's rho
between the two rankings and the wall time of both procedures.

Issue 5's aim: tau >= 0.5 with less than a tenth of the stand-alone time.

Usage:

    python benchmarks/one_shot_ranking.py --archs 30 \
        --standalone-epochs 30 --supernet-epochs 10
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np


def _digits(seed: int, num_train: int, num_val: int):
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = (digits.images / 16.0).astype("float32")[..., None]
    y = digits.target.astype("int32")
    order = np.random.default_rng(seed).permutation(len(x))
    x, y = x[order], y[order]
    train = (x[:num_train], y[:num_train])
    val = (
        x[num_train : num_train + num_val],
        y[num_train : num_train + num_val],
    )
    return train, val


def _sample_archs(supernet, n: int, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    seen, archs = set(), []
    while len(archs) < n:
        values = supernet.sample_values(rng)
        key = supernet._to_path(values)
        if key not in seen:
            seen.add(key)
            archs.append(values)
    return archs


def _train_standalone(space, archs, train, val, args, one_shot, supernet):
    import keras
    import keras_tuner

    standalone = []
    start = time.perf_counter()
    for i, values in enumerate(archs):
        keras.utils.set_random_seed(args.seed + i)
        hp = keras_tuner.HyperParameters()
        space.declare_hyperparameters(hp)
        hp.values.update(values)
        model = space.build(hp)
        history = model.fit(
            *train,
            validation_data=val,
            epochs=args.standalone_epochs,
            batch_size=args.batch_size,
            verbose=0,
        ).history
        # Final accuracy, averaged over the last 3 epochs to damp noise.
        standalone.append(float(np.mean(history["val_accuracy"][-3:])))
        print(
            f"[{i + 1:2d}/{len(archs)}] "
            f"{supernet._to_path(values)} stand-alone "
            f"{standalone[-1]:.4f} one-shot {one_shot[i]:.4f}",
            flush=True,
        )
    standalone_time = time.perf_counter() - start

    return standalone, standalone_time


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--archs", type=int, default=30)
    parser.add_argument("--standalone-epochs", type=int, default=30)
    parser.add_argument("--supernet-epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument(
        "--learning-rate",
        type=float,
        default=5e-3,
        help="Adam learning rate of the stand-alone training",
    )
    parser.add_argument(
        "--supernet-optimizer", choices=("sgd", "adam"), default="sgd"
    )
    parser.add_argument(
        "--supernet-learning-rate",
        type=float,
        default=0.05,
        help="learning rate of the supernet's optimizer",
    )
    parser.add_argument("--filters", type=int, default=8)
    parser.add_argument("--cells-per-stage", type=int, default=1)
    parser.add_argument("--recalibration-batches", type=int, default=4)
    parser.add_argument("--eval-batch-size", type=int, default=512)
    parser.add_argument("--num-train", type=int, default=1100)
    parser.add_argument("--num-val", type=int, default=400)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None, help="write results here")
    parser.add_argument(
        "--standalone-json",
        default=None,
        help="reuse the stand-alone scores and time of an earlier run "
        "(same arguments and seed, so the same architectures)",
    )
    args = parser.parse_args(argv)

    import keras
    from scipy import stats

    from keras_nas.spaces import NasBench201SearchSpace
    from keras_nas.supernet import OneShotSupernet

    train, val = _digits(args.seed, args.num_train, args.num_val)
    space = NasBench201SearchSpace(
        input_shape=(8, 8, 1),
        num_classes=10,
        filters=args.filters,
        cells_per_stage=args.cells_per_stage,
        learning_rate=args.learning_rate,
    )

    # --- one-shot: train the supernet once, score every architecture ---
    keras.utils.set_random_seed(args.seed)
    start = time.perf_counter()
    supernet = OneShotSupernet(space, seed=args.seed)
    if args.supernet_optimizer == "adam":
        optimizer = keras.optimizers.Adam(args.supernet_learning_rate)
    else:
        optimizer = keras.optimizers.SGD(
            args.supernet_learning_rate, momentum=0.9, nesterov=True
        )
    supernet.compile(optimizer=optimizer)
    supernet.fit(
        *train,
        epochs=args.supernet_epochs,
        batch_size=args.batch_size,
        verbose=0,
    )
    train_time = time.perf_counter() - start
    archs = _sample_archs(supernet, args.archs, args.seed + 1)
    start = time.perf_counter()
    one_shot = [
        supernet.evaluate_path(
            values,
            *val,
            bn_recalibration_batches=args.recalibration_batches,
            train_data=train[0],
            batch_size=args.eval_batch_size,
        )["accuracy"]
        for values in archs
    ]
    eval_time = time.perf_counter() - start
    one_shot_time = train_time + eval_time
    print(
        f"one-shot: supernet {train_time:.1f} s, {len(archs)} evaluations "
        f"{eval_time:.1f} s",
        flush=True,
    )

    # --- stand-alone: train every architecture from scratch ---

    if args.standalone_json:
        with open(args.standalone_json) as f:
            previous = json.load(f)
        ops_now = [list(supernet._to_path(v)) for v in archs]
        if previous["archs_ops"] != ops_now:
            raise ValueError(
                "Expected the run in `--standalone-json` to have the same "
                "architectures (same --archs and --seed). Received: "
                f"standalone_json={args.standalone_json!r}"
            )
        standalone = previous["standalone"]
        standalone_time = previous["standalone_seconds"]
    else:
        standalone, standalone_time = _train_standalone(
            space, archs, train, val, args, one_shot, supernet
        )

    tau = stats.kendalltau(standalone, one_shot).statistic
    rho = stats.spearmanr(standalone, one_shot).statistic
    result = {
        "backend": keras.backend.backend(),
        "archs": len(archs),
        "kendall_tau": float(tau),
        "spearman_rho": float(rho),
        "standalone_seconds": standalone_time,
        "one_shot_seconds": one_shot_time,
        "supernet_train_seconds": train_time,
        "one_shot_eval_seconds": eval_time,
        "time_ratio": one_shot_time / standalone_time,
        "standalone_acc_range": [min(standalone), max(standalone)],
        "one_shot_acc_range": [min(one_shot), max(one_shot)],
        "args": vars(args),
        "standalone": standalone,
        "one_shot": one_shot,
        "archs_ops": [list(supernet._to_path(v)) for v in archs],
    }
    print(
        json.dumps(
            {
                k: v
                for k, v in result.items()
                if k not in ("standalone", "one_shot", "archs_ops")
            },
            indent=1,
        )
    )
    target = tau >= 0.5 and result["time_ratio"] < 0.1
    print(f"target (tau >= 0.5, time < 1/10): {'met' if target else 'NOT met'}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
    return result


if __name__ == "__main__":
    main()
