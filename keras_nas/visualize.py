"""Pictures of a search: its history and the cells it found.

Both functions return a `matplotlib.figure.Figure` (no pyplot state) and
optionally save it as a PNG. `draw_genotype` lets graphviz lay the cells out
when pydot and graphviz are installed (optional, as for
`keras.utils.plot_model`), else draws them with matplotlib, placing each
edge label where it overlaps no other label and no node.

- `plot_history`: score per trial with the best-so-far line; for
  multi-objective runs, the Pareto front.
- `draw_genotype`: a `Genotype`'s normal and reduction cells (or a
  `NasBench201Genotype`'s cell) as graphs whose edges are labelled with the
  operation, in the style of the DARTS paper's figures (Liu et al., "DARTS:
  Differentiable Architecture Search", ICLR 2019).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from keras_nas import _graphviz
from keras_nas.blocks.genotypes import Genotype, NasBench201Genotype

__all__ = ["plot_history", "draw_genotype", "pareto_front"]

_MAX_COLOR = "#1f77b4"
_BEST_COLOR = "#d62728"


def _figure(figsize: tuple[float, float]):
    from matplotlib.figure import Figure

    return Figure(figsize=figsize, layout="constrained")


def _integer_trials(ax) -> None:
    """Trial numbers on the x axis: whole numbers only."""
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def _save(fig, path: str | None):
    if path is not None:
        fig.savefig(path, format="png", dpi=100)
    return fig


def _check_direction(direction: Any, name: str = "direction") -> str:
    if direction not in ("max", "min"):
        raise ValueError(
            f"Expected `{name}` to be 'max' or 'min'. "
            f"Received: {name}={direction!r}"
        )
    return direction


def _objectives_of(oracle: Any) -> list[tuple[str, str]]:
    objective = oracle.objective
    parts = getattr(objective, "objectives", None) or [objective]
    return [(o.name, o.direction) for o in parts]


def _trial_order(trial_id: str) -> tuple[int, str]:
    return (int(trial_id), "") if str(trial_id).isdigit() else (0, trial_id)


def _history_from_oracle(
    oracle: Any,
) -> tuple[list[Any], list[str], list[str]]:
    objectives = _objectives_of(oracle)
    trials = sorted(
        oracle.trials.values(), key=lambda t: _trial_order(t.trial_id)
    )
    scores: list[Any] = []
    for trial in trials:
        if len(objectives) == 1:
            scores.append(trial.score)
            continue
        values = []
        for name, _ in objectives:
            has = trial.metrics.exists(name)
            values.append(trial.metrics.get_best_value(name) if has else None)
        scores.append(None if None in values else tuple(values))
    names = [n for n, _ in objectives]
    return scores, names, [d for _, d in objectives]


def pareto_front(
    points: Sequence[Sequence[float]], directions: Sequence[str]
) -> list[int]:
    """Indices of the non-dominated points.

    Args:
        points: one tuple of objective values per trial.
        directions: `"max"` or `"min"` per objective.

    Returns:
        The indices of the Pareto-optimal points, sorted by the first
        objective.

    Example:

    >>> pareto_front([(1, 1), (2, 0), (0, 0)], ["max", "max"])
    [0, 1]
    """
    signs = [1.0 if _check_direction(d) == "max" else -1.0 for d in directions]
    pts = [
        tuple(s * float(v) for s, v in zip(signs, p, strict=True))
        for p in points
    ]

    def dominates(a, b):
        return all(x >= y for x, y in zip(a, b, strict=True)) and any(
            x > y for x, y in zip(a, b, strict=True)
        )

    front = [
        i
        for i, p in enumerate(pts)
        if not any(dominates(q, p) for j, q in enumerate(pts) if j != i)
    ]
    return sorted(front, key=lambda i: (float(points[i][0]), i))


def plot_history(
    history: Any,
    direction: str | Sequence[str] | None = None,
    path: str | None = None,
    *,
    objective_names: Sequence[str] | None = None,
    title: str | None = None,
):
    """Plots a search's history.

    With one objective: the score of every trial (dots, in trial order) and
    the best score so far (a step line). With several objectives: for two,
    a scatter of all trials in objective space with the Pareto front drawn
    as a line; for more, one panel per objective with the Pareto-optimal
    trials highlighted. The trials are numbered by keras-tuner's trial id
    (0, 1, ...) for a tuner or an oracle, as everywhere in keras-nas, and
    from 1 for a sequence of scores.

    Args:
        history: a sequence of scores (numbers, or tuples of numbers for
            multi-objective runs; `None` for failed trials), or a keras-tuner
            `Tuner` or `Oracle` whose trials are plotted.
        direction: `"max"` or `"min"` (one per objective for multi-objective
            runs). Taken from the oracle's objective when `history` is a
            tuner or an oracle; defaults to `"max"` otherwise.
        path: if given, the figure is saved there as a PNG.
        objective_names: axis labels, one per objective.
        title: figure title.

    Returns:
        The `matplotlib.figure.Figure`.

    Example:

    >>> fig = plot_history([0.5, 0.7, 0.6, 0.8], "max")
    >>> fig.axes[0].get_xlabel()
    'trial'
    """
    oracle = getattr(history, "oracle", history)
    if hasattr(oracle, "trials") and hasattr(oracle, "objective"):
        scores, names, directions = _history_from_oracle(oracle)
        first = 0  # keras-tuner's trial ids.
        if direction is None:
            direction = directions if len(directions) > 1 else directions[0]
        objective_names = objective_names or names
    elif isinstance(history, Sequence) and not isinstance(history, str):
        scores = list(history)
        first = 1
    else:
        raise ValueError(
            "Expected `history` to be a sequence of scores or a keras-tuner "
            f"Tuner/Oracle. Received: history={history!r}"
        )
    multi = any(
        isinstance(s, Sequence) and not isinstance(s, str) for s in scores
    )
    if multi:
        width = {len(s) for s in scores if s is not None}
        if len(width) != 1:
            raise ValueError(
                "Expected every multi-objective score to have the same "
                f"number of values. Received: history={scores!r}"
            )
        k = width.pop()
        if direction is None:
            direction = ["max"] * k
        if isinstance(direction, str):
            direction = [direction] * k
        if len(direction) != k:
            raise ValueError(
                f"Expected one direction per objective ({k}). "
                f"Received: direction={direction!r}"
            )
        directions = [_check_direction(d) for d in direction]
        names = list(objective_names or [f"objective {i}" for i in range(k)])
        fig = _plot_multi(scores, directions, names, first)
    else:
        direction = "max" if direction is None else direction
        if not isinstance(direction, str):
            direction = direction[0]
        name = (objective_names or ["score"])[0]
        fig = _plot_single(scores, _check_direction(direction), name, first)
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def _plot_single(
    scores: list[Any], direction: str, name: str, first: int = 1
):
    fig = _figure((6.4, 4.0))
    ax = fig.add_subplot()
    trials, values, best_line = [], [], []
    best = None
    better = max if direction == "max" else min
    for i, s in enumerate(scores, start=first):
        if s is None or (isinstance(s, float) and math.isnan(s)):
            best_line.append(best)
            continue
        trials.append(i)
        values.append(float(s))
        best = float(s) if best is None else better(best, float(s))
        best_line.append(best)
    ax.plot(
        trials,
        values,
        "o",
        color=_MAX_COLOR,
        label=f"{name} per trial",
        gid="trial-scores",
    )
    xs = [i for i, b in enumerate(best_line, start=first) if b is not None]
    ys = [b for b in best_line if b is not None]
    ax.step(
        xs,
        ys,
        where="post",
        color=_BEST_COLOR,
        label="best so far",
        gid="best-so-far",
    )
    ax.set_xlabel("trial")
    _integer_trials(ax)
    ax.set_ylabel(name)
    if scores:
        ax.set_xlim(first - 0.5, first + len(scores) - 0.5)
    ax.grid(alpha=0.3)
    ax.legend(loc="best")
    ax.set_title(f"Search history ({direction}imize {name})")
    return fig


def _plot_multi(
    scores: list[Any], directions: list[str], names: list[str], first: int = 1
):
    index = [i for i, s in enumerate(scores) if s is not None]
    points = [tuple(float(v) for v in scores[i]) for i in index]
    front = (
        [index[j] for j in pareto_front(points, directions)] if points else []
    )
    if len(directions) == 2:
        fig = _figure((6.0, 4.8))
        ax = fig.add_subplot()
        ax.scatter(
            [p[0] for p in points],
            [p[1] for p in points],
            color=_MAX_COLOR,
            alpha=0.6,
            label="trials",
            gid="trials",
        )
        fx = [float(scores[i][0]) for i in front]
        fy = [float(scores[i][1]) for i in front]
        ax.plot(
            fx,
            fy,
            "o-",
            color=_BEST_COLOR,
            label="Pareto front",
            gid="pareto-front",
        )
        ax.set_xlabel(f"{names[0]} ({directions[0]})")
        ax.set_ylabel(f"{names[1]} ({directions[1]})")
        ax.grid(alpha=0.3)
        ax.legend(loc="best")
        ax.set_title("Search history: Pareto front")
        return fig
    k = len(directions)
    fig = _figure((6.4, 2.2 * k))
    axes = fig.subplots(k, 1, sharex=True, squeeze=False)[:, 0]
    for o, ax in enumerate(axes):
        ax.plot(
            [i + first for i in index],
            [p[o] for p in points],
            "o",
            color=_MAX_COLOR,
            label="trials",
        )
        ax.plot(
            [i + first for i in front],
            [float(scores[i][o]) for i in front],
            "o",
            color=_BEST_COLOR,
            label="Pareto-optimal",
            gid="pareto-front",
        )
        ax.set_ylabel(f"{names[o]} ({directions[o]})")
        ax.grid(alpha=0.3)
    axes[0].legend(loc="best")
    axes[-1].set_xlabel("trial")
    _integer_trials(axes[-1])
    axes[0].set_title("Search history: Pareto-optimal trials")
    return fig


# --- Cells as graphs ---------------------------------------------------------

_NODE_STYLE = {
    "input": "#a6cee3",
    "node": "#fdbf6f",
    "output": "#b2df8a",
}


_RADIUS = 0.38


def _draw_node(ax, xy, label, kind):
    from matplotlib.patches import Circle

    ax.add_patch(
        Circle(
            xy,
            _RADIUS,
            facecolor=_NODE_STYLE[kind],
            edgecolor="black",
            zorder=3,
            gid=f"node-{kind}",
        )
    )
    ax.text(xy[0], xy[1], label, ha="center", va="center", fontsize=9, zorder=4)


def _toward(origin, target, distance):
    dx, dy = target[0] - origin[0], target[1] - origin[1]
    norm = math.hypot(dx, dy) or 1.0
    return origin[0] + distance * dx / norm, origin[1] + distance * dy / norm


def _draw_edge(ax, start, end, label, rad, gid, dashed=False, label_t=0.5):
    from matplotlib.patches import FancyArrowPatch

    # matplotlib's arc3 curve is the quadratic Bezier with this control
    # point; its tangents at the ends point at the control point, so the
    # ends are moved onto the node circles along them.
    (x1, y1), (x2, y2) = start, end
    control = ((x1 + x2) / 2 + rad * (y2 - y1), (y1 + y2) / 2 - rad * (x2 - x1))
    a = _toward(start, control, _RADIUS)
    b = _toward(end, control, _RADIUS + 0.02)
    ax.add_patch(
        FancyArrowPatch(
            a,
            b,
            arrowstyle="-|>",
            mutation_scale=11,
            connectionstyle=f"arc3,rad={rad}",
            shrinkA=0,
            shrinkB=0,
            color="gray" if dashed else "black",
            linestyle="dotted" if dashed else "solid",
            linewidth=1.0,
            zorder=2,
            gid=gid,
        )
    )
    if label:
        (x1, y1), (x2, y2) = a, b
        cx = (x1 + x2) / 2 + rad * (y2 - y1)
        cy = (y1 + y2) / 2 - rad * (x2 - x1)
        t = label_t
        mx = (1 - t) ** 2 * x1 + 2 * t * (1 - t) * cx + t**2 * x2
        my = (1 - t) ** 2 * y1 + 2 * t * (1 - t) * cy + t**2 * y2
        text = ax.text(
            mx,
            my,
            label,
            ha="center",
            va="center",
            fontsize=7,
            zorder=5,
            color="dimgray" if dashed else "black",
            bbox={
                "boxstyle": "round,pad=0.15",
                "fc": "white",
                "ec": "none",
                "alpha": 0.85,
            },
            gid=f"label-{gid}",
            in_layout=False,
        )
        # The curve, for `_place_labels` to move the label along it.
        text._keras_nas_curve = (a, (cx, cy), b, label_t)


_LABEL_TS = (0.5, 0.4, 0.6, 0.3, 0.7, 0.22, 0.78, 0.15, 0.85)
_LABEL_SHIFTS = (0.0, 1.0, -1.0, 2.0, -2.0)  # label heights off the edge
_PAD = 2.0  # pixels kept free around a label


def _bezier(curve, t):
    (x1, y1), (cx, cy), (x2, y2), _ = curve
    return (
        (1 - t) ** 2 * x1 + 2 * t * (1 - t) * cx + t**2 * x2,
        (1 - t) ** 2 * y1 + 2 * t * (1 - t) * cy + t**2 * y2,
    )


def _overlap(a, b) -> float:
    w = min(a.x1, b.x1) - max(a.x0, b.x0)
    h = min(a.y1, b.y1) - max(a.y0, b.y0)
    return w * h if w > 0 and h > 0 else 0.0


def _label_boxes(fig) -> list[tuple[Any, Any]]:
    """(text, display bbox padded by `_PAD`) of every edge label drawn."""
    renderer = fig.canvas.get_renderer()
    return [
        (text, text.get_window_extent(renderer).padded(_PAD))
        for ax in fig.axes
        for text in ax.texts
        if hasattr(text, "_keras_nas_curve")
    ]


def _node_boxes(fig) -> list[Any]:
    """Display bboxes of the node circles of a matplotlib cell drawing."""
    renderer = fig.canvas.get_renderer()
    return [
        patch.get_window_extent(renderer)
        for ax in fig.axes
        for patch in ax.patches
        if str(patch.get_gid()).startswith("node-")
    ]


def _place_labels(fig) -> None:
    """Moves each edge label along its edge (then a little off it) to the
    first spot that overlaps no node and no label placed before; if there is
    none, to the spot of least overlap. Freezes the layout afterwards so
    the saved picture keeps these positions."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    fig.canvas.draw()
    fig.set_layout_engine("none")
    renderer = fig.canvas.get_renderer()
    for ax in fig.axes:
        taken = [
            patch.get_window_extent(renderer)
            for patch in ax.patches
            if str(patch.get_gid()).startswith("node-")
        ]
        texts = [t for t in ax.texts if hasattr(t, "_keras_nas_curve")]
        for text in texts:
            curve = text._keras_nas_curve
            first = curve[3]
            ts = (first,) + tuple(t for t in _LABEL_TS if t != first)
            best, best_cost = None, math.inf
            height = text.get_window_extent(renderer).height + 2 * _PAD
            for shift in _LABEL_SHIFTS:
                for t in ts:
                    x, y = ax.transData.transform(_bezier(curve, t))
                    xy = ax.transData.inverted().transform(
                        (x, y + shift * height)
                    )
                    text.set_position(xy)
                    box = text.get_window_extent(renderer).padded(_PAD)
                    cost = sum(_overlap(box, other) for other in taken)
                    if cost < best_cost:
                        best, best_cost = (xy, box), cost
                    if cost == 0:
                        break
                if best_cost == 0:
                    break
            text.set_position(best[0])
            taken.append(best[1])


def _finish_axes(ax, positions, title):
    xs = [p[0] for p in positions.values()]
    ys = [p[1] for p in positions.values()]
    ax.set_xlim(min(xs) - 0.8, max(xs) + 0.8)
    ax.set_ylim(min(ys) - 1.0, max(ys) + 1.0)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title(title)


def _draw_cell(ax, pairs, concat, arity, title):
    num_nodes = len(pairs) // arity
    positions = {0: (0.0, 1.6), 1: (0.0, -1.6)}
    for i in range(num_nodes):
        positions[2 + i] = (2.0 + 1.8 * i, 0.9 if i % 2 == 0 else -0.9)
    out = (2.0 + 1.8 * num_nodes, 0.0)
    names = {0: "$c_{k-2}$", 1: "$c_{k-1}$"}
    names.update({2 + i: str(i) for i in range(num_nodes)})
    for k, (op, src) in enumerate(pairs):
        dst = 2 + k // arity
        node = pairs[(dst - 2) * arity : (dst - 1) * arity]
        twins = [j for j, p in enumerate(node) if p[1] == src]
        if len(twins) > 1:
            # Several ops between the same two nodes: fan them out.
            rad = 0.6 * (twins.index(k % arity) - (len(twins) - 1) / 2)
        else:
            rad = 0.15 if (dst + src) % 2 else -0.15
        _draw_edge(
            ax,
            positions[src],
            positions[dst],
            op,
            rad,
            gid="none-edge" if op == "none" else "op-edge",
            dashed=op == "none",
        )
    for node in concat:
        _draw_edge(ax, positions[node], out, "", 0.0, "concat-edge")
    for node, xy in positions.items():
        _draw_node(ax, xy, names[node], "input" if node < 2 else "node")
    _draw_node(ax, out, "$c_{k}$", "output")
    positions["out"] = out
    _finish_axes(ax, positions, title)


def _draw_nb201(ax, genotype, title):
    positions = {0: (0.0, 0.0), 1: (1.6, 1.2), 2: (3.2, -1.2), 3: (4.8, 0.0)}
    for to, frm, op in genotype.edges:
        # 0->2 bends below node 1, 1->3 above node 2, the rest are straight.
        rad = {(2, 0): 0.3, (3, 1): -0.3}.get((to, frm), 0.0)
        _draw_edge(
            ax,
            positions[frm],
            positions[to],
            op,
            rad,
            gid="none-edge" if op == "none" else "op-edge",
            dashed=op == "none",
            label_t=0.3 if (to, frm) == (2, 1) else 0.5,
        )
    for node, xy in positions.items():
        kind = "input" if node == 0 else "output" if node == 3 else "node"
        _draw_node(ax, xy, str(node), kind)
    _finish_axes(ax, positions, title)


_ENGINES = ("auto", "graphviz", "matplotlib")


def _graphviz_figure(genotype: Any):
    import io

    import numpy as np
    from PIL import Image

    panels = [
        (name, np.asarray(Image.open(io.BytesIO(png)).convert("RGB")))
        for name, png in _graphviz.cell_pngs(genotype)
    ]
    width = max(image.shape[1] for _, image in panels) / 100 + 0.4
    heights = [image.shape[0] / 100 + 0.45 for _, image in panels]
    fig = _figure((max(width, 4.0), sum(heights) + 0.4))
    axes = fig.subplots(len(panels), 1, squeeze=False, height_ratios=heights)
    for ax, (name, image) in zip(axes[:, 0], panels, strict=True):
        ax.imshow(image, interpolation="antialiased", gid="graphviz-cell")
        ax.axis("off")
        ax.set_title(name)
    return fig


def draw_genotype(
    genotype: Any,
    path: str | None = None,
    *,
    title: str | None = None,
    engine: str = "auto",
):
    """Draws a genotype's cells as graphs.

    A `Genotype` gives two panels, the normal and the reduction cell: input
    nodes `c_{k-2}` and `c_{k-1}` (outputs of the two previous cells),
    intermediate nodes `0..n-1` and the output `c_{k}`. Each `(op, input)`
    pair is an arrow labelled with its operation (`none` dotted); plain
    arrows go from the concatenated nodes to `c_{k}`. A
    `NasBench201Genotype` gives one panel with nodes 0-3 and its six edges.

    With pydot and graphviz installed (optional, as for
    `keras.utils.plot_model`: `pip install keras-nas[graphviz]` and the
    `graphviz` system package), graphviz's `dot` lays each cell out left
    to right and places the labels; each panel is then its picture (an
    image with the `gid` `"graphviz-cell"`). Otherwise matplotlib draws
    it: arrows carry the `gid` `"op-edge"`, `"none-edge"` or
    `"concat-edge"`, and each label sits on its arrow where it overlaps no
    other label and no node (moved along the arrow, then just off it,
    when arrows cross).

    Args:
        genotype: a `keras_nas.blocks.Genotype` or `NasBench201Genotype`.
        path: if given, the figure is saved there as a PNG.
        title: figure title.
        engine: `"auto"` (graphviz if available, else matplotlib),
            `"graphviz"` or `"matplotlib"`.

    Returns:
        The `matplotlib.figure.Figure`.

    Example:

    >>> from keras_nas.blocks import DARTS_V2
    >>> fig = draw_genotype(DARTS_V2)
    >>> len(fig.axes)
    2
    """
    if engine not in _ENGINES:
        raise ValueError(
            f"Expected `engine` to be one of {list(_ENGINES)}. "
            f"Received: engine={engine!r}"
        )
    if not isinstance(genotype, (Genotype, NasBench201Genotype)):
        raise ValueError(
            "Expected `genotype` to be a Genotype or NasBench201Genotype. "
            f"Received: genotype={genotype!r}"
        )
    if engine != "matplotlib" and _graphviz.available():
        engine = "graphviz"
    elif engine == "graphviz":
        raise ImportError(
            "draw_genotype(engine='graphviz') needs pydot (`pip install "
            "pydot`) and graphviz (https://graphviz.org/download/). "
            "Received: engine='graphviz'"
        )
    if engine == "graphviz":
        fig = _graphviz_figure(genotype)
    elif isinstance(genotype, NasBench201Genotype):
        fig = _figure((7.0, 3.6))
        _draw_nb201(fig.add_subplot(), genotype, "NAS-Bench-201 cell")
    elif isinstance(genotype, Genotype):
        width = 3.0 + 1.6 * max(genotype.num_nodes, genotype.num_reduce_nodes)
        fig = _figure((max(6.0, width), 7.0))
        axes = fig.subplots(2, 1)
        for ax, kind in zip(axes, ("normal", "reduce"), strict=True):
            pairs, concat = genotype.cell(kind)
            name = "Normal cell" if kind == "normal" else "Reduction cell"
            _draw_cell(ax, pairs, concat, genotype.arity, name)
    if title:
        fig.suptitle(title)
    if engine != "graphviz":
        _place_labels(fig)
    return _save(fig, path)
