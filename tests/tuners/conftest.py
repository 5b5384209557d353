import pytest


@pytest.fixture(scope="session")
def digits():
    """400 digits as (n, 8, 8, 1) floats in [0, 1] and their labels."""
    from sklearn.datasets import load_digits

    data = load_digits()
    x = (data.images[:400] / 16.0).reshape(-1, 8, 8, 1).astype("float32")
    return x, data.target[:400]
