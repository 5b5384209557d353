"""Times `import keras_nas` in fresh processes, interleaving source trees.

`import keras_nas` must stay cheap and free of Keras/TensorFlow (it
registers saved-model placeholders lazily, see `keras_nas._serializable`).
Each run is a new interpreter that times the import with
`time.perf_counter` and reports whether `keras` got imported; the trees
given are run in turn (A, B, A, B, ...) so that load on a shared machine
hits them alike.

Usage:

    python benchmarks/import_time.py --runs 20 PATH_A [PATH_B ...]

Each PATH is a directory holding a `keras_nas` package (e.g. a
`git archive` of another commit); it is put first on `PYTHONPATH` and the
process runs from a neutral directory.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile

CODE = (
    "import sys, time\n"
    "t = time.perf_counter()\n"
    "import keras_nas\n"
    "t = time.perf_counter() - t\n"
    "print(t * 1000, 'keras' in sys.modules, keras_nas.__file__)\n"
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="+")
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    times: dict[str, list[float]] = {p: [] for p in args.paths}
    keras_loaded: dict[str, bool] = {}
    with tempfile.TemporaryDirectory() as cwd:
        for _ in range(args.runs):
            for path in args.paths:
                env = dict(os.environ, PYTHONPATH=os.path.abspath(path))
                out = subprocess.run(
                    [sys.executable, "-c", CODE],
                    env=env,
                    cwd=cwd,
                    capture_output=True,
                    text=True,
                    check=True,
                ).stdout.split()
                times[path].append(float(out[0]))
                keras_loaded[path] = keras_loaded.get(path, False) or (
                    out[1] == "True"
                )
                assert out[2].startswith(os.path.abspath(path)), out[2]
    for path, values in times.items():
        print(
            f"{path}: import keras_nas median {statistics.median(values):.1f}"
            f" ms, min {min(values):.1f} ms over {len(values)} runs; "
            f"keras imported: {keras_loaded[path]}"
        )


if __name__ == "__main__":
    main()
