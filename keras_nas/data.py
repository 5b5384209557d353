"""Data for architecture search: digits, tensorflow-datasets and `.npz` files.

`load_dataset` turns a dataset spec into train/validation/test splits:

- `"digits"`: scikit-learn's built-in 8x8 handwritten digits (no download),
  as `(n, 8, 8, 1)` float32 images scaled to [0, 1].
- `"tfds:NAME"`: a tensorflow-datasets image classification dataset, as
  `tf.data` pipelines built by `tfds_pipelines`.
- a path to a `.npz` file holding arrays `x` (images) and `y` (integer
  labels).

`tfds_pipelines` is the one helper that turns a tfds name into normalized,
batched and prefetched `tf.data` pipelines, with an optional subset and a
downscaled resolution for cheap proxy searches.

Synthetic graph data (NumPy, no download) for `GraphSearchSpace`:
`make_graph_classification` (padded graphs labelled by their random-graph
family) and `make_node_classification` (a stochastic block model graph
with train/validation/test node masks); see `keras_nas._graph_data`.
"""

from __future__ import annotations

import dataclasses
import os
import zipfile
from typing import Any

import numpy as np

from keras_nas._data_checks import (
    MAX_CLASSES,
    check_arrays,
    check_split_sizes,
)
from keras_nas._graph_data import (
    GRAPH_FAMILIES,
    NodeClassificationData,
    make_graph_classification,
    make_node_classification,
)
from keras_nas._validation import check_number, check_positive_int

__all__ = [
    "DataSplits",
    "GRAPH_FAMILIES",
    "NodeClassificationData",
    "load_dataset",
    "make_graph_classification",
    "make_node_classification",
    "split_arrays",
    "tfds_pipelines",
]

TFDS_PREFIX = "tfds:"


@dataclasses.dataclass
class DataSplits:
    """Train/validation/test splits of a classification dataset.

    Each split is either a pair `(x, y)` of NumPy arrays or a batched
    `tf.data.Dataset` of `(image, label)` pairs.

    Attributes:
        name: the dataset spec the splits came from.
        train: the training split.
        validation: the validation split (used to score architectures).
        test: the held-out test split (used once, on the final model).
        input_shape: shape of one image, e.g. `(8, 8, 1)`.
        num_classes: number of classes.
        pipeline_sizes: number of examples of each `tf.data` split where
            tf.data knows it (`{"train": 1200, ...}`, a split it does not
            know maps to None); None for array splits.
    """

    name: str
    train: Any
    validation: Any
    test: Any
    input_shape: tuple[int, ...]
    num_classes: int
    pipeline_sizes: dict[str, int | None] | None = None

    @property
    def is_arrays(self) -> bool:
        """Whether the splits are NumPy arrays (else `tf.data` pipelines)."""
        return isinstance(self.train, tuple)

    def sizes(self) -> dict[str, int | None]:
        """Number of examples per split (`None` for a `tf.data` pipeline
        of unknown length)."""
        if not self.is_arrays:
            known = self.pipeline_sizes or {}
            return {s: known.get(s) for s in ("train", "validation", "test")}
        return {
            "train": len(self.train[1]),
            "validation": len(self.validation[1]),
            "test": len(self.test[1]),
        }

    def fit_kwargs(self, split: str, batch_size: int) -> dict[str, Any]:
        """Keyword arguments that feed a split to `Model.fit`/`evaluate`.

        Args:
            split: `"train"`, `"validation"`, `"test"` or
                `"train+validation"` (both concatenated, for retraining).
            batch_size: batch size for array splits (pipelines are already
                batched).

        Returns:
            A dict with `x` (and `y`, `batch_size` for arrays; `shuffle=False`
            for a pipeline to train on, which shuffles itself).
        """
        if split == "train+validation":
            if self.is_arrays:
                x = np.concatenate([self.train[0], self.validation[0]])
                y = np.concatenate([self.train[1], self.validation[1]])
                return {"x": x, "y": y, "batch_size": batch_size}
            # Pipelines shuffle themselves (`fit`'s default shuffle=True
            # would only warn that it is ignored).
            return {
                "x": self.train.concatenate(self.validation),
                "shuffle": False,
            }
        if split not in ("train", "validation", "test"):
            raise ValueError(
                "Expected `split` to be 'train', 'validation', 'test' or "
                f"'train+validation'. Received: split={split!r}"
            )
        data = getattr(self, split)
        if self.is_arrays:
            return {"x": data[0], "y": data[1], "batch_size": batch_size}
        return (
            {"x": data, "shuffle": False} if split == "train" else {"x": data}
        )

    def validation_data(self) -> Any:
        """The validation split in the form `fit(validation_data=...)` takes."""
        return self.validation


def _check_fraction(name: str, value: Any) -> float:
    return check_number(name, value, 0, 1, low_open=True, high_open=True)


def split_arrays(
    x: np.ndarray,
    y: np.ndarray,
    *,
    validation_split: float = 0.2,
    test_split: float = 0.2,
    seed: int = 0,
) -> tuple[tuple, tuple, tuple]:
    """Splits arrays into stratified train/validation/test parts.

    Args:
        x: inputs, first axis = examples.
        y: integer labels.
        validation_split: fraction of all examples used for validation.
        test_split: fraction of all examples held out for testing.
        seed: seed of the shuffle.

    Returns:
        `((x_train, y_train), (x_val, y_val), (x_test, y_test))`.
    """
    from sklearn.model_selection import train_test_split

    validation_split = _check_fraction("validation_split", validation_split)
    test_split = _check_fraction("test_split", test_split)
    if validation_split + test_split >= 1.0:
        raise ValueError(
            "Expected `validation_split + test_split` to be below 1. "
            f"Received: validation_split={validation_split}, "
            f"test_split={test_split}"
        )
    n = len(y)
    n_test = max(1, int(round(n * test_split)))
    n_val = max(1, int(round(n * validation_split)))
    if n - n_test - n_val < 1:
        raise ValueError(
            "Expected enough examples for non-empty train, validation and "
            f"test splits. Received: {n} examples"
        )
    counts = np.bincount(y)
    counts = counts[counts > 0]

    def strat(labels, size):
        # Stratify only when every class can appear in both parts.
        ok = counts.min() >= 2 and size >= len(counts)
        ok = ok and len(labels) - size >= len(counts)
        return labels if ok else None

    x_rest, x_test, y_rest, y_test = train_test_split(
        x, y, test_size=n_test, random_state=seed, stratify=strat(y, n_test)
    )
    x_train, x_val, y_train, y_val = train_test_split(
        x_rest,
        y_rest,
        test_size=n_val,
        random_state=seed,
        stratify=strat(y_rest, n_val),
    )
    return (x_train, y_train), (x_val, y_val), (x_test, y_test)


def load_digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's digits as `(1797, 8, 8, 1)` float32 in [0, 1] + labels."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = digits.images.reshape(-1, 8, 8, 1).astype("float32") / 16.0
    return x, digits.target.astype("int64")


def load_npz_arrays(
    path: str, max_classes: int = MAX_CLASSES
) -> tuple[np.ndarray, np.ndarray]:
    """Reads arrays `x` and `y` from a `.npz` file, validated.

    Integer image arrays (e.g. uint8 pixels) are scaled to [0, 1]; a missing
    channel axis is added, so `(n, H, W)` becomes `(n, H, W, 1)`. The
    arrays are checked as `keras_nas._data_checks.check_arrays` does:
    real, finite values within +-1e6, labels `0..C-1` with `C` at most
    `max_classes` and every class seen at least 3 times.
    """
    if not os.path.isfile(path):
        raise ValueError(
            "Expected `dataset` to be 'digits', 'tfds:NAME' or the path of an "
            f"existing .npz file. Received: dataset={path!r} (no such file)"
        )
    if not zipfile.is_zipfile(path):
        with open(path, "rb") as f:
            npy = f.read(6) == b"\x93NUMPY"
        raise ValueError(
            "Expected `dataset` to be a readable .npz file with arrays 'x' "
            f"and 'y' (np.savez(path, x=x, y=y)). Received: dataset={path!r} "
            + ("(a .npy file: one array)" if npy else "(not a zip archive)")
        )
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files if k in ("x", "y")}
            keys = sorted(data.files)
    except (OSError, EOFError, ValueError, zipfile.BadZipFile) as e:
        # Not a zip of arrays (NumPy then refuses to unpickle it).
        raise ValueError(
            "Expected `dataset` to be a readable .npz file with arrays 'x' "
            f"and 'y'. Received: dataset={path!r} ({type(e).__name__})"
        ) from e
    missing = sorted({"x", "y"} - set(arrays))
    if missing:
        raise ValueError(
            "Expected the .npz file to hold arrays 'x' and 'y'. "
            f"Received: dataset={path!r} with arrays {keys} "
            f"(missing {missing})"
        )
    return check_arrays(arrays["x"], arrays["y"], path, max_classes)


def _tfds_module():
    import tensorflow_datasets as tfds

    return tfds


def _available_splits(info: Any) -> set[str]:
    splits = set(info.splits.keys())
    # Mocked datasets (`tfds.testing.mock_data`) carry no split metadata;
    # assume the usual train/test pair.
    return splits or {"train", "test"}


def tfds_pipelines(
    name: str,
    *,
    batch_size: int = 64,
    validation_split: float = 0.1,
    test_split: float = 0.1,
    subset: int | None = None,
    image_size: int | tuple[int, int] | None = None,
    data_dir: str | None = None,
    shuffle_buffer: int = 10_000,
    seed: int = 0,
    download: bool = True,
) -> dict[str, Any]:
    """Builds train/validation/test `tf.data` pipelines from tfds.

    Images are cast to float32 and scaled to [0, 1], optionally resized,
    then batched and prefetched; the training pipeline is shuffled. If the
    dataset has no validation split, the last `validation_split` of its
    training split is held out (likewise for `test_split` when there is no
    test split).

    Args:
        name: a tensorflow-datasets name with `(image, label)` supervised
            keys, e.g. `"mnist"`, `"fashion_mnist"`, `"cifar10"`.
        batch_size: batch size of every pipeline.
        validation_split: fraction of the training split used for validation
            when the dataset has no validation split.
        test_split: fraction of the training split used for testing when the
            dataset has no test split.
        subset: if given, every split keeps at most this many examples
            (cheap proxy search).
        image_size: if given, images are resized to this side (or
            `(height, width)`), e.g. 16 for a low-resolution proxy.
        data_dir: tfds data directory.
        shuffle_buffer: shuffle buffer size of the training pipeline.
        seed: seed of the training shuffle.
        download: whether tfds may download and prepare the dataset.

    Returns:
        A dict with `train`, `validation`, `test` (batched `tf.data.Dataset`s
        of `(image, label)`), `input_shape`, `num_classes`, `info` and
        `sizes` (examples per split before batching, None where tf.data
        does not know it).

    Example:

    >>> import tensorflow_datasets as tfds
    >>> with tfds.testing.mock_data(num_examples=64):
    ...     data = tfds_pipelines("mnist", batch_size=16, image_size=14)
    >>> data["input_shape"]
    (14, 14, 1)
    """
    if not isinstance(name, str) or not name:
        raise ValueError(
            "Expected `name` to be a tensorflow-datasets name like 'mnist'. "
            f"Received: name={name!r}"
        )
    batch_size = check_positive_int("batch_size", batch_size, allow_none=True)
    if batch_size is None:
        raise ValueError(
            f"Expected `batch_size` to be a positive integer. "
            f"Received: batch_size={batch_size!r}"
        )
    validation_split = _check_fraction("validation_split", validation_split)
    test_split = _check_fraction("test_split", test_split)
    subset = check_positive_int("subset", subset, allow_none=True)
    size = _image_size(image_size)

    import tensorflow as tf

    tfds = _tfds_module()
    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except Exception as e:  # DatasetNotFoundError lists every dataset.
        raise ValueError(
            "Expected `name` to be a tensorflow-datasets name like 'mnist'. "
            f"Received: name={name!r} ({type(e).__name__})"
        ) from e
    info = builder.info
    features = info.features
    keys = info.supervised_keys
    if keys is None or not hasattr(features[keys[1]], "num_classes"):
        raise ValueError(
            "Expected a tensorflow-datasets image classification dataset "
            f"with (image, label) supervised keys. Received: name={name!r}"
        )
    image_feature, label_feature = features[keys[0]], features[keys[1]]
    num_classes = int(label_feature.num_classes)
    shape = tuple(image_feature.shape)
    if len(shape) != 3 or None in shape:
        raise ValueError(
            "Expected images of a fixed shape (H, W, C). Received: "
            f"name={name!r} with image shape {shape}"
        )
    input_shape = (size[0], size[1], shape[2]) if size else shape

    splits = _available_splits(info)
    has_val, has_test = "validation" in splits, "test" in splits
    val_pct = 0 if has_val else int(round(100 * validation_split))
    test_pct = 0 if has_test else int(round(100 * test_split))
    keep = 100 - val_pct - test_pct
    if (
        keep < 1
        or (not has_val and val_pct < 1)
        or (not has_test and test_pct < 1)
    ):
        raise ValueError(
            "Expected `validation_split` and `test_split` to leave non-empty "
            f"splits. Received: validation_split={validation_split}, "
            f"test_split={test_split}"
        )
    names = {
        "train": "train" if keep == 100 else f"train[:{keep}%]",
        "validation": (
            "validation" if has_val else f"train[{keep}%:{keep + val_pct}%]"
        ),
        "test": "test" if has_test else f"train[{keep + val_pct}%:]",
    }
    if download:
        builder.download_and_prepare()

    def prepare(image, label):
        image = tf.cast(image, tf.float32) / 255.0
        if size:
            image = tf.image.resize(image, size, antialias=True)
        return image, tf.cast(label, tf.int64)

    out: dict[str, Any] = {"sizes": {}}
    for split, spec in names.items():
        ds = builder.as_dataset(split=spec, as_supervised=True)
        if subset:
            ds = ds.take(subset)
        count = int(ds.cardinality())
        out["sizes"][split] = count if count >= 0 else None
        ds = ds.map(prepare, num_parallel_calls=tf.data.AUTOTUNE)
        if split == "train":
            ds = ds.shuffle(shuffle_buffer, seed=seed)
        out[split] = ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)
    out["input_shape"] = tuple(int(d) for d in input_shape)
    out["num_classes"] = num_classes
    out["info"] = info
    return out


def _image_size(value: Any) -> tuple[int, int] | None:
    if value is None:
        return None
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        value = (value, value)
    if (
        not isinstance(value, (tuple, list))
        or len(value) != 2
        or not all(
            isinstance(v, (int, np.integer))
            and not isinstance(v, bool)
            and v >= 1
            for v in value
        )
    ):
        raise ValueError(
            "Expected `image_size` to be a positive integer or a "
            f"(height, width) pair. Received: image_size={value!r}"
        )
    return int(value[0]), int(value[1])


def load_dataset(
    spec: str,
    *,
    validation_split: float = 0.2,
    test_split: float = 0.2,
    seed: int = 0,
    batch_size: int = 32,
    subset: int | None = None,
    image_size: int | tuple[int, int] | None = None,
    data_dir: str | None = None,
    max_classes: int = MAX_CLASSES,
) -> DataSplits:
    """Loads a dataset spec into train/validation/test splits.

    Args:
        spec: `"digits"`, `"tfds:NAME"` or the path of a `.npz` file with
            arrays `x` (images `(n, H, W[, C])`) and `y` (integer labels).
        validation_split: fraction of the examples used for validation.
        test_split: fraction of the examples held out for testing (tfds
            datasets use their own test split when they have one).
        seed: seed of the split.
        batch_size: batch size of tfds pipelines (array splits are batched
            by `fit`).
        subset: at most this many examples per split (tfds only).
        image_size: resize tfds images to this resolution.
        data_dir: tfds data directory.
        max_classes: largest number of classes accepted from arrays
            (labels `0..C-1`; a label of 10**6 would build a model with a
            million outputs).

    Returns:
        A `DataSplits`.

    Raises:
        ValueError: array data that cannot be searched on (saying what was
            found): complex or non-finite values, values beyond +-1e6,
            labels not `0..C-1`, fewer than 3 examples of a class or a split
            without an example of each class.

    Example:

    >>> data = load_dataset("digits", validation_split=0.2, test_split=0.2)
    >>> data.input_shape, data.num_classes
    ((8, 8, 1), 10)
    """
    if not isinstance(spec, str) or not spec:
        raise ValueError(
            "Expected `dataset` to be 'digits', 'tfds:NAME' or a .npz path. "
            f"Received: dataset={spec!r}"
        )
    if spec.startswith(TFDS_PREFIX):
        name = spec[len(TFDS_PREFIX) :]
        data = tfds_pipelines(
            name,
            batch_size=batch_size,
            validation_split=validation_split,
            test_split=test_split,
            subset=subset,
            image_size=image_size,
            data_dir=data_dir,
            seed=seed,
        )
        return DataSplits(
            name=spec,
            train=data["train"],
            validation=data["validation"],
            test=data["test"],
            input_shape=data["input_shape"],
            num_classes=data["num_classes"],
            pipeline_sizes=data["sizes"],
        )
    if spec == "digits":
        x, y = load_digits_arrays()
    elif spec.lower().endswith(".npz"):
        x, y = load_npz_arrays(spec, max_classes)
    else:
        raise ValueError(
            "Expected `dataset` to be 'digits', 'tfds:NAME' or the path of "
            f"a .npz file. Received: dataset={spec!r}"
        )
    check_split_sizes(
        len(y), int(y.max()) + 1, validation_split, test_split, spec
    )
    train, val, test = split_arrays(
        x,
        y,
        validation_split=validation_split,
        test_split=test_split,
        seed=seed,
    )
    return DataSplits(
        name=spec,
        train=train,
        validation=val,
        test=test,
        input_shape=tuple(int(d) for d in x.shape[1:]),
        num_classes=int(y.max()) + 1,
    )
