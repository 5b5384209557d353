import pytest


@pytest.fixture(autouse=True)
def _eager_functions(eager_functions):
    """Every test here runs Keras steps eagerly (see `eager_functions`)."""
    yield
