"""Tutorial 5: one-shot search with shared weights."""

TITLE = (
    "One-shot search: a SPOS supernet, evolution with shared weights, "
    "top-k retrained"
)

INTRO = """
Training every candidate is what makes architecture search expensive. A
one-shot supernet holds every candidate operation of every edge with its own
weights, shared by all sub-networks, and is trained once by sampling one
path per batch (single-path one-shot, SPOS: Guo et al., ECCV 2020). Any
candidate is then scored in milliseconds with the inherited weights, so aging
evolution can look at many of them. One-shot scores rank architectures only
roughly, so the best few are retrained from scratch and the final choice
rests on their real scores.
"""

CELLS = [
    ("code", """
        %matplotlib inline
        import os

        os.environ.setdefault("KERAS_BACKEND", "tensorflow")

        import keras
        import matplotlib.pyplot as plt

        from keras_nas.tutorial import tutorial_settings

        S = tutorial_settings(
            filters=(16, 8),
            supernet_epochs=(60, 3),
            max_trials=(1000, 30),
            population_size=(50, 10),
            top_k=(5, 2),
            retrain_epochs=(30, 2),
        )
        keras.utils.set_random_seed(0)
        print(S)
    """),
    ("code", """
        from keras_nas.data import load_dataset
        from keras_nas.spaces import NasBench201SearchSpace

        data = load_dataset("digits")
        (x, y), (x_val, y_val), (x_test, y_test) = (
            data.train, data.validation, data.test)
        space = NasBench201SearchSpace(
            input_shape=data.input_shape, num_classes=data.num_classes,
            filters=S.filters, cells_per_stage=1, learning_rate=3e-3,
        )
        print(f"{len(x)} training images, NAS-Bench-201 space: 5^6 = "
              f"{5 ** 6} cells")
    """),
    ("md", """
        ## Train the supernet

        `OneShotSupernet(space)` builds every op of every edge once. Its
        `train_step` samples a uniform random path per batch and updates
        only that path's weights; it is trained with plain `fit`.
    """),
    ("code", """
        from keras_nas.supernet import OneShotSupernet

        supernet = OneShotSupernet(space, seed=0)
        supernet.compile(
            optimizer=keras.optimizers.SGD(0.05, momentum=0.9),
        )
        history = supernet.fit(x, y, epochs=S.supernet_epochs, batch_size=64,
                               verbose=2)
        print(f"supernet: {supernet.count_params():,} weights")
    """),
    ("md", """
        ## Evolution with shared weights

        `SharedWeights(supernet)` is a performance estimator: given as
        `estimator=` to a tuner, it scores each trial's path on the
        validation data with the inherited weights (after recalibrating
        batch-norm statistics on a few training batches) instead of
        training it.
    """),
    ("code", """
        import time

        from keras_nas.estimation import SharedWeights
        from keras_nas.tuners import AgingEvolution

        estimator = SharedWeights(supernet, bn_recalibration_batches=2)
        tuner = AgingEvolution(
            space,
            objective="val_accuracy",
            max_trials=S.max_trials,
            population_size=S.population_size,
            estimator=estimator,
            seed=1,
            directory=S.workdir,
            project_name="one_shot",
            overwrite=True,
        )
        tuner.oracle.verbose = 0  # hide the per-trial tables
        start = time.perf_counter()
        tuner.search(x, y, validation_data=(x_val, y_val))
        seconds = time.perf_counter() - start
        n = len(tuner.oracle.trials)
        print(f"{n} candidates scored in {seconds:.0f} s "
              f"({1e3 * seconds / n:.0f} ms each)")
        tuner.results_summary(num_trials=3)
    """),
    ("code", """
        from keras_nas.visualize import plot_history

        plot_history(tuner, title="aging evolution, shared-weight scores")
    """),
    ("md", """
        ## Retrain the top-k from scratch

        `retrain_top_k` builds the `k` best candidates with fresh weights,
        trains each normally and sorts them by their real validation score.
    """),
    ("code", """
        from keras_nas.estimation import retrain_top_k

        results = retrain_top_k(tuner, S.top_k, x, y, (x_val, y_val),
                                epochs=S.retrain_epochs, batch_size=32)
        for r in results:
            cell = space.genotype(r.hyperparameters).to_string()
            print(f"trial {r.trial_id}: one-shot {r.one_shot_score:.3f}  "
                  f"retrained {r.score:.3f}  {cell}")

        fig, ax = plt.subplots(figsize=(4, 3.5))
        ax.scatter([r.one_shot_score for r in results],
                   [r.score for r in results])
        ax.set_xlabel("one-shot val_accuracy")
        ax.set_ylabel("retrained val_accuracy")
        plt.show()
    """),
    ("md", """
        ## The final network
    """),
    ("code", """
        from keras_nas.visualize import draw_genotype

        final = results[0]
        genotype = space.genotype(final.hyperparameters)
        _, test_accuracy = final.model.evaluate(x_test, y_test, verbose=0)
        print(f"final cell {genotype.to_string()}")
        print(f"test accuracy: {test_accuracy:.3f}")
        path = os.path.join(S.workdir, "one_shot_final.keras")
        final.model.save(path)
        reloaded = keras.models.load_model(path)
        print("reloaded:", reloaded.evaluate(x_test, y_test, verbose=0)[1])
        draw_genotype(genotype, title="final cell")
    """),
]
