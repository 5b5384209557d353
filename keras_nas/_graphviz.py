"""Cells drawn by graphviz (`dot`) through pydot, when both are installed.

An optional path of `keras_nas.visualize.draw_genotype`, like
`keras.utils.plot_model`: graphviz lays the edge labels out without
overlaps, in the style of the DARTS paper's own figures (Liu et al., ICLR
2019). Neither pydot nor the graphviz binaries are dependencies of
keras-nas; `available()` says whether they can be used.
"""

from __future__ import annotations

from typing import Any

from keras_nas.blocks.genotypes import NasBench201Genotype

__all__ = ["available", "cell_pngs"]

_INPUT = "#a6cee3"
_NODE = "#fdbf6f"
_OUTPUT = "#b2df8a"


def available() -> bool:
    """Whether pydot imports and graphviz's `dot` runs (as keras checks)."""
    try:
        import pydot
    except ImportError:
        return False
    try:
        pydot.Dot.create(pydot.Dot())
    except Exception:  # noqa: BLE001 - any failure of `dot` means no.
        return False
    return True


def _graph():
    import pydot

    graph = pydot.Dot(graph_type="digraph", rankdir="LR", dpi=100)
    graph.set_node_defaults(
        style="rounded,filled",
        shape="box",
        height=0.3,
        width=0.3,
        fontname="DejaVu Sans",
        fontsize=11,
        penwidth=1.2,
    )
    graph.set_edge_defaults(fontname="DejaVu Sans", fontsize=9)
    return graph


def _node(graph, name: str, label: str, color: str) -> None:
    import pydot

    graph.add_node(pydot.Node(name, label=label, fillcolor=color))


def _edge(graph, src: str, dst: str, op: str) -> None:
    import pydot

    attrs: dict[str, Any] = {"label": f" {op} "} if op else {}
    if op == "none":
        attrs.update(style="dotted", color="gray50", fontcolor="gray40")
    graph.add_edge(pydot.Edge(src, dst, **attrs))


def _cell_graph(pairs, concat, arity: int):
    graph = _graph()
    _node(graph, "in0", "<c<SUB>k-2</SUB>>", _INPUT)
    _node(graph, "in1", "<c<SUB>k-1</SUB>>", _INPUT)
    num_nodes = len(pairs) // arity
    for i in range(num_nodes):
        _node(graph, f"n{i}", str(i), _NODE)
    _node(graph, "out", "<c<SUB>k</SUB>>", _OUTPUT)
    for k, (op, src) in enumerate(pairs):
        name = f"in{src}" if src < 2 else f"n{src - 2}"
        _edge(graph, name, f"n{k // arity}", op)
    for node in concat:
        _edge(graph, f"n{node - 2}", "out", "")
    return graph


def _nb201_graph(genotype):
    graph = _graph()
    for node in range(4):
        color = _INPUT if node == 0 else _OUTPUT if node == 3 else _NODE
        _node(graph, f"n{node}", str(node), color)
    for to, frm, op in genotype.edges:
        _edge(graph, f"n{frm}", f"n{to}", op)
    return graph


def cell_pngs(genotype: Any) -> list[tuple[str, bytes]]:
    """(title, PNG bytes) per cell of a `Genotype` or NB201 genotype."""
    if isinstance(genotype, NasBench201Genotype):
        graphs = [("NAS-Bench-201 cell", _nb201_graph(genotype))]
    else:
        graphs = []
        for kind in ("normal", "reduce"):
            pairs, concat = genotype.cell(kind)
            title = "Normal cell" if kind == "normal" else "Reduction cell"
            graphs.append((title, _cell_graph(pairs, concat, genotype.arity)))
    return [(title, graph.create_png()) for title, graph in graphs]
