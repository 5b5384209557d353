"""What a user sees in a real TensorBoard (its HTTP API, default settings).

The project's own readers (`read_images`, `read_text`) find data that
TensorBoard's loader may still drop (e.g. an image and a text under one tag
in one run): this test starts `tensorboard` on loopback, as a user would,
and asks the same endpoints its pages ask.
"""

import io
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request

import keras
import numpy as np
import pytest
from PIL import Image

from keras_nas import tensorboard as tb
from keras_nas.spaces import CellSearchSpace
from keras_nas.tuners import AgingEvolution


class _QuickCells(CellSearchSpace):
    """A cell space whose trials train a tiny dense model (fast `fit`)."""

    def build(self, hp):
        self.declare_hyperparameters(hp)
        inputs = keras.Input(self.input_shape)
        hidden = keras.layers.Flatten()(inputs)
        outputs = keras.layers.Dense(self.num_classes, "softmax")(hidden)
        model = keras.Model(inputs, outputs)
        model.compile(
            "adam", "sparse_categorical_crossentropy", metrics=["accuracy"]
        )
        return model


def _search(tmp_path):
    space = _QuickCells(
        input_shape=(4, 4, 1),
        num_classes=2,
        ops=("skip_connect", "max_pool_3x3", "sep_conv_3x3"),
        num_nodes=2,
        num_cells=(1,),
        filters=(4, 8),
    )
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 4, 4, 1)).astype("float32")
    y = (x[:, 0, 0, 0] > 0).astype("int32")
    tuner = AgingEvolution(
        space,
        objective="val_accuracy",
        max_trials=2,
        population_size=2,
        seed=0,
        directory=str(tmp_path / "search"),
    )
    logdir = str(tmp_path / "logs")
    tuner.search(
        x,
        y,
        validation_data=(x, y),
        epochs=1,
        batch_size=16,
        verbose=0,
        callbacks=[keras.callbacks.TensorBoard(logdir)],
    )
    return tuner, space, logdir


def _start_tensorboard(logdir, log_path):
    log = open(log_path, "w")
    process = subprocess.Popen(
        [sys.executable, "-m", "tensorboard.main", "--logdir", logdir]
        + ["--host", "127.0.0.1", "--port", "0"],
        stdout=log,
        stderr=log,
        start_new_session=True,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        with open(log_path) as f:
            found = re.search(r"http://127\.0\.0\.1:(\d+)/", f.read())
        if found:
            return process, f"http://127.0.0.1:{found.group(1)}"
        if process.poll() is not None:
            break
        time.sleep(0.5)
    os.killpg(process.pid, signal.SIGTERM)
    with open(log_path) as f:
        raise AssertionError(f"tensorboard did not start:\n{f.read()}")


def _get(url, body=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.read()


def _json(url, body=None):
    return json.loads(_get(url, body))


def _wait_for(url, ready):
    deadline = time.monotonic() + 60
    while True:
        answer = _json(url)
        if ready(answer) or time.monotonic() > deadline:
            return answer
        time.sleep(0.5)


def test_real_tensorboard_shows_architectures_scores_and_hparams(tmp_path):
    tuner, space, logdir = _search(tmp_path)
    trials = sorted(tuner.oracle.trials.values(), key=lambda t: t.trial_id)
    runs = [f"{t.trial_id}/execution0" for t in trials]
    process, url = _start_tensorboard(logdir, tmp_path / "tensorboard.log")
    try:
        # Images page: each trial's architecture, and the search history.
        images = _wait_for(
            f"{url}/data/plugin/images/tags",
            lambda a: all(run in a for run in runs),
        )
        for run in runs:
            assert list(images[run]) == [tb.ARCHITECTURE_IMAGE]
        assert "history" in images[tb.SEARCH_RUN]
        query = urllib.parse.urlencode(
            {"run": runs[0], "tag": tb.ARCHITECTURE_IMAGE, "sample": 0}
        )
        (entry,) = _json(f"{url}/data/plugin/images/images?{query}")
        image_url = f"{url}/data/plugin/images/individualImage"
        png = _get(f"{image_url}?{entry['query']}")
        shown = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
        written = tb.read_images(logdir)[runs[0]][tb.ARCHITECTURE_IMAGE][0]
        np.testing.assert_array_equal(shown, written)

        # Text page: each trial's genotype.
        texts = _json(f"{url}/data/plugin/text/tags")
        for run in runs:
            assert texts[run] == [tb.ARCHITECTURE_TEXT]
        for trial, run in zip(trials, runs, strict=True):
            query = urllib.parse.urlencode(
                {"run": run, "tag": tb.ARCHITECTURE_TEXT}
            )
            (shown,) = _json(f"{url}/data/plugin/text/text?{query}")
            genotype = space.genotype(trial.hyperparameters.values)
            assert "genotype:" in shown["text"]
            # One trial number everywhere: the id of the run, not id + 1.
            assert f"<strong>trial {trial.trial_id}</strong>" in shown["text"]
            assert str(genotype).split(";")[0] in shown["text"]

        # Scalars page: the search run and keras' epoch curves.
        scalars = _json(f"{url}/data/plugin/scalars/tags")
        assert {"objective/val_accuracy", "best/val_accuracy"} <= set(
            scalars[tb.SEARCH_RUN]
        )
        assert "epoch_accuracy" in scalars[f"{runs[0]}/validation"]
        query = urllib.parse.urlencode(
            {"run": tb.SEARCH_RUN, "tag": "objective/val_accuracy"}
        )
        points = _json(f"{url}/data/plugin/scalars/scalars?{query}")
        # [wall time, step, value]: the step is the trial id.
        assert [p[1] for p in points] == [int(t.trial_id) for t in trials]

        # HParams page: a compact genotype column, the objective first.
        experiment = _json(
            f"{url}/data/plugin/hparams/experiment",
            {"experimentName": "", "hparamsLimit": 1000},
        )
        # TensorBoard sorts the columns by `differs`, then by name, and
        # shows the first five: no per-edge columns, the genotype shown.
        infos = experiment["hparamInfos"]
        differs = {info["name"]: info["differs"] for info in infos}
        assert differs == {
            tb.GENOTYPE_HPARAM: True,
            "filters": True,
            "num_cells": False,
        }
        names = [info["name"] for info in infos]
        assert names == ["filters", tb.GENOTYPE_HPARAM, "num_cells"]
        metrics = [m["name"] for m in experiment["metricInfos"]]
        assert metrics[0] == {"group": "validation", "tag": "epoch_accuracy"}
        groups = _json(
            f"{url}/data/plugin/hparams/session_groups",
            {
                "experimentName": "",
                "allowedStatuses": ["STATUS_SUCCESS", "STATUS_UNKNOWN"],
                "colParams": [
                    {"hparam": tb.GENOTYPE_HPARAM},
                    {"metric": metrics[0]},
                ],
                "startIndex": 0,
                "sliceSize": 10,
            },
        )["sessionGroups"]
        shown = {
            g["hparams"][tb.GENOTYPE_HPARAM]: g["metricValues"][0]["value"]
            for g in groups
        }
        expected = {
            str(space.genotype(t.hyperparameters.values)): t.score
            for t in trials
        }
        assert shown.keys() == expected.keys()
        for genotype, score in expected.items():
            assert shown[genotype] == pytest.approx(score, rel=1e-6)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
