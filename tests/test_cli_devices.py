"""`keras-nas search --devices` in a subprocess, as a person runs it.

TensorFlow must see 2 logical CPUs before it initialises (as in
tests/supernet/test_distribute.py), so the subprocess configures them and
then calls the command's `main` with the command line, twice in one process
(one TensorFlow import): `--devices 3` (one more than present: a one-line
error, status 2, nothing written) and a 1-trial search with `--devices 2`.
The subprocess records the number of replicas of every `fit` (the model's
own `distribute_strategy`): the trial and the retrained best train on 2.
`test_search_on_two_jax_devices` does the same on the JAX backend
(`keras.distribution.DataParallel`) and compares `--devices 2` with
`--devices 1`.
"""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np

from keras_nas._cli_args import devices_option
from keras_nas._cli_devices import _trim_batches

_SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * 2
    )
    import keras

    replicas = []
    fit = keras.Model.fit

    def recording_fit(self, *args, **kwargs):
        replicas.append(self.distribute_strategy.num_replicas_in_sync)
        return fit(self, *args, **kwargs)

    keras.Model.fit = recording_fit
    from keras_nas.cli import main

    common = sys.argv[1:]
    first = main(["search", "--devices", "3", *common])
    directory = common[common.index("--directory") + 1]
    made = os.path.exists(directory)
    print(json.dumps({"status": first, "made": made}), flush=True)
    second = main(["search", "--devices", "2", *common])
    print(json.dumps({"status": second, "fit_replicas": replicas}))
    """
)


# The same on the JAX backend with 2 host devices (XLA_FLAGS, before JAX
# starts): `--devices 3` and a `--batch-size` the devices cannot split are
# refused; the same 1-trial search with `--devices 1` and `--devices 2`.
# Every `fit` records the distribution in effect and how many devices hold
# the model's first weight; the best model's weights are saved to compare.
_JAX_SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"
    import keras
    import numpy as np

    fits = []
    fit = keras.Model.fit

    def recording_fit(self, *args, **kwargs):
        distribution = keras.distribution.distribution()
        fits.append([
            type(distribution).__name__,
            len(self.weights[0].value.sharding.device_set),
        ])
        return fit(self, *args, **kwargs)

    keras.Model.fit = recording_fit
    import keras_nas
    from keras_nas.cli import main

    out, common = sys.argv[1], sys.argv[2:]
    report = {}
    for name, extra in [
        ("three", ["--devices", "3"]),
        ("odd", ["--devices", "2", "--batch-size", "15"]),
        ("one", ["--devices", "1"]),
        ("two", ["--devices", "2"]),
    ]:
        directory = os.path.join(out, name)
        del fits[:]
        argv = ["search", *common, *extra, "--directory", directory]
        status = main(argv)
        report[name] = {"status": status, "fits": list(fits)}
        if status == 0:
            model = keras.saving.load_model(directory + "/best_model.keras")
            np.savez(directory + "/weights.npz", *model.get_weights())
        print(name, flush=True)
    print(json.dumps(report))
    """
)


def test_search_on_two_jax_devices(tmp_path):
    rng = np.random.default_rng(0)
    data = tmp_path / "tiny.npz"
    np.savez(data, x=rng.random((60, 4, 4, 1)), y=np.arange(60) % 3)
    common = [
        "--dataset", str(data), "--space", "chain", "--num-cells", "1",
        "--tuner", "evolution", "--max-trials", "1", "--epochs", "1",
        "--retrain-epochs", "1", "--batch-size", "16",
    ]  # fmt: skip
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu")
    done = subprocess.run(
        [sys.executable, "-c", _JAX_SCRIPT, str(tmp_path), *common],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.splitlines()[-1])
    errors = [x for x in done.stderr.splitlines() if x.startswith("error:")]
    assert errors == [
        "error: --devices 3 asks for more devices than the 2 present "
        "(cpu:0, cpu:1). Received: devices=3",
        "error: --batch-size must be a multiple of the 2 devices: "
        "keras.distribution.DataParallel splits every batch evenly over "
        "them. Received: batch_size=15, devices=2",
    ]
    assert report["three"] == report["odd"] == {"status": 2, "fits": []}
    assert not (tmp_path / "three").exists()
    assert not (tmp_path / "odd").exists()
    # The trial and the retrained best: on one device, then on both.
    assert report["one"] == {"status": 0, "fits": [["NoneType", 1]] * 2}
    assert report["two"] == {"status": 0, "fits": [["DataParallel", 2]] * 2}
    lines = done.stdout.splitlines()
    assert "devices: 1 device (cpu:0), no distribution" in lines
    assert (
        "devices: cpu:0, cpu:1 (keras.distribution.DataParallel: each trial "
        "data-parallel, global batch 16)"
    ) in lines
    # The same search: same architectures, scores and test accuracy, and
    # the retrained weights within float32 rounding of the cross-device
    # sums (1e-5; one retraining epoch, 3 steps on 48 examples).
    one, two = (
        json.loads((tmp_path / name / "results.json").read_text())
        for name in ("one", "two")
    )
    assert len(one["trials"]) == 1
    for trial in one["trials"] + two["trials"]:
        del trial["seconds"]
    for key in ("trials", "best", "test_accuracy"):
        assert one[key] == two[key], key
    assert abs(one["test_loss"] - two["test_loss"]) <= 1e-5
    first, second = (
        np.load(tmp_path / name / "weights.npz") for name in ("one", "two")
    )
    assert len(first.files) > 0
    for key in first.files:
        np.testing.assert_allclose(first[key], second[key], atol=1e-5)


def test_devices_option_values():
    assert devices_option("2") == 2
    assert devices_option("all") == "all"
    assert devices_option("cpu") == "cpu"


def test_search_on_two_logical_cpus(tmp_path):
    rng = np.random.default_rng(0)
    data = tmp_path / "tiny.npz"
    np.savez(data, x=rng.random((60, 4, 4, 1)), y=np.arange(60) % 3)
    out = tmp_path / "out"
    common = [
        "--dataset", str(data), "--space", "chain", "--num-cells", "1",
        "--tuner", "evolution", "--max-trials", "1", "--epochs", "1",
        "--retrain-epochs", "1", "--batch-size", "16",
        "--directory", str(out),
    ]  # fmt: skip
    env = dict(os.environ, KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run(
        [sys.executable, "-c", _SCRIPT, *common],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    # --devices 3: one line on stderr, status 2, no directory made.
    assert json.loads(lines[0]) == {"status": 2, "made": False}
    errors = [x for x in done.stderr.splitlines() if x.startswith("error:")]
    assert errors == [
        "error: --devices 3 asks for more devices than the 2 present "
        "(cpu:0, cpu:1). Received: devices=3"
    ]
    # --devices 2: the header names both devices and the strategy.
    assert lines[1].startswith("keras-nas search: chain space, evolution")
    assert lines[2].startswith("backend tensorflow")
    assert lines[3] == (
        "devices: cpu:0, cpu:1 (MirroredStrategy: each trial data-parallel, "
        "global batch 16)"
    )
    report = json.loads(lines[-1])
    assert report["status"] == 0
    # The trial and the retrained best model, both on 2 replicas.
    assert report["fit_replicas"] == [2, 2]
    results = json.loads((out / "results.json").read_text())
    assert results["status"] == "done"
    assert results["args"]["devices"] == 2
    assert len(results["trials"]) == 1
    assert (out / "best_model.keras").is_file()


def test_help_names_the_option():
    done = subprocess.run(
        [sys.executable, "-m", "keras_nas", "search", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0
    text = " ".join(done.stdout.split())
    assert "--devices N|all|cpu" in text
    assert "tf.distribute.MirroredStrategy" in text


def test_trimmed_pipeline_keeps_a_known_length():
    # A tf.data split under `--devices 2` on JAX: each batch cut to an even
    # number of rows, a batch of 1 row left out. With the split's size
    # known, Keras is told the number of batches (else it warns "Your
    # input ran out of data" at the end of every fit's first epoch).
    import tensorflow as tf

    for size, rows in ((37, [8, 8, 8, 8, 4]), (33, [8, 8, 8, 8])):
        batched = tf.data.Dataset.from_tensor_slices(
            (np.zeros((size, 3)), np.arange(size))
        ).batch(8)
        trimmed = _trim_batches(batched, 2, size, 8)
        assert int(trimmed.cardinality()) == len(rows)
        assert [len(y) for _, y in trimmed.as_numpy_iterator()] == rows
        unknown = _trim_batches(batched, 2, None, 8)
        assert int(unknown.cardinality()) == tf.data.UNKNOWN_CARDINALITY
        assert [len(y) for _, y in unknown.as_numpy_iterator()] == rows
