"""Every tutorial notebook runs top to bottom in the fast setting."""

import os
import resource
import time

import nbclient  # the `test` extra; a missing one must fail, not skip
import nbformat
import pytest

TUTORIALS = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tutorials"
)
NOTEBOOKS = sorted(
    f for f in os.listdir(TUTORIALS) if f[:2].isdigit() and f.endswith(".ipynb")
)


def test_every_listed_tutorial_exists():
    prefixes = {name[:2] for name in NOTEBOOKS}
    assert prefixes == {"01", "02", "03", "04", "05", "06", "07"}


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs_in_fast_mode(name, tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_NAS_FAST", "1")
    monkeypatch.setenv("KERAS_NAS_WORKDIR", str(tmp_path))
    monkeypatch.setenv("KERAS_BACKEND", "tensorflow")
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "3")
    nb = nbformat.read(os.path.join(TUTORIALS, name), as_version=4)
    first = nb.cells[0]
    assert first.cell_type == "markdown"
    assert "colab.research.google.com/github/" in first.source
    assert f"tutorials/{name}" in first.source
    assert "pip" in nb.cells[1].source
    client = nbclient.NotebookClient(
        nb,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": TUTORIALS}},
    )
    start = time.perf_counter()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    client.execute()  # raises CellExecutionError on any error
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = sum(
        getattr(after, f) - getattr(before, f) for f in ("ru_utime", "ru_stime")
    )
    print(f"{name}: {time.perf_counter() - start:.1f} s wall, {cpu:.1f} s CPU")
    errors = [
        out
        for cell in nb.cells
        if cell.cell_type == "code"
        for out in cell.get("outputs", [])
        if out.output_type == "error"
    ]
    assert not errors
    # Nothing is written into the repository.
    assert not os.path.exists(os.path.join(TUTORIALS, "keras_nas_work"))


def test_notebooks_match_their_generator():
    """The committed notebooks are what `tutorials/_build.py` writes."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "_build", os.path.join(TUTORIALS, "_build.py")
    )
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    for name in build.notebook_names():
        fresh = build.build(name)
        stored = nbformat.read(
            os.path.join(TUTORIALS, f"{name}.ipynb"), as_version=4
        )
        assert [c.source for c in stored.cells] == [
            c.source for c in fresh.cells
        ], f"{name}.ipynb is stale: run python tutorials/_build.py"
