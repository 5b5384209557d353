"""How well do shared weights rank architectures? (digits, NAS-Bench-201 space)

Samples `--archs` distinct architectures of the NAS-Bench-201 cell space,
trains each from scratch (the space's own network, `fit`; `--seeds` times,
scores averaged) and scores it on a validation split; trains one
`OneShotSupernet` with uniform single-path sampling (SPOS) and scores the
same architectures with inherited weights (after batch-norm recalibration,
for every value of `--recalibration-batches`). Prints Kendall's tau and
Spearman's rho between the two rankings and the wall time of both
procedures. The time ratio divides the one-shot time by the stand-alone
time of ONE training per architecture (the mean over seeds), not by the
time of all seeds.

Supernet training options: `--sampler fair` (FairNAS strict fairness, Chu
et al., ICCV 2021), `--supernet-schedule cosine` (learning rate decayed to
0), `--snapshot-epochs` (scores averaged over several late epochs).

Issue 5's aim: tau >= 0.5 with less than a tenth of the stand-alone time.

Usage:

    # stand-alone scores only (written to JSON, reused below)
    python benchmarks/one_shot_ranking.py --archs 30 --num-train 500 \
        --num-val 0 --standalone-epochs 30 --seeds 2 --no-one-shot \
        --json /tmp/standalone.json
    # one-shot against them
    python benchmarks/one_shot_ranking.py --archs 30 --num-train 500 \
        --num-val 0 --supernet-epochs 40 --standalone-json /tmp/standalone.json
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
from _common import add_ranking_task_arguments, fit_score, ranking_task


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


def _train_standalone(space, archs, train, val, args, supernet):
    """Trains every architecture from scratch once per seed.

    Returns (scores averaged over seeds, per-seed scores, per-seed seconds).
    A score is the validation accuracy averaged over the last
    `--standalone-last` epochs.
    """
    import keras_tuner

    per_seed, seconds = [], []
    for s in range(args.first_seed, args.first_seed + args.seeds):
        scores = []
        start = time.perf_counter()
        for i, values in enumerate(archs):
            hp = keras_tuner.HyperParameters()
            space.declare_hyperparameters(hp)
            hp.values.update(values)
            score = fit_score(
                space,
                hp,
                train,
                val,
                seed=1000 * s + args.seed + i,
                epochs=args.standalone_epochs,
                batch_size=args.batch_size,
                last=args.standalone_last,
            )
            scores.append(score)
            print(
                f"seed {s} [{i + 1:2d}/{len(archs)}] "
                f"{supernet._to_path(values)} stand-alone {scores[-1]:.4f} "
                f"({time.perf_counter() - start:.0f} s)",
                flush=True,
            )
        per_seed.append(scores)
        seconds.append(time.perf_counter() - start)
    return list(np.mean(per_seed, axis=0)), per_seed, seconds


def _load_standalone(path: str, result: dict) -> dict:
    """An earlier run's JSON, checked against this run's set-up."""
    with open(path) as f:
        previous = json.load(f)
    if previous["archs_ops"] != result["archs_ops"]:
        raise ValueError(
            "Expected the run in `--standalone-json` to have the same "
            "architectures (same --archs and --seed). Received: "
            f"standalone_json={path!r}"
        )
    for key in ("num_train", "num_val"):
        if previous.get(key, result[key]) != result[key]:
            raise ValueError(
                f"Expected the same {key} as the run in "
                f"`--standalone-json` ({previous[key]}). Received: "
                f"{key}={result[key]}"
            )
    return previous


def _record_standalone(result: dict, standalone, per_seed, seconds) -> float:
    """Stores the stand-alone scores and times (and, with several seeds,
    how well the seeds agree) in `result`; returns the time of one seed."""
    standalone_time = float(np.mean(seconds))
    result.update(
        standalone=standalone,
        standalone_per_seed=per_seed,
        standalone_seconds_per_seed=seconds,
        standalone_seconds=standalone_time,
        standalone_acc_range=[min(standalone), max(standalone)],
    )
    if len(per_seed) > 1:
        result["seed_vs_seed_tau_rho"] = list(_rank(per_seed[0], per_seed[1]))
        pairs = [
            _rank(a, b)
            for k, a in enumerate(per_seed)
            for b in per_seed[k + 1 :]
        ]
        result["seed_pairs_mean_tau_rho"] = list(np.mean(pairs, axis=0))
    return standalone_time


def _rank(standalone, one_shot):
    from scipy import stats

    return (
        float(stats.kendalltau(standalone, one_shot).statistic),
        float(stats.spearmanr(standalone, one_shot).statistic),
    )


def _supernet_optimizer(args, steps: int):
    """The supernet's optimizer; `--supernet-schedule cosine` decays the
    learning rate to 0 over the `steps` training steps (as SPOS, Guo et
    al. 2020, and FairNAS, Chu et al. 2021, train their supernets)."""
    import keras

    lr = args.supernet_learning_rate
    if args.supernet_schedule == "cosine":
        lr = keras.optimizers.schedules.CosineDecay(lr, decay_steps=steps)
    if args.supernet_optimizer == "adam":
        return keras.optimizers.Adam(lr)
    return keras.optimizers.SGD(lr, momentum=0.9, nesterov=True)


def _score_all(supernet, archs, train, val, args):
    """Shared-weight scores of every architecture, per recalibration
    setting: (accuracies, losses, seconds), each a dict keyed by it."""
    accuracy, loss, seconds = {}, {}, {}
    for k in args.recalibration_batches:
        start = time.perf_counter()
        scores = [
            supernet.evaluate_path(
                values,
                *val,
                bn_recalibration_batches=k,
                train_data=train[0],
                batch_size=args.eval_batch_size,
            )
            for values in archs
        ]
        seconds[k] = time.perf_counter() - start
        accuracy[k] = [score["accuracy"] for score in scores]
        loss[k] = [score["loss"] for score in scores]
    return accuracy, loss, seconds


def _run_one_shot(args, space, archs, train, val):
    """Trains one supernet and scores every architecture with it.

    With `--snapshot-epochs`, the architectures are also scored after those
    epochs (in a callback; training is unchanged) and every score is the
    mean over the snapshots and the final weights (snapshot averaging, in
    the spirit of Huang et al., "Snapshot Ensembles", ICLR 2017); the
    evaluation time then counts all snapshots. Returns (scores, losses,
    evaluation seconds, training seconds, steps); the training seconds
    exclude the snapshot evaluations.
    """
    import keras

    from keras_nas.supernet import OneShotSupernet

    seed = args.seed if args.supernet_seed is None else args.supernet_seed
    steps = args.supernet_epochs * -(-len(train[0]) // args.batch_size)
    snapshots = []

    class Snapshots(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch + 1 in args.snapshot_epochs:
                snapshots.append(_score_all(supernet, archs, train, val, args))

    keras.utils.set_random_seed(seed)
    start = time.perf_counter()
    supernet = OneShotSupernet(space, sampler=args.sampler, seed=seed)
    supernet.compile(optimizer=_supernet_optimizer(args, steps), step=args.step)
    supernet.fit(
        *train,
        epochs=args.supernet_epochs,
        batch_size=args.batch_size,
        verbose=0,
        callbacks=[Snapshots()] if args.snapshot_epochs else None,
    )
    snapshot_time = sum(sum(s[2].values()) for s in snapshots)
    train_time = time.perf_counter() - start - snapshot_time
    snapshots.append(_score_all(supernet, archs, train, val, args))
    ks = args.recalibration_batches
    one_shot = {k: list(np.mean([s[0][k] for s in snapshots], 0)) for k in ks}
    losses = {k: list(np.mean([s[1][k] for s in snapshots], 0)) for k in ks}
    eval_times = {k: sum(s[2][k] for s in snapshots) for k in ks}
    print(
        f"one-shot: supernet {train_time:.1f} s ({steps} steps), "
        f"{len(archs)} evaluations x {len(snapshots)} snapshots {eval_times}",
        flush=True,
    )
    return one_shot, losses, eval_times, train_time, steps


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_ranking_task_arguments(parser, standalone_epochs=30)
    parser.add_argument("--supernet-epochs", type=int, default=10)
    parser.add_argument(
        "--supernet-optimizer", choices=("sgd", "adam"), default="sgd"
    )
    parser.add_argument(
        "--supernet-learning-rate",
        type=float,
        default=0.05,
        help="learning rate of the supernet's optimizer",
    )
    parser.add_argument(
        "--supernet-schedule",
        choices=("constant", "cosine"),
        default="constant",
        help="supernet learning rate: constant, or cosine decay to 0",
    )
    parser.add_argument(
        "--sampler",
        choices=("uniform", "fair"),
        default="uniform",
        help="supernet path sampling: uniform single path (SPOS) or "
        "FairNAS strict fairness (OneShotSupernet(sampler=...))",
    )
    parser.add_argument(
        "--snapshot-epochs",
        type=int,
        nargs="*",
        default=[],
        help="also score after these supernet epochs and average the "
        "scores with the final ones (snapshot averaging)",
    )
    parser.add_argument(
        "--recalibration-batches",
        type=int,
        nargs="+",
        default=[4],
        help="BN recalibration settings to score (the first is the "
        "headline figure; the others are reported too)",
    )
    parser.add_argument(
        "--step",
        choices=("compiled", "eager"),
        default="compiled",
        help="OneShotSupernet training step",
    )
    parser.add_argument(
        "--seeds",
        type=int,
        default=1,
        help="stand-alone trainings per architecture (scores averaged)",
    )
    parser.add_argument(
        "--first-seed",
        type=int,
        default=0,
        help="index of the first stand-alone seed (to add seeds to an "
        "earlier run; merge them with several --standalone-json files)",
    )
    parser.add_argument(
        "--standalone-last",
        type=int,
        default=3,
        help="epochs averaged into a stand-alone score",
    )
    parser.add_argument(
        "--no-one-shot",
        action="store_true",
        help="only train the architectures stand-alone (write --json)",
    )
    parser.add_argument("--eval-batch-size", type=int, default=512)
    parser.add_argument(
        "--standalone-json",
        nargs="+",
        default=None,
        help="reuse the stand-alone scores and time of earlier runs "
        "(same arguments and seed, so the same architectures); several "
        "files (different --first-seed) are merged seed by seed",
    )
    parser.add_argument(
        "--supernet-seed",
        type=int,
        default=None,
        help="seed of the supernet (weights, path sampling); default --seed",
    )
    parser.add_argument(
        "--no-standalone",
        action="store_true",
        help="only train and score the supernet (write --json)",
    )
    parser.add_argument(
        "--one-shot-json",
        default=None,
        help="reuse the one-shot scores and times of a --no-standalone run",
    )
    parser.add_argument(
        "--one-shot-first",
        action="store_true",
        help="(without --standalone-json) run the one-shot part first",
    )
    args = parser.parse_args(argv)
    load_start = os.getloadavg()

    import keras

    from keras_nas.supernet import OneShotSupernet

    space, train, val = ranking_task(args)
    keras.utils.set_random_seed(args.seed)
    supernet = OneShotSupernet(space, seed=args.seed)
    archs = _sample_archs(supernet, args.archs, args.seed + 1)
    archs_ops = [list(supernet._to_path(v)) for v in archs]
    result = {
        "backend": keras.backend.backend(),
        "archs": len(archs),
        "num_train": len(train[0]),
        "num_val": len(val[0]),
        "args": vars(args),
        "archs_ops": archs_ops,
    }

    # --- stand-alone: train every architecture from scratch ---
    if args.standalone_json:
        per_seed, seconds = [], []
        for path in args.standalone_json:
            previous = _load_standalone(path, result)
            per_seed += previous.get(
                "standalone_per_seed", [previous["standalone"]]
            )
            seconds += previous.get(
                "standalone_seconds_per_seed", [previous["standalone_seconds"]]
            )
        standalone = list(np.mean(per_seed, axis=0))
    elif not (args.one_shot_first or args.no_standalone):
        standalone, per_seed, seconds = _train_standalone(
            space, archs, train, val, args, supernet
        )
    standalone_time = None
    if args.standalone_json or not (args.one_shot_first or args.no_standalone):
        standalone_time = _record_standalone(
            result, standalone, per_seed, seconds
        )
    if args.no_one_shot:
        result["loadavg"] = [load_start, os.getloadavg()]
        _dump(result, args.json)
        return result

    # --- one-shot: train the supernet once, score every architecture ---
    if args.one_shot_json:
        with open(args.one_shot_json) as f:
            previous = json.load(f)
        if previous["archs_ops"] != archs_ops:
            raise ValueError(
                "Expected the run in `--one-shot-json` to have the same "
                "architectures. Received: "
                f"one_shot_json={args.one_shot_json!r}"
            )
        one_shot = {int(k): v for k, v in previous["one_shot_all"].items()}
        eval_times = {
            int(k): v for k, v in previous["eval_seconds_all"].items()
        }
        train_time = previous["supernet_train_seconds"]
        steps = previous["supernet_steps"]
        head = int(previous["head"])
        one_shot_time = train_time + eval_times[head]
        result["one_shot_args"] = previous["args"]
        result["one_shot_loadavg"] = previous.get("loadavg")
    else:
        one_shot, losses, eval_times, train_time, steps = _run_one_shot(
            args, space, archs, train, val
        )
        head = args.recalibration_batches[0]
        one_shot_time = train_time + eval_times[head]
    if args.no_standalone:
        result.update(
            one_shot_all=one_shot,
            one_shot_loss_all=losses,
            eval_seconds_all=eval_times,
            supernet_train_seconds=train_time,
            supernet_steps=steps,
            head=head,
            loadavg=[load_start, os.getloadavg()],
        )
        _dump(result, args.json)
        return result
    if args.one_shot_first:
        standalone, per_seed, seconds = _train_standalone(
            space, archs, train, val, args, supernet
        )
        standalone_time = _record_standalone(
            result, standalone, per_seed, seconds
        )
    tau, rho = _rank(standalone, one_shot[head])
    by_recalibration = {}
    for k, scores in one_shot.items():
        tau_k, rho_k = _rank(standalone, scores)
        row = {"kendall_tau": tau_k, "spearman_rho": rho_k}
        row["eval_seconds"] = eval_times[k]
        row["one_shot_acc_range"] = [min(scores), max(scores)]
        if len(per_seed) > 1:
            row["tau_per_seed"] = [_rank(p, scores)[0] for p in per_seed]
        by_recalibration[k] = row
    result.update(
        kendall_tau=tau,
        spearman_rho=rho,
        one_shot_seconds=one_shot_time,
        supernet_train_seconds=train_time,
        supernet_steps=steps,
        one_shot_eval_seconds=eval_times[head],
        time_ratio=one_shot_time / standalone_time,
        loadavg=[load_start, os.getloadavg()],
        by_recalibration=by_recalibration,
        one_shot=one_shot[head],
        one_shot_all=one_shot,
    )
    print(
        json.dumps(
            {
                k: v
                for k, v in result.items()
                if k
                not in (
                    "standalone",
                    "one_shot",
                    "archs_ops",
                    "one_shot_all",
                    "standalone_per_seed",
                )
            },
            indent=1,
        )
    )
    target = tau >= 0.5 and result["time_ratio"] < 0.1
    print(f"target (tau >= 0.5, time < 1/10): {'met' if target else 'NOT met'}")
    _dump(result, args.json)
    return result


def _dump(result, path) -> None:
    if path:
        with open(path, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
