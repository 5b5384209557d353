"""Search strategies on the NAS-Bench-201 CIFAR-10 table.

Runs keras-tuner oracles (ours and keras-tuner's random search and Bayesian
optimization) against the NAS-Bench-201 lookup table through the oracle API
only, for many seeds and a budget of unique queries, and prints per oracle:
the mean +- std of the best test accuracy after 25/50/100/150/200 unique
queries, the share of seeds that reach the table's optimum, and the median
decision time per trial (`create_trial` + `end_trial`, keras-tuner's own
bookkeeping included). A second measurement runs one search of
`--decision-trials` trials per oracle, their decisions interleaved in one
process, and reports the median wall and CPU decision time.

Example:

```
python benchmarks/nas_bench_201_search.py \
    --table ../shared/benchmarks/nas-bench-201/cifar10.csv \
    --seeds 100 --budget 200 --jobs 2 --out nb201_search.png
```
"""

from __future__ import annotations

import argparse
import functools
import os
import shutil
import tempfile
import time

# One BLAS thread per process: seeds run in `--jobs` processes, and
# keras-tuner's Bayesian optimization is several times slower when its small
# matrix operations fight over threads.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import keras_tuner  # noqa: E402
import numpy as np  # noqa: E402
from keras_tuner.engine import trial as trial_module  # noqa: E402

from keras_nas import tuners  # noqa: E402
from keras_nas.benchmarks.tabular import (  # noqa: E402
    TabularBenchmark,
    TabularRun,
    run_oracle_on_table,
)

CHECKPOINTS = (25, 50, 100, 150, 200)
STATUS = trial_module.TrialStatus

# Seed k is 1 + k * SEED_STRIDE. keras-tuner's own oracles draw trial t's
# values from `random.Random(seed + offset)` with an offset growing by one
# per sampled hyperparameter, so consecutive seeds replay the same stream
# shifted by a trial; spacing the seeds keeps the runs independent.
SEED_STRIDE = 10007

ORACLES = {
    "random": keras_tuner.oracles.RandomSearchOracle,
    "bayesian": keras_tuner.oracles.BayesianOptimizationOracle,
    "evolution": tuners.AgingEvolutionOracle,
    # Real et al. (2019)'s textbook setting, for reference.
    "evolution-p20-s5": functools.partial(
        tuners.AgingEvolutionOracle, population_size=20, sample_size=5
    ),
    "mcts": tuners.MonteCarloTreeSearchOracle,
    "mcts-random-rollout": functools.partial(
        tuners.MonteCarloTreeSearchOracle, rollout="random"
    ),
}
if "ReinforceOracle" in tuners.__all__:
    ORACLES["reinforce"] = tuners.ReinforceOracle
ORACLES["bo"] = tuners.ArchitectureBayesianOptimizationOracle
ORACLES["bo-raw-scores"] = functools.partial(
    tuners.ArchitectureBayesianOptimizationOracle, score_transform=None
)
# Two independent BO searches sharing the budget in turns (issue 16).
ORACLES["bo-regions2"] = functools.partial(
    tuners.ArchitectureBayesianOptimizationOracle, num_regions=2
)
# Issue 16, branch i16-bo-acquisition: BO's encoding before the reduced
# path encoding became its default on cell spaces; the acquisition maximised
# over every unseen cell (exhaustive_limit); BANANAS on the reduced paths.
ORACLES["bo-onehot"] = functools.partial(
    tuners.ArchitectureBayesianOptimizationOracle, encoding="onehot"
)
ORACLES["bo-exhaustive"] = functools.partial(
    tuners.ArchitectureBayesianOptimizationOracle, exhaustive_limit=20_000
)
ORACLES["bo-onehot-exhaustive"] = functools.partial(
    tuners.ArchitectureBayesianOptimizationOracle,
    encoding="onehot",
    exhaustive_limit=20_000,
)
ORACLES["bananas-exhaustive"] = functools.partial(
    tuners.BananasOracle, exhaustive_limit=20_000
)
ORACLES["bananas-reduced-path"] = functools.partial(
    tuners.BananasOracle, encoding="reduced_path"
)
ORACLES["bananas"] = tuners.BananasOracle
# Every refit from scratch (150 steps), BANANAS as published.
ORACLES["bananas-cold-refit"] = functools.partial(
    tuners.BananasOracle, refit_steps=None
)
ORACLES["local"] = tuners.LocalSearchOracle
# At a local optimum, walk on from the best trial not yet a centre.
ORACLES["local-best-unvisited"] = functools.partial(
    tuners.LocalSearchOracle, restart="best_unvisited"
)
# Half the default warm-start steps (60): the default until issue 16's
# quality branch.
ORACLES["bananas-refit30"] = functools.partial(
    tuners.BananasOracle, refit_steps=30
)

DEFAULT_ORACLES = (
    "random",
    "evolution",
    "evolution-p20-s5",
    "mcts",
    "reinforce",
)
# Oracles whose decision time grows quickly with the number of trials.
SLOW = ("bayesian",)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--table", required=True, help="NAS-Bench-201 CSV.")
    parser.add_argument("--seeds", type=int, default=100)
    parser.add_argument(
        "--slow-seeds",
        type=int,
        default=10,
        help="Seeds for slow oracles (keras-tuner's Bayesian optimization).",
    )
    parser.add_argument("--budget", type=int, default=200)
    parser.add_argument(
        "--slow-budget",
        type=int,
        default=40,
        help="Budget for slow oracles (seconds per decision on a CPU).",
    )
    parser.add_argument(
        "--oracles",
        nargs="+",
        default=[o for o in DEFAULT_ORACLES if o in ORACLES],
        choices=sorted(ORACLES),
    )
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument(
        "--seed-offset",
        type=int,
        default=0,
        help="Start at the seed of this index (to continue a cut run).",
    )
    parser.add_argument(
        "--seed-chunk",
        type=int,
        default=0,
        help="Run the seeds in chunks of this size, printing partial "
        "results after each (0: all at once).",
    )
    parser.add_argument(
        "--ratio-trials",
        type=int,
        default=0,
        help="Trials of an interleaved decision-time run of each oracle "
        "against keras-tuner's Bayesian optimization (0 to skip).",
    )
    parser.add_argument("--out", default="nas_bench_201_search.png")
    parser.add_argument(
        "--decision-trials",
        type=int,
        default=1000,
        help="Trials of the decision-time run (0 to skip).",
    )
    return parser.parse_args(argv)


def run_in_chunks(factory, table, budget, seeds, jobs, chunk):
    """`run_oracle_on_table` on `chunk` seeds at a time, with a progress
    line per chunk (partial results survive a run cut short)."""
    chunk = chunk or len(seeds)
    parts = []
    for i in range(0, len(seeds), chunk):
        parts.append(
            run_oracle_on_table(
                factory, table, budget, seeds[i : i + chunk], jobs=jobs
            )
        )
        run = TabularRun(
            seeds=[s for p in parts for s in p.seeds],
            curves=np.concatenate([p.curves for p in parts]),
            create_times=[t for p in parts for t in p.create_times],
            end_times=[t for p in parts for t in p.end_times],
            num_trials=[n for p in parts for n in p.num_trials],
            optimum=table.optimum,
            direction=table.direction,
        )
        if len(run.seeds) < len(seeds):
            print(
                f"  ... {len(run.seeds)} seeds: mean best "
                f"{np.nanmean(run.best_at(budget)):.3f} @{budget}, optimum "
                f"{100 * run.share_reaching_optimum():.0f}%",
                flush=True,
            )
    return run


def summarize(name, run, budget, seconds):
    cells = []
    for q in CHECKPOINTS:
        if q <= budget:
            best = run.best_at(q)
            cells.append(f"{np.nanmean(best):.2f} ± {np.nanstd(best):.2f}")
    share = 100 * run.share_reaching_optimum()
    times = run.decision_times()
    return (
        f"| {name} | {len(run.seeds)} | "
        + " | ".join(cells)
        + f" | {share:.0f}% | {1e3 * np.median(times):.2f} | {seconds:.0f} |"
    )


def plot(runs, table, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, run in runs.items():
        mean = np.nanmean(run.curves, axis=0)
        std = np.nanstd(run.curves, axis=0)
        x = np.arange(1, len(mean) + 1)
        ax.plot(x, mean, label=f"{name} ({len(run.seeds)} seeds)")
        ax.fill_between(x, mean - std, mean + std, alpha=0.15)
    ax.axhline(table.optimum, color="k", ls="--", lw=0.8, label="optimum")
    ax.set_xlabel("unique queries")
    ax.set_ylabel("best test accuracy so far (%)")
    ax.set_ylim(table.optimum - 1.5, table.optimum + 0.1)
    ax.set_title("NAS-Bench-201 CIFAR-10: best-so-far (mean ± std)")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv=None):
    args = parse_args(argv)
    table = TabularBenchmark.from_nas_bench_201_csv(args.table)
    print(
        f"table {args.table}: {len(table)} cells, optimum {table.optimum}, "
        f"budget {args.budget} unique queries",
        flush=True,
    )
    cols = [f"@{q}" for q in CHECKPOINTS if q <= args.budget]
    print(
        "| oracle | seeds | "
        + " | ".join(cols)
        + f" | optimum within {args.budget} | median decision ms | wall s |",
        flush=True,
    )
    print("|" + "---|" * (len(cols) + 5))
    runs = {}
    for name in args.oracles:
        slow = name in SLOW
        num_seeds = args.slow_seeds if slow else args.seeds
        first = args.seed_offset
        seeds = [1 + k * SEED_STRIDE for k in range(first, first + num_seeds)]
        budget = min(args.slow_budget, args.budget) if slow else args.budget
        start = time.perf_counter()
        run = run_in_chunks(
            ORACLES[name], table, budget, seeds, args.jobs, args.seed_chunk
        )
        runs[name] = run
        print(
            summarize(name, run, budget, time.perf_counter() - start),
            flush=True,
        )
    plot(runs, table, args.out)
    print(f"saved {args.out}")

    if args.ratio_trials:
        report_ratio(args.oracles, table, args.ratio_trials)

    if args.decision_trials:
        report_decision_times(
            [n for n in args.oracles if n not in SLOW],
            table,
            args.decision_trials,
        )


def load_average() -> str:
    """The 1-minute load average (the box may be shared)."""
    return f"{os.getloadavg()[0]:.1f}"


def report_decision_times(names, table, trials):
    """One search of `trials` trials per oracle, decisions interleaved in
    one process; wall and CPU (`time.process_time`) time per decision."""
    before = load_average()
    wall, cpu = interleaved_decision_times(names, table, trials)
    print(
        f"\ndecision time over one search of {trials} trials (seed 1; "
        f"decisions interleaved; load average {before} before, "
        f"{load_average()} after):"
    )
    print(
        "| oracle | median ms (all) | median ms (trials 101-200) | p95 ms "
        "| CPU median ms (all) | CPU median ms (101-200) |"
    )
    print("|---|---|---|---|---|---|")
    for name in names:
        w, c = 1e3 * wall[name], 1e3 * cpu[name]
        print(
            f"| {name} | {np.median(w):.1f} | {np.median(w[100:200]):.1f} | "
            f"{np.percentile(w, 95):.1f} | {np.median(c):.1f} | "
            f"{np.median(c[100:200]):.1f} |",
            flush=True,
        )


def interleaved_decision_times(names, table, trials, seed=1):
    """Seconds per decision of each oracle, decisions taken in turns.

    One oracle of each name searches the table for `trials` trials; their
    decisions (`create_trial` + `end_trial`) alternate, so that the load of
    a shared machine weighs on all of them alike. Returns two dicts of
    arrays: wall-clock (`perf_counter`) and CPU (`process_time`) seconds.
    """
    objective = keras_tuner.Objective(table.metric, table.direction)
    root = tempfile.mkdtemp(prefix="keras_nas_ratio_")
    oracles = {}
    wall = {name: [] for name in names}
    cpu = {name: [] for name in names}
    for name in names:
        oracle = ORACLES[name](
            objective=objective,
            hyperparameters=table.hyperparameters,
            max_trials=trials,
            seed=seed,
        )
        oracle._set_project_dir(root, name)
        oracle.verbose = 0
        oracles[name] = oracle
    try:
        for _ in range(trials):
            for name, oracle in oracles.items():
                start, start_cpu = time.perf_counter(), time.process_time()
                trial = oracle.create_trial("tuner0")
                elapsed = time.perf_counter() - start
                elapsed_cpu = time.process_time() - start_cpu
                if trial.status != STATUS.RUNNING:
                    continue
                score = table.query(trial.hyperparameters.values)
                oracle.update_trial(trial.trial_id, {table.metric: score})
                trial.status = STATUS.COMPLETED
                start, start_cpu = time.perf_counter(), time.process_time()
                oracle.end_trial(trial)
                wall[name].append(elapsed + time.perf_counter() - start)
                cpu[name].append(
                    elapsed_cpu + time.process_time() - start_cpu
                )
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return (
        {name: np.asarray(t) for name, t in wall.items()},
        {name: np.asarray(t) for name, t in cpu.items()},
    )


def report_ratio(names, table, trials):
    names = ["bayesian", *[n for n in names if n != "bayesian"]]
    before = load_average()
    wall, cpu = interleaved_decision_times(names, table, trials)
    print(
        f"\ninterleaved decision times, {trials} trials (seed 1; load "
        f"average {before} before, {load_average()} after); median ms over "
        "the trials after keras-tuner BO's random start (and all):"
    )
    print(
        "| oracle | median ms (BO phase) | median ms (all) | BO / oracle "
        "| CPU median ms (BO phase) | CPU BO / oracle |"
    )
    print("|---|---|---|---|---|---|")
    # keras-tuner's BO samples randomly for its first 3 * dims trials.
    start = 3 * len(table.hyperparameters.space)
    reference = np.median(wall["bayesian"][start:])
    reference_cpu = np.median(cpu["bayesian"][start:])
    for name in names:
        late = np.median(wall[name][start:])
        late_cpu = np.median(cpu[name][start:])
        print(
            f"| {name} | {1e3 * late:.1f} | {1e3 * np.median(wall[name]):.1f}"
            f" | {reference / late:.0f}x | {1e3 * late_cpu:.1f} | "
            f"{reference_cpu / late_cpu:.0f}x |",
            flush=True,
        )


if __name__ == "__main__":
    main()
