"""Tutorial 4: DARTS."""

TITLE = "DARTS: differentiable architecture search in one training run"

INTRO = """
DARTS (Liu, Simonyan and Yang, *DARTS: Differentiable Architecture Search*,
ICLR 2019) relaxes the choice of an operation on each edge of the cell into a
softmax over all candidates, weighted by architecture parameters `alpha`, and
learns `alpha` by gradient descent on the validation loss while the weights
learn on the training loss. keras-nas runs it as a keras-tuner tuner:
`Darts(space).search(x, y, validation_data=..., epochs=...)`. This notebook
searches a cell on Fashion-MNIST, plots `alpha` over the epochs, draws the
derived cell and retrains it from scratch. The last section compares DARTS
with the cheaper one-shot relaxations of the same supernet: GDAS, PC-DARTS and
ProxylessNAS' binary gates.
"""

CELLS = [
    ("code", """
        %matplotlib inline
        import os

        os.environ.setdefault("KERAS_BACKEND", "tensorflow")

        import json

        import keras
        import matplotlib.pyplot as plt
        import numpy as np

        from keras_nas.tutorial import tutorial_settings

        S = tutorial_settings(
            dataset=("tfds:fashion_mnist", "digits"),
            subset=(10000, None),
            filters=(16, 4),
            num_cells=(5, 2),
            num_nodes=(4, 2),
            epochs=(25, 2),
            batch_size=(64, 32),
            retrain_filters=(24, 8),
            retrain_num_cells=(8, 3),
            retrain_epochs=(20, 2),
        )
        keras.utils.set_random_seed(0)
        print(S)
    """),
    ("md", """
        ## Data

        The DARTS tuner takes arrays: the tfds pipelines of
        `load_dataset` are collected into NumPy arrays (fine at this size).
    """),
    ("code", """
        from keras_nas.data import load_dataset

        data = load_dataset(S.dataset, subset=S.subset, batch_size=256)


        def arrays(split):
            if isinstance(split, tuple):
                return split
            xs, ys = zip(*[(x.numpy(), y.numpy()) for x, y in split],
                         strict=True)
            return np.concatenate(xs), np.concatenate(ys)


        (x, y), (x_val, y_val), (x_test, y_test) = map(
            arrays, (data.train, data.validation, data.test))
        print(x.shape, x_val.shape, x_test.shape)
    """),
    ("md", """
        ## Search

        Each step takes a training batch and a validation batch: `alpha` is
        updated on the validation loss (Adam, lr 3e-4), then the weights on
        the training loss (SGD with momentum, cosine schedule), first-order
        by default (`order=2` for the paper's second-order step). A
        `keras.callbacks.TensorBoard` gets the supernet's curves and, under
        `darts/`, one scalar per edge and op and an image of each softmax
        matrix every epoch.
    """),
    ("code", """
        from keras_nas.spaces import CellSearchSpace
        from keras_nas.tuners import Darts

        logdir = os.path.join(S.workdir, "logs")
        # The space builds the derived network (its sizes are those of the
        # retraining); `filters` and `num_cells` size the supernet.
        space = CellSearchSpace(
            data.input_shape,
            data.num_classes,
            num_nodes=S.num_nodes,
            num_cells=S.retrain_num_cells,
            filters=S.retrain_filters,
            learning_rate=1e-2,
        )
        tuner = Darts(
            space,
            filters=S.filters,
            num_cells=S.num_cells,
            batch_size=S.batch_size,
            seed=0,
            directory=S.workdir,
            project_name="darts",
            overwrite=True,
        )
        tuner.search(x, y, validation_data=(x_val, y_val), epochs=S.epochs,
                     callbacks=[keras.callbacks.TensorBoard(logdir)],
                     verbose=2)
    """),
    ("md", """
        ## Alpha over the epochs

        The tuner appends the softmax of `alpha` to a JSON file after every
        epoch. Left: the weight of each operation, averaged over the edges,
        per epoch. Right: the final weights per edge.
    """),
    ("code", """
        with open(tuner.alpha_history_path) as f:
            records = json.load(f)
        ops = list(tuner.supernet.candidate_ops)

        fig, axes = plt.subplots(2, 2, figsize=(10, 6),
                                 gridspec_kw={"width_ratios": [1, 1.3]})
        for row, kind in enumerate(("normal", "reduce")):
            per_epoch = np.array([np.mean(r[kind], axis=0) for r in records])
            ax = axes[row, 0]
            im = ax.imshow(per_epoch.T, aspect="auto", cmap="viridis")
            ax.set_yticks(range(len(ops)), ops)
            ax.set_xticks(range(len(records)),
                          [r["epoch"] for r in records])
            ax.set_xlabel("epoch")
            ax.set_title(f"{kind} cell: mean softmax(alpha) per op")
            fig.colorbar(im, ax=ax)
            final = np.array(records[-1][kind])
            ax = axes[row, 1]
            im = ax.imshow(final, aspect="auto", cmap="viridis")
            ax.set_xticks(range(len(ops)), ops, rotation=45, ha="right")
            ax.set_ylabel("edge")
            ax.set_title(f"{kind} cell: final softmax(alpha) per edge")
            fig.colorbar(im, ax=ax)
        fig.tight_layout()
        plt.show()
    """),
    ("code", """
        from keras_nas.tensorboard import read_scalars

        scalars = read_scalars(os.path.join(logdir, "darts"))
        tags = sorted({t for run in scalars.values() for t in run})
        print(len(tags), "alpha scalars in TensorBoard, e.g.", tags[:3])
    """),
    ("md", """
        ## The derived cell

        For each node, the two strongest incoming edges, each with its
        strongest operation other than `none`. The result is the tuner's
        only trial: its hyperparameters are values of `CellSearchSpace`.
    """),
    ("code", """
        from keras_nas.spaces import genotype_from_hyperparameters
        from keras_nas.visualize import draw_genotype

        best_hp = tuner.get_best_hyperparameters()[0]
        genotype = genotype_from_hyperparameters(best_hp)
        print(genotype)
        draw_genotype(genotype, title="cell derived by DARTS")
    """),
    ("md", """
        ## Retrain from scratch, evaluate, save

        `tuner.retrain` builds the discrete network of the derived cell
        (at the space's sizes: `S.retrain_num_cells` cells,
        `S.retrain_filters` filters) with fresh
        weights and trains it; afterwards `get_best_models()` returns it.
    """),
    ("code", """
        model = tuner.retrain(
            np.concatenate([x, x_val]), np.concatenate([y, y_val]),
            epochs=S.retrain_epochs, batch_size=S.batch_size, verbose=2,
        )
        _, test_accuracy = model.evaluate(x_test, y_test, verbose=0)
        print(f"test accuracy of the retrained network: {test_accuracy:.3f}")
        path = os.path.join(S.workdir, "darts_cell_network.keras")
        model.save(path)
        reloaded = keras.models.load_model(path)
        print("reloaded:", reloaded.evaluate(x_test, y_test, verbose=0)[1])
    """),
    ("md", """
        ## DARTS, GDAS, PC-DARTS and ProxylessNAS on the same data

        DARTS runs every candidate op on every edge. Three relaxations of the
        same supernet (`DartsSupernet`, or `Darts(space, relaxation=...,
        partial_channels=...)` as a tuner) cut that cost:

        - **GDAS** (Dong and Yang, CVPR 2019), `relaxation="gumbel"`: one op
          per edge, drawn with the hard Gumbel-softmax (straight-through
          gradient, temperature annealed from 10 to 0.1);
        - **PC-DARTS** (Xu et al., ICLR 2020), `partial_channels=K`: the
          mixed op sees 1/K of the channels (channel shuffle, edge betas);
        - **ProxylessNAS** (Cai, Zhu and Han, ICLR 2019),
          `relaxation="binary"`: one sampled path per edge for the weights,
          two behind binary gates for `alpha`.

        Each searches the same data with the same budget; we record the
        search time, TensorFlow's peak of allocated bytes on the device, the
        derived cell, and the test accuracy of that cell retrained from
        scratch. (At the paper's size, 16 filters, 8 cells, batch 64, one
        compiled step of GDAS or of the binary relaxation took 0.12x the
        CPU time of DARTS' and 0.16-0.17x its peak memory on a CPU,
        PC-DARTS 0.26x the memory: `benchmarks/RESULTS.md`.) In the fast
        setting the supernets are tiny, one step each, every function runs
        eagerly (tracing would cost more than running) and nothing is
        retrained, so the figures only show the mechanics.
    """),
    ("code", """
        import time
        import warnings

        import keras_tuner
        import tensorflow as tf

        from keras_nas.supernet import DartsSupernet, search_data

        C = tutorial_settings(
            subset=(None, 32),
            epochs=(10, 1),
            num_nodes=(S.num_nodes, 1),
            num_cells=(S.num_cells, 1),
            ops=(None, ("skip_connect", "sep_conv_3x3", "avg_pool_3x3")),
            partial_channels=(4, 2),
            retrain_epochs=(S.retrain_epochs, 0),
        )
        METHODS = {
            "DARTS": {},
            "GDAS": {"relaxation": "gumbel"},
            "PC-DARTS": {"partial_channels": C.partial_channels},
            "ProxylessNAS": {"relaxation": "binary"},
        }
        device = "GPU:0" if tf.config.list_physical_devices("GPU") else "CPU:0"
        xs, ys = x[:C.subset], y[:C.subset]
        xvs, yvs = x_val[:C.subset], y_val[:C.subset]
        tf.config.run_functions_eagerly(S.fast)
        # (tf.data's own functions stay graphs, as TensorFlow warns.)
        warnings.filterwarnings("ignore", message="Even though the")
        rows = []
        for name, kwargs in METHODS.items():
            keras.utils.set_random_seed(0)
            supernet = DartsSupernet(
                data.input_shape, data.num_classes, filters=S.filters,
                num_cells=C.num_cells, num_nodes=C.num_nodes, ops=C.ops,
                seed=0, **kwargs,
            )
            train_data = search_data((xs, ys), (xvs, yvs), S.batch_size,
                                     seed=0)
            supernet.compile(decay_steps=C.epochs * len(train_data))
            tf.config.experimental.reset_memory_stats(device)
            start = time.perf_counter()
            supernet.fit(train_data, epochs=C.epochs, verbose=0)
            seconds = time.perf_counter() - start
            peak = tf.config.experimental.get_memory_info(device)["peak"]
            genotype = supernet.derive_genotype()
            accuracy = float("nan")  # (no retraining in the fast setting)
            if C.retrain_epochs:
                # The derived cell, retrained from scratch.
                hp = keras_tuner.HyperParameters()
                hp.values.update(space.hyperparameters(genotype))
                model = space.build(hp)
                model.fit(xs, ys, epochs=C.retrain_epochs,
                          batch_size=S.batch_size, verbose=0)
                accuracy = model.evaluate(x_test, y_test, verbose=0)[1]
            rows.append((name, seconds, peak / 2**20, accuracy, genotype))
        tf.config.run_functions_eagerly(False)

        print(f"{'method':<13}{'search s':>9}{'peak MiB':>10}{'test acc':>10}")
        for name, seconds, mib, accuracy, _ in rows:
            shown = "-" if np.isnan(accuracy) else f"{accuracy:.3f}"
            print(f"{name:<13}{seconds:>9.1f}{mib:>10.1f}{shown:>10}")
        if not C.retrain_epochs:
            print("(test acc: not retrained in the fast setting)")
        for name, *_, genotype in rows:
            print(f"{name}: {genotype}")
    """),
    ("md", """
        The sampled relaxations (GDAS, ProxylessNAS) run one or two ops per
        edge instead of all of them, so their steps are cheaper in time and
        memory; PC-DARTS keeps every op but on a quarter of the channels.
        Their `alpha` moves only where ops are drawn, so with short searches
        the derived cells depend more on the draws than DARTS' do; the
        MobileNet-style ProxylessNAS with a latency term is
        `keras_nas.supernet.ProxylessSupernet` (`--tuner proxyless --space
        mobilenet` on the command line).
    """),
]
