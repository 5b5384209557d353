"""Generates the tutorial notebooks from the cell sources in `_cells/`.

The notebooks are written by this script so that changes are reviewable as
plain Python. Usage, from the repository root:

    python tutorials/_build.py                 # write all notebooks
    python tutorials/_build.py 02 06           # only those
    python tutorials/_build.py --execute 02    # write, then run and store
                                               # the outputs (FAST mode)

Each notebook is a module `tutorials/_cells/NN_name.py` holding `TITLE`,
`INTRO` (markdown) and `CELLS`, a list of `("md", text)` / `("code", text)`
pairs. The header (Colab badge, install cell) is added here.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import tempfile
import textwrap
import time

import nbformat

HERE = os.path.dirname(os.path.abspath(__file__))
CELLS_DIR = os.path.join(HERE, "_cells")
ORG = "keras-nas"
REPO_URL = f"https://github.com/{ORG}/keras-nas"
COLAB = (
    "https://colab.research.google.com/github/{org}/keras-nas/blob/main/"
    "tutorials/{name}.ipynb"
)
BADGE = "https://colab.research.google.com/assets/colab-badge.svg"

INSTALL = f"""\
# Install keras-nas from its repository, unless it is already importable
# (as when the notebook runs inside a checkout).
import importlib.util
import subprocess
import sys

if importlib.util.find_spec("keras_nas") is None:
    subprocess.check_call(
        [sys.executable, "-m", "pip", "install", "-q",
         "git+{REPO_URL}"]
    )"""

FAST_NOTE = """\
**Budget.** Every size below (epochs, trials, data) is picked by
`keras_nas.tutorial.tutorial_settings`: the first value of each pair is for a
GPU runtime (Colab), the second for the fast setting `KERAS_NAS_FAST=1`, with
which CI runs this notebook on CPU in under a minute. The outputs stored in
this notebook come from the fast setting on a 2-core CPU, so scores are those
of tiny searches on small data."""


def notebook_names() -> list[str]:
    return sorted(
        f[:-3]
        for f in os.listdir(CELLS_DIR)
        if f[:2].isdigit() and f.endswith(".py")
    )


def _load(name: str):
    path = os.path.join(CELLS_DIR, f"{name}.py")
    spec = importlib.util.spec_from_file_location(f"_cells_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _text(source: str) -> str:
    return textwrap.dedent(source).strip("\n")


def build(name: str) -> nbformat.NotebookNode:
    """Builds the (unexecuted) notebook `name`, e.g. `"02_blocks"`."""
    module = _load(name)
    link = COLAB.format(org=ORG, name=name)
    header = (
        f"# {module.TITLE}\n\n"
        f"[![Open In Colab]({BADGE})]({link})\n\n"
        f"{_text(module.INTRO)}"
    )
    cells = [
        nbformat.v4.new_markdown_cell(header),
        nbformat.v4.new_code_cell(INSTALL),
        nbformat.v4.new_markdown_cell(FAST_NOTE),
    ]
    for kind, source in module.CELLS:
        source = _text(source)
        if kind == "md":
            cells.append(nbformat.v4.new_markdown_cell(source))
        elif kind == "code":
            cells.append(nbformat.v4.new_code_cell(source))
        else:
            raise ValueError(f"Unknown cell kind {kind!r} in {name}")
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nb.metadata["language_info"] = {"name": "python"}
    nb.metadata["accelerator"] = "GPU"
    nb.metadata["colab"] = {"provenance": [], "gpuType": "T4"}
    # Stable cell ids keep diffs small between regenerations.
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"{name[:2]}-{i:02d}"
    return nb


# Start-up chatter of TensorFlow's C++ logging on a machine without a GPU;
# not part of what the tutorial shows.
_NOISE = (
    "WARNING: All log messages before absl::InitializeLog()",
    "I0000 ",
    "E0000 ",
    "W0000 ",
    "To enable the following instructions",
    "Kernel is running over TCP",
)


def strip_noise(nb: nbformat.NotebookNode) -> None:
    """Drops TensorFlow's start-up log lines from the stored outputs."""
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        kept = []
        for out in cell.get("outputs", []):
            if out.output_type == "stream":
                lines = out.text.splitlines(keepends=True)
                lines = [x for x in lines if not x.startswith(_NOISE)]
                out.text = "".join(lines)
                if not out.text.strip():
                    continue
            kept.append(out)
        cell.outputs = kept


def execute(
    nb: nbformat.NotebookNode, workdir: str, timeout: int = 900
) -> tuple[float, float]:
    """Runs `nb` in place with the fast setting.

    Returns:
        The wall time and the CPU time of the kernel, in seconds.
    """
    import resource

    from nbclient import NotebookClient

    env_before = dict(os.environ)
    os.environ["KERAS_NAS_FAST"] = os.environ.get("KERAS_NAS_FAST", "1")
    os.environ["KERAS_NAS_WORKDIR"] = workdir
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    try:
        client = NotebookClient(
            nb,
            timeout=timeout,
            kernel_name="python3",
            resources={"metadata": {"path": HERE}},
        )
        start = time.perf_counter()
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        client.execute()
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime + after.ru_stime) - (
            before.ru_utime + before.ru_stime
        )
        strip_noise(nb)
        return time.perf_counter() - start, cpu
    finally:
        os.environ.clear()
        os.environ.update(env_before)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="notebook prefixes")
    parser.add_argument("--execute", action="store_true")
    args = parser.parse_args(argv)
    names = notebook_names()
    if args.names:
        names = [n for n in names if any(n.startswith(p) for p in args.names)]
    for name in names:
        nb = build(name)
        if args.execute:
            with tempfile.TemporaryDirectory() as workdir:
                wall, cpu = execute(nb, workdir)
            print(f"{name}: executed in {wall:.1f} s wall, {cpu:.1f} s CPU")
        path = os.path.join(HERE, f"{name}.ipynb")
        nbformat.validate(nb)
        nbformat.write(nb, path)
        print(f"wrote {os.path.relpath(path)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
