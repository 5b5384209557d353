"""Tests of `keras_nas.data`: digits, .npz files and tfds pipelines (mocked)."""

import numpy as np
import pytest

from keras_nas import data


def test_digits_splits_are_disjoint_and_stratified():
    splits = data.load_dataset(
        "digits", validation_split=0.2, test_split=0.2, seed=3
    )
    assert splits.input_shape == (8, 8, 1)
    assert splits.num_classes == 10
    assert splits.is_arrays
    sizes = splits.sizes()
    assert sum(sizes.values()) == 1797
    assert sizes["test"] == round(1797 * 0.2)
    x_train, y_train = splits.train
    assert x_train.dtype == np.float32 and x_train.shape[1:] == (8, 8, 1)
    assert 0.0 <= x_train.min() and x_train.max() <= 1.0
    # Every class appears in every split (stratified).
    for _, y in (splits.train, splits.validation, splits.test):
        assert set(np.unique(y)) == set(range(10))
    # Disjoint: no test image appears in the training split.
    train_rows = {row.tobytes() for row in x_train}
    dup = sum(row.tobytes() in train_rows for row in splits.test[0])
    assert dup < 5  # digits holds a handful of duplicate images itself
    again = data.load_dataset("digits", seed=3)
    np.testing.assert_array_equal(again.test[1], splits.test[1])


def test_fit_kwargs_concatenates_train_and_validation():
    splits = data.load_dataset("digits")
    both = splits.fit_kwargs("train+validation", batch_size=16)
    sizes = splits.sizes()
    assert len(both["y"]) == sizes["train"] + sizes["validation"]
    assert both["batch_size"] == 16
    with pytest.raises(ValueError, match="split"):
        splits.fit_kwargs("everything", 16)


def test_npz_uint8_images_without_channel_axis(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(60, 6, 5), dtype=np.uint8)
    y = np.arange(60) % 3
    path = tmp_path / "d.npz"
    np.savez(path, x=x, y=y)
    splits = data.load_dataset(
        str(path), validation_split=0.25, test_split=0.25
    )
    assert splits.input_shape == (6, 5, 1)
    assert splits.num_classes == 3
    assert splits.sizes() == {"train": 30, "validation": 15, "test": 15}
    assert splits.train[0].dtype == np.float32
    assert splits.train[0].max() <= 1.0


@pytest.mark.parametrize(
    "content, match",
    [
        ({"images": np.zeros((4, 2, 2)), "y": np.zeros(4, int)}, "'x'"),
        ({"x": np.zeros((4, 2, 2)), "y": np.zeros(3, int)}, "shape"),
        ({"x": np.zeros((4, 2, 2)), "y": np.zeros(4)}, "integer"),
    ],
)
def test_npz_bad_content(tmp_path, content, match):
    path = tmp_path / "bad.npz"
    np.savez(path, **content)
    with pytest.raises(ValueError, match=match):
        data.load_dataset(str(path))


def test_bad_specs(tmp_path):
    with pytest.raises(ValueError, match="Received: dataset='mnist'"):
        data.load_dataset("mnist")
    with pytest.raises(ValueError, match="no such file"):
        data.load_dataset(str(tmp_path / "missing.npz"))
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not a zip file at all")
    with pytest.raises(ValueError, match="readable"):
        data.load_dataset(str(garbage))
    with pytest.raises(ValueError, match="validation_split"):
        data.load_dataset("digits", validation_split=1.5)
    with pytest.raises(ValueError, match="below 1"):
        data.load_dataset("digits", validation_split=0.6, test_split=0.5)


def test_tfds_pipelines_mocked():
    tfds = pytest.importorskip("tensorflow_datasets")
    with tfds.testing.mock_data(num_examples=40):
        out = data.tfds_pipelines(
            "mnist", batch_size=8, subset=12, image_size=14, seed=1
        )
        assert out["input_shape"] == (14, 14, 1)
        assert out["num_classes"] == 10
        for split in ("train", "validation", "test"):
            batches = list(out[split].as_numpy_iterator())
            assert [len(b[1]) for b in batches] == [8, 4]  # subset=12
            images, labels = batches[0]
            assert images.shape == (8, 14, 14, 1)
            assert images.dtype == np.float32
            assert 0.0 <= images.min() and images.max() <= 1.0
            assert labels.dtype == np.int64
        assert out["sizes"] == {"train": 12, "validation": 12, "test": 12}
        full = data.tfds_pipelines("cifar10", batch_size=16)
        assert full["input_shape"] == (32, 32, 3)
        images, _ = next(iter(full["train"].as_numpy_iterator()))
        assert images.shape == (16, 32, 32, 3)
        splits = data.load_dataset("tfds:mnist", batch_size=4, subset=8)
        assert not splits.is_arrays
        assert splits.input_shape == (28, 28, 1)
        assert splits.sizes() == {"train": 8, "validation": 8, "test": 8}
        x = splits.fit_kwargs("train+validation", 4)["x"]
        assert sum(len(b[1]) for b in x.as_numpy_iterator()) == 16


def test_tfds_bad_arguments():
    pytest.importorskip("tensorflow_datasets")
    with pytest.raises(ValueError, match="not_a_dataset_xyz"):
        data.tfds_pipelines("not_a_dataset_xyz")
    with pytest.raises(ValueError, match="image_size"):
        data.tfds_pipelines("mnist", image_size=(0, 3))
    with pytest.raises(ValueError, match="subset"):
        data.tfds_pipelines("mnist", subset=0)


def test_tfds_pipeline_values_mocked():
    # The values, not only the shapes: each example is its raw tfds image
    # / 255 (resized as tf.image.resize does) with its own label; validation
    # and test keep tfds' order, train is a permutation of its examples.
    # (mock_data serves the same examples for every split and slice.)
    tfds = pytest.importorskip("tensorflow_datasets")
    import tensorflow as tf

    def examples(ds, batched=True):
        ds = ds.unbatch() if batched else ds
        xs, ys = zip(*ds.as_numpy_iterator(), strict=True)
        return np.stack(xs), np.array(ys)

    with tfds.testing.mock_data(num_examples=20):
        raw_x, raw_y = examples(
            tfds.builder("mnist").as_dataset(split="test", as_supervised=True),
            batched=False,
        )
        assert raw_x.dtype == np.uint8 and raw_x.max() > 200  # Not blank.
        out = data.tfds_pipelines("mnist", batch_size=8, subset=12, seed=3)
        small = data.tfds_pipelines("mnist", batch_size=8, image_size=14)
    expected = raw_x.astype(np.float32) / 255.0
    x, y = examples(out["test"])
    np.testing.assert_allclose(x, expected[:12], atol=1e-7)
    np.testing.assert_array_equal(y, raw_y[:12])
    x, y = examples(out["train"])
    order = [
        next(i for i in range(12) if np.array_equal(row, expected[i]))
        for row in x
    ]
    assert sorted(order) == list(range(12)) and order != sorted(order)
    np.testing.assert_array_equal(y, raw_y[order])
    resized = tf.image.resize(expected, (14, 14), antialias=True).numpy()
    x, y = examples(small["validation"])
    np.testing.assert_allclose(x, resized, atol=1e-6)
    np.testing.assert_array_equal(y, raw_y)
