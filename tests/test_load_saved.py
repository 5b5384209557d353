"""Every kind of saved keras-nas object loads after `import keras_nas` alone.

The files are saved here (TensorFlow backend) and loaded in new processes
that import only `keras_nas` (or `keras_nas.blocks`) and Keras (and
TensorFlow), on TensorFlow and on JAX, in both import orders; the loaded
objects must be of the real classes and hold the saved weights.
"""

import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

from keras_nas import _serializable
from keras_nas.blocks import (
    DARTS,
    DARTS_OPS,
    build_discriminator,
    build_generator,
    build_nb201_network,
    build_network,
    get_graph_conv,
    get_op,
)
from keras_nas.blocks.graph import GRAPH_CONVS, GraphReadout, NodeMask
from keras_nas.gan.model import GAN
from keras_nas.spaces import MobileNetSearchSpace, NasBench201SearchSpace
from keras_nas.supernet import DartsSupernet, OneShotSupernet


def _models():
    """name -> a model to save."""
    keras.utils.set_random_seed(0)

    # Every candidate op in one model.
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 1)(inputs)
    outs = [get_op(op, 4, 1, True)(x) for op in DARTS_OPS]
    outs.append(get_op("skip_connect", 4, 2, True)(x))  # FactorizedReduce
    outs = [keras.layers.GlobalAveragePooling2D()(o) for o in outs]
    ops_model = keras.Model(inputs, keras.layers.Concatenate()(outs))

    # The trained network of a cell search (normal + reduction cells).
    network = build_network(
        DARTS, (8, 8, 3), 3, filters=4, num_cells=3, auxiliary=True
    )
    nb201 = build_nb201_network(
        ["nor_conv_3x3"] * 3 + ["skip_connect", "none", "avg_pool_3x3"],
        (8, 8, 3),
        3,
        filters=4,
        cells_per_stage=1,
    )

    darts = DartsSupernet(
        (8, 8, 3), 3, filters=2, num_cells=1, num_nodes=2, seed=3,
        ops=("none", "skip_connect", "avg_pool_3x3"),
    )  # fmt: skip
    darts.compile(jit_compile=False)  # saves a BilevelOptimizer
    darts(np.zeros((1, 8, 8, 3), "float32"))  # builds the weights

    one_shot = OneShotSupernet(
        NasBench201SearchSpace((8, 8, 3), 3, filters=4, cells_per_stage=1),
        seed=1,
    )
    one_shot.compile()

    feats, adj = keras.Input((None, 3)), keras.Input((None, None))
    mask = NodeMask()([feats, adj])
    h = feats
    for conv in GRAPH_CONVS:
        h = get_graph_conv(conv, 4, activation="relu", heads=2)([h, adj, mask])
    gnn = keras.Model([feats, adj], GraphReadout("max")([h, mask]))

    generator = build_generator((4, 4, 1), [{}, {"skips": [True]}], 4, 8)
    flat = keras.Input((4, 4, 1))
    extractor = keras.Model(flat, keras.layers.Flatten()(flat))
    gan = GAN(
        generator, build_discriminator((4, 4, 1), filters=4), extractor, 0
    )
    gan.compile()  # GanOptimizer; the FrechetDistance metric
    mobilenet = MobileNetSearchSpace(
        (8, 8, 3), 3, stem_filters=8, stages=((8, 2, 1), (16, 1, 2))
    ).build_network(("mbconv_5x5_e6", "zero", "mbconv_3x3_e3"))
    return {
        "ops": ops_model,
        "network": network,
        "nb201": nb201,
        "darts": darts,
        "one_shot": one_shot,
        "gnn": gnn,
        "gan": gan,
        "generator": generator,
        "mobilenet": mobilenet,
    }


LOAD = """
import sys
{imports}

import numpy as np

folder, names = sys.argv[1], sys.argv[2:]
for name in names:
    model = keras.saving.load_model(f"{{folder}}/{{name}}.keras")
    saved = np.load(f"{{folder}}/{{name}}.npz")
    weights = [saved[f"arr_{{i}}"] for i in range(len(saved.files))]
    assert len(weights) == len(model.weights), name
    for w, v in zip(weights, model.weights):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(v), w)
    optimizer = getattr(model, "optimizer", None)
    optimizer = type(optimizer).__name__ if optimizer else "-"
    print(name, type(model).__module__, type(model).__name__, optimizer)
"""

# Loading on JAX compiles an initializer per weight shape (seconds each), so
# the JAX process loads a few files: every op, and the backend-specific DARTS
# supernet. The placeholders do not depend on the backend.
NAMES = {
    "tensorflow": [
        "ops", "network", "nb201", "darts", "one_shot", "gnn", "gan",
        "generator", "mobilenet",
    ],
    "jax": ["ops", "darts"],
}  # fmt: skip
FUNCTIONAL = "keras.src.models.functional Functional -"
LOADED = {
    "ops": FUNCTIONAL,
    "network": FUNCTIONAL,
    "nb201": FUNCTIONAL,
    "darts": "keras_nas.supernet.darts DartsSupernet BilevelOptimizer",
    "one_shot": "keras_nas.supernet.one_shot OneShotSupernet Adam",
    "gnn": FUNCTIONAL,
    "gan": "keras_nas.gan.model GAN GanOptimizer",
    "generator": FUNCTIONAL,
    "mobilenet": FUNCTIONAL,
}


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    folder = tmp_path_factory.mktemp("saved")
    for name, model in _models().items():
        model.save(folder / f"{name}.keras")
        np.savez(
            folder / f"{name}.npz",
            *[keras.ops.convert_to_numpy(v) for v in model.weights],
        )
    return folder


@pytest.mark.parametrize(
    "backend, imports",
    [
        # TensorFlow asks `importlib.util.find_spec("keras")` first.
        ("tensorflow", "import keras_nas\nimport tensorflow\nimport keras"),
        ("jax", "import keras\nimport keras_nas.blocks"),
    ],
)
def test_every_kind_loads_in_a_new_process(saved, backend, imports):
    names = NAMES[backend]
    code = textwrap.dedent(LOAD).format(imports=imports)
    env = dict(os.environ, KERAS_BACKEND=backend, JAX_PLATFORMS="cpu")
    result = subprocess.run(
        [sys.executable, "-c", code, str(saved), *names],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    # The real classes, not the placeholders, were built.
    expected = [f"{name} {LOADED[name]}" for name in names]
    assert result.stdout.splitlines() == expected


def test_placeholder_table_matches_the_registered_classes():
    # Importing every module registers the real classes over the
    # placeholders; the table must name each of them, and nothing else.
    for module in set(_serializable.REGISTERED.values()):
        __import__(module)
    registered = {
        name.split(">", 1)[1]: obj.__module__
        for name, obj in keras.saving.get_custom_objects().items()
        if name.startswith("keras_nas>")
    }
    assert registered == _serializable.REGISTERED
