"""Tutorial 6: a new search strategy as a keras-tuner Oracle."""

TITLE = "Writing your own search strategy on keras-tuner's Oracle API"

INTRO = """
Every search strategy of keras-nas is a `keras_tuner.Oracle` subclass plus a
thin `keras_tuner.Tuner` that builds it, so strategies are interchangeable,
resumable and run in keras-tuner's distributed mode. This notebook writes a
new one, random-restart **local search** (White et al., *Exploring the Loss
Landscape in Neural Architecture Search*, UAI 2021), measures it against
random search on the NAS-Bench-201 table without training anything, and then
runs it as a tuner on a real (small) search that is interrupted and resumed.
"""

CELLS = [
    ("code", """
        %matplotlib inline
        import os

        os.environ.setdefault("KERAS_BACKEND", "tensorflow")

        import keras_tuner
        import numpy as np

        from keras_nas.tutorial import tutorial_settings

        S = tutorial_settings(
            seeds=(20, 3),
            budget=(150, 40),
            max_trials=(12, 2),
            epochs=(5, 1),
        )
        print(S)
    """),
    ("md", """
        ## The oracle

        An oracle answers one question, `populate_space(trial_id)`: which
        hyperparameter values should the next trial use? It returns
        `{"status": "RUNNING", "values": {...}}`, or `{"status": "STOPPED"}`
        when the search is over. `end_trial` tells it a trial's result, and
        `get_state` / `set_state` make it resumable: keras-tuner saves the
        state as JSON in `oracle.json` after every trial.

        Local search keeps a *center* (the best trial since the last
        restart), proposes its untried one-hyperparameter neighbours in
        random order, moves the center when a neighbour is better, and
        restarts from a random point when every neighbour has been tried (a
        local optimum). keras-tuner's helpers do the rest: `_random_values()`
        samples a new point (seeded), `_duplicate(values)` checks whether a
        point was already proposed.
    """),
    ("code", """
        import random

        from keras_tuner.engine import hyperparameters as hp_module
        from keras_tuner.engine.trial import TrialStatus


        class LocalSearchOracle(keras_tuner.Oracle):
            \"\"\"Random-restart local search (White et al., UAI 2021).

            Args:
                num_initial: random trials before the local search starts.
                seed: seeds the random sampling and the neighbour order.
                **kwargs: `objective`, `max_trials`, `hyperparameters`, ...
                    of `keras_tuner.Oracle`.
            \"\"\"

            def __init__(self, num_initial=10, seed=None, **kwargs):
                super().__init__(seed=seed, **kwargs)
                self.num_initial = num_initial
                self.rng = random.Random(seed)
                self.center = None  # trial id whose neighbours we explore

            def _neighbours(self, values):
                out = []
                for hp in self.hyperparameters.space:
                    if hp.name not in values:
                        continue  # inactive conditional hyperparameter
                    if isinstance(hp, hp_module.Choice):
                        options = hp.values
                    elif isinstance(hp, hp_module.Boolean):
                        options = [True, False]
                    else:  # Int / Float: one random step
                        options = [hp.random_sample(self.rng.randrange(2**31))]
                    for value in options:
                        if value != values[hp.name]:
                            out.append({**values, hp.name: value})
                self.rng.shuffle(out)
                return out

            def populate_space(self, trial_id):
                completed = [t for t in self.trials.values()
                             if t.status == TrialStatus.COMPLETED]
                if len(completed) >= self.num_initial and self.center:
                    center = self.trials[self.center].hyperparameters.values
                    for values in self._neighbours(center):
                        if not self._duplicate(values):
                            return {"status": TrialStatus.RUNNING,
                                    "values": values}
                    self.center = None  # local optimum: restart
                values = self._random_values()
                if values is None:  # the space is exhausted
                    return {"status": TrialStatus.STOPPED}
                return {"status": TrialStatus.RUNNING, "values": values}

            def end_trial(self, trial):
                super().end_trial(trial)
                trial = self.trials[trial.trial_id]
                if trial.status != TrialStatus.COMPLETED:
                    return
                if self.center is None or self.objective.better_than(
                    trial.score, self.trials[self.center].score
                ):
                    self.center = trial.trial_id
                    self.save()

            def get_state(self):
                state = super().get_state()
                version, internal, gauss = self.rng.getstate()
                state["center"] = self.center
                state["rng"] = [version, list(internal), gauss]
                return state

            def set_state(self, state):
                super().set_state(state)
                self.center = state["center"]
                version, internal, gauss = state["rng"]
                self.rng.setstate((version, tuple(internal), gauss))


        class LocalSearch(keras_tuner.Tuner):
            \"\"\"The tuner only builds the oracle.\"\"\"

            def __init__(self, hypermodel=None, objective=None, max_trials=10,
                         num_initial=10, seed=None, **kwargs):
                oracle = LocalSearchOracle(
                    objective=objective, max_trials=max_trials,
                    num_initial=num_initial, seed=seed,
                )
                super().__init__(oracle, hypermodel, **kwargs)
    """),
    ("md", """
        ## Measured on NAS-Bench-201, without training

        `keras_nas.benchmarks.run_oracle_on_table` drives any oracle through
        its public API against a lookup table of 15,625 trained cells, for
        many seeds, and records the best accuracy found after each unique
        query. `nb201_table()` reads the table from the path in the
        environment variable `NB201_TABLE` (it is not shipped with
        keras-nas) and falls back to a synthetic table of the same format.
    """),
    ("code", """
        import functools

        import matplotlib.pyplot as plt

        from keras_nas.benchmarks import run_oracle_on_table
        from keras_nas.tutorial import nb201_table

        table = nb201_table()
        print(f"{len(table)} cells, best test accuracy {table.optimum:.2f}")

        oracles = {
            "random search": keras_tuner.oracles.RandomSearchOracle,
            "local search": functools.partial(LocalSearchOracle,
                                              num_initial=10),
        }
        runs = {
            name: run_oracle_on_table(factory, table, budget=S.budget,
                                      seeds=S.seeds)
            for name, factory in oracles.items()
        }
        fig, ax = plt.subplots(figsize=(6, 3.5))
        for name, run in runs.items():
            mean = run.curves.mean(axis=0)
            ax.plot(np.arange(1, S.budget + 1), mean, label=name)
            print(f"{name:>14}: best after {S.budget} queries "
                  f"{run.best_at(S.budget).mean():.2f} "
                  f"± {run.best_at(S.budget).std():.2f}, optimum found in "
                  f"{run.share_reaching_optimum():.0%} of {len(run.seeds)} "
                  f"seeds, {1e3 * np.median(run.decision_times()):.1f} ms "
                  "per decision")
        ax.axhline(table.optimum, color="gray", ls=":", label="optimum")
        ax.set_xlabel("unique architectures queried")
        ax.set_ylabel("best accuracy so far (mean over seeds)")
        ax.set_ylim(table.optimum - 3, table.optimum + 0.3)
        ax.legend()
        plt.show()
    """),
    ("md", """
        ## A real search with the new tuner

        The same class searches the NAS-Bench-201 cell space on real data
        (here the built-in digits, with a narrow network), like any
        keras-tuner tuner.
    """),
    ("code", """
        from keras_nas.data import load_dataset
        from keras_nas.spaces import NasBench201SearchSpace

        data = load_dataset("digits")
        (x, y), (x_val, y_val) = data.train, data.validation
        space = NasBench201SearchSpace(
            input_shape=data.input_shape, num_classes=data.num_classes,
            filters=8, cells_per_stage=1, learning_rate=3e-3,
        )
        directory = os.path.join(S.workdir, "local_search")
        tuner = LocalSearch(space, objective="val_accuracy",
                            max_trials=S.max_trials, num_initial=2, seed=1,
                            directory=directory, overwrite=True)
        tuner.search(x, y, validation_data=(x_val, y_val), epochs=S.epochs,
                     batch_size=32, verbose=0)
        tuner.results_summary(num_trials=3)
    """),
    ("md", """
        ## Resuming

        Start the same tuner again with `overwrite=False` and a larger
        budget: keras-tuner reloads the trials and calls `set_state` with
        what `get_state` saved, so the search continues where it stopped,
        with the same center and random stream, and re-runs no trial.
    """),
    ("code", """
        import json

        with open(os.path.join(directory, "untitled_project",
                               "oracle.json")) as f:
            saved = json.load(f)
        print("saved center:", saved["center"])

        resumed = LocalSearch(space, objective="val_accuracy",
                              max_trials=S.max_trials + 2, num_initial=2,
                              seed=1, directory=directory, overwrite=False)
        print("center after reload:", resumed.oracle.center)
        resumed.search(x, y, validation_data=(x_val, y_val),
                       epochs=S.epochs, batch_size=32, verbose=0)
        print("trials:", len(resumed.oracle.trials))
        best = resumed.get_best_hyperparameters()[0]
        print("best cell:", space.genotype(best).to_string())
    """),
    ("md", """
        To make the strategy part of keras-nas, put the oracle and the tuner
        in one module under `keras_nas/tuners/`, export both names in
        `keras_nas/tuners/__init__.py`, and add tests for determinism by
        seed and resume (see `tests/tuners/`).
    """),
]
