"""Ranking quality of the performance predictors on NAS-Bench-201.

For each training-set size (10, 25, 50, 100, 200 architectures drawn at
random from the CIFAR-10 table), each predictor of `keras_nas.predictors`
on each encoding is fitted to the sampled cells' test accuracies and
predicts `--test` other random cells; the script prints the Kendall tau and
Spearman rho between predictions and the table (mean +- std over
`--repeats` draws) and the fit time, as in Figure 1 of White et al., "How
Powerful are Performance Predictors in Neural Architecture Search?",
NeurIPS 2021.

Example:

```
python benchmarks/predictor_quality.py \
    --table ../shared/benchmarks/nas-bench-201/cifar10.csv --repeats 10
```
"""

from __future__ import annotations

import argparse
import os
import time

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402
from scipy.stats import kendalltau, spearmanr  # noqa: E402

from keras_nas.benchmarks.tabular import TabularBenchmark  # noqa: E402
from keras_nas.predictors import (  # noqa: E402
    ENCODINGS,
    ArchitectureEncoder,
    GaussianProcessPredictor,
    GradientBoostingPredictor,
    MLPEnsemblePredictor,
)
from keras_nas.spaces import nb201_hyperparameters_from_genotype  # noqa: E402

PREDICTORS = {
    "gp": GaussianProcessPredictor,
    "mlp-ensemble": MLPEnsemblePredictor,
    "gbt": GradientBoostingPredictor,
}
SIZES = (10, 25, 50, 100, 200)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--table", required=True, help="NAS-Bench-201 CSV.")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--test", type=int, default=1000)
    parser.add_argument("--sizes", type=int, nargs="+", default=SIZES)
    parser.add_argument(
        "--predictors", nargs="+", default=list(PREDICTORS), choices=PREDICTORS
    )
    parser.add_argument(
        "--encodings", nargs="+", default=list(ENCODINGS), choices=ENCODINGS
    )
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    table = TabularBenchmark.from_nas_bench_201_csv(args.table)
    keys = sorted(table.table)
    scores = np.asarray([table.table[k] for k in keys])
    values = [nb201_hyperparameters_from_genotype(k) for k in keys]
    encoded = {
        name: ArchitectureEncoder(table.hyperparameters, name).encode_many(
            values
        )
        for name in args.encodings
    }
    print(
        f"{len(keys)} cells; {args.repeats} draws of n training and "
        f"{args.test} test cells; mean ± std over the draws"
    )
    print("| predictor | encoding | n | Kendall tau | Spearman rho | fit s |")
    print("|---|---|---|---|---|---|")
    for predictor in args.predictors:
        for encoding in args.encodings:
            x = encoded[encoding]
            for n in args.sizes:
                taus, rhos, times = [], [], []
                for repeat in range(args.repeats):
                    rng = np.random.default_rng(1000 * n + repeat)
                    order = rng.permutation(len(keys))
                    train, test = order[:n], order[n : n + args.test]
                    model = PREDICTORS[predictor](seed=repeat)
                    start = time.perf_counter()
                    model.fit(x[train], scores[train])
                    times.append(time.perf_counter() - start)
                    mean, _ = model.predict(x[test])
                    taus.append(kendalltau(mean, scores[test])[0])
                    rhos.append(spearmanr(mean, scores[test])[0])
                print(
                    f"| {predictor} | {encoding} | {n} | "
                    f"{np.mean(taus):.3f} ± {np.std(taus):.3f} | "
                    f"{np.mean(rhos):.3f} ± {np.std(rhos):.3f} | "
                    f"{np.median(times):.3f} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
