"""Random search of AutoGAN generators on digits against a fixed baseline.

Gong et al., "AutoGAN: Neural Architecture Search for Generative
Adversarial Networks" (ICCV 2019) searches the generator cell by cell. Here
keras-tuner's `RandomSearch` samples `--trials` generators of
`GanSearchSpace` (3 cells, 1x1 -> 8x8, filters 16/32/64) and trains each
with the fixed spectral-norm discriminator for `--epochs` epochs on the
scikit-learn digits scaled to [-1, 1]; trials are scored by `val_fid`
(Fréchet distance in the features of a small classifier trained on the
training images: not comparable to Inception FID). The baseline is one
fixed generator of the same space trained the same way: every cell nearest
upsampling, batch norm, post-activation, in-cell shortcut, no cross-cell
skips (the SNGAN-style ResNet generator that AutoGAN starts from, 32
filters). The best trial and the baseline are then scored on held-out test
images (`test_fid`), which played no part in the selection, averaged over
`--repeats` evaluations (fresh latent samples each). Since one GAN training
run is noisy, both architectures are then retrained from scratch with
`--retrain-seeds` other seeds (same epochs, final weights, test FID of one
evaluation each). For scale: the FID of uniform noise images and of the
validation images against the test images (real vs real).

Usage:

    python benchmarks/gan_space_search.py --trials 8 --epochs 10
"""

from __future__ import annotations

import argparse
import json
import time

import keras
import keras_tuner
import numpy as np
from _common import digits_split

from keras_nas.gan.fid import train_feature_extractor
from keras_nas.spaces.gan_space import FID_OBJECTIVE, GanSearchSpace

BASELINE = (
    {"num_cells": 3, "filters": 32}
    | {
        f"cell{i}/{k}": v
        for i in range(3)
        for k, v in (
            ("upsample", "nearest"),
            ("norm", "batch"),
            ("conv", "post"),
            ("shortcut", True),
        )
    }
    | {f"cell{i}/skip{j}": False for i in range(3) for j in range(i)}
)


def _search(space, hp, args, x_train, x_val, name, max_trials, seed):
    tuner = keras_tuner.RandomSearch(
        space,
        objective=FID_OBJECTIVE,
        max_trials=max_trials,
        hyperparameters=hp,
        tune_new_entries=hp is None,
        seed=seed,
        directory=args.directory,
        project_name=name,
        overwrite=True,
    )
    start = time.time()
    tuner.search(
        x_train,
        validation_data=x_val,
        epochs=args.epochs,
        batch_size=args.batch_size,
        verbose=0,
    )
    return tuner, time.time() - start


def _test_fid(model, x_test, repeats, batch_size):
    values = [
        model.evaluate(x_test, batch_size=batch_size, verbose=0)
        for _ in range(repeats)
    ]
    return float(np.mean(values)), float(np.std(values))


def _retrain(space, values, seed, args, x_train, x_val, x_test):
    hp = keras_tuner.HyperParameters()
    for key, value in values.items():
        hp.Fixed(key, value)
    keras.utils.set_random_seed(seed)
    model = space.build(hp)
    history = model.fit(
        x_train,
        validation_data=x_val,
        epochs=args.epochs,
        batch_size=args.batch_size,
        verbose=0,
    )
    return {
        "seed": seed,
        "final_val_fid": history.history["val_fid"][-1],
        "test_fid": float(
            model.evaluate(x_test, batch_size=args.batch_size, verbose=0)
        ),
    }


def _reference_fids(extractor, x_val, x_test, seed):
    from keras_nas.gan.fid import FrechetDistance

    noise = np.random.default_rng(seed).uniform(-1, 1, size=x_test.shape)
    out = {}
    for name, other in (("noise", noise), ("real_val", x_val)):
        metric = FrechetDistance(int(extractor.output_shape[-1]))
        metric.update_state(extractor(x_test), extractor(other))
        out[name] = float(metric.result())
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--retrain-seeds", type=int, default=3)
    parser.add_argument("--directory", default="/tmp/gan_space_search")
    parser.add_argument("--output", default=None, help="JSON results path")
    args = parser.parse_args()

    (x_train, y_train), (x_rest, _) = digits_split(args.seed, 1100, 0)
    x_train, x_rest = 2.0 * x_train - 1.0, 2.0 * x_rest - 1.0
    x_val, x_test = x_rest[: len(x_rest) // 2], x_rest[len(x_rest) // 2 :]
    keras.utils.set_random_seed(args.seed)
    extractor = train_feature_extractor(
        x_train, y_train, epochs=10, seed=args.seed
    )
    space = GanSearchSpace(extractor, seed=args.seed)

    keras.utils.set_random_seed(args.seed)
    search, search_s = _search(
        space, None, args, x_train, x_val, "search", args.trials, args.seed
    )
    fixed = keras_tuner.HyperParameters()
    for key, value in BASELINE.items():
        fixed.Fixed(key, value)
    keras.utils.set_random_seed(args.seed)
    base, base_s = _search(
        space, fixed, args, x_train, x_val, "baseline", 1, args.seed
    )

    trials = sorted(
        search.oracle.trials.values(), key=lambda t: t.score or np.inf
    )
    best = search.get_best_models(1)[0]
    baseline = base.get_best_models(1)[0]
    results = {
        "args": vars(args),
        "trial_val_fid": [t.score for t in trials],
        "best_hyperparameters": trials[0].hyperparameters.values,
        "best_val_fid": trials[0].score,
        "best_params": best.generator.count_params(),
        "baseline_val_fid": base.oracle.get_best_trials(1)[0].score,
        "baseline_params": baseline.generator.count_params(),
        "best_test_fid": _test_fid(best, x_test, args.repeats, args.batch_size),
        "baseline_test_fid": _test_fid(
            baseline, x_test, args.repeats, args.batch_size
        ),
        "test_fid_references": _reference_fids(
            extractor, x_val, x_test, args.seed
        ),
        "search_seconds": search_s,
        "baseline_seconds": base_s,
        "sizes": [len(x_train), len(x_val), len(x_test)],
    }
    seeds = range(args.seed + 1, args.seed + 1 + args.retrain_seeds)
    for name, values in (
        ("best", trials[0].hyperparameters.values),
        ("baseline", BASELINE),
    ):
        runs = [
            _retrain(space, values, s, args, x_train, x_val, x_test)
            for s in seeds
        ]
        test = [r["test_fid"] for r in runs]
        results[f"{name}_retrained"] = runs
        results[f"{name}_retrained_test_fid"] = [
            float(np.mean(test)),
            float(np.std(test)),
        ]
    text = json.dumps(results, indent=1, default=str)
    print(text)
    if args.output:
        with open(args.output, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
