"""The one backend choice point: keras_nas._backend."""

import importlib.util

import keras
import pytest

from keras_nas import _backend


def test_backend_module_imports_the_current_backends_module():
    module = _backend.backend_module("keras_nas.supernet", "_darts", "DARTS")
    assert module.__name__ == (
        f"keras_nas.supernet._darts_{keras.backend.backend()}"
    )


@pytest.mark.parametrize(
    "package, name, feature",
    [
        ("keras_nas.supernet", "_darts", "DARTS"),
        ("keras_nas.supernet", "_one_shot", "OneShotSupernet"),
        ("keras_nas.gan", "_steps", "GAN"),
        ("keras_nas.tuners", "_controller", "LSTMController"),
        ("keras_nas.estimation", "_zero_cost", "Zero-cost proxies"),
        ("keras_nas.estimation", "_latency", "latency"),
    ],
)
def test_an_unsupported_backend_is_one_clear_error(
    monkeypatch, package, name, feature
):
    monkeypatch.setattr(keras.backend, "backend", lambda: "torch")
    with pytest.raises(ValueError) as info:
        _backend.backend_module(package, name, feature)
    message = str(info.value)
    assert message.startswith(f"{feature} supports the Keras backends")
    assert "'tensorflow', 'jax'" in message
    assert "Received: backend='torch'" in message


def test_every_backend_module_exists():
    for package, name in [
        ("keras_nas.supernet", "_darts"),
        ("keras_nas.supernet", "_one_shot"),
        ("keras_nas.gan", "_steps"),
        ("keras_nas.tuners", "_controller"),
        ("keras_nas.estimation", "_zero_cost"),
        ("keras_nas.estimation", "_latency"),
    ]:
        for backend in _backend.SUPPORTED_BACKENDS:
            spec = importlib.util.find_spec(f"{package}.{name}_{backend}")
            assert spec is not None, (package, name, backend)
