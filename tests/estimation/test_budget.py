"""`check_budget`: the size budget of the CLI, as a library function."""

import keras
import pytest
from keras_tuner import errors

from keras_nas.estimation import check_budget, count_flops, count_params


def _model():
    return keras.Sequential([keras.Input((8,)), keras.layers.Dense(4)])


def test_check_budget_passes_and_fails_trials():
    model = _model()
    params, flops = count_params(model), count_flops(model)
    assert params == 36
    assert check_budget(model, max_params=params, max_flops=flops) == {
        "params": params, "flops": flops}
    assert check_budget(model) == {}
    with pytest.raises(
        errors.FailedTrialError, match=r"Over budget: 36 > max_params=35\."
    ):
        check_budget(model, max_params=35)
    with pytest.raises(errors.FailedTrialError, match="--max-flops 1"):
        check_budget(model, max_flops=1,
                     labels={"max_flops": "--max-flops "})
    with pytest.raises(ValueError, match="Received: max_params=0"):
        check_budget(model, max_params=0)
