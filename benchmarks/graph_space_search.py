"""Searching `GraphSearchSpace` vs fixed GNNs on synthetic graph data.

Graph classification on `keras_nas.data.make_graph_classification`
(Erdos-Renyi vs small-world vs scale-free graphs of 12-20 nodes, constant
node features, 3 balanced classes; `--graphs` graphs split 60/20/20 into
train/validation/test). For every seed it trains

- `gcn`: a fixed 2-layer GCN (32 units, ReLU, mean readout), the usual
  hand-picked baseline (Kipf & Welling, 2017);
- `gin`: a fixed 2-layer GIN (32 units, ReLU, sum readout; Xu et al.,
  2019);
- `random`: keras-tuner's `RandomSearch` over the default
  `GraphSearchSpace` (1-3 layers of gcn/sage/gin/gat, units, activation,
  GAT heads, residual, dropout, readout), `--trials` trials;
- `evolution`: `keras_nas.tuners.AgingEvolution` (population 4) over the
  same space, `--trials` trials;

every model for `--epochs` epochs (Adam 1e-2, batch 32). Every model is
scored by its best epoch's validation accuracy and keeps that epoch's
weights (keras-tuner's checkpoint for the searches, `EarlyStopping(...,
restore_best_weights=True)` without stopping for the fixed models); the
test accuracy is that of the selected model on the held-out test graphs.
CPU time is the process time of all threads.

Usage:
    python benchmarks/graph_space_search.py --seeds 0 1 2 --trials 8 \
        --epochs 40 --json /tmp/graph_space.json
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

import keras
import keras_tuner
import numpy as np

from keras_nas.data import make_graph_classification
from keras_nas.spaces import GraphSearchSpace
from keras_nas.tuners import AgingEvolution

FIXED = {
    "gcn": {"conv": "gcn", "readout": "mean"},
    "gin": {"conv": "gin", "readout": "sum"},
}


def fixed_values(conv: str, readout: str) -> dict:
    values = {"num_layers": 2, "readout": readout}
    for i in range(2):
        values.update(
            {
                f"layer{i}/conv": conv,
                f"layer{i}/units": 32,
                f"layer{i}/activation": "relu",
                f"layer{i}/residual": False,
                f"layer{i}/dropout": 0.0,
            }
        )
    return values


def splits(num_graphs: int, seed: int):
    x, a, y = make_graph_classification(num_graphs, seed=seed)
    n_train, n_val = int(0.6 * num_graphs), int(0.2 * num_graphs)
    parts = [
        slice(0, n_train),
        slice(n_train, n_train + n_val),
        slice(n_train + n_val, None),
    ]
    return [([x[s], a[s]], y[s]) for s in parts]


def test_accuracy(model, test) -> float:
    return float(model.evaluate(*test, verbose=0, return_dict=True)["accuracy"])


def run_fixed(space, name, train, val, test, epochs, seed):
    keras.utils.set_random_seed(seed)
    hp = keras_tuner.HyperParameters()
    hp.values.update(fixed_values(**FIXED[name]))
    model = space.build(hp)
    # Keep the best epoch's weights, as keras-tuner does for the searches.
    best_epoch = keras.callbacks.EarlyStopping(
        "val_accuracy", patience=epochs, mode="max", restore_best_weights=True
    )
    history = model.fit(
        *train,
        validation_data=val,
        epochs=epochs,
        batch_size=32,
        verbose=0,
        callbacks=[best_epoch],
    )
    return {
        "val": max(history.history["val_accuracy"]),
        "test": test_accuracy(model, test),
        "models": 1,
        "best": fixed_values(**FIXED[name]),
    }


def run_search(space, name, train, val, test, epochs, trials, seed, tmp):
    keras.utils.set_random_seed(seed)
    kwargs = {
        "objective": "val_accuracy",
        "max_trials": trials,
        "seed": seed,
        "directory": tmp,
        "project_name": name,
    }
    if name == "random":
        tuner = keras_tuner.RandomSearch(space, **kwargs)
    else:
        tuner = AgingEvolution(space, population_size=4, **kwargs)
    tuner.search(
        *train, validation_data=val, epochs=epochs, batch_size=32, verbose=0
    )
    best = tuner.oracle.get_best_trials(1)[0]
    scores = [
        t.score for t in tuner.oracle.trials.values() if t.score is not None
    ]
    return {
        "val": float(best.score),
        "test": test_accuracy(tuner.get_best_models(1)[0], test),
        "models": len(scores),
        "trial_val_mean": float(np.mean(scores)),
        "best": best.hyperparameters.values,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--graphs", type=int, default=600)
    parser.add_argument(
        "--methods", nargs="+", default=["gcn", "gin", "random", "evolution"]
    )
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    results = []
    for seed in args.seeds:
        train, val, test = splits(args.graphs, seed)
        space = GraphSearchSpace(1, 3, num_nodes=20)
        for method in args.methods:
            wall, cpu = time.time(), time.process_time()
            with tempfile.TemporaryDirectory() as tmp:
                if method in FIXED:
                    out = run_fixed(
                        space, method, train, val, test, args.epochs, seed
                    )
                else:
                    out = run_search(
                        space,
                        method,
                        train,
                        val,
                        test,
                        args.epochs,
                        args.trials,
                        seed,
                        tmp,
                    )
            out.update(
                method=method,
                seed=seed,
                wall_s=time.time() - wall,
                cpu_s=time.process_time() - cpu,
                load=os.getloadavg()[0],
            )
            results.append(out)
            print(json.dumps(out), flush=True)
    print(
        "| method | seed | models trained | best val acc | test acc |"
        " CPU s | wall s |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in results:
        print(
            f"| {r['method']} | {r['seed']} | {r['models']} | "
            f"{r['val']:.3f} | {r['test']:.3f} | {r['cpu_s']:.0f} | "
            f"{r['wall_s']:.0f} |"
        )
    for method in args.methods:
        tests = [r["test"] for r in results if r["method"] == method]
        print(
            f"{method}: mean test acc {np.mean(tests):.3f} "
            f"(sd {np.std(tests):.3f}, {len(tests)} seeds)"
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "results": results}, f, indent=1)


if __name__ == "__main__":
    main()
