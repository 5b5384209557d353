"""The JAX DARTS step compiled piecewise equals the whole jitted step.

`_darts_jax.py` runs a compiled `fit` step in Python on separately jitted
pieces (each kind of edge's forward and backward pass, the optimizers'
updates, the metrics) instead of one jitted step. In a subprocess
(`KERAS_BACKEND=jax`): a 2-cell supernet (3 kinds of edge, 10 edges) takes
two first-order and two second-order steps both ways from the same initial
weights, then `evaluate`s; weights, alphas, batch-norm statistics and
metrics agree to 1e-5 (float32 rounding of differently fused XLA
computations; the steps move weights by ~0.01 or more). The piecewise step
compiles one forward pass per kind of edge (the alpha pass runs the weights
pass's) and one per kind of cell preprocessing layer and stem layer, for
both orders, not one per edge or layer, its second step compiles nothing,
and `TorchSGD`'s update runs one call per layer (`_weight_update_jax`).
"""

import json
import textwrap

TOLERANCE = 1e-5

SCRIPT = textwrap.dedent(
    """
    import gc, json, logging, re, weakref
    import jax, keras, numpy as np
    from keras_nas.supernet import _darts_graph, _darts_jax
    from keras_nas.supernet.darts import DartsSupernet, SearchData

    compiled = []

    class Log(logging.Handler):
        def emit(self, record):
            found = re.search(r"Finished XLA compilation of (\\S+)",
                              record.getMessage())
            if found:
                compiled.append(found.group(1))

    jax.config.update("jax_log_compiles", True)
    logging.getLogger("jax").addHandler(Log())
    def kinds():
        # The piecewise training step's kinds of edge and of layer.
        keys = [k for k in _darts_graph._FUNCTIONS
                if k.piecewise and k.training]
        edges = sum(k.op_weights_shape is not None for k in keys)
        return edges, len(keys) - edges

    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 8, 8, 3)).astype("float32")
    y = rng.integers(0, 10, 16).astype("int32")
    data = SearchData((x[:8], y[:8]), (x[8:], y[8:]), 8, shuffle=False)
    out, pieced = {}, []
    for order in (1, 2):
        runs = {}
        for piecewise in (True, False):
            _darts_jax.PIECEWISE = piecewise
            keras.utils.set_random_seed(0)
            m = DartsSupernet((8, 8, 3), 10, filters=2, num_cells=2,
                              num_nodes=2, order=order, seed=0)
            m.compile(decay_steps=10)
            start = [np.asarray(v.value) for v in m.weights]
            compiled.clear()
            m.fit(data, epochs=1, verbose=0)
            first = list(compiled)
            compiled.clear()
            m.fit(data, epochs=1, verbose=0)
            second = list(compiled)
            logs = m.evaluate(x[:8], y[:8], verbose=0, return_dict=True)
            if piecewise:
                pieced.append(weakref.ref(m))
            runs[piecewise] = dict(
                weights=[np.asarray(v.value) for v in m.weights],
                start=start, logs=logs,
                forwards=sum(n == "jit(forward)" for n in first),
                compiled=len(first),
                pieces=sum(n in ("jit(forward)", "jit(<lambda>)")
                           for n in first),
                kinds=kinds(),
                second=len(second),
                # TorchSGD's step one call per layer (_weight_update_jax).
                per_layer=_darts_jax._PLANS.get(m, (0, 0, None))[2] is not None,
            )
        a, b = runs[True], runs[False]
        out[order] = dict(
            max_diff=max(float(np.abs(p - q).max())
                         for p, q in zip(a["weights"], b["weights"])),
            max_change=max(float(np.abs(p - q).max())
                           for p, q in zip(a["weights"], a["start"])),
            logs_diff=max(abs(a["logs"][k] - b["logs"][k])
                          for k in b["logs"]),
            forwards=a["forwards"], second=a["second"],
            compiled=a["compiled"], pieces=a["pieces"], kinds=a["kinds"],
            per_layer=a["per_layer"],
        )
    del m
    gc.collect()
    # The pieces' per-model caches hold the models weakly.
    out["collected"] = [r() is None for r in pieced]
    print("RESULT", json.dumps(out))
    """
)


def test_piecewise_step_equals_whole_step(run_on_backend):
    stdout = run_on_backend(SCRIPT, "jax", timeout=600)
    line = [s for s in stdout.splitlines() if s.startswith("RESULT")][-1]
    result = json.loads(line.split(" ", 1)[1])
    for order in ("1", "2"):
        r = result[order]
        assert r["max_change"] > 1e-3, r
        assert r["max_diff"] <= TOLERANCE, r
        assert r["logs_diff"] <= TOLERANCE, r
        # 10 edges of 3 kinds, 4 preprocessing layers of 3 kinds and the
        # stem's 2 layers: one forward per kind (the alpha pass runs the
        # weights pass's, `SHARED_FORWARD`; the second order's model may
        # reuse the first's: none then).
        edges, layers = r["kinds"]
        assert r["forwards"] <= edges + layers, r
        assert r["second"] == 0, r
        assert r["per_layer"], r
    edges, layers = result["1"]["kinds"]
    # 3 kinds of preprocessing, the stem's convolution and batch norm.
    assert (edges, layers) == (3, 5), result
    assert result["collected"] == [True, True], result
    assert result["1"]["forwards"] == edges + layers, result
