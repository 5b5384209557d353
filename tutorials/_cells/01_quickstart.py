"""Tutorial 1: quickstart, aging evolution on a tfds image dataset."""

TITLE = "Quickstart: searching a cell with aging evolution"

INTRO = """
keras-nas searches neural architectures with the keras-tuner workflow you
already know: a search space is a `keras_tuner.HyperModel`, a search strategy
is a `Tuner`, and `tuner.search(...)` takes the arguments of `model.fit`.
This notebook searches a DARTS-style cell on Fashion-MNIST (from
tensorflow-datasets) with regularized ("aging") evolution (Real et al.,
*Regularized Evolution for Image Classifier Architecture Search*, AAAI 2019),
logs every trial to TensorBoard, draws the cell it found, then retrains the
best network from scratch, evaluates it on the test split and saves it.
"""

CELLS = [
    ("code", """
        %matplotlib inline
        import os

        os.environ.setdefault("KERAS_BACKEND", "tensorflow")

        import keras

        from keras_nas.tutorial import tutorial_settings

        S = tutorial_settings(
            dataset=("tfds:fashion_mnist", "digits"),
            subset=(12000, None),
            num_nodes=(4, 2),
            num_cells=((3, 5), (1, 2)),
            filters=((16, 24), (4, 8)),
            max_trials=(24, 3),
            population_size=(8, 2),
            epochs=(3, 1),
            final_epochs=(15, 3),
            batch_size=(128, 32),
        )
        keras.utils.set_random_seed(0)
        print(S)
    """),
    ("md", """
        ## Data

        `load_dataset("tfds:fashion_mnist")` builds normalized, batched and
        prefetched `tf.data` pipelines for the train, validation and test
        splits (`subset` keeps a cheap proxy of the data for the search). In
        the fast setting the notebook uses the built-in scikit-learn digits
        instead, which need no download.
    """),
    ("code", """
        from keras_nas.data import load_dataset

        data = load_dataset(S.dataset, subset=S.subset, batch_size=S.batch_size)
        print(data.name, data.input_shape, data.num_classes, data.sizes())
    """),
    ("md", """
        ## The search space

        `CellSearchSpace` is the DARTS/NASNet cell space: for each of
        `num_nodes` nodes of the normal and of the reduction cell, two inputs
        and two operations, searched jointly with the number of cells and
        the width. Every trial's hyperparameters convert exactly to a
        `Genotype`.
    """),
    ("code", """
        import keras_tuner

        from keras_nas.spaces import CellSearchSpace

        space = CellSearchSpace(
            input_shape=data.input_shape,
            num_classes=data.num_classes,
            num_nodes=S.num_nodes,
            num_cells=S.num_cells,
            filters=S.filters,
        )
        hp = keras_tuner.HyperParameters()
        space.declare_hyperparameters(hp)
        print(len(hp.space), "hyperparameters, e.g.:")
        for p in hp.space[:6]:
            print("  ", p.name, p.values if hasattr(p, "values") else "")
    """),
    ("md", """
        ## Search

        `AgingEvolution` is a keras-tuner tuner: it fills a population with
        random cells, then repeatedly mutates the best of the population
        (one op or one input) and retires the oldest member. Passing a
        `keras.callbacks.TensorBoard` logs each trial's curves and its
        hyperparameters to TensorBoard's HParams dashboard.
    """),
    ("code", """
        from keras_nas.tuners import AgingEvolution

        logdir = os.path.join(S.workdir, "logs")
        tuner = AgingEvolution(
            space,
            objective="val_accuracy",
            max_trials=S.max_trials,
            population_size=S.population_size,
            seed=1,
            directory=S.workdir,
            project_name="quickstart",
            overwrite=True,
        )
        tuner.search(
            **data.fit_kwargs("train", S.batch_size),
            validation_data=data.validation_data(),
            epochs=S.epochs,
            callbacks=[keras.callbacks.TensorBoard(logdir)],
            verbose=2,
        )
    """),
    ("code", """
        tuner.results_summary(num_trials=3)
    """),
    ("md", """
        Every trial, in order, with the architecture it tried:
    """),
    ("code", """
        trials = sorted(tuner.oracle.trials.values(),
                        key=lambda t: int(t.trial_id))
        print(f"{'trial':>5}  {'val_acc':>7}  {'cells':>5}  {'filters':>7}  "
              "normal cell")
        for t in trials:
            values = t.hyperparameters.values
            normal = space.genotype(values).normal
            ops = " ".join(f"{op}<{i}" for op, i in normal)
            score = "failed" if t.score is None else f"{t.score:.3f}"
            print(f"{t.trial_id:>5}  {score:>7}  {values['num_cells']:>5}"
                  f"  {values['filters']:>7}  {ops}")
    """),
    ("code", """
        from keras_nas.visualize import plot_history

        plot_history(tuner, title="aging evolution")
    """),
    ("md", """
        ## TensorBoard

        On Colab, open the dashboard with

        ```
        %load_ext tensorboard
        %tensorboard --logdir keras_nas_work/logs
        ```

        The HParams tab lists one session per trial. Here we read the event
        files back instead:
    """),
    ("code", """
        from keras_nas.tensorboard import read_hparams

        sessions = read_hparams(logdir)
        first = sessions[sorted(sessions)[0]]
        print(len(sessions), "HParams sessions; the first one:")
        for name in ("num_cells", "filters", "normal/node0/op0",
                     "normal/node0/input0"):
            print(f"  {name} = {first[name]}")
    """),
    ("md", """
        Besides each trial, the search itself is logged: every trial's run
        holds its cell as an image and as text (IMAGES and TEXT tabs), and
        the run `search` holds the score per trial, the best so far (step =
        trial number) and the history plot, refreshed every 5 trials.
    """),
    ("code", """
        from keras_nas.tensorboard import read_images, read_scalars

        search = read_scalars(os.path.join(logdir, "search"))["."]
        for tag in ("objective/val_accuracy", "best/val_accuracy"):
            print(f"{tag:<23}", [round(v, 3) for v in search[tag]])
        images = read_images(logdir)
        print("history images:", len(images["search"]["history"]))
        first_run = sorted(run for run in images if run != "search")[0]
        print(f"architecture image in run {first_run}:",
              images[first_run]["architecture/image"][0].shape)
    """),
    ("md", """
        ## The cell found
    """),
    ("code", """
        from keras_nas.visualize import draw_genotype

        best_hp = tuner.get_best_hyperparameters()[0]
        genotype = space.genotype(best_hp)
        print(genotype)
        draw_genotype(genotype, title="best cell found")
    """),
    ("md", """
        ## Retrain from scratch, evaluate, save

        The search trained each candidate briefly. The final network is
        built again from the best hyperparameters, trained longer on the
        training and validation data, and evaluated once on the test split.
    """),
    ("code", """
        model = space.build(best_hp)
        model.fit(
            **data.fit_kwargs("train+validation", S.batch_size),
            epochs=S.final_epochs,
            verbose=2,
        )
        _, test_accuracy = model.evaluate(
            **data.fit_kwargs("test", S.batch_size), verbose=0
        )
        print(f"test accuracy of the retrained network: {test_accuracy:.3f}")

        path = os.path.join(S.workdir, "best_cell_network.keras")
        model.save(path)
        with open(os.path.join(S.workdir, "best_genotype.json"), "w") as f:
            f.write(genotype.to_json())
        reloaded = keras.models.load_model(path)
        _, reloaded_accuracy = reloaded.evaluate(
            **data.fit_kwargs("test", S.batch_size), verbose=0
        )
        print(f"reloaded from {os.path.basename(path)}: "
              f"{reloaded_accuracy:.3f}")
    """),
    ("md", """
        Next: [tutorial 3](03_comparing_strategies.ipynb) compares search
        strategies, [tutorial 4](04_darts.ipynb) searches the same space
        with DARTS in a single training run.
    """),
]
