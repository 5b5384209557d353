"""Imports in keras_nas only point down: the layer table and its check.

`LAYERS` below is THE place that says which part of the package may import
which. A module may import modules of its own layer and of lower layers,
never of a higher one, and no modules import each other in a cycle, not even
through a function-level import. The test reads the source with `ast` (no
module is imported, so no TensorFlow) and sees:

- top-level and function-level `import` / `from ... import` statements,
  relative ones too; `from keras_nas.blocks import Genotype` counts as an
  import of the module that the lazy export table `_NAMES` of
  `keras_nas/blocks/__init__.py` names for `Genotype`;
- `importlib.import_module("keras_nas....")` with a literal name, and
  `backend_module("keras_nas.<package>", "_<name>", ...)`, which imports
  `<package>._<name>_tensorflow` or `_jax`;
- the lazy export tables (`_NAMES` in a subpackage's `__init__.py`): they
  must point down too (except `COMPAT_EXPORTS`), but they are not edges of
  the cycle check (a table entry runs only when the name is used).

Function-level imports are fine when they keep `import keras_nas` (or
another light module) from loading TensorFlow, Keras or keras-tuner; they
must still point down, like every other import.

A module's layer is the layer of its unit: the subpackage it is in
(`blocks`, `spaces`, ...) or, for a module directly in `keras_nas/`, the
module itself. A new top-level module needs a row here.
"""

from __future__ import annotations

import ast
import pathlib
from collections.abc import Iterable
from dataclasses import dataclass

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGE = "keras_nas"

# Lowest first. Each row: (layer name, units in it).
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    # The Python process's state (the garbage collector): imports nothing.
    ("process", ("_gc",)),
    (
        # Import no other keras_nas module but `_gc` (the root
        # `keras_nas/__init__.py` only `_serializable`; its export table
        # is lazy).
        "foundations",
        (
            PACKAGE,
            "_validation",
            "_backend",
            "_distribute_tensorflow",
            "_variables_jax",
            "_lazy",
            "_jax_state",
            "_jax_memory",
            "_serializable",
            "_metric_names",
            "_hp_values",
            "_size_checks",
        ),
    ),
    # Keras layers, genotypes and the op registry: usable without a search.
    ("blocks", ("blocks",)),
    (
        # Data loading, pictures, TensorBoard and architecture encodings:
        # they read genotypes, never spaces or searches.
        "data and reports",
        (
            "_data_checks",
            "_graph_data",
            "data",
            "_graphviz",
            "visualize",
            "_tensorboard_read",
            "tensorboard",
            "predictors",
        ),
    ),
    # The GAN training model, its per-backend steps and the FID metric.
    ("gan", ("gan",)),
    # keras-tuner HyperModels over the blocks.
    ("spaces", ("spaces",)),
    # Ways to score a candidate; supernets; tabular benchmarks.
    ("estimation and supernets", ("estimation", "supernet", "benchmarks")),
    # Oracles and tuners.
    ("tuners", ("tuners",)),
    (
        # What a person runs: the CLI, its project directory, tutorials.
        "applications",
        (
            "tutorial",
            "_project",
            "_doctor",
            "_cli_env",
            "_cli_progress",
            "_cli_devices",
            "_cli_show",
            "_cli_export",
            "_cli_doctor",
            "_cli_args",
            "_cli_tuners",
            "_cli_results",
            "_cli_search",
            "cli",
            "__main__",
        ),
    ),
)

# Known upward imports or cycles, as (importer, imported) module pairs; the
# test fails once a pair no longer occurs, so the list only shrinks. Empty
# since the supernet split (issue 14); keep it empty.
SUPERNET_PENDING: frozenset[tuple[str, str]] = frozenset()

# Lazy export table entries kept for compatibility although they point up:
# (package, name). `keras_nas.blocks.GAN` predates `keras_nas.gan`.
COMPAT_EXPORTS: frozenset[tuple[str, str]] = frozenset(
    {
        ("keras_nas.blocks", "GAN"),
        ("keras_nas.blocks", "GanOptimizer"),
    }
)

BACKENDS = ("tensorflow", "jax")


@dataclass(frozen=True)
class Edge:
    importer: str
    imported: str
    path: str  # relative to the repository root
    line: int
    kind: str  # "top", "function", "dynamic" or "lazy"
    name: str = ""  # for "lazy": the exported name

    def where(self) -> str:
        return f"{self.path}:{self.line}"


def _modules(root: pathlib.Path, package: str) -> dict[str, pathlib.Path]:
    out = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _is_package(path: pathlib.Path) -> bool:
    return path.name == "__init__.py"


def _str_dict(tree: ast.Module, name: str) -> dict[str, tuple[str, int]]:
    """Module-level `name = {"key": "value", ...}` -> {key: (value, line)}."""
    for node in tree.body:
        if (
            isinstance(node, (ast.Assign, ast.AnnAssign))
            and any(
                isinstance(t, ast.Name) and t.id == name
                for t in (
                    node.targets if isinstance(node, ast.Assign)
                    else [node.target]
                )
            )
            and isinstance(node.value, ast.Dict)
        ):
            return {
                k.value: (v.value, v.lineno)
                for k, v in zip(node.value.keys, node.value.values, strict=True)
                if isinstance(k, ast.Constant) and isinstance(v, ast.Constant)
            }
    return {}


def _str_tuple(tree: ast.Module, name: str) -> tuple[str, ...]:
    for node in tree.body:
        if (
            isinstance(node, ast.Assign)
            and any(isinstance(t, ast.Name) and t.id == name
                    for t in node.targets)
            and isinstance(node.value, (ast.Tuple, ast.List))
        ):
            return tuple(
                e.value for e in node.value.elts if isinstance(e, ast.Constant)
            )
    return ()


class ImportGraph:
    """The keras_nas imports of every module of `package` under `root`."""

    def __init__(self, root: pathlib.Path, package: str = PACKAGE):
        self.root = root
        self.package = package
        self.paths = _modules(root, package)
        self.trees = {
            m: ast.parse(p.read_text(encoding="utf-8"), str(p))
            for m, p in self.paths.items()
        }
        self.exports = self._export_tables()
        self.edges: list[Edge] = []
        for module in self.paths:
            self.edges.extend(self._module_edges(module))

    # -- export tables -----------------------------------------------------

    def _export_tables(self) -> dict[str, dict[str, tuple[str, int]]]:
        tables = {}
        for module, tree in self.trees.items():
            if not _is_package(self.paths[module]):
                continue
            table = {}
            for name, (target, line) in _str_dict(tree, "_NAMES").items():
                if target.startswith("."):
                    target = module + target
                table[name] = (target, line)
            tables[module] = table
        root = self.trees.get(self.package)
        if root is not None:  # `keras_nas/__init__.py`: re-exports all.
            table = {
                name: (f"{self.package}.{target}", line)
                for name, (target, line) in _str_dict(
                    root, "_TOP_LEVEL"
                ).items()
            }
            for sub in _str_tuple(root, "_SUBPACKAGES"):
                for name, value in tables.get(
                    f"{self.package}.{sub}", {}
                ).items():
                    table.setdefault(name, value)
            tables[self.package] = {**tables.get(self.package, {}), **table}
        return tables

    # -- edges -------------------------------------------------------------

    def _ours(self, name: str) -> bool:
        return name == self.package or name.startswith(self.package + ".")

    def _target(self, module: str, name: str | None = None) -> str:
        """What `from module import name` (or `import module`) loads."""
        if name is not None:
            if f"{module}.{name}" in self.paths:
                return f"{module}.{name}"
            if name in self.exports.get(module, {}):
                return self.exports[module][name][0]
        return module

    def _base(self, module: str, level: int) -> str:
        parts = module.split(".")
        if not _is_package(self.paths[module]):
            parts = parts[:-1]
        return ".".join(parts[: len(parts) - (level - 1)])

    def _statement_targets(self, module: str, node: ast.AST) -> list[str]:
        if isinstance(node, ast.Import):
            return [a.name for a in node.names if self._ours(a.name)]
        assert isinstance(node, ast.ImportFrom)
        source = node.module or ""
        if node.level:
            base = self._base(module, node.level)
            source = f"{base}.{source}" if source else base
        if not self._ours(source):
            return []
        return [self._target(source, a.name) for a in node.names]

    def _call_targets(self, node: ast.Call) -> list[str]:
        func = node.func
        fname = (
            func.attr if isinstance(func, ast.Attribute)
            else func.id if isinstance(func, ast.Name) else ""
        )
        args = [
            a.value if isinstance(a, ast.Constant) and isinstance(a.value, str)
            else None
            for a in node.args
        ]
        if fname == "import_module" and args and args[0]:
            name = args[0]
            if name.startswith(".") and len(args) > 1 and args[1]:
                name = args[1] + name
            return [name] if self._ours(name) else []
        if fname == "backend_module" and len(args) >= 2 and all(args[:2]):
            return [
                f"{args[0]}.{args[1]}_{b}"
                for b in BACKENDS
                if f"{args[0]}.{args[1]}_{b}" in self.paths
            ]
        return []

    def _module_edges(self, module: str) -> Iterable[Edge]:
        path = str(self.paths[module].relative_to(self.root))
        tree = self.trees[module]
        in_function = set()
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef,
                                 ast.Lambda)):
                in_function.update(id(n) for n in ast.walk(node))
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                kind = "function" if id(node) in in_function else "top"
                targets = self._statement_targets(module, node)
            elif isinstance(node, ast.Call):
                kind, targets = "dynamic", self._call_targets(node)
            else:
                continue
            for target in targets:
                if target != module:
                    yield Edge(module, target, path, node.lineno, kind)
        if module != self.package:
            for name, (target, line) in self.exports.get(module, {}).items():
                yield Edge(module, target, path, line, "lazy", name)

    # -- checks ------------------------------------------------------------

    def unit(self, module: str) -> str:
        parts = module.split(".")
        return parts[1] if len(parts) > 1 else parts[0]

    def layer(self, module: str) -> int | None:
        unit = self.unit(module)
        for i, (_, units) in enumerate(LAYERS):
            if unit in units:
                return i
        return None

    def import_edges(self, allowed=frozenset()) -> list[Edge]:
        """Edges that run at import or call time (not the export tables)."""
        return [
            e for e in self.edges
            if e.kind != "lazy" and (e.importer, e.imported) not in allowed
        ]

    def upward(self, allowed=frozenset(), compat=frozenset()) -> list[str]:
        out = []
        for e in self.edges:
            if (e.importer, e.imported) in allowed or (
                e.kind == "lazy" and (e.importer, e.name) in compat
            ):
                continue
            low, high = self.layer(e.importer), self.layer(e.imported)
            if low is not None and high is not None and high > low:
                out.append(
                    f"{e.where()}: {e.importer} ({LAYERS[low][0]}) imports "
                    f"{e.imported} ({LAYERS[high][0]}), a higher layer "
                    f"[{e.kind}]"
                )
        return out

    def cycles(self, allowed=frozenset(), by_unit=False) -> list[str]:
        """One line per strongly connected component, with its edges."""
        key = self.unit if by_unit else (lambda m: m)
        graph: dict[str, dict[str, list[Edge]]] = {}
        for e in self.import_edges(allowed):
            a, b = key(e.importer), key(e.imported)
            if a != b:
                graph.setdefault(a, {}).setdefault(b, []).append(e)
        out = []
        for scc in _strongly_connected(graph):
            inside = [
                edge
                for a in sorted(scc)
                for b, edges in sorted(graph.get(a, {}).items())
                if b in scc
                for edge in edges[:1]
            ]
            out.append(
                " <-> ".join(sorted(scc)) + ": " + "; ".join(
                    f"{e.where()} {e.importer} -> {e.imported} [{e.kind}]"
                    for e in inside
                )
            )
        return out


def _strongly_connected(graph: dict[str, dict]) -> list[set[str]]:
    """Tarjan's algorithm; components of more than one node."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, {}):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            scc = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                scc.add(w)
                if w == v:
                    break
            if len(scc) > 1:
                out.append(scc)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


_GRAPH = None


def _graph() -> ImportGraph:
    global _GRAPH
    if _GRAPH is None:
        _GRAPH = ImportGraph(ROOT)
    return _GRAPH


def test_every_module_has_a_layer():
    graph = _graph()
    missing = sorted(m for m in graph.paths if graph.layer(m) is None)
    assert not missing, (
        "Add these modules' units to LAYERS in tests/test_import_layers.py: "
        f"{missing}"
    )
    units = [u for _, row in LAYERS for u in row]
    assert len(units) == len(set(units)), "A unit is in two layers."


def test_imports_point_down():
    problems = _graph().upward(SUPERNET_PENDING, COMPAT_EXPORTS)
    assert not problems, "Upward imports:\n" + "\n".join(problems)


def test_no_import_cycles():
    graph = _graph()
    problems = graph.cycles(SUPERNET_PENDING) + [
        "(units) " + line
        for line in graph.cycles(SUPERNET_PENDING, by_unit=True)
    ]
    assert not problems, "Import cycles:\n" + "\n".join(problems)


def test_allowlists_are_still_needed():
    graph = _graph()
    pairs = {(e.importer, e.imported) for e in graph.edges}
    stale = sorted(SUPERNET_PENDING - pairs)
    assert not stale, f"Remove from SUPERNET_PENDING: {stale}"
    for package, name in COMPAT_EXPORTS:
        assert name in graph.exports.get(package, {}), (package, name)


def _write(root: pathlib.Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_the_check_sees_hidden_cycles_and_upward_imports(tmp_path):
    # `blocks` (layer 1) imports `tuners` (layer 6) inside a function, the
    # tuners import blocks at the top: one upward import, one cycle, even
    # through the lazy table and a relative import.
    _write(
        tmp_path,
        {
            "keras_nas/__init__.py": "",
            "keras_nas/blocks/__init__.py": (
                "_NAMES = {'Cell': '.cells'}\n"
            ),
            "keras_nas/blocks/cells.py": (
                "def f():\n    from keras_nas.tuners import base\n"
            ),
            "keras_nas/tuners/__init__.py": "",
            "keras_nas/tuners/base.py": "from keras_nas.blocks import Cell\n",
            "keras_nas/tuners/other.py": (
                "import importlib\nfrom . import base\n"
                "importlib.import_module('keras_nas.blocks.cells')\n"
            ),
        },
    )
    graph = ImportGraph(tmp_path)
    assert graph.upward() == [
        "keras_nas/blocks/cells.py:2: keras_nas.blocks.cells (blocks) "
        "imports keras_nas.tuners.base (tuners), a higher layer [function]"
    ]
    assert graph.cycles() == [
        "keras_nas.blocks.cells <-> keras_nas.tuners.base: "
        "keras_nas/blocks/cells.py:2 keras_nas.blocks.cells -> "
        "keras_nas.tuners.base [function]; "
        "keras_nas/tuners/base.py:1 keras_nas.tuners.base -> "
        "keras_nas.blocks.cells [top]"
    ]
    assert len(graph.cycles(by_unit=True)) == 1
    kinds = {(e.importer, e.imported, e.kind) for e in graph.edges}
    assert ("keras_nas.tuners.other", "keras_nas.tuners.base", "top") in kinds
    assert (
        "keras_nas.tuners.other", "keras_nas.blocks.cells", "dynamic"
    ) in kinds
    assert ("keras_nas.blocks", "keras_nas.blocks.cells", "lazy") in kinds


def function_level_imports(graph: ImportGraph) -> list[Edge]:
    """Function-level import statements of keras_nas modules (for reports)."""
    seen = {}
    for e in graph.edges:
        if e.kind == "function":
            seen.setdefault((e.path, e.line), e)
    return sorted(seen.values(), key=lambda e: (e.path, e.line))


if __name__ == "__main__":  # python tests/test_import_layers.py: a report
    g = _graph()
    fl = function_level_imports(g)
    print(f"{len(fl)} function-level import statements of keras_nas modules")
    for e in fl:
        print(f"  {e.where()} {e.importer} -> {e.imported}")
    print("upward (without allowlists):", *g.upward(), sep="\n  ")
    print("cycles (without allowlists):", *g.cycles(), sep="\n  ")
    print("unit cycles:", *g.cycles(by_unit=True), sep="\n  ")
