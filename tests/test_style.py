"""House style: the code base passes ruff (rules and line length in
pyproject.toml)."""

import pathlib
import shutil
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_ruff_check_passes():
    if shutil.which("ruff") is None:
        pytest.fail("ruff is part of the `test` extra; install it")
    out = subprocess.run(
        ["ruff", "check", "--no-cache", "--output-format", "concise", "."],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_no_tensorflow_import_in_pure_python_modules():
    code = (
        "import sys, keras_nas.blocks.genotypes, keras_nas.blocks.registry;"
        "print(sorted(m for m in ('tensorflow', 'keras', 'jax')"
        " if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
