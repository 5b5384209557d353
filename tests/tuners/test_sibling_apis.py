"""Sibling tuners take the same arguments (issue 14): `Darts` takes a
search space like `Enas`, one objective default, and an `estimator=` that a
tuner cannot honour is refused."""

import inspect
import types
import warnings

import pytest

from keras_nas import _cli_tuners
from keras_nas.spaces.cell_space import CellSearchSpace
from keras_nas.tuners.darts import Darts, DartsOracle
from keras_nas.tuners.enas import Enas, EnasOracle

OPS = ("skip_connect", "max_pool_3x3", "sep_conv_3x3")


def _space(**kwargs):
    kwargs = {"ops": OPS, "num_nodes": 2, "num_cells": 2, "filters": 4,
              **kwargs}
    return CellSearchSpace((8, 8, 1), 3, **kwargs)


def test_darts_reads_the_supernet_from_the_space(tmp_path):
    space = _space(filters=(4, 8), num_cells=(2, 3))
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        tuner = Darts(space, seed=0, directory=str(tmp_path))
    assert tuner.hypermodel is space
    assert tuner.supernet_config == dict(
        input_shape=(8, 8, 1),
        num_classes=3,
        filters=4,  # the space's smallest choices
        num_cells=2,
        num_nodes=2,
        ops=("none", *OPS),  # DARTS' zero op competes in the search
        order=1,
        seed=0,
        relaxation="softmax",  # DARTS' own (GDAS: "gumbel")
        partial_channels=1,  # all channels (PC-DARTS: K > 1)
    )
    sized = Darts(space, filters=16, num_cells=8, directory=str(tmp_path))
    assert sized.supernet_config["filters"] == 16
    assert sized.supernet_config["num_cells"] == 8


def test_old_darts_arguments_warn_and_build_the_same_tuner(tmp_path):
    with pytest.warns(DeprecationWarning, match="Darts.*deprecated"):
        old = Darts(
            (8, 8, 1),
            3,
            filters=4,
            num_cells=2,
            num_nodes=2,
            ops=("none", *OPS),
            retrain_filters=8,
            seed=0,
            directory=str(tmp_path),
            project_name="old",
        )
    with pytest.warns(DeprecationWarning):
        keyword = Darts(input_shape=(8, 8, 1), num_classes=3,
                        directory=str(tmp_path), project_name="kw")
    new = Darts(
        _space(filters=8, learning_rate=1e-2),
        filters=4,
        num_cells=2,
        seed=0,
        directory=str(tmp_path),
        project_name="new",
    )
    assert old.supernet_config == new.supernet_config
    for name in ("input_shape", "num_classes", "ops", "num_nodes",
                 "num_cells", "filters", "optimizer", "learning_rate"):
        assert getattr(old.hypermodel, name) == getattr(new.hypermodel, name)
    # The old defaults: the paper's supernet, DARTS ops.
    assert keyword.supernet_config["filters"] == 16
    assert keyword.supernet_config["num_cells"] == 8
    assert keyword.supernet_config["ops"][0] == "none"


def test_darts_refuses_space_settings_given_twice(tmp_path):
    with pytest.raises(ValueError, match=r"Received: num_nodes=3"):
        Darts(_space(), num_nodes=3, directory=str(tmp_path))
    with pytest.raises(ValueError, match="Received: hypermodel=None"):
        Darts(directory=str(tmp_path))
    with pytest.raises(ValueError, match="CellSearchSpace`. Received"):
        Darts(object(), directory=str(tmp_path))
    with pytest.raises(ValueError, match="search_reduction=False"):
        Darts(_space(search_reduction=False), directory=str(tmp_path))


class _Estimator:
    def estimate(self, tuner, trial, *args, **kwargs):
        return {"val_accuracy": 0.5}


@pytest.mark.parametrize("cls", [Darts, Enas])
def test_an_estimator_the_tuner_cannot_honour_is_refused(tmp_path, cls):
    with pytest.raises(
        ValueError, match=rf"no `estimator` for `{cls.__name__}`.*"
        r"Received: estimator=<.*_Estimator"
    ):
        cls(_space(), estimator=_Estimator(), directory=str(tmp_path))


def test_one_objective_default_as_in_keras_tuner():
    # keras-tuner's default is `objective=None`; the tuners with fixed
    # metrics read it as their accuracy.
    for cls in (Darts, Enas, DartsOracle, EnasOracle):
        default = inspect.signature(cls).parameters["objective"].default
        assert default is None, cls
    assert DartsOracle().objective.name == "val_accuracy"
    assert EnasOracle(controller="factorized").objective.name == (
        "val_accuracy"
    )
    with pytest.raises(ValueError, match="Received: objective='loss'"):
        Darts(_space(), objective="loss")


def test_cli_darts_arguments_use_the_space_form(tmp_path):
    space = _space(filters=(4, 8), num_cells=(2, 3))
    args = types.SimpleNamespace(space="cell", batch_size=16, xla=False)
    data = types.SimpleNamespace(is_arrays=True)
    positional, keywords = _cli_tuners._darts_arguments(args, space, data)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        tuner = Darts(*positional, **keywords, directory=str(tmp_path))
    # As before: the supernet at the smallest filters and most cells, the
    # derived network at the space's largest sizes.
    assert tuner.supernet_config["filters"] == 4
    assert tuner.supernet_config["num_cells"] == 3
    assert tuner.hypermodel.filters == (8,)
    assert tuner.hypermodel.num_cells == (3,)
    assert tuner.supernet_config["ops"] == ("none", *OPS)
