"""`_jax_memory.compiles_released`: what JAX keeps of each compilation
besides its executable (the lowered MLIR module and its context) is given
back as the compilation ends, and nothing compiles twice.

In a process with the JAX backend: three shapes of one jitted function are
compiled without the release, then of another with it: without it one
MLIR context per shape stays alive; with it none of the new ones does (nor
the earlier ones: JAX's caches are the process's). Calling the function again
on the same shapes after the release compiles nothing and gives the same
values; the listener is gone after the context, also nested.
"""

import json
import textwrap

SCRIPT = textwrap.dedent(
    """
    import gc, json
    import jax, numpy as np
    from jax._src import monitoring
    from jax._src.lib.mlir import ir
    from keras_nas import _jax_memory

    compiles = []

    def count(event, duration, **kwargs):
        if event == _jax_memory._COMPILE_EVENT:
            compiles.append(event)

    jax.monitoring.register_event_duration_secs_listener(count)

    def contexts():
        gc.collect()
        return sum(isinstance(o, ir.Context) for o in gc.get_objects())

    def run(f, offset):
        return [np.asarray(f(np.full((2, n + offset), 1.0, np.float32)))
                for n in range(1, 4)]

    out = {}
    f = jax.jit(lambda x: x * 2.0 + 1.0)
    before = contexts()
    run(f, 0)
    out["kept_without"] = contexts() - before
    g = jax.jit(lambda x: x * 2.0 + 1.0)
    before = contexts()
    with _jax_memory.compiles_released():
        with _jax_memory.compiles_released():
            first = run(g, 10)
        out["listening_nested"] = (
            _jax_memory._on_event in monitoring.get_event_duration_listeners())
    out["kept_with"] = contexts() - before
    out["listening_after"] = (
        _jax_memory._on_event in monitoring.get_event_duration_listeners())
    compiles.clear()
    again = run(g, 10)
    out["recompiled"] = len(compiles)
    out["same"] = all(np.array_equal(a, b) for a, b in zip(first, again))
    out["values"] = float(again[0][0, 0])
    print("RESULT", json.dumps(out))
    """
)


def test_compiles_released(run_on_backend):
    stdout = run_on_backend(SCRIPT, "jax")
    line = [s for s in stdout.splitlines() if s.startswith("RESULT")][-1]
    r = json.loads(line.split(" ", 1)[1])
    assert r["kept_without"] >= 3, r
    assert r["kept_with"] <= 0, r
    assert r["listening_nested"] and not r["listening_after"], r
    assert r["recompiled"] == 0, r
    assert r["same"] and r["values"] == 3.0, r
