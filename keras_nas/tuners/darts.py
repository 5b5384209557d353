"""DARTS as a keras-tuner `Tuner` (Liu, Simonyan and Yang, ICLR 2019).

`Darts(...).search(x, y, validation_data=..., epochs=...)` trains one
`keras_nas.supernet.DartsSupernet` with the bilevel DARTS step, records the
softmax of `alpha` after every epoch, derives the discrete cell and reports
it as the single trial, whose hyperparameters are values of
`keras_nas.spaces.CellSearchSpace`. `retrain(...)` trains the derived network
from scratch; `get_best_models()` returns it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any

import keras
import keras_tuner
import numpy as np

from keras_nas._validation import check_objective, check_positive_int
from keras_nas.blocks import registry
from keras_nas.supernet import darts as darts_lib
from keras_nas.tensorboard import log_trial_metrics
from keras_nas.tuners import _results
from keras_nas.tuners._base import NasTuner, check_seed, set_seed

__all__ = ["Darts", "DartsOracle", "AlphaHistory"]

_WEIGHTS_FILE = "retrained.weights.h5"
_HISTORY_FILE = "darts_alpha_history.json"
# The metrics `Darts.run_trial` reports: the possible objectives.
_REPORTED = ("val_accuracy", "val_loss")


class DartsOracle(_results.FiniteBestTrials, keras_tuner.Oracle):
    """Proposes the single trial of a DARTS search, then stops.

    The trial starts with no values; `Darts.run_trial` fills in the derived
    `CellSearchSpace` hyperparameters after the supernet is trained. Nothing
    is random here; `seed` seeds the supernet and the data split.

    Args:
        objective: the metric reported for the trial (default
            "val_accuracy" of the supernet on the validation data).
        seed: random seed.
        **kwargs: other `keras_tuner.Oracle` arguments.
    """

    def __init__(
        self,
        objective: Any = "val_accuracy",
        seed: int | None = None,
        **kwargs,
    ):
        kwargs.pop("max_trials", None)
        objective = check_objective(objective)
        super().__init__(objective=objective, max_trials=1, seed=seed, **kwargs)
        set_seed(self, seed)

    def populate_space(self, trial_id):
        if self.trials:
            return {"status": keras_tuner.engine.trial.TrialStatus.STOPPED}
        return {
            "status": keras_tuner.engine.trial.TrialStatus.RUNNING,
            "values": self.hyperparameters.values,
        }


def _alpha_image(weights: np.ndarray, scale: int = 8) -> np.ndarray:
    """A `(1, edges * scale, ops * scale, 1)` grayscale heat map in [0, 1]."""
    w = np.asarray(weights, dtype=np.float32)
    w = (w - w.min()) / max(float(w.max() - w.min()), 1e-12)
    return np.kron(w, np.ones((scale, scale), np.float32))[None, :, :, None]


class AlphaHistory(keras.callbacks.Callback):
    """Records the softmax of a `DartsSupernet`'s `alpha` after every epoch.

    Appends `{"epoch", "normal", "reduce", "genotype", "logs"}` to a JSON
    list in `path`. With a `log_dir` (TensorFlow needed), also writes one
    TensorBoard scalar per edge and op (`alpha/{kind}/edge{e}/{op}`) and an
    image of each softmax matrix (`alpha/{kind}`, rows = edges, columns =
    ops).

    Args:
        path: JSON file to write.
        log_dir: TensorBoard log directory, or None.
    """

    def __init__(self, path: str, log_dir: str | None = None):
        super().__init__()
        self.path = path
        self.log_dir = log_dir
        self.history: list[dict[str, Any]] = []
        self._writer = None

    def on_train_begin(self, logs=None):
        if os.path.exists(self.path):
            with open(self.path) as f:
                self.history = json.load(f)
        if self.log_dir is not None:
            import tensorflow as tf

            self._writer = tf.summary.create_file_writer(self.log_dir)

    def on_epoch_end(self, epoch, logs=None):
        model = self.model
        weights = model.arch_weights()
        record = {
            "epoch": int(epoch) + 1,
            "normal": weights["normal"].tolist(),
            "reduce": weights["reduce"].tolist(),
            "genotype": model.derive_genotype().to_dict(),
            "logs": {k: float(v) for k, v in (logs or {}).items()},
        }
        self.history.append(record)
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(self.history, f)
        os.replace(tmp, self.path)
        if self._writer is not None:
            self._write_summaries(epoch + 1, weights, model.candidate_ops)

    def _write_summaries(self, step, weights, candidates):
        import tensorflow as tf

        with self._writer.as_default():
            for kind, w in weights.items():
                for e in range(w.shape[0]):
                    for k, op in enumerate(candidates):
                        tf.summary.scalar(
                            f"alpha/{kind}/edge{e}/{op}", w[e, k], step=step
                        )
                tf.summary.image(f"alpha/{kind}", _alpha_image(w), step=step)
        self._writer.flush()

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def _split_arrays(x, y, portion: float, seed: int | None):
    x, y = np.asarray(x), np.asarray(y)
    order = np.random.default_rng(seed).permutation(len(x))
    n = int(round(portion * len(x)))
    t, v = order[:n], order[n:]
    return (x[t], y[t]), (x[v], y[v])


class Darts(NasTuner):
    """Differentiable architecture search (Liu et al., ICLR 2019) as a tuner.

    `search(x, y, validation_data=(x_val, y_val), epochs=...)` trains a
    `DartsSupernet` for `epochs` epochs on batches zipped from the training
    data (weights) and the validation data (`alpha`); without
    `validation_data` the training arrays are split in halves
    (`train_portion`), as in the paper. `x`/`y` and `validation_data` must
    be arrays. After every epoch the softmax of `alpha` is appended to
    `darts_alpha_history.json` in the project directory; if a
    `keras.callbacks.TensorBoard` is among `callbacks`, per-edge scalars and
    an image of each softmax matrix go to its `log_dir` under `darts/`.

    The derived genotype is reported as the only trial: its hyperparameters
    are values of `CellSearchSpace` (`get_best_hyperparameters()`), scored by
    the supernet's validation accuracy. `get_best_models()` builds the
    discrete network with `CellSearchSpace.build` (`retrain_num_cells`
    cells, `retrain_filters` filters); it holds trained weights only after
    `retrain(x, y, ...)`, which trains that network from scratch.

    Args:
        input_shape: shape of one image, `(height, width, channels)`.
        num_classes: number of classes.
        filters: initial filters of the supernet (16 in the paper).
        num_cells: cells of the supernet (8 in the paper).
        num_nodes: intermediate nodes per cell.
        ops: candidate ops of the supernet (with `none`, as in DARTS).
        order: 1 (first-order) or 2 (second-order DARTS).
        batch_size: batch size of each half of a search step.
        train_portion: fraction of `x` used for the weights when no
            `validation_data` is given.
        retrain_num_cells: cells of the derived network.
        retrain_filters: initial filters of the derived network.
        retrain_optimizer: optimizer name of the derived network (see
            `CellSearchSpace`).
        retrain_learning_rate: its learning rate.
        jit_compile: passed to `DartsSupernet.compile`.
        seed: seed of the supernet initialization and the data order.
        objective: the trial's objective: "val_accuracy" (default) or
            "val_loss", the metrics `run_trial` reports.
        **kwargs: `keras_tuner.Tuner` arguments (`directory`,
            `project_name`, `overwrite`, ...).

    Example:

    >>> tuner = Darts((8, 8, 1), 10, filters=4, num_cells=2)  # doctest: +SKIP
    >>> tuner.search(x, y, validation_data=(xv, yv), epochs=5)  # doctest: +SKIP
    >>> tuner.get_best_hyperparameters()[0].values  # doctest: +SKIP
    >>> model = tuner.retrain(x, y, epochs=20)  # doctest: +SKIP
    """

    def __init__(
        self,
        input_shape: Sequence[int],
        num_classes: int,
        filters: int = 16,
        num_cells: int = 8,
        num_nodes: int = 4,
        ops: Sequence[str] = registry.DARTS_OPS,
        order: int = 1,
        batch_size: int = 64,
        train_portion: float = 0.5,
        retrain_num_cells: int | None = None,
        retrain_filters: int | None = None,
        retrain_optimizer: str = "adam",
        retrain_learning_rate: float = 1e-2,
        jit_compile: Any = "auto",
        seed: int | None = None,
        objective: Any = "val_accuracy",
        **kwargs,
    ):
        from keras_nas.spaces.cell_space import CellSearchSpace

        check_objective(objective, reported=_REPORTED)
        seed = check_seed(seed)
        if not 0.0 < float(train_portion) < 1.0:
            raise ValueError(
                "Expected `train_portion` in (0, 1). "
                f"Received: train_portion={train_portion!r}"
            )
        self.supernet_config = dict(
            input_shape=tuple(input_shape),
            num_classes=num_classes,
            filters=filters,
            num_cells=num_cells,
            num_nodes=num_nodes,
            ops=tuple(ops),
            order=order,
            seed=seed,
        )
        # Validates the configuration before any search starts.
        darts_lib._check_ops(ops)
        space_ops = tuple(op for op in ops if op != "none")
        hypermodel = CellSearchSpace(
            input_shape=tuple(input_shape),
            num_classes=num_classes,
            ops=space_ops,
            num_nodes=num_nodes,
            num_cells=retrain_num_cells or num_cells,
            filters=retrain_filters or filters,
            optimizer=retrain_optimizer,
            learning_rate=retrain_learning_rate,
        )
        self.batch_size = check_positive_int("batch_size", batch_size)
        self.train_portion = float(train_portion)
        self.jit_compile = jit_compile
        self.seed = seed
        self.supernet = None
        oracle = DartsOracle(objective=objective, seed=seed)
        super().__init__(oracle, hypermodel=hypermodel, **kwargs)

    @property
    def alpha_history_path(self) -> str:
        """The JSON file of the per-epoch softmax of `alpha`."""
        return os.path.join(self.project_dir, _HISTORY_FILE)

    def _search_arrays(self, args, kwargs):
        x = args[0] if args else kwargs.pop("x", None)
        y = args[1] if len(args) > 1 else kwargs.pop("y", None)
        if x is None or y is None:
            raise ValueError(
                "Expected `x` and `y` arrays in Darts.search(x, y, ...). "
                f"Received: x={type(x).__name__}, y={type(y).__name__}"
            )
        validation = kwargs.pop("validation_data", None)
        if validation is None:
            return _split_arrays(x, y, self.train_portion, self.seed)
        if not isinstance(validation, (tuple, list)) or len(validation) < 2:
            raise ValueError(
                "Expected `validation_data` to be (x_val, y_val) arrays. "
                f"Received: validation_data={type(validation).__name__}"
            )
        return (x, y), tuple(validation[:2])

    def run_trial(self, trial, *args, **kwargs):
        kwargs = dict(kwargs)
        train, val = self._search_arrays(args, kwargs)
        epochs = int(kwargs.pop("epochs", 1))
        verbose = kwargs.pop("verbose", 1)
        callbacks = list(kwargs.pop("callbacks", None) or [])
        data = darts_lib.search_data(
            train, val, batch_size=self.batch_size, seed=self.seed
        )
        supernet = darts_lib.DartsSupernet(**self.supernet_config)
        supernet.compile(
            decay_steps=max(1, epochs * len(data)),
            steps_per_epoch=max(1, len(data)),
            jit_compile=self.jit_compile,
        )
        log_dir = None
        for cb in callbacks:
            if isinstance(cb, keras.callbacks.TensorBoard):
                log_dir = os.path.join(cb.log_dir, "darts")
        history = AlphaHistory(self.alpha_history_path, log_dir=log_dir)
        supernet.fit(
            data,
            epochs=epochs,
            callbacks=[history] + callbacks,
            verbose=verbose,
        )
        self.supernet = supernet
        metrics = supernet.evaluate(
            val[0],
            val[1],
            batch_size=self.batch_size,
            verbose=0,
            return_dict=True,
        )
        hp = trial.hyperparameters
        self.hypermodel.declare_hyperparameters(hp)
        hp.values.update(
            self.hypermodel.hyperparameters(
                supernet.derive_genotype(),
                num_cells=hp.get("num_cells"),
                filters=hp.get("filters"),
            )
        )
        self.oracle.update_space(hp)
        result = {
            "val_accuracy": float(metrics["accuracy"]),
            "val_loss": float(metrics["loss"]),
        }  # = _REPORTED
        # The derived architecture as an HParams session (TensorBoard).
        log_trial_metrics(self, trial, callbacks, result)
        return result

    def _retrained_path(self, trial) -> str:
        return os.path.join(self.get_trial_dir(trial.trial_id), _WEIGHTS_FILE)

    def load_model(self, trial):
        """The discrete network of `trial`; retrained weights if saved."""
        model = self.hypermodel.build(trial.hyperparameters.copy())
        path = self._retrained_path(trial)
        if os.path.exists(path):
            if getattr(model, "optimizer", None) is not None:
                model.optimizer.build(model.trainable_variables)
            model.load_weights(path)
        return model

    def retrain(self, x, y, **fit_kwargs) -> keras.Model:
        """Trains the derived network from scratch and saves its weights.

        Builds the best trial's network with `CellSearchSpace.build` (new
        weights) and calls `model.fit(x, y, **fit_kwargs)`. The weights are
        stored in the trial directory, so `get_best_models()` returns the
        retrained network afterwards.

        Args:
            x: training inputs.
            y: training labels.
            **fit_kwargs: `keras.Model.fit` arguments (`epochs`,
                `batch_size`, `validation_data`, `callbacks`, ...).

        Returns:
            The trained `keras.Model` (with `.history`).
        """
        trial = self.oracle.get_best_trials(1)
        if not trial:
            raise ValueError(
                "Expected a finished search before `retrain`. "
                "Received: no completed trial; call search() first"
            )
        trial = trial[0]
        model = self.hypermodel.build(trial.hyperparameters.copy())
        model.fit(x, y, **fit_kwargs)
        model.save_weights(self._retrained_path(trial))
        return model
