"""LatencyTable: measuring, saving, predicting, differentiating, and the
`predicted_latency` metric of HardwareAware."""

import json

import keras
import numpy as np
import pytest
from _latency_testing import fake_table, tiny_space

from keras_nas.estimation import HardwareAware, LatencyTable
from keras_nas.estimation.latency_table import STATISTICS


def test_measure_save_load_and_resume(tmp_path):
    space = tiny_space()
    measured = []
    table = LatencyTable.measure(
        space, path=tmp_path, runs=2, warmup=0, repeats=1,
        on_part=lambda key, stats: measured.append(key),
    )  # fmt: skip
    keys = set(space.latency_layout()["models"])
    # Call cost, stem, head, and the two ops of (8x8x8, stride 1) and of
    # (8x8x8 -> 16, stride 2): equal blocks share an entry.
    assert set(measured) == keys == set(table.entries)
    assert len(keys) == 3 + 2 + 2
    assert all(v["median_ms"] > 0 for v in table.entries.values())
    file = tmp_path / "latency_table.json"
    loaded = LatencyTable.load(tmp_path)
    assert loaded.entries == table.entries
    assert loaded.settings["runs"] == 2
    # Measuring again with the same file measures nothing.
    measured.clear()
    LatencyTable.measure(
        space, path=file, runs=2, warmup=0, repeats=1,
        on_part=lambda key, stats: measured.append(key),
    )  # fmt: skip
    assert measured == []
    # Other settings: a clear error, and the file is left as it was.
    before = file.read_text()
    with pytest.raises(ValueError, match="same settings"):
        LatencyTable.measure(space, path=file, runs=3, warmup=0, repeats=1)
    assert file.read_text() == before
    file.write_text("{not json")
    with pytest.raises(ValueError, match="readable JSON"):
        LatencyTable.load(file)
    with pytest.raises(ValueError, match="latency_layout"):
        LatencyTable.measure(object())


def test_prediction_is_call_cost_plus_parts():
    space = tiny_space()
    table = fake_table(space)
    layout = table.layout
    call, stem, head = (table.entries[k]["median_ms"] for k in layout["fixed"])
    ops = ("mbconv_5x5_e3", "zero", "mbconv_3x3_e3")
    blocks = layout["blocks"]
    keys = [b["choices"][op] for b, op in zip(blocks, ops, strict=True)]
    assert keys[1] is None  # a skipped block costs nothing
    expected = call + (stem - call) + (head - call)
    expected += sum(table.entries[k]["median_ms"] - call for k in keys if k)
    assert table.predict(ops) == pytest.approx(expected)
    assert table.fixed_latency() == pytest.approx(stem + head - call)
    assert table.predict(ops, "min_ms") == pytest.approx(expected / 2)
    # From a built network (skipped blocks have no layer).
    model = space.build_network(ops)
    assert table.architecture_of(model) == ops
    assert table.predict_model(model) == pytest.approx(expected)
    with pytest.raises(ValueError, match="one of"):
        table.predict(("zero",) * 3)
    with pytest.raises(ValueError, match="statistic"):
        table.predict(ops, "max_ms")
    # JSON round trip.
    again = LatencyTable.from_dict(json.loads(json.dumps(table.to_dict())))
    assert again.predict(ops) == table.predict(ops)
    with pytest.raises(ValueError, match="Received: entries"):
        LatencyTable(layout, {"k": {"median_ms": -1.0}})


def test_expected_latency_is_differentiable():
    space = tiny_space()
    table = fake_table(space)
    ops = ("mbconv_5x5_e3", "zero", "mbconv_3x3_e3")
    one_hot = [
        np.asarray([c == op for c in b.choices], "float32")
        for b, op in zip(space.blocks, ops, strict=True)
    ]
    value = table.expected_latency(one_hot)
    assert float(value) == pytest.approx(table.predict(ops), rel=1e-6)
    if keras.backend.backend() != "tensorflow":
        return
    import tensorflow as tf

    alphas = [tf.Variable(np.zeros(len(b.choices), "float32"))
              for b in space.blocks]  # fmt: skip
    with tf.GradientTape() as tape:
        expected = table.expected_latency([tf.nn.softmax(a) for a in alphas])
    grads = tape.gradient(expected, alphas)
    for grad, latency in zip(grads, table.block_latencies(), strict=True):
        # d/d alpha of softmax(alpha) . latency at alpha = 0.
        n = len(latency)
        np.testing.assert_allclose(
            grad.numpy(), (latency - latency.mean()) / n, atol=1e-5
        )
    with pytest.raises(ValueError, match="one per block"):
        table.expected_latency(one_hot[:2])


def test_hardware_aware_predicted_latency():
    space = tiny_space()
    table = fake_table(space)
    estimator = HardwareAware(
        metrics=("params", "predicted_latency"), latency_table=table,
        target=5.0,
    )  # fmt: skip
    assert estimator.target_metric == "predicted_latency"
    ops = ("mbconv_3x3_e3", "mbconv_5x5_e3", "mbconv_5x5_e3")
    costs = estimator.measure(space.build_network(ops))
    assert costs["predicted_latency"] == pytest.approx(table.predict(ops))
    assert costs["params"] > 0
    with pytest.raises(ValueError, match="latency_table"):
        HardwareAware(metrics=("predicted_latency",))
    with pytest.raises(ValueError, match="latency_table"):
        HardwareAware(metrics=("params",), latency_table=table)


def test_fit_overhead_subtracts_a_per_part_cost():
    space = tiny_space()
    table = fake_table(space)
    rng = np.random.default_rng(0)
    archs = [
        tuple(str(rng.choice(b.choices)) for b in space.blocks)
        for _ in range(4)
    ]
    # Networks that cost 0.25 ms less per part (stem, head, blocks run)
    # than the sum of their one-part models.
    measured = []
    for ops in archs:
        parts = 2 + sum(op != "zero" for op in ops)
        stats = {s: table.predict(ops, s) - 0.25 * parts for s in STATISTICS}
        measured.append((ops, stats))
    fitted = table.fit_overhead(measured)
    assert fitted == pytest.approx({s: 0.25 for s in STATISTICS})
    for ops, stats in measured:
        assert table.predict(ops) == pytest.approx(stats["median_ms"])
    loaded = LatencyTable.from_dict(json.loads(json.dumps(table.to_dict())))
    assert loaded.part_overhead == table.part_overhead
    with pytest.raises(ValueError, match="Received: measured="):
        table.fit_overhead([])
    with pytest.raises(ValueError, match="Received: part_overhead="):
        LatencyTable(table.layout, table.entries, None, {"max_ms": 1.0})
