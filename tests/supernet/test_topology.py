"""A new one-shot space is one `Topology` class (keras_nas.supernet.topology).

A toy chain space, written only against the protocol, trains, scores,
extracts and saves through `OneShotSupernet` with both steps, and its eager
and compiled paths agree because both run the same topology object.
"""

import keras
import keras_tuner
import numpy as np
import pytest
import tensorflow as tf
from _one_shot_testing import data as _data

from keras_nas.blocks.ops import get_op
from keras_nas.supernet import OneShotSupernet
from keras_nas.supernet import _one_shot_indexed as indexed
from keras_nas.supernet import _one_shot_tensorflow as tf_step
from keras_nas.supernet import _path_logic as logic
from keras_nas.supernet import topology as topo

OPS = ("none", "skip_connect", "nor_conv_1x1")


class ChainSpace:
    """The toy space: `blocks` blocks in a row, one op each."""

    def __init__(self, blocks):
        self.blocks = blocks

    def declare_hyperparameters(self, hp):
        for k in range(self.blocks):
            hp.Choice(f"block_{k}", list(OPS))


class ChainTopology(topo.Topology):
    """stem -> block_0 -> ... -> head, each block `x + op(x)` (residual,
    so a `none` block cuts nothing and only its own op is off the path)."""

    name = "toy_chain"
    arguments = ("blocks",)
    key_doc = "(block, op)"

    @classmethod
    def spec_from_space(cls, space):
        if not isinstance(space, ChainSpace):
            return None
        return {
            "search_space": cls.name,
            "input_shape": (8, 8, 1),
            "num_classes": 4,
            "blocks": space.blocks,
        }

    @classmethod
    def check_spec(cls, spec):
        return {"blocks": int(spec.get("blocks", 2))}

    ops = OPS

    @property
    def num_cells(self):
        return self.spec["blocks"]

    def make_space(self):
        return ChainSpace(self.spec["blocks"])

    def _make_layers(self):
        self.stem.extend([keras.layers.Conv2D(4, 3, padding="same")])
        self._branches = []
        for block in range(self.num_cells):
            branches = []
            for op in OPS:
                layer = get_op(op, 4)
                self.add_op((block, op), layer, (None, 8, 8, 4))
                branches.append((layer, 0))
            self._branches.append(branches)
        self._head_shape = (None, 8, 8, 4)
        self.head.extend(
            [keras.layers.GlobalAveragePooling2D(), topo.classifier(4)]
        )

    def to_path(self, values):
        if isinstance(values, keras_tuner.HyperParameters):
            values = values.values
        if not isinstance(values, tuple):
            values = tuple(values[f"block_{k}"] for k in range(self.num_cells))
        if len(values) != self.num_cells or set(values) - set(OPS):
            raise ValueError(f"Expected a path. Received: {values!r}")
        return values

    def path_indices(self, path):
        return np.asarray([OPS.index(op) for op in path], dtype="int32")

    def indices_path(self, indices):
        return tuple(OPS[int(k)] for k in np.asarray(indices).reshape(-1))

    def slot_sizes(self):
        return [len(OPS)] * self.num_cells

    def cell_slots(self, cell):
        return [(cell, self._branches[cell])]

    def forward_cells(self, x, dispatch, training, use):
        for block in range(self.num_cells):
            x = x + dispatch(block, self._branches[block], [x])
        return x

    def liveness(self, indices):
        out = {"head": True, "stem": True}
        for block in range(self.num_cells):
            for k, op in enumerate(OPS):
                chosen = logic.eq(indices[block], k)
                out[("op", self.op_index[(block, op)])] = k != 0 and chosen
        return out


@pytest.fixture
def chain():
    topo.register_topology(ChainTopology)
    yield ChainSpace(blocks=3)
    del topo.TOPOLOGIES[ChainTopology.name]


def _trained(net, path):
    return {id(v) for v in net.path_trainable_variables(path)}


def test_a_toy_topology_plugs_into_the_supernet(chain, tmp_path):
    x, y = _data(32)
    net = OneShotSupernet(chain, seed=0)
    assert net.search_space == "toy_chain" and net.space_ops == OPS
    assert len(net.op_layers) == 9 and net.op_layer(1, "skip_connect")
    # Every path: eager (Python) and compiled (tensor, switch) forward
    # passes and liveness agree, through the same topology object.
    for seed in range(6):
        values = net.sample_values(np.random.default_rng(seed))
        path = net._to_path(values)
        idx = net.path_indices(values)
        assert indexed.indices_path(net, idx) == path
        masks = indexed.variable_masks(net, tf.constant(idx))
        tensor = {
            id(v)
            for v, m in zip(net.trainable_variables, masks, strict=True)
            if bool(np.asarray(m))
        }
        assert tensor == _trained(net, path)
        np.testing.assert_allclose(
            indexed.forward(
                net, x, tf.constant(idx), False, tf_step.slot_switch
            ),
            net(x, training=False, path=path),
            atol=1e-6,
        )
    path = ("none", "skip_connect", "none")  # stem and head only
    assert _trained(net, path) == {
        id(v) for layer in (*net.stem, *net.head)
        for v in layer.trainable_variables
    }  # fmt: skip
    # The compiled step trains exactly the sampled path's variables.
    net.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9))
    before = [v.numpy().copy() for v in net.trainable_variables]
    net.fit(x, y, epochs=1, batch_size=32, verbose=0)
    assert net._train_mode == "compiled"
    on_path = _trained(net, net.last_path)
    for v, old in zip(net.trainable_variables, before, strict=True):
        assert (id(v) in on_path) == (not np.array_equal(v.numpy(), old))
    # The eager step with a Python sampler, scoring, extraction, saving.
    values = {"block_0": "nor_conv_1x1", "block_1": "skip_connect",
              "block_2": "nor_conv_1x1"}  # fmt: skip
    net.sampler = lambda rng: values
    net.fit(x, y, epochs=1, batch_size=16, verbose=0)
    assert net._train_mode == "eager" and net.last_values == values
    score = net.evaluate_path(values, x, y)
    child = net.extract(values)
    acc = np.mean(np.argmax(child.predict(x, verbose=0), -1) == y)
    assert score["accuracy"] == pytest.approx(acc)
    file = str(tmp_path / "chain.keras")
    net.save(file)
    clone = keras.saving.load_model(file)
    assert clone.get_config()["blocks"] == 3
    np.testing.assert_allclose(
        clone.predict_path(values, x), net.predict_path(values, x), atol=1e-6
    )
