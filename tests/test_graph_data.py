"""Synthetic graph data of `keras_nas.data` (NumPy only)."""

import numpy as np
import pytest

from keras_nas.data import (
    GRAPH_FAMILIES,
    make_graph_classification,
    make_node_classification,
)


def test_graph_classification_arrays():
    x, a, y = make_graph_classification(60, min_nodes=8, max_nodes=12,
                                        num_features=3, seed=0)
    assert x.shape == (60, 12, 3) and a.shape == (60, 12, 12)
    assert x.dtype == a.dtype == np.float32 and y.dtype == np.int64
    assert np.bincount(y).tolist() == [20, 20, 20]
    np.testing.assert_array_equal(a, a.transpose(0, 2, 1))
    assert np.all(np.diagonal(a, axis1=1, axis2=2) == 0)
    nodes = x[..., 0].sum(1)
    assert nodes.min() >= 8 and nodes.max() <= 12
    for g in range(60):  # padded rows and columns are zero
        n = int(nodes[g])
        assert np.all(x[g, n:] == 0) and np.all(a[g, n:] == 0)
        assert np.all(a[g, :, n:] == 0) and np.all(x[g, :n, 0] == 1)
    again = make_graph_classification(60, min_nodes=8, max_nodes=12,
                                      num_features=3, seed=0)
    for u, v in zip((x, a, y), again, strict=True):
        np.testing.assert_array_equal(u, v)


def test_graph_families_differ_in_structure_not_size():
    x, a, y = make_graph_classification(300, seed=1)
    nodes = x[..., 0].sum(1)
    degree = a.sum(-1)
    stats = {}
    for label, family in enumerate(GRAPH_FAMILIES):
        g = y == label
        stats[family] = (
            nodes[g].mean(),
            (degree[g].sum(1) / nodes[g]).mean(),
            degree[g].max(1).mean(),
            np.mean([degree[k, : int(nodes[k])].std() for k in
                     np.flatnonzero(g)]),
        )
    sizes = [s[0] for s in stats.values()]
    assert max(sizes) - min(sizes) < 1.5
    assert all(3.0 < s[1] < 4.5 for s in stats.values())
    # Hubs in scale-free graphs, near-regular small worlds.
    assert stats["scale_free"][2] > stats["erdos_renyi"][2] + 1
    assert stats["small_world"][3] < 0.6 * stats["erdos_renyi"][3]


def test_node_classification_data():
    d = make_node_classification(90, num_classes=3, num_features=5, seed=2)
    assert d.x.shape == (1, 90, 5) and d.a.shape == (1, 90, 90)
    assert d.y.shape == (1, 90) and set(np.unique(d.y)) == {0, 1, 2}
    masks = np.stack([d.train_mask, d.val_mask, d.test_mask])
    np.testing.assert_array_equal(masks.sum(0), 1.0)
    assert [int(m.sum()) for m in masks] == [18, 18, 54]
    np.testing.assert_array_equal(d.a, d.a.transpose(0, 2, 1))
    same = d.y[0][:, None] == d.y[0][None, :]
    a = d.a[0]
    # Homophily: within-block edges are far more likely.
    assert a[same].mean() > 4 * a[~same].mean()


def test_arguments_are_checked():
    with pytest.raises(ValueError, match="max_nodes"):
        make_graph_classification(10, min_nodes=10, max_nodes=8)
    with pytest.raises(ValueError, match="num_graphs"):
        make_graph_classification(0)
    with pytest.raises(ValueError, match="train_fraction"):
        make_node_classification(30, train_fraction=0.9,
                                 validation_fraction=0.2)
