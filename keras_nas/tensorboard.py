"""TensorBoard views of trials and searches, and readers for the event files.

keras-tuner's `Tuner.run_trial` already logs a trial trained with `fit` when
the user passes a `keras.callbacks.TensorBoard`: the callback's `log_dir` is
moved to `<log_dir>/<trial_id>/execution<k>` and an HParams callback records
the trial's hyperparameters there, so TensorBoard's HParams dashboard shows
one session per trial next to its epoch curves. Trials that are *not*
trained with `fit` (a shared-weight or lookup-table estimate) would be
missing; `log_trial_metrics` writes them in the same layout: the session's
hyperparameters plus the metrics as step-0 scalars named like the epoch
curves Keras writes (`validation/epoch_accuracy` for `val_accuracy`).

The search itself is logged too (`SearchViews`, through `SearchViewsMixin`,
which every keras-nas tuner has; `add_search_views(tuner)` gives it to
keras-tuner's own tuners): each trial's architecture as an image and as
text in its run, and a `search` run with the objective per trial, the best
so far, hardware costs, the Pareto front size and the history plot.

`read_hparams`, `read_scalars`, `read_images` and `read_text` (from
`keras_nas._tensorboard_read`) read the event files back (used by the
tests and handy in notebooks).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any

from keras_nas._metric_names import HARDWARE_METRICS
from keras_nas._tensorboard_read import (
    read_hparams,
    read_images,
    read_scalars,
    read_text,
)
from keras_nas._validation import check_positive_int

__all__ = [
    "ARCHITECTURE_IMAGE",
    "ARCHITECTURE_TEXT",
    "GENOTYPE_HPARAM",
    "SEARCH_RUN",
    "SearchViews",
    "SearchViewsMixin",
    "add_search_views",
    "tensorboard_log_dirs",
    "log_trial_metrics",
    "read_hparams",
    "read_images",
    "read_scalars",
    "read_text",
    "session_hparams",
]


def _is_tensorboard(callback: Any) -> bool:
    # Same test as keras-tuner's `_configure_tensorboard_dir`.
    return callback.__class__.__name__ == "TensorBoard"


def tensorboard_log_dirs(
    tuner: Any, trial: Any, callbacks: Iterable[Any] | None, execution=0
) -> list[str]:
    """Returns the per-trial log dirs of the TensorBoard callbacks given.

    The layout is keras-tuner's: `<log_dir>/<trial_id>/execution<k>`. The
    callbacks are not modified.

    Args:
        tuner: The `keras_tuner.Tuner` running the trial.
        trial: The `keras_tuner.engine.trial.Trial`.
        callbacks: The callbacks passed to `tuner.search`, or `None`.
        execution: Index of the execution within the trial.

    Returns:
        One directory per `keras.callbacks.TensorBoard` in `callbacks`.
    """
    return [
        _trial_log_dir(tuner, logdir, trial.trial_id, execution)
        for logdir in _callback_log_dirs(callbacks)
    ]


def _split_metric(name: str) -> tuple[str, str]:
    if name.startswith("val_"):
        return "validation", "epoch_" + name[len("val_") :]
    return "train", "epoch_" + name


def log_trial_metrics(
    tuner: Any,
    trial: Any,
    callbacks: Iterable[Any] | None,
    metrics: Mapping[str, Any] | float | None,
    step: int = 0,
) -> list[str]:
    """Logs a trial that was not trained with `fit` to TensorBoard.

    Writes the trial's hyperparameters as an HParams session and each metric
    as a scalar, into the per-trial directory of every TensorBoard callback
    in `callbacks` (nothing happens without one, or when TensorFlow is not
    installed).

    Args:
        tuner: The `keras_tuner.Tuner` running the trial.
        trial: The trial; its `hyperparameters` are logged.
        callbacks: The callbacks passed to `tuner.search`, or `None`.
        metrics: Dict of metric name -> value (as returned by `run_trial`),
            or a single float (logged as the oracle's objective).
        step: The step of the scalars.

    Returns:
        The directories written to.

    Example:

    ```python
    def run_trial(self, trial, *args, **kwargs):
        metrics = self.estimator.estimate(self, trial, *args, **kwargs)
        log_trial_metrics(self, trial, kwargs.get("callbacks"), metrics)
        return metrics
    ```
    """
    logdirs = tensorboard_log_dirs(tuner, trial, callbacks)
    if not logdirs:
        return []
    try:
        import tensorflow as tf
        from keras_tuner.src.engine import tuner_utils
        from tensorboard.plugins.hparams import api as hparams_api
        from tensorboard.plugins.hparams import api_pb2
        from tensorboard.plugins.hparams import summary as hparams_summary
    except ImportError:  # pragma: no cover - TensorFlow is a dependency.
        return []
    if metrics is None:
        metrics = {}
    elif not isinstance(metrics, Mapping):
        name = _objective_name(tuner)
        metrics = {name: metrics}
    hparams = tuner_utils.convert_hyperparams_to_hparams(
        trial.hyperparameters, hparams_api
    )
    hparams.update(session_hparams(tuner, trial))
    for logdir in logdirs:
        writer = tf.summary.create_file_writer(logdir)
        with writer.as_default():
            hparams_api.hparams(hparams, trial_id=str(trial.trial_id))
        writers = {}
        for name, value in metrics.items():
            try:
                value = float(value)
            except (TypeError, ValueError):
                continue
            group, tag = _split_metric(str(name))
            if group not in writers:
                writers[group] = tf.summary.create_file_writer(
                    os.path.join(logdir, group)
                )
            with writers[group].as_default():
                tf.summary.scalar(tag, value, step=step)
        with writer.as_default():
            pb = hparams_summary.session_end_pb(api_pb2.STATUS_SUCCESS)
            tf.summary.experimental.write_raw_pb(pb.SerializeToString(), step=0)
        for w in (writer, *writers.values()):
            w.flush()
            w.close()
    return logdirs


def session_hparams(tuner: Any, trial: Any) -> dict[str, Any]:
    """HParams that keras-nas adds to a trial's session.

    `{"genotype": "<the genotype string>"}` when the tuner's space has
    genotypes (the cell and NAS-Bench-201 spaces), else `{}`. With it the
    HParams table can show one compact `genotype` column instead of a
    column per edge (see `SearchViews`).
    """
    values = _active_values(trial)
    genotype = _genotype_of(getattr(tuner, "hypermodel", None), values)
    return {} if genotype is None else {GENOTYPE_HPARAM: str(genotype)}


def _objective_name(tuner: Any) -> str:
    objective = getattr(getattr(tuner, "oracle", None), "objective", None)
    name = getattr(objective, "name", None)
    return name if isinstance(name, str) else "objective"


# --- The search itself as TensorBoard views ----------------------------------

#: Run (directory under the callback's `log_dir`) of the search-level views.
SEARCH_RUN = "search"
#: Tag of each trial's architecture image, in the trial's run.
ARCHITECTURE_IMAGE = "architecture/image"
#: Tag of each trial's architecture text, in the trial's run. (Image and
#: text need distinct tags: TensorBoard keeps one plugin per tag and run,
#: and its default loader drops both when they share one.)
ARCHITECTURE_TEXT = "architecture/text"
#: Name of the compact HParams column holding a trial's genotype.
GENOTYPE_HPARAM = "genotype"


def _trial_log_dir(tuner: Any, log_dir: str, trial_id: str, execution=0):
    getter = getattr(tuner, "_get_tensorboard_dir", None)
    if getter is not None:
        return getter(log_dir, trial_id, execution)
    return os.path.join(log_dir, str(trial_id), f"execution{execution}")


def _callback_log_dirs(callbacks: Iterable[Any] | None) -> list[str]:
    return [str(c.log_dir) for c in callbacks or () if _is_tensorboard(c)]


def _active_values(trial: Any) -> dict[str, Any]:
    hps = trial.hyperparameters
    return {k: v for k, v in hps.values.items() if hps.is_active(k)}


def _genotype_of(hypermodel: Any, values: Mapping[str, Any]) -> Any:
    """The genotype of `values` if the space has one (cell, NB201)."""
    to_genotype = getattr(hypermodel, "genotype", None)
    if not callable(to_genotype):
        return None
    try:
        return to_genotype(dict(values))
    except (ValueError, KeyError, TypeError):
        return None


def _genotype_keys(hypermodel: Any, values: Mapping[str, Any]) -> set[str]:
    """The hyperparameters the genotype is made of: those without which
    the genotype cannot be built."""
    return {
        name
        for name in values
        if _genotype_of(
            hypermodel, {k: v for k, v in values.items() if k != name}
        )
        is None
    }


def _varies(hp: Any) -> bool:
    """Whether a keras-tuner hyperparameter can take several values."""
    from keras_tuner.engine import hyperparameters as hp_module

    if isinstance(hp, hp_module.Fixed):
        return False
    if isinstance(hp, hp_module.Choice):
        return len(hp.values) > 1
    if isinstance(hp, (hp_module.Int, hp_module.Float)):
        return hp.max_value > hp.min_value
    return True


def _figure_pixels(fig) -> Any:
    """A matplotlib figure as a `(1, height, width, 3)` uint8 array.

    Rendered as a PNG with a tight bounding box, as `savefig` would.
    """
    import io

    import numpy as np
    from PIL import Image

    buffer = io.BytesIO()
    fig.savefig(
        buffer, format="png", dpi=100, bbox_inches="tight", pad_inches=0.15
    )
    buffer.seek(0)
    return np.asarray(Image.open(buffer).convert("RGB"))[None].copy()


def _values_figure(values: Mapping[str, Any], title: str):
    """A picture of hyperparameter values (spaces without genotypes)."""
    from matplotlib.figure import Figure

    lines = [f"{name} = {value}" for name, value in values.items()]
    lines = lines or ["(no hyperparameters)"]
    per_column = 24
    columns = [
        lines[i : i + per_column] for i in range(0, len(lines), per_column)
    ]
    # Monospace at 9 points: about 0.08 inch per character.
    widths = [0.08 * (3 + max(len(line) for line in c)) for c in columns]
    rows = min(len(lines), per_column)
    height = 0.5 + 0.17 * rows
    fig = Figure(figsize=(max(3.0, sum(widths)), height))
    x = 0.0
    for column, width in zip(columns, widths, strict=True):
        fig.text(
            x / fig.get_figwidth(),
            1.0 - 0.45 / height,
            "\n".join(column),
            family="monospace",
            fontsize=9,
            va="top",
        )
        x += width
    fig.suptitle(title, fontsize=11)
    return fig


def _architecture_text(
    trial: Any, values: Mapping[str, Any], genotype: Any
) -> str:
    import json

    status = getattr(trial.status, "name", None) or str(trial.status)
    head = f"**trial {trial.trial_id}** ({status})"
    if trial.score is not None:
        head += f", score {float(trial.score):.6g}"
    parts = [head]
    if genotype is not None:
        parts.append(f"genotype: `{genotype}`")
    dumped = json.dumps(dict(values), indent=2, sort_keys=True, default=str)
    # Indented lines are a code block in TensorBoard's markdown.
    parts.append("\n".join("    " + line for line in dumped.splitlines()))
    return "\n\n".join(parts)


def _metric_value(trial: Any, name: str) -> float | None:
    import math

    if not trial.metrics.exists(name):
        return None
    value = trial.metrics.get_best_value(name)
    if value is None or not math.isfinite(float(value)):
        return None
    return float(value)


def _check_every(history_every: Any) -> int:
    return check_positive_int("history_every", history_every)


def _hardware_metrics() -> tuple[str, ...]:
    return HARDWARE_METRICS


class SearchViews:
    """Writes a search (not only its trials) to one TensorBoard `log_dir`.

    For every finished trial:

    - in the trial's run (`<log_dir>/<trial_id>/execution0`, beside its
      epoch curves and HParams session): the architecture as an image
      (`ARCHITECTURE_IMAGE`; the cells drawn by `keras_nas.visualize.
      draw_genotype` for spaces with genotypes, the hyperparameter values
      otherwise) and as text (`ARCHITECTURE_TEXT`: genotype string and the
      values as JSON);
    - in the search run (`<log_dir>/search`), at step = the trial's
      keras-tuner id (0, 1, ...; the trial number of the `keras-nas`
      console, `results.json`, the trial's run and `plot_history`):
      `objective/<name>` (the trial's best value of each objective) and
      `best/<name>` (best so far), `pareto/front_size` for multi-objective
      searches, and `hardware/<metric>` for the cost metrics of
      `keras_nas.estimation.HardwareAware` that the trial holds.

    For spaces with genotypes, the first completed trial also writes the
    HParams experiment (in the search run): its columns are `genotype` (the
    genotype string each session holds, see `session_hparams`) and the
    hyperparameters the genotype does not hold (e.g. `filters`), then the
    trial's metrics, the objective first; the per-edge hyperparameters stay
    in the sessions but get no column.

    Every `history_every` trials, and at the end of the search, the image
    `history` of the search run is `keras_nas.visualize.plot_history` of the
    tuner (best-so-far line, or the Pareto front).

    Tuners normally do not use this class directly: `SearchViewsMixin`
    (part of every keras-nas tuner) creates one per
    `keras.callbacks.TensorBoard` passed to `search`. Writing needs
    TensorFlow (as Keras' TensorBoard callback does), on any backend.

    Args:
        log_dir: the `log_dir` of a TensorBoard callback.
        history_every: trials between two refreshes of the history image.
    """

    def __init__(self, log_dir: str, history_every: int = 5):
        self.log_dir = str(log_dir)
        self.history_every = _check_every(history_every)
        self.search_dir = os.path.join(self.log_dir, SEARCH_RUN)
        self.num_logged = 0
        self._last_step = 0
        self._writer = None
        self._experiment_written = False

    def _search_writer(self):
        import tensorflow as tf

        if self._writer is None:
            self._writer = tf.summary.create_file_writer(self.search_dir)
        return self._writer

    def close(self) -> None:
        """Flushes and closes the search run's event file."""
        if self._writer is not None:
            self._writer.flush()
            self._writer.close()
            self._writer = None

    def log_trial(self, tuner: Any, trial: Any) -> None:
        """Writes the views of a finished `trial` of `tuner`."""
        # One trial number everywhere: keras-tuner's trial id, as in the
        # trial's run directory, the CLI's lines and `plot_history`.
        step = (
            int(trial.trial_id)
            if str(trial.trial_id).isdigit()
            else self.num_logged
        )
        self._log_architecture(tuner, trial)
        self._log_experiment(tuner, trial)
        self._log_scores(tuner, trial, step)
        self.num_logged += 1
        self._last_step = max(self._last_step, step)
        if self.num_logged % self.history_every == 0:
            self.log_history(tuner)
        else:
            self._search_writer().flush()

    def _log_architecture(self, tuner: Any, trial: Any) -> None:
        import tensorflow as tf

        from keras_nas.blocks.genotypes import Genotype, NasBench201Genotype
        from keras_nas.visualize import draw_genotype

        values = _active_values(trial)
        genotype = _genotype_of(getattr(tuner, "hypermodel", None), values)
        score = "failed" if trial.score is None else f"{trial.score:.4g}"
        title = f"trial {trial.trial_id}: {score}"
        if isinstance(genotype, (Genotype, NasBench201Genotype)):
            fig = draw_genotype(genotype, title=title)
        else:  # No genotype, or one `draw_genotype` cannot draw.
            fig = _values_figure(values, title)
        pixels = _figure_pixels(fig)
        text = _architecture_text(trial, values, genotype)
        logdir = _trial_log_dir(tuner, self.log_dir, trial.trial_id)
        writer = tf.summary.create_file_writer(logdir)
        with writer.as_default():
            tf.summary.image(ARCHITECTURE_IMAGE, pixels, step=0)
            tf.summary.text(ARCHITECTURE_TEXT, text, step=0)
        writer.flush()
        writer.close()

    def _log_experiment(self, tuner: Any, trial: Any) -> None:
        """The HParams experiment (once, at the first completed trial of a
        space with genotypes; TensorBoard reads only the first one)."""
        from keras_tuner.engine import trial as trial_module

        done = trial_module.TrialStatus.COMPLETED
        if self._experiment_written or trial.status != done:
            return
        hypermodel = getattr(tuner, "hypermodel", None)
        values = _active_values(trial)
        if _genotype_of(hypermodel, values) is None:
            return
        import tensorflow as tf
        from keras_tuner.src.engine import tuner_utils
        from tensorboard.plugins.hparams import api as hparams_api
        from tensorboard.plugins.hparams import api_pb2
        from tensorboard.plugins.hparams import summary as hparams_summary

        in_genotype = _genotype_keys(hypermodel, values)
        domains = {
            hp.name: hp.domain
            for hp in tuner_utils.convert_hyperparams_to_hparams(
                trial.hyperparameters, hparams_api
            )
        }
        # TensorBoard sorts the columns by `differs` (true first) and shows
        # the first five: the genotype, then what the search varies.
        infos = [
            api_pb2.HParamInfo(
                name=GENOTYPE_HPARAM,
                type=api_pb2.DATA_TYPE_STRING,
                differs=True,
            )
        ]
        for hp in tuner.oracle.hyperparameters.space:
            if hp.name in in_genotype:
                continue
            info = api_pb2.HParamInfo(name=hp.name)
            if domains.get(hp.name) is not None:
                domains[hp.name].update_hparam_info(info)
            info.differs = _varies(hp)
            infos.append(info)
        objective = _objective_name(tuner)
        names = sorted(trial.metrics.metrics, key=lambda n: n != objective)
        metrics = [
            hparams_api.Metric(tag, group=group, display_name=name).as_proto()
            for name in names
            for group, tag in [_split_metric(name)]
        ]
        pb = hparams_summary.experiment_pb(infos, metrics)
        with self._search_writer().as_default():
            tf.summary.experimental.write_raw_pb(pb.SerializeToString(), 0)
        self._experiment_written = True

    def _log_scores(self, tuner: Any, trial: Any, step: int) -> None:
        import tensorflow as tf
        from keras_tuner.engine import trial as trial_module

        from keras_nas.visualize import _objectives_of, pareto_front

        oracle = tuner.oracle
        done = trial_module.TrialStatus.COMPLETED
        trials = [
            t
            for t in getattr(oracle, "trials", {}).values()
            if t.status == done and t.trial_id != trial.trial_id
        ]
        if trial.status == done:
            trials.append(trial)
        objectives = _objectives_of(oracle)
        with self._search_writer().as_default():
            for name, direction in objectives:
                value = _metric_value(trial, name)
                if value is not None and trial.status == done:
                    tf.summary.scalar(f"objective/{name}", value, step=step)
                seen = [_metric_value(t, name) for t in trials]
                seen = [v for v in seen if v is not None]
                if seen:
                    best = max(seen) if direction == "max" else min(seen)
                    tf.summary.scalar(f"best/{name}", best, step=step)
            if len(objectives) > 1:
                points = [
                    [_metric_value(t, name) for name, _ in objectives]
                    for t in trials
                ]
                points = [p for p in points if None not in p]
                directions = [d for _, d in objectives]
                front = pareto_front(points, directions) if points else []
                tf.summary.scalar("pareto/front_size", len(front), step=step)
            for name in _hardware_metrics():
                value = _metric_value(trial, name)
                if value is not None:
                    tf.summary.scalar(f"hardware/{name}", value, step=step)

    def log_history(self, tuner: Any) -> None:
        """Writes `plot_history(tuner)` as the search run's `history`."""
        import tensorflow as tf

        from keras_nas.visualize import plot_history

        oracle = getattr(tuner, "oracle", None)
        if not getattr(oracle, "trials", None):
            return
        fig = plot_history(tuner, title=f"{type(tuner).__name__} search")
        with self._search_writer().as_default():
            tf.summary.image(
                "history", _figure_pixels(fig), step=self._last_step
            )
        self._search_writer().flush()


def _tensorflow_available() -> bool:
    try:
        import tensorflow  # noqa: F401
    except ImportError:  # pragma: no cover - TensorFlow is a dependency.
        return False
    return True


class SearchViewsMixin:
    """Tuner mixin: the search's TensorBoard views (see `SearchViews`).

    Part of every keras-nas tuner (`keras_nas.tuners`); keras-tuner's own
    tuners get it with `add_search_views(tuner)`. When `search` is given
    `keras.callbacks.TensorBoard` callbacks, each finished trial's
    architecture and scores are written next to what keras-tuner logs (the
    epoch curves and the HParams session), and the history is drawn every
    `tensorboard_history_every` trials and at the end of the search.
    """

    #: Trials between two refreshes of the history image.
    tensorboard_history_every: int = 5
    _search_views: list[SearchViews] = []

    def search(self, *fit_args, **fit_kwargs):
        log_dirs = _callback_log_dirs(fit_kwargs.get("callbacks"))
        if log_dirs and _tensorflow_available():
            every = self.tensorboard_history_every
            self._search_views = [SearchViews(d, every) for d in log_dirs]
        try:
            return super().search(*fit_args, **fit_kwargs)
        finally:
            for views in self._search_views:
                views.close()
            self._search_views = []

    def _configure_tensorboard_dir(self, callbacks, trial, execution=0):
        # keras-tuner appends an HParams callback per TensorBoard callback;
        # its session gets the compact `genotype` hyperparameter too.
        count = len(callbacks)
        super()._configure_tensorboard_dir(callbacks, trial, execution)
        extra = session_hparams(self, trial)
        for callback in callbacks[count:]:
            hparams = getattr(callback, "_hparams", None)
            if extra and isinstance(hparams, dict):
                hparams.update(extra)

    def on_trial_end(self, trial):
        super().on_trial_end(trial)
        for views in self._search_views:
            views.log_trial(self, trial)

    def on_search_end(self):
        super().on_search_end()
        for views in self._search_views:
            views.log_history(self)


_MIXED: dict[type, type] = {}


def add_search_views(tuner: Any, history_every: int | None = None) -> Any:
    """Makes a keras-tuner tuner write the search views of `SearchViews`.

    keras-nas tuners already do. For keras-tuner's own tuners (e.g.
    `RandomSearch`), this gives the instance the `SearchViewsMixin`
    behaviour; nothing else changes.

    Args:
        tuner: a `keras_tuner.Tuner`.
        history_every: trials between two refreshes of the history image
            (default: keep the tuner's, 5).

    Returns:
        The same tuner.

    Example:

    ```python
    tuner = add_search_views(keras_tuner.RandomSearch(space, max_trials=9))
    tuner.search(x, y, validation_split=0.2,
                 callbacks=[keras.callbacks.TensorBoard("logs")])
    # logs/search: objective/val_accuracy, best/val_accuracy, history
    ```
    """
    if not callable(getattr(tuner, "on_trial_end", None)) or not hasattr(
        tuner, "oracle"
    ):
        raise ValueError(
            f"Expected a keras-tuner tuner. Received: tuner={tuner!r}"
        )
    cls = type(tuner)
    if not isinstance(tuner, SearchViewsMixin):
        if cls not in _MIXED:
            _MIXED[cls] = type(cls.__name__, (SearchViewsMixin, cls), {})
        tuner.__class__ = _MIXED[cls]
    if history_every is not None:
        tuner.tensorboard_history_every = _check_every(history_every)
    return tuner
