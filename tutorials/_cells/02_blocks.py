"""Tutorial 2: the DARTS-V2 cells as ordinary Keras layers."""

TITLE = "Blocks in your own model: DARTS-V2 cells as Keras layers"

INTRO = """
The cells that neural architecture search finds are ordinary Keras layers in
keras-nas. This notebook drops the published DARTS-V2 normal and reduction
cells (Liu et al., *DARTS: Differentiable Architecture Search*, ICLR 2019)
into a hand-written functional model, trains it, saves it to a `.keras` file
and loads it back, with no search at all. It also registers a custom
operation and builds a cell that uses it.
"""

CELLS = [
    ("code", """
        %matplotlib inline
        import os

        os.environ.setdefault("KERAS_BACKEND", "tensorflow")

        import keras
        import numpy as np

        from keras_nas.tutorial import tutorial_settings

        S = tutorial_settings(
            dataset=("tfds:fashion_mnist", "digits"),
            subset=(20000, None),
            epochs=(10, 2),
            filters=(16, 8),
            batch_size=(128, 32),
        )
        keras.utils.set_random_seed(0)
        print(S)
    """),
    ("md", """
        ## Data

        `keras_nas.data.load_dataset` gives train/validation/test splits of
        the built-in scikit-learn digits (`"digits"`, no download), of a
        tensorflow-datasets image dataset (`"tfds:NAME"`, normalized, batched
        and prefetched `tf.data` pipelines) or of a `.npz` file.
    """),
    ("code", """
        from keras_nas.data import load_dataset

        data = load_dataset(S.dataset, subset=S.subset, batch_size=S.batch_size)
        print(data.input_shape, data.num_classes, data.sizes())
    """),
    ("md", """
        ## The DARTS-V2 genotype

        A `Genotype` is plain Python data: for each intermediate node of a
        cell, two `(operation, input)` pairs. Inputs 0 and 1 are the outputs
        of the two previous cells, 2 and up are earlier nodes of the cell.
    """),
    ("code", """
        from keras_nas.blocks import DARTS_V2
        from keras_nas.visualize import draw_genotype

        print(DARTS_V2)
        draw_genotype(DARTS_V2, title="DARTS-V2")
    """),
    ("md", """
        ## A functional model with NAS cells

        `NormalCell` keeps the resolution, `ReductionCell` halves it. Both
        take the outputs of the two previous layers (`[s0, s1]`), as in
        DARTS, or a single tensor; mismatched inputs are preprocessed for
        you. Each outputs `filters * 4` channels (the 4 nodes concatenated).
    """),
    ("code", """
        from keras_nas.blocks import NormalCell, ReductionCell


        def make_model(genotype, input_shape, num_classes, filters):
            inputs = keras.Input(input_shape)
            x = keras.layers.Conv2D(3 * filters, 3, padding="same",
                                    use_bias=False)(inputs)
            stem = keras.layers.BatchNormalization()(x)
            c1 = NormalCell(genotype, filters)([stem, stem])
            c2 = ReductionCell(genotype, 2 * filters)([stem, c1])
            c3 = NormalCell(genotype, 2 * filters, reduction_prev=True)(
                [c1, c2])
            x = keras.layers.GlobalAveragePooling2D()(c3)
            outputs = keras.layers.Dense(num_classes, "softmax")(x)
            return keras.Model(inputs, outputs, name="my_darts_model")


        def set_bn_momentum(model, momentum=0.9):
            # Keras' default BatchNormalization momentum (0.99) suits long
            # training; after a few hundred steps the moving statistics are
            # still far off and inference accuracy suffers. DARTS uses 0.9.
            for layer in model._flatten_layers(include_self=False):
                if isinstance(layer, keras.layers.BatchNormalization):
                    layer.momentum = momentum


        model = make_model(DARTS_V2, data.input_shape, data.num_classes,
                           S.filters)
        set_bn_momentum(model)
        model.compile(
            optimizer=keras.optimizers.Adam(3e-3),
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )
        model.summary()
    """),
    ("code", """
        history = model.fit(
            **data.fit_kwargs("train", S.batch_size),
            validation_data=data.validation_data(),
            epochs=S.epochs,
            verbose=2,
        )
        test_loss, test_accuracy = model.evaluate(
            **data.fit_kwargs("test", S.batch_size), verbose=0
        )
        print(f"test accuracy: {test_accuracy:.3f}")
    """),
    ("code", """
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(5, 3))
        ax.plot(history.history["accuracy"], label="train")
        ax.plot(history.history["val_accuracy"], label="validation")
        ax.set_xlabel("epoch")
        ax.set_ylabel("accuracy")
        ax.legend()
        plt.show()
    """),
    ("md", """
        ## Save and load

        The cells are registered Keras serializables: the model round-trips
        through a `.keras` file without `custom_objects`, with identical
        predictions.
    """),
    ("code", """
        path = os.path.join(S.workdir, "my_darts_model.keras")
        model.save(path)
        reloaded = keras.models.load_model(path)

        # A batch of test images (arrays for digits, a tf.data pipeline
        # for tfds datasets).
        if data.is_arrays:
            batch = data.test[0][:64]
        else:
            batch = next(iter(data.test))[0]
        np.testing.assert_allclose(
            model.predict(batch, verbose=0),
            reloaded.predict(batch, verbose=0),
            atol=1e-5,
        )
        print("reloaded model gives the same predictions;",
              f"{os.path.getsize(path) / 1e6:.2f} MB on disk")
    """),
    ("md", """
        ## Your own operation

        `register_op(name, factory)` adds an operation that genotypes,
        cells, search spaces and supernets can then use. The factory gets
        `(filters, strides, affine)` and returns a layer that maps
        `(B, H, W, filters)` to `(B, H / strides, W / strides, filters)`.
        Register it before loading a saved model that uses it.
    """),
    ("code", """
        from keras_nas.blocks import Genotype, register_op


        def conv_3x3_gelu(filters, strides, affine):
            return keras.Sequential([
                keras.layers.Conv2D(filters, 3, strides=strides,
                                    padding="same", use_bias=False),
                keras.layers.BatchNormalization(center=affine, scale=affine),
                keras.layers.Activation("gelu"),
            ])


        register_op("conv_3x3_gelu", conv_3x3_gelu, overwrite=True)

        mine = Genotype(
            normal=[("conv_3x3_gelu", 0), ("skip_connect", 1),
                    ("conv_3x3_gelu", 2), ("sep_conv_3x3", 1)],
            normal_concat=[2, 3],
            reduce=[("max_pool_3x3", 0), ("conv_3x3_gelu", 1),
                    ("skip_connect", 2), ("conv_3x3_gelu", 2)],
            reduce_concat=[2, 3],
        )
        small = make_model(mine, data.input_shape, data.num_classes, S.filters)
        set_bn_momentum(small)
        small.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                      metrics=["accuracy"])
        small.fit(**data.fit_kwargs("train", S.batch_size), epochs=1,
                  verbose=2)
        print("parameters:", small.count_params())
        draw_genotype(mine, title="a hand-made genotype with a custom op")
    """),
    ("md", """
        Next: [tutorial 1](01_quickstart.ipynb) searches for such cells with
        aging evolution.
    """),
]
