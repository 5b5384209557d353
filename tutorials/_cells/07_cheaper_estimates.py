"""Tutorial 7: cheaper performance estimates and hardware-aware search."""

TITLE = "Cheaper estimates and hardware-aware search"

INTRO = """
Most of the cost of architecture search is training candidates. This
notebook shows the estimators of `keras_nas.estimation` that make a
candidate cheaper to score, and the hardware costs that let a search trade
accuracy for speed:

1. **Costs of a network**: parameters, multiply-accumulates (MACs), FLOPs
   and measured latency (`count_params`, `count_macs`, `count_flops`,
   `measure_latency`).
2. **Early stopping of trials**: `MedianStopping`, the median stopping rule
   of Google Vizier (Golovin et al., KDD 2017), a callback for any
   keras-tuner tuner.
3. **Zero-cost proxies**: scores of an untrained network from one
   minibatch (`zero_cost_score`; Abdelfattah et al., *Zero-Cost Proxies for
   Lightweight NAS*, ICLR 2021), compared with short training.
4. **Hardware-aware, multi-objective search**: `HardwareAware` adds the
   costs to every trial; `pareto_objectives()` makes the search maximize
   accuracy and minimize FLOPs, and `plot_history` draws the Pareto front.
5. **Weight inheritance**: in aging evolution a child starts from its
   parent's trained weights wherever the mutation left a layer unchanged
   (Real et al., *Large-Scale Evolution of Image Classifiers*, ICML 2017),
   so it needs fewer epochs (`WeightInheritance`).
"""

CELLS = [
    ("code", """
        %matplotlib inline
        import os

        os.environ.setdefault("KERAS_BACKEND", "tensorflow")

        import keras
        import keras_tuner
        import numpy as np

        from keras_nas.tutorial import tutorial_settings

        S = tutorial_settings(
            dataset=("tfds:fashion_mnist", "digits"),
            subset=(10000, None),
            batch_size=(128, 64),
            darts_cells=(8, 2),
            darts_filters=(16, 8),
            nb201_filters=(16, 4),
            cells_per_stage=(2, 1),
            chain_layers=(4, 2),
            latency_runs=(50, 10),
            stopping_trials=(20, 4),
            stopping_epochs=(10, 3),
            num_proxy_archs=(12, 3),
            proxy_examples=(None, 256),
            proxy_epochs=(5, 1),
            pareto_trials=(30, 4),
            pareto_population=(10, 3),
            pareto_epochs=(3, 1),
            inherit_trials=(30, 4),
            inherit_population=(8, 3),
            full_epochs=(6, 2),
            child_epochs=(2, 1),
        )
        keras.utils.set_random_seed(0)
        print(S)
    """),
    ("md", """
        ## Data

        On a GPU runtime the notebook uses 10,000 Fashion-MNIST images from
        tensorflow-datasets; in the fast setting the scikit-learn digits
        (8x8 pixels, 1,797 images), which need no download. Zero-cost
        proxies score one minibatch of arrays, so the splits are kept as
        NumPy arrays here.
    """),
    ("code", """
        from keras_nas.data import load_dataset


        def as_arrays(split):
            if isinstance(split, tuple):
                return split
            pairs = [(np.asarray(a), np.asarray(b)) for a, b in split]
            xs, ys = zip(*pairs, strict=True)
            return np.concatenate(xs), np.concatenate(ys)


        data = load_dataset(S.dataset, subset=S.subset,
                            batch_size=S.batch_size)
        (x, y), (x_val, y_val) = as_arrays(data.train), as_arrays(
            data.validation)
        print(data.name, data.input_shape, f"{len(x)} training and "
              f"{len(x_val)} validation images")
    """),
    ("md", """
        ## 1. What a network costs

        `count_params` counts weights (`trainable_only=True` gives the
        convention of NAS papers, without batch-norm statistics),
        `count_macs` the multiply-accumulates of one forward pass of one
        image (the "mult-adds" of the papers), `count_flops` its FLOPs (two
        per MAC, plus biases, batch norm, pooling and the sums inside
        cells). `measure_latency` times the compiled forward pass on this
        machine (median of `runs` calls, batch of 1). Below: a DARTS-V2
        network and a small chain network. The same function measures the
        model found by the search of section 4.
    """),
    ("code", """
        from keras_nas.blocks.genotypes import DARTS_V2
        from keras_nas.blocks.network import build_network
        from keras_nas.estimation import (
            count_flops,
            count_macs,
            count_params,
            measure_latency,
        )


        def costs(name, model):
            latency = measure_latency(model, runs=S.latency_runs)
            print(f"{name:<22} {count_params(model):>10,} "
                  f"{count_params(model, trainable_only=True):>10,} "
                  f"{count_macs(model) / 1e6:>8.3f} "
                  f"{count_flops(model) / 1e6:>8.3f} "
                  f"{latency['median_ms']:>8.2f}")


        print(f"{'model':<22} {'params':>10} {'trainable':>10} "
              f"{'MMACs':>8} {'MFLOPs':>8} {'ms':>8}")
        darts = build_network(DARTS_V2, data.input_shape, data.num_classes,
                              filters=S.darts_filters,
                              num_cells=S.darts_cells)
        costs(f"DARTS-V2 ({S.darts_cells} cells)", darts)
        small = keras.Sequential([
            keras.Input(data.input_shape),
            keras.layers.Conv2D(16, 3, padding="same", activation="relu"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(data.num_classes, activation="softmax"),
        ])
        costs("conv-pool-dense", small)
    """),
    ("md", """
        ## 2. Stopping unpromising trials early

        `MedianStopping(tuner)` is a Keras callback passed to
        `tuner.search(...)`. After each epoch it records the trial's
        learning curve in the oracle and stops the trial when its best
        value so far is below the median of the running averages of the
        completed trials at the same epoch. A stopped trial still
        completes, scored by the best epoch it reached. It works with any
        keras-tuner tuner; here keras-tuner's own `RandomSearch` over a
        chain-structured space.
    """),
    ("code", """
        from keras_nas.estimation import MedianStopping
        from keras_nas.estimation.early_stopping import trial_curve
        from keras_nas.spaces import ChainSearchSpace

        chain = ChainSearchSpace(
            input_shape=data.input_shape, num_classes=data.num_classes,
            max_layers=S.chain_layers, filters=(8, 16, 32), units=(16, 32),
            learning_rate=5e-3, bn_momentum=0.5,
        )
        tuner = keras_tuner.RandomSearch(
            chain, objective="val_accuracy", max_trials=S.stopping_trials,
            seed=3, directory=S.workdir, project_name="median_stopping",
            overwrite=True,
        )
        stopping = MedianStopping(tuner, min_epochs=1, min_trials=2)
        tuner.search(x, y, validation_data=(x_val, y_val),
                     epochs=S.stopping_epochs, batch_size=32,
                     callbacks=[stopping], verbose=0)

        print(f"{'trial':>5} {'epochs':>6} {'best val_acc':>12}  note")
        for t in sorted(tuner.oracle.trials.values(),
                        key=lambda t: int(t.trial_id)):
            steps, _ = trial_curve(t, "val_accuracy")
            note = "stopped early" if t.trial_id in stopping.stopped_trials \\
                else ""
            print(f"{t.trial_id:>5} {len(steps):>6} {t.score:>12.3f}  {note}")
        trained = sum(len(trial_curve(t, "val_accuracy")[0])
                      for t in tuner.oracle.trials.values())
        budget = S.stopping_epochs * len(tuner.oracle.trials)
        print(f"{trained} of {budget} epochs trained")
    """),
    ("md", """
        ## 3. Zero-cost proxies

        A zero-cost proxy scores a network at initialization, in about the
        time of one training step. Below, a few random NAS-Bench-201 cells
        are scored with three proxies and trained briefly, and the ranks are
        compared (Spearman correlation). A caveat: with this handful of
        cells, tiny networks and (in the fast setting) 8x8 digits trained
        for a couple of epochs, the correlations are noisy and say little
        about the proxies (with four cells, swapping one adjacent pair
        already moves a Spearman correlation from 1.0 to 0.8); Abdelfattah
        et al. measure them on thousands of
        NAS-Bench-201 cells trained to convergence (synflow reaches a
        Spearman correlation of about 0.76 on CIFAR-10 there).
    """),
    ("code", """
        import time

        from scipy.stats import spearmanr

        from keras_nas.blocks.genotypes import NasBench201Genotype
        from keras_nas.blocks.registry import NB201_OPS
        from keras_nas.estimation import zero_cost_score
        from keras_nas.spaces import (
            NasBench201SearchSpace,
            nb201_hyperparameters_from_genotype,
        )

        nb201 = NasBench201SearchSpace(
            input_shape=data.input_shape, num_classes=data.num_classes,
            filters=S.nb201_filters, cells_per_stage=S.cells_per_stage,
            learning_rate=3e-3,
        )
        rng = np.random.default_rng(0)
        ops = [op for op in NB201_OPS if op != "none"]
        proxies = ("synflow", "naswot", "grad_norm")
        rows = []
        for _ in range(S.num_proxy_archs):
            genotype = NasBench201Genotype(
                tuple(str(op) for op in rng.choice(ops, 6)))
            hp = keras_tuner.HyperParameters()
            nb201.declare_hyperparameters(hp)
            hp.values.update(nb201_hyperparameters_from_genotype(genotype))
            keras.utils.set_random_seed(0)
            model = nb201.build(hp)
            start = time.perf_counter()
            scores = {p: zero_cost_score(model, x[:64], y[:64], p)
                      for p in proxies}
            proxy_seconds = time.perf_counter() - start
            start = time.perf_counter()
            history = model.fit(x[:S.proxy_examples], y[:S.proxy_examples],
                                validation_data=(x_val, y_val),
                                epochs=S.proxy_epochs, batch_size=32,
                                verbose=0)
            rows.append(dict(genotype=genotype, **scores,
                             accuracy=max(history.history["val_accuracy"]),
                             proxy_s=proxy_seconds,
                             train_s=time.perf_counter() - start))

        print(f"{'synflow':>10} {'naswot':>8} {'grad_norm':>9} "
              f"{'val_acc':>7}  cell")
        for r in sorted(rows, key=lambda r: -r["accuracy"]):
            print(f"{r['synflow']:>10.3g} {r['naswot']:>8.1f} "
                  f"{r['grad_norm']:>9.3f} {r['accuracy']:>7.3f}  "
                  f"{r['genotype'].to_string()}")
        accuracy = [r["accuracy"] for r in rows]
        for p in proxies:
            rho = spearmanr([r[p] for r in rows], accuracy).statistic
            print(f"Spearman({p}, val_accuracy) = {rho:+.2f}")
        print(f"all three proxies: {np.mean([r['proxy_s'] for r in rows]):.2f}"
              f" s per cell; training: "
              f"{np.mean([r['train_s'] for r in rows]):.2f} s per cell")
    """),
    ("md", """
        To search with a proxy instead of training, pass
        `ZeroCost("synflow")` as a keras-nas tuner's `estimator=` with
        `objective=ZeroCost("synflow").objective`; every trial then costs a
        forward and a backward pass.
    """),
    ("md", """
        ## 4. Accuracy against FLOPs

        `HardwareAware(metrics=("flops",))` is an estimator: each trial is
        trained as usual and its FLOPs are added to the trial's metrics.
        `pareto_objectives()` returns `[Objective("val_accuracy", "max"),
        Objective("flops", "min")]`, which makes `AgingEvolution` a
        multi-objective search. `plot_history` draws every trial in the
        objective plane with the Pareto front; `pareto_front` returns its
        trials. A front always holds the cheapest trial, however poor:
        pick the cheapest point whose accuracy is good enough. (With a
        `target=`, `HardwareAware` instead computes the
        single MnasNet reward `accuracy * (cost / target) ** -0.07`,
        `estimator.objective`.)
    """),
    ("code", """
        from keras_nas.estimation import HardwareAware
        from keras_nas.tuners import AgingEvolution
        from keras_nas.visualize import pareto_front, plot_history

        hardware = HardwareAware(metrics=("flops",))
        tuner = AgingEvolution(
            chain,
            objective=hardware.pareto_objectives(),
            max_trials=S.pareto_trials,
            population_size=S.pareto_population,
            estimator=hardware,
            seed=0,
            directory=S.workdir,
            project_name="pareto",
            overwrite=True,
        )
        tuner.oracle.verbose = 0
        tuner.search(x, y, validation_data=(x_val, y_val),
                     epochs=S.pareto_epochs, batch_size=32, verbose=0)
        trials = [t for t in tuner.oracle.trials.values()
                  if t.metrics.exists("flops")]
        points = [(t.metrics.get_best_value("val_accuracy"),
                   t.metrics.get_best_value("flops")) for t in trials]
        front = [trials[i] for i in pareto_front(points, ["max", "min"])]
        print(f"{len(trials)} trials, {len(front)} on the Pareto front:")
        for t in front:
            print(f"  trial {t.trial_id:>2}  val_acc "
                  f"{t.metrics.get_best_value('val_accuracy'):.3f}  "
                  f"{t.metrics.get_best_value('flops') / 1e6:7.3f} MFLOPs  "
                  f"{t.hyperparameters.values['num_layers']} layers")
        plot_history(tuner, title="accuracy vs FLOPs")
    """),
    ("md", """
        The most accurate model of the front, measured like the networks of
        section 1:
    """),
    ("code", """
        best = max(front, key=lambda t: t.metrics.get_best_value(
            "val_accuracy"))
        found = chain.build(best.hyperparameters)
        print(f"{'model':<22} {'params':>10} {'trainable':>10} "
              f"{'MMACs':>8} {'MFLOPs':>8} {'ms':>8}")
        costs(f"searched (trial {best.trial_id})", found)
        costs(f"DARTS-V2 ({S.darts_cells} cells)", darts)
    """),
    ("md", """
        ## 5. Weight inheritance in aging evolution

        `WeightInheritance(epochs=...)` is an estimator for tuners whose
        oracle records parents (`AgingEvolution` does). A child is built,
        every layer its parent has at the same place with the same shapes
        gets the parent's trained weights, and a child that inherited
        anything trains for `epochs` epochs only; the initial random
        population trains for `full_epochs`. A mutation of an activation
        or a dropout rate keeps every weight (100% inherited); one that
        changes a layer's type or width keeps only the layers whose
        shapes did not change. Inherited weights flatter the short-trained
        children, so retrain the final candidates from scratch before
        choosing (`retrain_top_k`).
    """),
    ("code", """
        from keras_nas.estimation import WeightInheritance

        inheritance = WeightInheritance(epochs=S.child_epochs,
                                        full_epochs=S.full_epochs)
        tuner = AgingEvolution(
            chain,
            objective="val_accuracy",
            max_trials=S.inherit_trials,
            population_size=S.inherit_population,
            estimator=inheritance,
            seed=2,
            directory=S.workdir,
            project_name="inheritance",
            overwrite=True,
        )
        tuner.oracle.verbose = 0
        tuner.search(x, y, validation_data=(x_val, y_val),
                     epochs=S.full_epochs, batch_size=32, verbose=0)

        print(f"{'trial':>5} {'parent':>6} {'layers':>6} {'params':>13} "
              f"{'share':>5} {'epochs':>6} {'val_acc':>7}")
        for trial_id, r in sorted(inheritance.reports.items(),
                                  key=lambda kv: int(kv[0])):
            score = tuner.oracle.trials[trial_id].score
            parent = r["parent"] if r["parent"] is not None else "-"
            params = (f"{r['inherited_params']}/{r['total_params']}"
                      if r["parent"] is not None else "-")
            share = f"{r['fraction']:.0%}" if r["parent"] is not None else "-"
            print(f"{trial_id:>5} {parent:>6} {r['num_inherited']:>6} "
                  f"{params:>13} {share:>5} "
                  f"{r['trained_epochs']:>6} {score:>7.3f}")
        epochs = sum(r["trained_epochs"] for r in inheritance.reports.values())
        print(f"{epochs} epochs trained instead of "
              f"{S.full_epochs * len(inheritance.reports)} from scratch")
    """),
    ("md", """
        ## Where next

        - `PartialTraining(epochs=..., fraction=...)`: train each candidate
          on fewer epochs or a `fraction` of the data; composable, e.g.
          `HardwareAware(("params", "flops"), PartialTraining(epochs=2))`.
        - `LearningCurveStopping`: stops a trial when an extrapolation of
          its learning curve is unlikely to beat the best one (Domhan et
          al., IJCAI 2015).
        - `net2wider` / `net2deeper` (Chen et al., Net2Net, ICLR 2016):
          function-preserving morphisms, used by
          `WeightInheritance(morphisms=True)`.
        - `SharedWeights` with a supernet: tutorial 05.
    """),
]
