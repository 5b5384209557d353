"""Tests of the `keras-nas` command (`keras_nas.cli`), run as subprocesses."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

# A tiny but real search: 200 digits in a .npz file, a one-node cell space.
TINY = [
    "--max-trials", "2", "--epochs", "1", "--retrain-epochs", "1",
    "--num-nodes", "1", "--num-cells", "1", "--filters", "4",
    "--batch-size", "32", "--seed", "1",
]  # fmt: skip


def _run(*args, cwd=None, timeout=300):
    env = dict(os.environ, KERAS_BACKEND="tensorflow")
    return subprocess.run(
        [sys.executable, "-m", "keras_nas", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def tiny_npz(tmp_path_factory):
    from sklearn.datasets import load_digits

    digits = load_digits()
    path = tmp_path_factory.mktemp("data") / "tiny_digits.npz"
    # uint8 pixels without a channel axis, as users often store images.
    x = (digits.images[:200] * 255 / 16).astype("uint8")
    np.savez(path, x=x, y=digits.target[:200])
    return str(path)


def test_version():
    out = _run("--version")
    assert out.returncode == 0
    assert out.stdout.strip() == "keras-nas 0.1.0"


def test_sizes_over_the_limits_are_refused_at_once(tmp_path):
    # `--num-nodes 1000000` used to hang at start, and `--num-nodes 1000`
    # took as long as loading the data and TensorFlow to be refused: now
    # sizes over keras-nas' limits are refused by the parser, and sizes no
    # memory holds by a lower bound of the model's size, both before the
    # header line, any slow import or any file written.
    for options, expected in (
        (["--num-nodes", "1000"], "argument --num-nodes: expected a "
         "positive integer up to 64, the most keras-nas builds, got '1000'"),
        (["--num-nodes", "1000000"], "up to 64, the most keras-nas builds"),
        (["--num-cells", "100000"], "up to 1024, the most keras-nas builds"),
        (["--filters", "1000000000"], "up to 65536, the most keras-nas"),
        (["--filters", "65536", "--num-cells", "1024"],
         "cannot build the 'cell' space: the largest model of this space "
         "needs at least"),
    ):  # fmt: skip
        out = _run(
            "search", *options, "--directory", str(tmp_path), timeout=60
        )
        assert out.returncode == 2, out.stderr
        assert out.stdout == ""  # Refused before the header line.
        (line,) = out.stderr.strip().splitlines()
        assert line.startswith("error: ") and expected in line, line
    assert os.listdir(tmp_path) == []  # Nothing written.


@pytest.fixture()
def bad_files(tmp_path):
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"\x00 definitely not numpy")
    wrong_keys = tmp_path / "wrong_keys.npz"
    np.savez(wrong_keys, images=np.zeros((4, 8, 8)), labels=np.zeros(4, int))
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    other = tmp_path / "other_run"
    other.mkdir()
    (other / "results.json").write_text(
        json.dumps({"args": {"space": "chain", "seed": 0}})
    )
    return {
        "garbage": str(garbage),
        "wrong_keys": str(wrong_keys),
        "missing": str(tmp_path / "missing.npz"),
        "a_file": str(a_file),
        "other": str(other),
    }


BAD_INPUTS = {
    "no command": ([], "missing command"),
    "unknown dataset": (["search", "--dataset", "imagenet"], "imagenet"),
    # Imports TensorFlow: its start-up notices must not reach stderr.
    "unknown tfds dataset": (
        ["search", "--dataset", "tfds:no_such_dataset_xyz"],
        "no_such_dataset_xyz",
    ),
    "unknown space": (["search", "--space", "nasnet"], "--space"),
    "unknown tuner": (["search", "--tuner", "genetic"], "--tuner"),
    "zero trials": (["search", "--max-trials", "0"], "--max-trials"),
    "negative epochs": (["search", "--epochs", "-3"], "--epochs"),
    "text batch size": (["search", "--batch-size", "many"], "--batch-size"),
    "bad split": (["search", "--test-split", "1.5"], "--test-split"),
    "negative seed": (["search", "--seed", "-1"], "--seed"),
    "missing file": (["search", "--dataset", "{missing}"], "no such file"),
    "unreadable file": (["search", "--dataset", "{garbage}"], "readable"),
    "npz without x/y": (["search", "--dataset", "{wrong_keys}"], "'x'"),
    "option of another space": (
        ["search", "--space", "chain", "--num-nodes", "2"],
        "--num-nodes",
    ),
    "directory is a file": (["search", "--directory", "{a_file}"], "a_file"),
    "resume other search": (
        ["search", "--directory", "{other}"],
        "--overwrite",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_exits_2_with_one_line(case, bad_files, tmp_path):
    args, expected = BAD_INPUTS[case]
    args = [a.format(**bad_files) for a in args]
    if "--directory" not in args and args:
        args += ["--directory", str(tmp_path / "run")]
    out = _run(*args, cwd=tmp_path, timeout=120)
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr + out.stdout
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith("error: ")
    assert expected in lines[0]
    assert not (tmp_path / "run" / "results.json").exists()


def _is_png(path):
    with open(path, "rb") as f:
        return f.read(8) == PNG_MAGIC


def _trial_lines(stdout):
    return [ln for ln in stdout.splitlines() if ln.startswith("trial ")]


def test_search_writes_everything_shows_exports_resumes(tiny_npz, tmp_path):
    """One tiny search, then `show`, `export` and resuming on it."""
    directory = str(tmp_path / "run")
    args = ["search", "--dataset", tiny_npz, "--directory", directory, *TINY]
    out = _run(*args)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "Traceback" not in out.stderr
    # Quiet start: TensorFlow's C++ notices (oneDNN, CUDA, cuInit) are not
    # shown; the first lines are keras-nas's and name the backend.
    for noise in ("I0000", "E0000", "cuInit", "absl::InitializeLog"):
        assert noise not in out.stderr + out.stdout
    lines = out.stdout.splitlines()
    assert lines[0].startswith("keras-nas search: cell space, random tuner")
    assert lines[1].startswith("backend tensorflow ")
    assert "(keras 3." in lines[1] and "devices: cpu:0" in lines[1]
    # One trial number: keras-tuner's trial id, as in results.json.
    assert [ln.split(":")[0] for ln in _trial_lines(out.stdout)] == [
        "trial 0 (1/2)",
        "trial 0 done",
        "trial 1 (2/2)",
        "trial 1 done",
    ]
    for ln in _trial_lines(out.stdout):
        if " done:" in ln:
            assert "score=" in ln and "best=" in ln and "elapsed=" in ln
        else:
            assert "normal:" in ln  # the architecture summary
    # A line per epoch: 1 epoch per trial and 1 of retraining.
    epoch_lines = [ln for ln in lines if ln.startswith("  epoch 1/1  loss ")]
    assert len(epoch_lines) == 3, out.stdout
    assert all("accuracy" in ln and ln.endswith("s") for ln in epoch_lines)
    assert "for 1 epoch..." in out.stdout  # not "1 epochs"
    for name in (
        "best_model.keras",
        "best_genotype.json",
        "best_hyperparameters.json",
        "results.json",
        "history.png",
        "best_cell.png",
    ):
        assert os.path.isfile(os.path.join(directory, name)), name
    assert _is_png(os.path.join(directory, "history.png"))
    assert _is_png(os.path.join(directory, "best_cell.png"))

    with open(os.path.join(directory, "results.json")) as f:
        results = json.load(f)
    assert results["status"] == "done"
    assert [t["trial_id"] for t in results["trials"]] == ["0", "1"]
    scores = [t["score"] for t in results["trials"]]
    assert results["best"]["score"] == max(scores)
    assert 0.0 <= results["test_accuracy"] <= 1.0
    assert results["args"]["max_trials"] == 2
    assert results["args"]["dataset"] == tiny_npz
    for key in ("search_seconds", "retrain_seconds", "total_seconds"):
        assert results["timings"][key] > 0
    assert all(t["seconds"] > 0 for t in results["trials"])

    from keras_nas.blocks.genotypes import Genotype
    from keras_nas.spaces import genotype_from_hyperparameters

    with open(os.path.join(directory, "best_genotype.json")) as f:
        genotype = Genotype.from_dict(json.load(f))
    with open(os.path.join(directory, "best_hyperparameters.json")) as f:
        hp = json.load(f)
    assert genotype == genotype_from_hyperparameters(hp)
    assert hp == results["best"]["hyperparameters"]
    assert genotype.num_nodes == 1 and hp["num_cells"] == 1

    _check_loads_in_new_process(os.path.join(directory, "best_model.keras"))
    _check_show(directory, results)
    _check_export(directory)

    # Same command again: nothing is searched or retrained.
    model_mtime = os.path.getmtime(os.path.join(directory, "best_model.keras"))
    again = _run(*args)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "resuming: 2 trial(s) already done" in again.stdout
    assert not _trial_lines(again.stdout)
    assert "unchanged" in again.stdout
    assert (
        os.path.getmtime(os.path.join(directory, "best_model.keras"))
        == model_mtime
    )
    with open(os.path.join(directory, "results.json")) as f:
        resumed = json.load(f)
    assert resumed["trials"] == results["trials"]
    assert resumed["test_accuracy"] == results["test_accuracy"]

    # A larger budget continues the search: only the third trial runs.
    more = [a if a != "2" else "3" for a in args]
    assert more.count("3") == 1
    third = _run(*more)
    assert third.returncode == 0, third.stderr[-3000:]
    new_lines = _trial_lines(third.stdout)
    assert [ln.split(":")[0] for ln in new_lines] == [
        "trial 2 (3/3)",
        "trial 2 done",
    ]
    with open(os.path.join(directory, "results.json")) as f:
        assert len(json.load(f)["trials"]) == 3


LOAD = """
import sys, keras_nas, keras, numpy as np  # keras_nas first: the harder order
model = keras.saving.load_model(sys.argv[1])
probs = model.predict(np.zeros((3, 8, 8, 1), "float32"), verbose=0)
sums = probs.sum(axis=1)
print(probs.shape, float(sums.min()), float(sums.max()))
"""


def _check_loads_in_new_process(path):
    """As the README says: `import keras_nas`, then `load_model`."""
    out = subprocess.run(
        [sys.executable, "-c", LOAD, path],
        capture_output=True,
        text=True,
        env=dict(os.environ, KERAS_BACKEND="tensorflow"),
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    shape, low, high = out.stdout.strip().rsplit(" ", 2)
    assert shape == "(3, 10)"
    assert abs(float(low) - 1) < 1e-4 and abs(float(high) - 1) < 1e-4


def _check_show(directory, results):
    out = _run("show", directory, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stderr == ""
    lines = out.stdout.splitlines()
    header = lines.index(
        next(ln for ln in lines if ln.startswith("trial  status"))
    )
    assert "val_accuracy" in lines[header] and "architecture" in lines[header]
    rows = lines[header + 1 : header + 3]
    for row, trial in zip(rows, results["trials"], strict=True):
        trial_id, status, score = row.split()[:3]
        assert trial_id == trial["trial_id"] and status == "COMPLETED"
        assert score == f"{trial['score']:.4f}"
        assert "normal:" in row
    best = results["best"]
    assert f"best: trial {best['trial_id']}, val_accuracy" in out.stdout
    assert f"test_accuracy {results['test_accuracy']:.4f}" in out.stdout
    assert "for 1 epoch on train+validation" in out.stdout
    assert "best_model.keras" in lines[-1]


def _check_export(directory):
    tflite = os.path.join(directory, "export", "best_model.tflite")
    saved = os.path.join(str(directory), "saved")
    for args, path in (
        (["--format", "tflite"], tflite),
        (["--format", "saved_model", "--output", saved], saved),
    ):
        out = _run("export", directory, *args)
        assert out.returncode == 0, out.stderr[-3000:]
        assert "I0000" not in out.stderr and "Traceback" not in out.stderr
        last = out.stdout.strip().splitlines()[-1]
        assert last.startswith(f"wrote {path} ")
        difference = float(last.rsplit(" ", 1)[1])
        assert difference < 1e-4, last
    with open(tflite, "rb") as f:
        assert f.read(8)[4:] == b"TFL3"  # The TFLite flatbuffer identifier.
    assert os.path.isfile(os.path.join(saved, "saved_model.pb"))


def test_show_and_export_need_a_search(tmp_path):
    for command, expected in (
        ("show", "no results.json"),
        ("export", "no best_model.keras"),
    ):
        out = _run(command, str(tmp_path), timeout=120)
        assert out.returncode == 2, out.stderr
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), out.stderr
        assert expected in lines[0]


def test_search_on_mocked_tfds_dataset(tmp_path, capsys):
    """`--dataset tfds:NAME` goes through `tfds_pipelines` (mocked data)."""
    import tensorflow_datasets as tfds

    from keras_nas import cli

    directory = str(tmp_path / "run")
    common = ["search", "--dataset", "tfds:mnist", "--directory", directory]
    with tfds.testing.mock_data(num_examples=24):
        # DARTS needs arrays: a clear usage error, before any training.
        assert cli.main([*common, "--tuner", "darts"]) == 2
        assert "needs array data" in capsys.readouterr().err
        status = cli.main(
            [
                *common,
                "--subset",
                "16",
                "--image-size",
                "8",
                "--max-trials",
                "1",
                "--epochs",
                "1",
                "--retrain-epochs",
                "1",
                "--batch-size",
                "8",
                "--num-nodes",
                "1",
                "--num-cells",
                "1",
                "--filters",
                "4",
                "--overwrite",
            ]  # fmt: skip
        )
    assert status == 0
    out = capsys.readouterr().out
    assert (
        "dataset tfds:mnist (8, 8, 1) (10 classes; train/val/test 16/16/16)"
        in out
    )
    with open(os.path.join(directory, "results.json")) as f:
        results = json.load(f)
    assert len(results["trials"]) == 1
    assert 0.0 <= results["test_accuracy"] <= 1.0
    assert os.path.isfile(os.path.join(directory, "best_model.keras"))


def test_budget_options_fail_architectures_over_budget(tmp_path):
    import keras_tuner

    from keras_nas import _cli_tuners, cli
    from keras_nas.estimation import count_flops, count_params
    from keras_nas.spaces import ChainSearchSpace

    space = ChainSearchSpace()
    model = space.build(keras_tuner.HyperParameters())
    flops, params = count_flops(model), count_params(model)

    def try_build(*options):
        args = cli.build_parser().parse_args(
            ["search", "--tuner", "evolution", "--max-trials", "7",
             "--directory", str(tmp_path), *options]
        )  # fmt: skip
        tuner = _cli_tuners.make_tuner(args, space, None, report=None)
        return tuner, tuner._try_build(keras_tuner.HyperParameters())

    tuner, built = try_build("--max-flops", str(flops))
    assert count_flops(built) == flops
    assert tuner.oracle.max_consecutive_failed_trials == 7
    for options in (
        ("--max-flops", str(flops - 1)),
        ("--max-params", str(params - 1)),
    ):
        with pytest.raises(keras_tuner.errors.FailedTrialError, match="budget"):
            try_build(*options)
    args = cli.build_parser().parse_args(
        ["search", "--tuner", "darts", "--max-params", "9"]
    )
    with pytest.raises(cli.UsageError, match="--max-params"):
        _cli_tuners.make_tuner(args, space, None, report=None)


def test_progress_lines_are_on_unless_quiet():
    from keras_nas import _cli_search, cli
    from keras_nas._cli_progress import EpochLine, format_metrics

    def callbacks(*options):
        args = cli.build_parser().parse_args(["search", *options])
        return _cli_search.search_callbacks(args)

    assert [type(c) for c in callbacks()] == [EpochLine]
    assert callbacks("--quiet") == []
    logs = {"val_accuracy": 0.5, "accuracy": 0.25, "loss": 2.0, "val_loss": 1}
    assert format_metrics(logs) == (
        "loss 2.0000  accuracy 0.2500  val_loss 1.0000  val_accuracy 0.5000"
    )
