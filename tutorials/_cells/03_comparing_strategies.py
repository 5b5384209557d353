"""Tutorial 3: search strategies side by side."""

TITLE = "Comparing search strategies: NAS-Bench-201 and a small real search"

INTRO = """
keras-nas's strategies are keras-tuner oracles, so they compare on equal
terms with keras-tuner's own: random search, Bayesian optimization, aging
evolution (Real et al., AAAI 2019), REINFORCE with a controller (Zoph & Le,
ICLR 2017), Monte-Carlo tree search, and the sample-efficient ones: Bayesian
optimisation with a Gaussian process on an architecture encoding (as in
NASBOT), BANANAS (White et al., AAAI 2021: an ensemble of small networks
predicts accuracy from the cell's paths) and local search (White et al.,
UAI 2021). First on the NAS-Bench-201 table
(Dong & Yang, ICLR 2020; 15,625 cells with their trained CIFAR-10 accuracy),
where a query costs a lookup instead of a training run, then on a small real
search of the same space.
"""

CELLS = [
    ("code", """
        %matplotlib inline
        import os

        os.environ.setdefault("KERAS_BACKEND", "tensorflow")

        import functools

        import keras_tuner
        import matplotlib.pyplot as plt
        import numpy as np

        from keras_nas.tutorial import tutorial_settings

        S = tutorial_settings(
            seeds=(10, 2),
            budget=(100, 25),
            bo_budget=(40, 12),
            max_trials=(8, 1),
            real_search_tuners=(8, 3),
            epochs=(4, 1),
            filters=(16, 4),
        )
        print(S)
    """),
    ("md", """
        ## The table

        The table is not shipped with keras-nas. Give its path in the
        environment variable `NB201_TABLE` (a CSV with columns
        `arch,test_accuracy`, one row per cell string such as
        `|nor_conv_3x3~0|+|none~0|skip_connect~1|+|...~2|`); without it the
        notebook falls back to a synthetic table of the same format and says
        so.
    """),
    ("code", """
        from keras_nas.tutorial import nb201_table

        table = nb201_table()
        print(f"{len(table)} cells, optimum {table.optimum:.2f}")
    """),
    ("md", """
        ## On the table

        `run_oracle_on_table` drives each oracle through keras-tuner's
        oracle API only (`create_trial`, `update_trial`, `end_trial`), for
        several seeds, and records the best accuracy after each unique
        query. Bayesian optimization is much slower per decision, so it gets
        a smaller budget (in the fast setting that budget is below its
        number of initial random points, so there it is random search).
    """),
    ("code", """
        from keras_nas.benchmarks import run_oracle_on_table
        from keras_nas.tuners import (
            AgingEvolutionOracle,
            ArchitectureBayesianOptimizationOracle,
            BananasOracle,
            LocalSearchOracle,
            MonteCarloTreeSearchOracle,
            ReinforceOracle,
        )

        oracles = {
            "random": (keras_tuner.oracles.RandomSearchOracle, S.budget),
            "bayesian": (keras_tuner.oracles.BayesianOptimizationOracle,
                         S.bo_budget),
            "evolution": (AgingEvolutionOracle, S.budget),
            "reinforce": (ReinforceOracle, S.budget),
            "mcts": (MonteCarloTreeSearchOracle, S.budget),
            "bo (GP on cells)": (ArchitectureBayesianOptimizationOracle,
                                 S.budget),
            "bananas": (BananasOracle, S.budget),
            "local search": (LocalSearchOracle, S.budget),
        }
        runs = {}
        for name, (factory, budget) in oracles.items():
            runs[name] = run_oracle_on_table(factory, table, budget=budget,
                                             seeds=S.seeds)

        print(f"{'oracle':>16} {'queries':>7} {'best (mean ± std)':>18} "
              f"{'optimum found':>13} {'ms/decision':>11}")
        for name, run in runs.items():
            budget = run.curves.shape[1]
            best = run.best_at(budget)
            print(f"{name:>16} {budget:>7} {best.mean():>10.2f} ± "
                  f"{best.std():.2f} {run.share_reaching_optimum():>13.0%} "
                  f"{1e3 * np.median(run.decision_times()):>11.1f}")
    """),
    ("code", """
        fig, ax = plt.subplots(figsize=(6.5, 4))
        for name, run in runs.items():
            steps = np.arange(1, run.curves.shape[1] + 1)
            ax.plot(steps, np.nanmean(run.curves, axis=0), label=name)
        ax.axhline(table.optimum, color="gray", ls=":", label="optimum")
        ax.set_ylim(table.optimum - 3, table.optimum + 0.3)
        ax.set_xlabel("unique architectures queried")
        ax.set_ylabel("best accuracy so far (mean over seeds)")
        ax.legend()
        plt.show()
    """),
    ("md", """
        ## A small real search

        The same strategies as tuners, each training networks of the
        NAS-Bench-201 space (`NasBench201SearchSpace`, narrow and with one
        cell per stage here) on the built-in digits. The tuners are drop-in
        replacements for each other: only the class changes. (The fast
        setting runs the first three of them.)
    """),
    ("code", """
        from keras_nas.data import load_dataset
        from keras_nas.spaces import NasBench201SearchSpace
        from keras_nas.tuners import (
            AgingEvolution,
            ArchitectureBayesianOptimization,
            Bananas,
            LocalSearch,
            MonteCarloTreeSearch,
            Reinforce,
        )

        data = load_dataset("digits")
        space = NasBench201SearchSpace(
            input_shape=data.input_shape, num_classes=data.num_classes,
            filters=S.filters, cells_per_stage=1, learning_rate=3e-3,
        )
        tuner_classes = {
            "random": keras_tuner.RandomSearch,
            "bayesian": keras_tuner.BayesianOptimization,
            "evolution": functools.partial(AgingEvolution,
                                           population_size=4),
            "reinforce": Reinforce,
            "mcts": MonteCarloTreeSearch,
            # Fewer random trials first: the budget here is tiny.
            "bo": functools.partial(ArchitectureBayesianOptimization,
                                    num_initial_trials=4),
            "bananas": functools.partial(Bananas, num_initial_trials=4),
            "local": functools.partial(LocalSearch, num_initial_trials=4),
        }
        results = {}
        for name, cls in list(tuner_classes.items())[:S.real_search_tuners]:
            tuner = cls(space, objective="val_accuracy",
                        max_trials=S.max_trials, seed=1,
                        directory=S.workdir, project_name=name,
                        overwrite=True)
            tuner.search(**data.fit_kwargs("train", 32),
                         validation_data=data.validation_data(),
                         epochs=S.epochs, verbose=0)
            results[name] = tuner
            best = tuner.oracle.get_best_trials(1)[0]
            cell = space.genotype(best.hyperparameters).to_string()
            print(f"{name:>10}: best val_accuracy {best.score:.3f}  {cell}")
    """),
    ("code", """
        fig, ax = plt.subplots(figsize=(6.5, 3.5))
        for name, tuner in results.items():
            trials = sorted(tuner.oracle.trials.values(),
                            key=lambda t: int(t.trial_id))
            scores = [t.score if t.score is not None else np.nan
                      for t in trials]
            ax.plot(np.arange(1, len(scores) + 1),
                    np.fmax.accumulate(scores), marker="o", label=name)
        ax.set_xlabel("trial")
        ax.set_ylabel("best val_accuracy so far")
        ax.legend()
        plt.show()
    """),
    ("md", """
        With a handful of trials the real search says little about the
        strategies; the table, with many seeds and hundreds of queries, is
        where they are compared. `benchmarks/nas_bench_201_search.py` runs
        the full comparison (100 seeds, up to 200 queries), and
        `benchmarks/predictor_quality.py` measures how well each predictor
        of `keras_nas.predictors` ranks the table's cells.
    """),
]
