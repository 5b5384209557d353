"""Tests of `keras_nas.visualize`: history plots and genotype drawings."""

import keras_tuner
import pytest

from keras_nas import visualize
from keras_nas.blocks.genotypes import (
    DARTS_V2,
    NASNET_A,
    Genotype,
    NasBench201Genotype,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _is_png(path):
    with open(path, "rb") as f:
        return f.read(8) == PNG_MAGIC


def _edges(ax, gid):
    return [p for p in ax.patches if p.get_gid() == gid]


def _texts(ax):
    return [t.get_text() for t in ax.texts]


def test_draw_genotype_darts_v2(tmp_path):
    path = tmp_path / "cell.png"
    fig = visualize.draw_genotype(
        DARTS_V2, str(path), title="DARTS V2", engine="matplotlib"
    )
    assert _is_png(path)
    assert len(fig.axes) == 2
    for ax, kind in zip(fig.axes, ("normal", "reduce"), strict=True):
        pairs, concat = DARTS_V2.cell(kind)
        assert len(_edges(ax, "op-edge")) == len(pairs) == 8
        assert len(_edges(ax, "concat-edge")) == len(concat) == 4
        texts = _texts(ax)
        for name in ("$c_{k-2}$", "$c_{k-1}$", "0", "1", "2", "3", "$c_{k}$"):
            assert name in texts
        labels = [t for t in texts if "_" in t and not t.startswith("$")]
        assert sorted(labels) == sorted(op for op, _ in pairs)
    assert fig.axes[0].get_title() == "Normal cell"


def test_draw_genotype_other_shapes():
    # NASNet-A: 5 nodes, reduction cell concatenates only 3 of them.
    fig = visualize.draw_genotype(NASNET_A, engine="matplotlib")
    reduce_ax = fig.axes[1]
    assert len(_edges(reduce_ax, "op-edge")) == 10
    assert len(_edges(reduce_ax, "concat-edge")) == 3
    # `none` edges are drawn dotted with their own gid; arity 1 works.
    g = Genotype(
        normal=[("none", 0), ("skip_connect", 2)],
        reduce=[("max_pool_3x3", 1)],
        arity=1,
    )
    fig = visualize.draw_genotype(g, engine="matplotlib")
    assert len(_edges(fig.axes[0], "none-edge")) == 1
    assert len(_edges(fig.axes[0], "op-edge")) == 1
    assert len(_edges(fig.axes[1], "op-edge")) == 1


def test_draw_nas_bench_201(tmp_path):
    g = NasBench201Genotype.from_string(
        "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|"
        "+|skip_connect~0|none~1|skip_connect~2|"
    )
    path = tmp_path / "nb201.png"
    fig = visualize.draw_genotype(g, str(path), engine="matplotlib")
    assert _is_png(path)
    (ax,) = fig.axes
    assert len(_edges(ax, "op-edge")) == 5
    assert len(_edges(ax, "none-edge")) == 1
    assert {"0", "1", "2", "3"} <= set(_texts(ax))


def test_draw_genotype_rejects_other_objects():
    with pytest.raises(ValueError, match="genotype"):
        visualize.draw_genotype({"normal": []})
    with pytest.raises(ValueError, match="Received: engine='dot'"):
        visualize.draw_genotype(DARTS_V2, engine="dot")


NB201 = NasBench201Genotype.from_string(
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|"
    "+|skip_connect~0|none~1|skip_connect~2|"
)


def _cli_default_cells():
    """Random cells of the CLI's default space (4 nodes, 8 ops)."""
    import numpy as np

    from keras_nas.spaces import CellSearchSpace

    space = CellSearchSpace(input_shape=(8, 8, 1), num_classes=10)
    hp = keras_tuner.HyperParameters()
    space.declare_hyperparameters(hp)
    rng = np.random.default_rng(0)
    for _ in range(6):
        values = {
            h.name: h.values[rng.integers(len(h.values))]
            for h in hp.space
            if hasattr(h, "values") and h.name != "num_cells"
        }
        values.update(num_cells=hp.get("num_cells"), filters=hp.get("filters"))
        yield space.genotype(values)


@pytest.mark.parametrize(
    "genotype", [DARTS_V2, NASNET_A, NB201, *_cli_default_cells()]
)
def test_matplotlib_labels_never_overlap(genotype, tmp_path):
    fig = visualize.draw_genotype(
        genotype, str(tmp_path / "cell.png"), engine="matplotlib"
    )
    labels = visualize._label_boxes(fig)
    nodes = visualize._node_boxes(fig)
    assert len(labels) == sum(
        len(_edges(ax, "op-edge")) + len(_edges(ax, "none-edge"))
        for ax in fig.axes
    )
    for i, (text, box) in enumerate(labels):
        for other, other_box in labels[i + 1 :]:
            assert not box.overlaps(other_box), (
                text.get_text(),
                other.get_text(),
            )
        for node in nodes:
            assert not box.overlaps(node), text.get_text()


def test_draw_genotype_engines(monkeypatch):
    from keras_nas import _graphviz

    # graphviz is optional: whichever is installed, "auto" draws.
    fig = visualize.draw_genotype(DARTS_V2)
    images = [im.get_gid() for ax in fig.axes for im in ax.images]
    if _graphviz.available():
        assert images == ["graphviz-cell", "graphviz-cell"]
        assert not _edges(fig.axes[0], "op-edge")
    else:
        assert not images and _edges(fig.axes[0], "op-edge")
    monkeypatch.setattr(_graphviz, "available", lambda: False)
    fig = visualize.draw_genotype(NB201)
    assert len(_edges(fig.axes[0], "op-edge")) == 5
    with pytest.raises(ImportError, match="pydot"):
        visualize.draw_genotype(NB201, engine="graphviz")


def test_plot_history_single_objective(tmp_path):
    path = tmp_path / "history.png"
    fig = visualize.plot_history([0.5, None, 0.7, 0.6, 0.8], "max", str(path))
    assert _is_png(path)
    ax = fig.axes[0]
    (scores,) = [ln for ln in ax.lines if ln.get_gid() == "trial-scores"]
    assert list(scores.get_xdata()) == [1, 3, 4, 5]  # trial 2 failed
    (best,) = [ln for ln in ax.lines if ln.get_gid() == "best-so-far"]
    assert list(best.get_ydata()) == [0.5, 0.5, 0.7, 0.7, 0.8]
    fig = visualize.plot_history([3.0, 1.0, 2.0], "min")
    (best,) = [ln for ln in fig.axes[0].lines if ln.get_gid() == "best-so-far"]
    assert list(best.get_ydata()) == [3.0, 1.0, 1.0]


def test_pareto_front_and_two_objective_plot(tmp_path):
    points = [(0.5, 100), (0.7, 300), (0.6, 50), (0.8, 1000), (0.4, 400)]
    front = visualize.pareto_front(points, ["max", "min"])
    assert front == sorted(front, key=lambda i: points[i][0])
    assert set(front) == {2, 1, 3}  # (0.5,100) is dominated by (0.6,50)
    path = tmp_path / "pareto.png"
    fig = visualize.plot_history(
        points, ["max", "min"], str(path), objective_names=["acc", "params"]
    )
    assert _is_png(path)
    ax = fig.axes[0]
    (line,) = [ln for ln in ax.lines if ln.get_gid() == "pareto-front"]
    assert list(line.get_xdata()) == [0.6, 0.7, 0.8]
    assert ax.get_xlabel() == "acc (max)"
    # Three objectives: one panel per objective.
    fig = visualize.plot_history([(1, 2, 3), (2, 1, 3), (0, 0, 0)])
    assert len(fig.axes) == 3


def test_plot_history_from_oracle(tmp_path):
    hp = keras_tuner.HyperParameters()
    hp.Int("x", 0, 10)
    oracle = keras_tuner.oracles.RandomSearchOracle(
        objective=keras_tuner.Objective("loss", "min"),
        max_trials=4,
        hyperparameters=hp,
        seed=0,
    )
    oracle._set_project_dir(str(tmp_path), "p")
    for value in (5.0, 3.0, 4.0):
        trial = oracle.create_trial("tuner0")
        oracle.update_trial(trial.trial_id, {"loss": value})
        trial.status = "COMPLETED"
        oracle.end_trial(trial)
    fig = visualize.plot_history(oracle)
    ax = fig.axes[0]
    (best,) = [ln for ln in ax.lines if ln.get_gid() == "best-so-far"]
    assert list(best.get_ydata()) == [5.0, 3.0, 3.0]
    # Numbered by trial id, as the CLI, results.json and TensorBoard do.
    assert [int(t) for t in sorted(oracle.trials)] == [0, 1, 2]
    assert list(best.get_xdata()) == [0, 1, 2]
    assert ax.get_ylabel() == "loss"
    # Multi-objective oracles plot the Pareto front.
    oracle = keras_tuner.oracles.RandomSearchOracle(
        objective=[
            keras_tuner.Objective("acc", "max"),
            keras_tuner.Objective("size", "min"),
        ],
        max_trials=4,
        hyperparameters=hp,
        seed=0,
    )
    oracle._set_project_dir(str(tmp_path), "q")
    for acc, size in ((0.5, 10.0), (0.9, 20.0), (0.4, 30.0)):
        trial = oracle.create_trial("tuner0")
        metrics = {"acc": acc, "size": size}
        # As keras-tuner's Tuner reports a multi-objective trial.
        metrics["multi_objective"] = oracle.objective.get_value(metrics)
        oracle.update_trial(trial.trial_id, metrics)
        trial.status = "COMPLETED"
        oracle.end_trial(trial)
    fig = visualize.plot_history(oracle)
    (line,) = [ln for ln in fig.axes[0].lines if ln.get_gid() == "pareto-front"]
    assert list(line.get_xdata()) == [0.5, 0.9]


def test_plot_history_bad_input():
    with pytest.raises(ValueError, match="direction"):
        visualize.plot_history([1.0, 2.0], "up")
    with pytest.raises(ValueError, match="history"):
        visualize.plot_history(42)
    with pytest.raises(ValueError, match="same number"):
        visualize.plot_history([(1, 2), (1, 2, 3)])
