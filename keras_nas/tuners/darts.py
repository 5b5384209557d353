"""DARTS as a keras-tuner `Tuner` (Liu, Simonyan and Yang, ICLR 2019).

`Darts(...).search(x, y, validation_data=..., epochs=...)` trains one
`keras_nas.supernet.DartsSupernet` with the bilevel DARTS step, records the
softmax of `alpha` after every epoch, derives the discrete cell and reports
it as the single trial, whose hyperparameters are values of
`keras_nas.spaces.CellSearchSpace`. `retrain(...)` trains the derived network
from scratch; `get_best_models()` returns it.
"""

from __future__ import annotations

import contextlib
import json
import os
import warnings
from typing import Any

import keras
import keras_tuner
import numpy as np

from keras_nas._validation import (
    check_no_estimator,
    check_number,
    check_objective,
    check_positive_int,
    short_repr,
)
from keras_nas.blocks import registry
from keras_nas.spaces.nas_bench_201_space import NasBench201SearchSpace
from keras_nas.supernet import darts as darts_lib
from keras_nas.supernet import darts_cells
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
        objective: the metric reported for the trial; `None` (the
            default, as in keras-tuner) means "val_accuracy" of the
            supernet on the validation data.
        seed: random seed.
        **kwargs: other `keras_tuner.Oracle` arguments.
    """

    def __init__(
        self,
        objective: Any = None,
        seed: int | None = None,
        **kwargs,
    ):
        kwargs.pop("max_trials", None)
        objective = check_objective(objective, default="val_accuracy")
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
            # (No "reduce" for the NAS-Bench-201 cell: one kind of cell.)
            **{kind: w.tolist() for kind, w in weights.items()},
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


def _is_space(hypermodel: Any) -> bool:
    from keras_nas.spaces.cell_space import CellSearchSpace

    return isinstance(hypermodel, (CellSearchSpace, NasBench201SearchSpace))


def _supernet_ops(space: Any) -> tuple[str, ...]:
    """The supernet's candidates: the space's ops and the zero op (the
    benchmark's five ops for the NAS-Bench-201 space)."""
    if isinstance(space, NasBench201SearchSpace):
        return tuple(registry.NB201_OPS)
    if not space.search_reduction:
        raise ValueError(
            "Expected a `CellSearchSpace` with `search_reduction=True`: "
            "DARTS derives a reduction cell of its own. Received: "
            "hypermodel.search_reduction=False"
        )
    ops = tuple(space.ops)
    return ops if "none" in ops else ("none", *ops)


def _legacy_space(
    input_shape: Any, filters: Any, num_cells: Any, legacy: dict
) -> tuple[Any, tuple[str, ...], Any, Any]:
    """The space, supernet ops, filters and cells of the keras-nas 0.x
    arguments (with their defaults then: DARTS ops, 16 filters, 8 cells)."""
    from keras_nas.spaces.cell_space import CellSearchSpace

    warnings.warn(
        "`Darts(input_shape, num_classes, filters, ...)` is deprecated and "
        "will be removed in the next release: pass a search space, "
        "`Darts(CellSearchSpace(input_shape, num_classes, ops=..., "
        "num_nodes=..., num_cells=..., filters=...), filters=..., "
        "num_cells=...)` (the supernet's sizes).",
        DeprecationWarning,
        stacklevel=3,
    )
    if legacy["num_classes"] is None:
        raise ValueError(
            "Expected `num_classes` with `input_shape` (or a search space "
            "as `hypermodel`). Received: num_classes=None"
        )
    filters = 16 if filters is None else filters
    num_cells = 8 if num_cells is None else num_cells
    ops = registry.DARTS_OPS if legacy["ops"] is None else legacy["ops"]
    darts_cells.check_ops(ops)
    optimizer = legacy["retrain_optimizer"]
    learning_rate = legacy["retrain_learning_rate"]
    space = CellSearchSpace(
        input_shape=tuple(input_shape),
        num_classes=legacy["num_classes"],
        ops=tuple(op for op in ops if op != "none"),
        num_nodes=4 if legacy["num_nodes"] is None else legacy["num_nodes"],
        num_cells=legacy["retrain_num_cells"] or num_cells,
        filters=legacy["retrain_filters"] or filters,
        optimizer="adam" if optimizer is None else optimizer,
        learning_rate=1e-2 if learning_rate is None else learning_rate,
    )
    return space, tuple(ops), filters, num_cells


class Darts(NasTuner):
    """Differentiable architecture search (Liu et al., ICLR 2019) as a tuner.

    Takes its search space like the other keras-nas tuners (`Enas`,
    `OneShotSupernet`): a `keras_nas.spaces.CellSearchSpace`, from which the
    supernet reads the input shape, classes, nodes per cell and candidate
    ops (plus DARTS' zero op `none`, which competes during the search and is
    never derived), and its size (`filters`, `num_cells`: the space's
    smallest choice unless given here; the paper searches with 16 filters
    and 8 cells). The space, unchanged, builds the derived network.

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
    are values of the space (`get_best_hyperparameters()`), scored by the
    supernet's validation accuracy. `get_best_models()` builds the discrete
    network with the space's `build`; it holds trained weights only after
    `retrain(x, y, ...)`, which trains that network from scratch.

    The arguments of keras-nas 0.x, `Darts(input_shape, num_classes,
    filters, num_cells, num_nodes, ops, ..., retrain_num_cells,
    retrain_filters, retrain_optimizer, retrain_learning_rate)`, still work
    for one release with a `DeprecationWarning` (they build the space).

    Args:
        hypermodel: a `CellSearchSpace` with `search_reduction=True`, or
            a `NasBench201SearchSpace` (the supernet of its cell,
            `DartsSupernet(search_space="nb201")`; the derived cell is a
            trial of the space).
        filters: initial filters of the supernet (default: the space's
            smallest `filters`).
        num_cells: cells of the supernet (default: the space's smallest
            `num_cells`; NAS-Bench-201: `3 * cells_per_stage`).
        order: 1 (first-order) or 2 (second-order DARTS).
        relaxation: "softmax" (DARTS), "binary" (ProxylessNAS' binary
            gates, Cai et al., ICLR 2019) or "gumbel" (GDAS, Dong and Yang,
            CVPR 2019; see `DartsSupernet`).
        partial_channels: K of PC-DARTS (Xu et al., ICLR 2020; 1: off).
        batch_size: batch size of each half of a search step.
        train_portion: fraction of `x` used for the weights when no
            `validation_data` is given.
        jit_compile: passed to `DartsSupernet.compile`.
        seed: seed of the supernet initialization and the data order.
        objective: the trial's objective, "val_accuracy" or "val_loss" (the
            metrics `run_trial` reports). `None` (the default, as in
            keras-tuner) means "val_accuracy".
        **kwargs: `keras_tuner.Tuner` arguments (`directory`,
            `project_name`, `overwrite`, ...). `estimator=` is refused:
            DARTS scores its single trial with the supernet itself.

    Example:

    >>> space = CellSearchSpace((8, 8, 1), 10, num_nodes=2,
    ...                         num_cells=2, filters=4)  # doctest: +SKIP
    >>> tuner = Darts(space, seed=0)  # doctest: +SKIP
    >>> tuner.search(x, y, validation_data=(xv, yv), epochs=5)  # doctest: +SKIP
    >>> tuner.get_best_hyperparameters()[0].values  # doctest: +SKIP
    >>> model = tuner.retrain(x, y, epochs=20)  # doctest: +SKIP
    """

    def __init__(
        self,
        hypermodel: Any = None,
        num_classes: Any = None,
        filters: int | None = None,
        num_cells: int | None = None,
        num_nodes: Any = None,
        ops: Any = None,
        order: int = 1,
        batch_size: int = 64,
        train_portion: float = 0.5,
        retrain_num_cells: Any = None,
        retrain_filters: Any = None,
        retrain_optimizer: Any = None,
        retrain_learning_rate: Any = None,
        jit_compile: Any = "auto",
        seed: int | None = None,
        objective: Any = None,
        input_shape: Any = None,
        relaxation: str = "softmax",
        partial_channels: int = 1,
        **kwargs,
    ):
        # (The positional order is that of keras-nas 0.x, `input_shape`
        # first, so that old calls keep working; see `_legacy_space`.)
        objective = check_objective(
            objective, reported=_REPORTED, default="val_accuracy"
        )
        check_no_estimator(type(self).__name__, kwargs)
        seed = check_seed(seed)
        train_portion = check_number(
            "train_portion", train_portion, 0, 1, low_open=True, high_open=True
        )
        legacy = dict(
            num_classes=num_classes,
            num_nodes=num_nodes,
            ops=ops,
            retrain_num_cells=retrain_num_cells,
            retrain_filters=retrain_filters,
            retrain_optimizer=retrain_optimizer,
            retrain_learning_rate=retrain_learning_rate,
        )
        if input_shape is None and not _is_space(hypermodel):
            if not isinstance(hypermodel, (tuple, list)):
                raise ValueError(
                    "Expected `hypermodel` to be a `keras_nas.spaces."
                    "NasBench201SearchSpace` or `CellSearchSpace`. "
                    f"Received: hypermodel={short_repr(hypermodel)}"
                )
            # keras-nas 0.x: `Darts(input_shape, num_classes, ...)`.
            input_shape, hypermodel = hypermodel, None
        elif input_shape is not None and hypermodel is not None:
            raise ValueError(
                "Expected either a search space or (deprecated) "
                "`input_shape`, not both. Received: "
                f"hypermodel={short_repr(hypermodel)}, "
                f"input_shape={short_repr(input_shape)}"
            )
        if input_shape is not None:
            hypermodel, ops, filters, num_cells = _legacy_space(
                input_shape, filters, num_cells, legacy
            )
        else:
            given = sorted(k for k, v in legacy.items() if v is not None)
            if given:
                raise ValueError(
                    "Expected the space's settings in the space, not in "
                    "`Darts(...)` as well. Received: "
                    + ", ".join(f"{k}={legacy[k]!r}" for k in given)
                )
            ops = _supernet_ops(hypermodel)
        nb201 = isinstance(hypermodel, NasBench201SearchSpace)
        if filters is None:
            filters = hypermodel.filters if nb201 else min(hypermodel.filters)
        if num_cells is None:
            num_cells = (
                3 * hypermodel.cells_per_stage
                if nb201
                else min(hypermodel.num_cells)
            )
        self.supernet_config = dict(
            input_shape=tuple(hypermodel.input_shape),
            num_classes=hypermodel.num_classes,
            filters=filters,
            num_cells=num_cells,
            num_nodes=4 if nb201 else hypermodel.num_nodes,
            ops=tuple(ops),
            order=order,
            seed=seed,
            relaxation=relaxation,
            partial_channels=partial_channels,
        )
        if nb201:
            self.supernet_config["search_space"] = "nb201"
        # Validates the configuration before any search starts.
        darts_cells.check_ops(ops)
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

    def _search_inputs(self, args, kwargs) -> tuple:
        """`(data, val, epochs, verbose, callbacks)` of a `search` call:
        the bilevel dataset, the validation arrays and the fit options."""
        kwargs = dict(kwargs)
        train, val = self._search_arrays(args, kwargs)
        epochs = int(kwargs.pop("epochs", 1))
        verbose = kwargs.pop("verbose", 1)
        callbacks = list(kwargs.pop("callbacks", None) or [])
        data = darts_lib.search_data(
            train, val, batch_size=self.batch_size, seed=self.seed
        )
        return data, val, epochs, verbose, callbacks

    def run_trial(self, trial, *args, **kwargs):
        data, val, epochs, verbose, callbacks = self._search_inputs(
            args, kwargs
        )
        # keras-tuner's `distribution_strategy=`: the supernet is built in
        # its scope, so that `fit` runs on its replicas.
        strategy = self.distribution_strategy
        with strategy.scope() if strategy else contextlib.nullcontext():
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
        if supernet.search_space == "nb201":
            hp.values.update(supernet.derive_hyperparameters())
        else:
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
