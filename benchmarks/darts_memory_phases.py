"""Where a DARTS step's resident memory goes, phase by phase.

Builds the micro configuration's `DartsSupernet` (benchmarks/darts_step.py)
and runs `--fits` one-step `fit` calls, sampling the resident memory
(/proc/self/statm) every 20 ms on a thread. At every phase's end (built;
on TensorFlow graph mode, the end of the step's trace; each `fit`) it
prints, above what the process held after the imports and the data:

- the resident memory at the end and its peak during the phase;
- glibc's heaps (`malloc_info`): per arena its size, the bytes in use and
  the free bytes it keeps (the main arena is nr 0; the others belong to
  threads: an arena's free bytes serve only the threads bound to it);
  the bytes in directly mapped chunks;
- on TensorFlow, the peak bytes of its CPU allocator (`get_memory_info`:
  with oneDNN on, the BFC pool of the tensors of 256 KiB and more, which
  keeps its regions);
- the threads by name.

Usage:

    KERAS_BACKEND=tensorflow python benchmarks/darts_memory_phases.py
    KERAS_BACKEND=jax python benchmarks/darts_memory_phases.py

glibc only (Linux); elsewhere the heap columns are left out.
"""

import argparse
import collections
import ctypes
import os
import re
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from darts_step import (  # noqa: E402
    CONFIGS,
    build_supernet,
    random_search_data,
    seed_everything,
)

MIB = 2.0**20


def _rss_mib():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / MIB


def _heaps():
    """[(arena nr, size, in use, free)] in MiB and the mapped chunks' MiB
    (glibc's `malloc_info`), or None without glibc."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return None
    libc.fopen.restype = ctypes.c_void_p
    with tempfile.NamedTemporaryFile(suffix=".xml") as tmp:
        fp = ctypes.c_void_p(libc.fopen(tmp.name.encode(), b"w"))
        libc.malloc_info(0, fp)
        libc.fclose(fp)
        xml = open(tmp.name).read()
    rows = []
    for nr, body in re.findall(r'<heap nr="(\d+)">(.*?)</heap>', xml, re.S):
        free = sum(
            int(s)
            for s in re.findall(
                r'<total type="(?:fast|rest)" count="\d+" size="(\d+)"', body
            )
        )
        size = int(re.search(r'<system type="current" size="(\d+)"', body)[1])
        rows.append((int(nr), size / MIB, (size - free) / MIB, free / MIB))
    mapped = re.search(r'<total type="mmap" count="\d+" size="(\d+)"', xml)
    return rows, int(mapped[1]) / MIB


class Phases:
    """Samples the resident memory; `mark(name)` ends a phase."""

    def __init__(self, tensorflow):
        self.tensorflow = tensorflow
        self.samples = []
        self.marks = []
        self.heaps = {}
        self.stop = False
        self.mark("imported")
        threading.Thread(target=self._sample, daemon=True).start()

    def _sample(self):
        while not self.stop:
            self.samples.append((time.perf_counter(), _rss_mib()))
            time.sleep(0.02)

    def mark(self, name):
        now, rss = time.perf_counter(), _rss_mib()
        base = self.marks[0][2] if self.marks else rss
        if not self.marks:
            print(f"{name:>12}: the baseline ({rss:.0f} MiB resident)")
        else:
            t0 = self.marks[-1][0]
            seg = [r for t, r in self.samples if t >= t0] + [rss]
            print(
                f"{name:>12}: {now - t0:7.2f} s, end {rss - base:6.0f}, "
                f"peak {max(seg) - base:6.0f} MiB above the imports"
            )
        self.marks.append((now, name, rss))
        heaps = _heaps()
        if heaps is not None:
            rows, mapped = heaps
            self.heaps[name] = rows
            main = {r[0]: r for r in self.heaps["imported"]}.get(0)
            cells = []
            for nr, size, used, free in rows:
                if size < 2:
                    continue
                if nr == 0 and main is not None:
                    size, used = size - main[1], used - main[2]
                cells.append(f"#{nr} {size:.0f}/{used:.0f}/{free:.0f}")
            print(
                "              arenas (size/in use/free MiB; #0 above the "
                f"imports): {', '.join(cells)}; mapped chunks {mapped:.0f}"
            )
        if self.tensorflow:
            import tensorflow as tf

            info = tf.config.experimental.get_memory_info("CPU:0")
            print(
                "              TensorFlow CPU allocator peak "
                f"{info['peak'] / MIB:.1f} MiB"
            )
        names = collections.Counter()
        for tid in os.listdir("/proc/self/task"):
            with open(f"/proc/self/task/{tid}/comm") as f:
                names[f.read().strip()] += 1
        print(f"              threads {dict(names)}", flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", choices=sorted(CONFIGS), default="micro")
    p.add_argument("--order", type=int, default=1)
    p.add_argument("--fits", type=int, default=4, help="one-step fits")
    p.add_argument("--eager", action="store_true", help="TensorFlow eager")
    args = p.parse_args()
    import keras

    tensorflow = keras.backend.backend() == "tensorflow"
    cfg = dict(CONFIGS[args.config])
    seed_everything(0)
    data = random_search_data(cfg, args.fits)
    phases = Phases(tensorflow)
    model = build_supernet(
        cfg,
        args.order,
        jit_compile=not tensorflow,
        run_eagerly=args.eager,
    )
    phases.mark("built")
    if tensorflow and not args.eager:
        train_step = model.train_step

        def traced(data):  # called once, by the trace
            outputs = train_step(data)
            phases.mark("traced")
            return outputs

        model.train_step = traced
    for i in range(args.fits):
        model.fit(data, epochs=1, steps_per_epoch=1, verbose=0)
        phases.mark(f"fit {i + 1}")
    phases.stop = True


if __name__ == "__main__":
    main()
