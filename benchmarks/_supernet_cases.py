"""The models of the distribution checks, one training step each.

`data_parallel_check.py` (JAX `DataParallel`) and
`mirrored_supernets_check.py` (TensorFlow `MirroredStrategy`,
`MultiWorkerMirroredStrategy`) compare one step of the same tiny models
(8x8x3 inputs, 2 filters, 10 classes) on one device and on two. Each
builder returns `(model, fit)`: `fit()` takes the step on the global batch
of `BATCH` examples, in order (no shuffling); `fit(other)` takes it with
another model, e.g. the same one saved and loaded. Import this module after
choosing the backend.
"""

import keras
import numpy as np

from keras_nas.blocks.gan import build_discriminator, build_generator
from keras_nas.gan.model import GAN
from keras_nas.spaces import MobileNetSearchSpace, NasBench201SearchSpace
from keras_nas.supernet.darts import DartsSupernet, SearchData
from keras_nas.supernet.hypernetwork import HyperNetwork
from keras_nas.supernet.one_shot import OneShotSupernet
from keras_nas.supernet.proxyless import ProxylessSupernet

BATCH = 16


def data(seed=0):
    """`(x, y)`: `2 * BATCH` random 8x8x3 images (training, then
    validation halves) and labels in 0..9."""
    rng = np.random.default_rng(seed)
    x = rng.random((2 * BATCH, 8, 8, 3), dtype=np.float32)
    y = rng.integers(0, 10, 2 * BATCH).astype("int32")
    return x, y


def darts(
    x, y, order, num_cells=2, num_nodes=2, arch_sgd=False, filters=2,
    **relaxation,
):  # fmt: skip
    """A `DartsSupernet` step: weights on the first half, alphas on the
    second."""
    model = DartsSupernet(
        (8, 8, 3), 10, filters=filters, num_cells=num_cells,
        num_nodes=num_nodes, order=order, seed=0, **relaxation,
    )  # fmt: skip
    # With plain SGD (learning rate 1) the update of alpha is its gradient.
    arch = keras.optimizers.SGD(1.0) if arch_sgd else None
    model.compile(decay_steps=10, arch_optimizer=arch)
    batches = SearchData(
        (x[:BATCH], y[:BATCH]), (x[BATCH:], y[BATCH:]), BATCH, shuffle=False
    )
    return model, lambda m=model: m.fit(batches, epochs=1, verbose=0)


def _nb201():
    return NasBench201SearchSpace(
        input_shape=(8, 8, 3), num_classes=10, filters=2, cells_per_stage=1
    )


def one_shot(x, y, sampler, step="auto"):
    """A `OneShotSupernet` step on the NAS-Bench-201 space (`sampler`:
    None for uniform SPOS paths, "fair" for FairNAS)."""
    model = OneShotSupernet(_nb201(), sampler=sampler, seed=0)
    model.compile(
        optimizer=keras.optimizers.SGD(0.1, momentum=0.9), step=step
    )
    return model, lambda m=model: m.fit(
        x[:BATCH], y[:BATCH], batch_size=BATCH, verbose=0, shuffle=False
    )


def proxyless(x, y, warmup_steps=0):
    """A `ProxylessSupernet` step (binary gates: path logits on the
    second half, the sampled path's weights on the first) on a 2-block
    MobileNet space (kernels 3, 5; expansions 1, 3)."""
    space = MobileNetSearchSpace(
        (8, 8, 3), 10, stem_filters=4, stages=((4, 2, 1),),
        kernel_sizes=(3, 5), expansions=(1, 3),
    )  # fmt: skip
    model = ProxylessSupernet(space, warmup_steps=warmup_steps, seed=0)
    model.compile(decay_steps=10)
    batches = SearchData(
        (x[:BATCH], y[:BATCH]), (x[BATCH:], y[BATCH:]), BATCH, shuffle=False
    )
    return model, lambda m=model: m.fit(batches, epochs=1, verbose=0)


def hypernetwork(images, y):
    """A `HyperNetwork` step. `train` shuffles the batch: give one image
    repeated where the order must be moot."""
    model = HyperNetwork(_nb201(), seed=0)
    model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9))
    return model, lambda m=model: m.train(images[:BATCH], y[:BATCH], 1, BATCH)


def gan(x):
    """A GAN step on 4x4x1 crops of the images."""
    generator = build_generator((4, 4, 1), [{}, {"skips": [True]}], 4, 8)
    model = GAN(generator, build_discriminator((4, 4, 1), filters=4), seed=0)
    model.compile()
    images = x[:BATCH, :4, :4, :1]
    return model, lambda m=model: m.fit(
        images, batch_size=BATCH, verbose=0, shuffle=False
    )
