"""How well does a SMASH hypernetwork rank architectures? (digits, NB-201)

The ranking task of `one_shot_ranking.py` (same arguments, so the same 30
NAS-Bench-201 architectures and digits split): trains one
`keras_nas.supernet.HyperNetwork` (Brock et al., ICLR 2018; one random
architecture per batch), scores every architecture by its validation
accuracy with generated weights, and prints Kendall's tau and Spearman's
rho against the stand-alone scores of a `one_shot_ranking.py --no-one-shot
--json` run, with the time ratio to one stand-alone training of the 30
architectures (the mean over its seeds, as `one_shot_ranking.py` does).
With `--spos-epochs E` it also trains SPOS (`OneShotSupernet`, the
recommended 60 epochs of `one_shot_ranking.py`) in the same process, right
after, and reports it alongside, so both times are measured under the same
load.

Usage:

    python benchmarks/one_shot_ranking.py --archs 30 --num-train 500 \
        --num-val 0 --standalone-epochs 30 --seeds 2 --no-one-shot \
        --json /tmp/standalone.json
    python benchmarks/smash_ranking.py --archs 30 --num-train 500 \
        --num-val 0 --standalone-json /tmp/standalone.json \
        --hyper-epochs 40 --hyper-seeds 0 1 2 --spos-epochs 60

With `--space cell` the task is the DARTS/NASNet cell space instead
(`CellSearchSpace`, `--num-cells` cells of `--filters` filters, 4 nodes,
the 7 DARTS ops): `--archs` architectures drawn with `--seed`, trained
stand-alone in the same process first (`--standalone-epochs`, Adam 5e-3 as
the space compiles them, one seed), then ranked by the hypernetwork
(`--standalone-json` is not used):

    python benchmarks/smash_ranking.py --space cell --archs 10 \
        --num-train 500 --num-val 0 --num-cells 3 --filters 8 \
        --standalone-epochs 20 --hyper-epochs 40 --hyper-seeds 0 1
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
from _common import (
    add_ranking_task_arguments,
    digits_split,
    fit_score,
    ranking_task,
)
from one_shot_ranking import _load_standalone, _rank, _sample_archs


def _smash(args, space, archs, train, val, seed):
    """Trains a HyperNetwork; returns (scores, losses, train s, eval s)."""
    import keras

    from keras_nas.supernet import HyperNetwork

    keras.utils.set_random_seed(seed)
    start = time.perf_counter()
    net = HyperNetwork(space, embedding_dim=args.embedding_dim, seed=seed)
    net.compile(optimizer=keras.optimizers.Adam(args.hyper_learning_rate))
    net.train(*train, epochs=args.hyper_epochs, batch_size=args.batch_size)
    train_time = time.perf_counter() - start
    start = time.perf_counter()
    scores = [
        net.evaluate_architecture(v, *val, batch_size=args.eval_batch_size)
        for v in archs
    ]
    eval_time = time.perf_counter() - start
    return (
        [s["accuracy"] for s in scores],
        [s["loss"] for s in scores],
        train_time,
        eval_time,
    )


def _spos(args, space, archs, train, val, seed):
    """SPOS as `one_shot_ranking.py` runs it (SGD 0.05, Nesterov, compiled
    step, 4-batch recalibration of 128 images)."""
    import keras

    from keras_nas.supernet import OneShotSupernet

    keras.utils.set_random_seed(seed)
    start = time.perf_counter()
    net = OneShotSupernet(space, seed=seed)
    net.compile(
        optimizer=keras.optimizers.SGD(0.05, momentum=0.9, nesterov=True)
    )
    net.fit(
        *train, epochs=args.spos_epochs, batch_size=args.batch_size, verbose=0
    )
    train_time = time.perf_counter() - start
    start = time.perf_counter()
    scores = [
        net.evaluate_path(
            v,
            *val,
            bn_recalibration_batches=4,
            train_data=train[0],
            batch_size=128,
        )["accuracy"]
        for v in archs
    ]
    return scores, train_time, time.perf_counter() - start


def _smash_runs(args, space, archs, data, reference, extra=None, shown=None):
    """One SMASH run per `--hyper-seeds` seed, ranked against the
    stand-alone accuracies; `extra(run, seed)` adds to a run (SPOS), and
    the keys `shown(key)` accepts are printed (all if None)."""
    (train, val), (standalone, standalone_time) = data, reference
    runs = []
    for seed in args.hyper_seeds:
        acc, loss, t_train, t_eval = _smash(
            args, space, archs, train, val, seed
        )
        tau, rho = _rank(standalone, acc)
        run = {
            "seed": seed,
            "smash_tau": tau,
            "smash_rho": rho,
            "smash_tau_by_loss": _rank(standalone, [-v for v in loss])[0],
            "smash_seconds": t_train + t_eval,
            "smash_train_seconds": t_train,
            "smash_eval_seconds": t_eval,
            "smash_ratio": (t_train + t_eval) / standalone_time,
            "smash_acc_range": [min(acc), max(acc)],
            "smash_scores": acc,
            "loadavg": os.getloadavg(),
        }
        if extra is not None:
            extra(run, seed)
        runs.append(run)
        keys = [k for k in run if shown is None or shown(k)]
        print(json.dumps({k: run[k] for k in keys}), flush=True)
    return runs


def _nb201_task(args):
    """`(space, train, val, archs, result)`: the ranking task of
    `one_shot_ranking.py` (`_common.ranking_task`), its `--archs` sampled
    architectures and the start of the JSON result."""
    import keras

    from keras_nas.supernet import OneShotSupernet

    space, train, val = ranking_task(args)
    keras.utils.set_random_seed(args.seed)
    sampler = OneShotSupernet(space, seed=args.seed)
    archs = _sample_archs(sampler, args.archs, args.seed + 1)
    result = {
        "backend": keras.backend.backend(),
        "num_train": len(train[0]),
        "num_val": len(val[0]),
        "args": vars(args),
        "archs_ops": [list(sampler._to_path(v)) for v in archs],
    }
    return space, train, val, archs, result


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_ranking_task_arguments(parser, standalone_epochs=30)
    parser.add_argument("--standalone-json", nargs="+", default=None)
    parser.add_argument("--space", choices=("nb201", "cell"), default="nb201")
    parser.add_argument("--num-cells", type=int, default=3)
    parser.add_argument("--hyper-epochs", type=int, default=40)
    parser.add_argument("--hyper-learning-rate", type=float, default=3e-3)
    parser.add_argument("--embedding-dim", type=int, default=32)
    parser.add_argument("--hyper-seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--eval-batch-size", type=int, default=256)
    parser.add_argument(
        "--spos-epochs",
        type=int,
        default=0,
        help="also train SPOS for this many epochs per seed (0: no)",
    )
    parser.add_argument(
        "--standalone-seeds",
        type=int,
        default=0,
        help="nb201: train the stand-alone ground truth in this process, "
        "this many seeds, interleaved with the SMASH (and SPOS) runs "
        "(round r: stand-alone seed r, SMASH seed r, SPOS seed r), wall "
        "and CPU time of each; --hyper-seeds is then 0..N-1",
    )
    parser.add_argument("--standalone-last", type=int, default=3)
    parser.add_argument(
        "--threads",
        type=int,
        default=0,
        help="TensorFlow intra- and inter-op threads (0: its default)",
    )
    args = parser.parse_args(argv)
    if args.threads:
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    if args.space == "cell":
        return _cell_main(args)
    if args.standalone_seeds:
        return _interleaved_main(args)
    if not args.standalone_json:
        parser.error(
            "--standalone-json or --standalone-seeds is required with "
            "--space nb201"
        )

    load_start = os.getloadavg()
    space, train, val, archs, result = _nb201_task(args)
    per_seed, seconds = [], []
    for path in args.standalone_json:
        previous = _load_standalone(path, result)
        per_seed += previous["standalone_per_seed"]
        seconds += previous["standalone_seconds_per_seed"]
    standalone = list(np.mean(per_seed, axis=0))
    standalone_time = float(np.mean(seconds))
    result.update(standalone=standalone, standalone_seconds=standalone_time)
    if len(per_seed) > 1:
        result["seed_vs_seed_tau"] = _rank(per_seed[0], per_seed[1])[0]
    def with_spos(run, seed):
        if not args.spos_epochs:
            return
        scores, s_train, s_eval = _spos(args, space, archs, train, val, seed)
        tau_s, rho_s = _rank(standalone, scores)
        run.update(
            spos_tau=tau_s,
            spos_rho=rho_s,
            spos_seconds=s_train + s_eval,
            spos_ratio=(s_train + s_eval) / standalone_time,
            smash_vs_spos_tau=_rank(scores, run["smash_scores"])[0],
            spos_scores=scores,
        )

    runs = _smash_runs(
        args, space, archs, (train, val), (standalone, standalone_time),
        extra=with_spos, shown=lambda k: not k.endswith("_scores"),
    )  # fmt: skip
    result.update(runs=runs, loadavg=[load_start, os.getloadavg()])
    for key in ("smash_tau", "smash_ratio", "spos_tau", "spos_ratio"):
        if key in runs[0]:
            result[f"mean_{key}"] = float(np.mean([r[key] for r in runs]))
    print(
        json.dumps(
            {k: v for k, v in result.items() if k.startswith("mean")}
            | {"standalone_seconds": standalone_time},
            indent=1,
        )
    )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
    return result


class _Clock:
    """Wall (`perf_counter`) and CPU (`process_time`: every thread of this
    process) seconds of a `with` block: `.wall`, `.cpu`."""

    def __enter__(self):
        self._start = (time.perf_counter(), time.process_time())
        return self

    def __exit__(self, *exc):
        self.wall = time.perf_counter() - self._start[0]
        self.cpu = time.process_time() - self._start[1]


def _interleaved_main(args) -> dict:
    """Stand-alone ground truth, SMASH and SPOS in one process, round by
    round (see `--standalone-seeds`); ratios by CPU and by wall time to
    the mean stand-alone seed; tau against the mean of the stand-alone
    seeds trained so far (and each seed alone). The JSON is rewritten
    after every round."""
    import keras_tuner

    space, train, val, archs, result = _nb201_task(args)
    result["rounds"] = []
    per_seed = []
    for r in range(args.standalone_seeds):
        load = [os.getloadavg()[0]]
        scores = []
        with _Clock() as sa:
            for i, values in enumerate(archs):
                hp = keras_tuner.HyperParameters()
                space.declare_hyperparameters(hp)
                hp.values.update(values)
                scores.append(
                    fit_score(
                        space, hp, train, val,
                        seed=1000 * r + args.seed + i,
                        epochs=args.standalone_epochs,
                        batch_size=args.batch_size,
                        last=args.standalone_last,
                    )  # fmt: skip
                )
        per_seed.append(scores)
        load.append(os.getloadavg()[0])
        with _Clock() as hy:
            acc, loss, t_train, t_eval = _smash(
                args, space, archs, train, val, r
            )
        load.append(os.getloadavg()[0])
        row = {
            "round": r,
            "standalone_scores": scores,
            "standalone_wall": sa.wall,
            "standalone_cpu": sa.cpu,
            "smash_scores": acc,
            "smash_loss": loss,
            "smash_wall": hy.wall,
            "smash_cpu": hy.cpu,
            "smash_train_wall": t_train,
            "smash_eval_wall": t_eval,
        }
        if args.spos_epochs:
            with _Clock() as sp:
                spos, _, _ = _spos(args, space, archs, train, val, r)
            load.append(os.getloadavg()[0])
            row.update(spos_scores=spos, spos_wall=sp.wall, spos_cpu=sp.cpu)
        row["loadavg_1min"] = load
        result["rounds"].append(row)
        _summarize(result, per_seed)
        print(json.dumps(result["summary"]), flush=True)
        if args.json:
            with open(args.json, "w") as f:
                json.dump(result, f, indent=1)
    return result


def _summarize(result: dict, per_seed: list) -> None:
    """Taus and time ratios of the rounds so far, in `result["summary"]`."""
    rounds = result["rounds"]
    truth = list(np.mean(per_seed, axis=0))
    summary = {"standalone_seeds": len(per_seed)}
    if len(per_seed) > 1:
        summary["seed_pairs_tau"] = [
            _rank(a, b)[0]
            for k, a in enumerate(per_seed)
            for b in per_seed[k + 1 :]
        ]
    sa_wall = float(np.mean([r["standalone_wall"] for r in rounds]))
    sa_cpu = float(np.mean([r["standalone_cpu"] for r in rounds]))
    summary.update(standalone_wall=sa_wall, standalone_cpu=sa_cpu)
    for m in ("smash", "spos"):
        if f"{m}_scores" not in rounds[0]:
            continue
        summary[m] = [
            {
                "seed": r["round"],
                "tau_vs_mean": _rank(truth, r[f"{m}_scores"])[0],
                "rho_vs_mean": _rank(truth, r[f"{m}_scores"])[1],
                "tau_vs_each_seed": [
                    _rank(p, r[f"{m}_scores"])[0] for p in per_seed
                ],
                "cpu": r[f"{m}_cpu"],
                "wall": r[f"{m}_wall"],
                "cpu_ratio": r[f"{m}_cpu"] / sa_cpu,
                "wall_ratio": r[f"{m}_wall"] / sa_wall,
                "cpu_ratio_same_round": r[f"{m}_cpu"] / r["standalone_cpu"],
            }
            for r in rounds
        ]
        summary[f"mean_{m}_tau"] = float(
            np.mean([x["tau_vs_mean"] for x in summary[m]])
        )
        summary[f"mean_{m}_cpu_ratio"] = float(
            np.mean([x["cpu_ratio"] for x in summary[m]])
        )
    result["summary"] = summary


def _cell_main(args) -> dict:
    """The ranking task on the DARTS cell space (see the module)."""
    import keras
    import keras_tuner

    from keras_nas.spaces import CellSearchSpace
    from keras_nas.supernet import HyperNetwork

    load_start = os.getloadavg()
    train, val = digits_split(args.seed, args.num_train, args.num_val)
    space = CellSearchSpace(
        (8, 8, 1), 10, num_cells=args.num_cells, filters=args.filters
    )
    sampler = HyperNetwork(space, seed=args.seed)
    rng = np.random.default_rng(args.seed + 1)
    archs, seen = [], set()
    while len(archs) < args.archs:
        values = sampler.sample_values(rng)
        if sampler.path(values) not in seen:
            seen.add(sampler.path(values))
            archs.append(values)
    result = {
        "backend": keras.backend.backend(),
        "space": "cell",
        "num_train": len(train[0]),
        "num_val": len(val[0]),
        "args": vars(args),
        "archs": [str(sampler.genotype(v)) for v in archs],
    }
    standalone, seconds = [], []
    for i, values in enumerate(archs):
        keras.utils.set_random_seed(args.seed)
        start = time.perf_counter()
        hp = keras_tuner.HyperParameters()
        sampler.space.declare_hyperparameters(hp)
        hp.values.update(values)
        model = sampler.space.build(hp)
        model.fit(
            *train, epochs=args.standalone_epochs,
            batch_size=args.batch_size, verbose=0,
        )  # fmt: skip
        acc = model.evaluate(*val, verbose=0, return_dict=True)["accuracy"]
        seconds.append(time.perf_counter() - start)
        standalone.append(float(acc))
        print(f"stand-alone {i}: {acc:.4f} in {seconds[-1]:.1f} s", flush=True)
    standalone_time = float(np.sum(seconds))
    result.update(
        standalone=standalone,
        standalone_seconds=standalone_time,
        standalone_seconds_each=seconds,
    )
    runs = _smash_runs(
        args, space, archs, (train, val), (standalone, standalone_time)
    )
    result.update(runs=runs, loadavg=[load_start, os.getloadavg()])
    for key in ("smash_tau", "smash_ratio"):
        result[f"mean_{key}"] = float(np.mean([r[key] for r in runs]))
    print(json.dumps({k: v for k, v in result.items() if "mean" in k}))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
    return result


if __name__ == "__main__":
    main()
