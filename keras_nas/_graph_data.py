"""Synthetic graph data sets made by code (re-exported by `keras_nas.data`).

- `make_graph_classification`: padded graphs `(x, a, y)` whose label is the
  random-graph family that generated them (Erdos-Renyi, Watts-Strogatz
  small world, Barabasi-Albert scale free), all with about the same mean
  degree and the same range of node counts, and node features that carry
  no label information. Only the structure tells the classes apart; a
  mean aggregator on constant features sees nothing of it, a sum
  aggregator sees degrees (Xu et al., "How Powerful are Graph Neural
  Networks?", ICLR 2019), so the choice of graph layer matters.
- `make_node_classification`: one stochastic block model graph whose
  blocks are the node classes, with noisy class-dependent node features:
  the features alone classify poorly, averaging over the (mostly
  same-class) neighbours denoises them.

Both are NumPy only, deterministic given `seed` and need no download.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from keras_nas._validation import check_positive_int

__all__ = [
    "GRAPH_FAMILIES",
    "NodeClassificationData",
    "make_graph_classification",
    "make_node_classification",
]

#: Class names of `make_graph_classification`, in label order.
GRAPH_FAMILIES: tuple[str, ...] = ("erdos_renyi", "small_world", "scale_free")


def _float_arg(name: str, value: object, low: float, high: float) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not low <= value <= high
    ):
        raise ValueError(
            f"Expected `{name}` to be a number in [{low}, {high}]. "
            f"Received: {name}={value!r}"
        )
    return float(value)


def _erdos_renyi(n: int, degree: float, rng: np.random.Generator):
    upper = np.triu(rng.random((n, n)) < degree / (n - 1), k=1)
    return upper | upper.T


def _small_world(n: int, degree: float, rng: np.random.Generator):
    """Watts-Strogatz: ring lattice, each edge rewired with probability 0.2."""
    half = max(1, int(round(degree / 2)))
    adj = np.zeros((n, n), bool)
    for i in range(n):
        for j in range(1, half + 1):
            adj[i, (i + j) % n] = adj[(i + j) % n, i] = True
    for i in range(n):
        for j in range(1, half + 1):
            k = (i + j) % n
            if not adj[i, k] or rng.random() >= 0.2:
                continue
            free = np.flatnonzero(~adj[i])
            free = free[free != i]
            if free.size:
                new = rng.choice(free)
                adj[i, k] = adj[k, i] = False
                adj[i, new] = adj[new, i] = True
    return adj


def _scale_free(n: int, degree: float, rng: np.random.Generator):
    """Barabasi-Albert preferential attachment with `m = degree / 2`."""
    m = max(1, int(round(degree / 2)))
    adj = np.zeros((n, n), bool)
    start = min(n, m + 1)
    adj[:start, :start] = ~np.eye(start, dtype=bool)
    for i in range(start, n):
        weights = adj[:i, :i].sum(1).astype(float)
        targets = rng.choice(
            i, size=min(m, i), replace=False, p=weights / weights.sum()
        )
        adj[i, targets] = adj[targets, i] = True
    return adj


_GENERATORS = (_erdos_renyi, _small_world, _scale_free)


def make_graph_classification(
    num_graphs: int = 300,
    *,
    min_nodes: int = 12,
    max_nodes: int = 20,
    mean_degree: float = 4.0,
    num_features: int = 1,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Random graphs labelled by the family that generated them.

    Three balanced classes (`GRAPH_FAMILIES`): 0, Erdos-Renyi graphs
    `G(n, mean_degree / (n - 1))`; 1, Watts-Strogatz small worlds (a ring
    lattice with `mean_degree` neighbours, each edge rewired with
    probability 0.2: near-regular degrees); 2,
    Barabasi-Albert scale-free graphs (preferential attachment of
    `mean_degree / 2` edges per node: a few hubs). Every graph has a node
    count drawn uniformly from `[min_nodes, max_nodes]` independently of its
    class, and its nodes are shuffled, so neither size nor node order
    gives the label away.

    Node features: column 0 is 1.0 on every real node (so `node_mask`
    finds the real nodes), the other `num_features - 1` columns are
    standard normal noise. Graphs are padded to `max_nodes` with zero rows
    and columns.

    Args:
        num_graphs: number of graphs (classes are balanced).
        min_nodes: smallest node count.
        max_nodes: largest node count (the padded size).
        mean_degree: target mean degree of every family.
        num_features: node features (1 = the constant feature only).
        seed: seed of the generator.

    Returns:
        `(x, a, y)`: float32 features `(num_graphs, max_nodes,
        num_features)`, float32 symmetric 0/1 adjacency `(num_graphs,
        max_nodes, max_nodes)` without self loops, int64 labels
        `(num_graphs,)` in `{0, 1, 2}`.

    Example:

    >>> x, a, y = make_graph_classification(30, seed=0)
    >>> x.shape, a.shape, y.shape
    ((30, 20, 1), (30, 20, 20), (30,))
    """
    num_graphs = check_positive_int("num_graphs", num_graphs, 1)
    min_nodes = check_positive_int("min_nodes", min_nodes, 4)
    max_nodes = check_positive_int("max_nodes", max_nodes, min_nodes)
    num_features = check_positive_int("num_features", num_features, 1)
    mean_degree = _float_arg("mean_degree", mean_degree, 2.0, min_nodes - 1)
    rng = np.random.default_rng(seed)
    y = rng.permutation(np.arange(num_graphs) % len(_GENERATORS))
    x = np.zeros((num_graphs, max_nodes, num_features), "float32")
    a = np.zeros((num_graphs, max_nodes, max_nodes), "float32")
    for g, label in enumerate(y):
        n = int(rng.integers(min_nodes, max_nodes + 1))
        adj = _GENERATORS[label](n, mean_degree, rng)
        order = rng.permutation(n)
        a[g, :n, :n] = adj[np.ix_(order, order)]
        x[g, :n, 0] = 1.0
        x[g, :n, 1:] = rng.normal(size=(n, num_features - 1))
    return x, a, y.astype("int64")


class NodeClassificationData(NamedTuple):
    """One graph for node classification, as a batch of one.

    Train with the masks as sample weights, so that only the training
    nodes count in the loss and only the validation nodes in `val_accuracy`:

    ```python
    tuner.search([d.x, d.a], d.y, sample_weight=d.train_mask,
                 validation_data=([d.x, d.a], d.y, d.val_mask),
                 batch_size=1, epochs=50)
    ```

    Attributes:
        x: node features `(1, nodes, features)`, float32.
        a: symmetric adjacency `(1, nodes, nodes)`, float32.
        y: node labels `(1, nodes)`, int64.
        train_mask: `(1, nodes)` float32, 1.0 on training nodes.
        val_mask: `(1, nodes)` float32, 1.0 on validation nodes.
        test_mask: `(1, nodes)` float32, 1.0 on test nodes.
    """

    x: np.ndarray
    a: np.ndarray
    y: np.ndarray
    train_mask: np.ndarray
    val_mask: np.ndarray
    test_mask: np.ndarray


def make_node_classification(
    num_nodes: int = 300,
    *,
    num_classes: int = 3,
    num_features: int = 8,
    p_in: float = 0.05,
    p_out: float = 0.005,
    feature_noise: float = 2.0,
    train_fraction: float = 0.2,
    validation_fraction: float = 0.2,
    seed: int = 0,
) -> NodeClassificationData:
    """A stochastic block model graph with noisy node features.

    Nodes are split into `num_classes` equal blocks (the labels); two nodes
    are joined with probability `p_in` within a block and `p_out` across
    blocks (Holland, Laskey & Leinhardt, "Stochastic blockmodels: First
    steps", Social Networks 1983). Node features are the block's centre
    (standard normal, one per class) plus Gaussian noise of standard
    deviation `feature_noise`, so features alone classify poorly while the
    mean over a node's neighbours (mostly of its class) is far less noisy.
    The nodes are split at random into training, validation and test
    nodes (masks).

    Args:
        num_nodes: number of nodes.
        num_classes: number of blocks / classes.
        num_features: node features.
        p_in: edge probability within a block.
        p_out: edge probability across blocks.
        feature_noise: standard deviation of the feature noise.
        train_fraction: share of training nodes.
        validation_fraction: share of validation nodes (the rest is test).
        seed: seed of the generator.

    Returns:
        A `NodeClassificationData` (a batch of one graph).

    Example:

    >>> d = make_node_classification(60, seed=0)
    >>> d.x.shape, d.a.shape, d.y.shape, int(d.train_mask.sum())
    ((1, 60, 8), (1, 60, 60), (1, 60), 12)
    """
    num_classes = check_positive_int("num_classes", num_classes, 2)
    num_nodes = check_positive_int("num_nodes", num_nodes, num_classes * 3)
    num_features = check_positive_int("num_features", num_features, 1)
    p_in = _float_arg("p_in", p_in, 0.0, 1.0)
    p_out = _float_arg("p_out", p_out, 0.0, 1.0)
    feature_noise = _float_arg("feature_noise", feature_noise, 0.0, np.inf)
    train_fraction = _float_arg("train_fraction", train_fraction, 0.0, 1.0)
    validation_fraction = _float_arg(
        "validation_fraction", validation_fraction, 0.0, 1.0
    )
    n_train = int(round(num_nodes * train_fraction))
    n_val = int(round(num_nodes * validation_fraction))
    if n_train < 1 or n_val < 1 or n_train + n_val >= num_nodes:
        raise ValueError(
            "Expected `train_fraction` and `validation_fraction` to leave "
            "at least one training, validation and test node. Received: "
            f"train_fraction={train_fraction}, "
            f"validation_fraction={validation_fraction}"
        )
    rng = np.random.default_rng(seed)
    y = rng.permutation(np.arange(num_nodes) % num_classes)
    same = y[:, None] == y[None, :]
    upper = np.triu(
        rng.random((num_nodes, num_nodes)) < np.where(same, p_in, p_out), k=1
    )
    a = (upper | upper.T).astype("float32")
    centres = rng.normal(size=(num_classes, num_features))
    x = centres[y] + feature_noise * rng.normal(size=(num_nodes, num_features))
    order = rng.permutation(num_nodes)
    masks = np.zeros((3, num_nodes), "float32")
    masks[0, order[:n_train]] = 1.0
    masks[1, order[n_train : n_train + n_val]] = 1.0
    masks[2, order[n_train + n_val :]] = 1.0
    return NodeClassificationData(
        x[None].astype("float32"),
        a[None],
        y[None].astype("int64"),
        masks[0][None],
        masks[1][None],
        masks[2][None],
    )
