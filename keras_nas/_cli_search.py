"""`keras-nas search`: load the data, search, retrain the best, test it.

The arguments come from `keras_nas._cli_args`, the space and the tuner
from `keras_nas._cli_tuners`, and the directory and its records from
`keras_nas._cli_results`. A process that keras-tuner's `KERASTUNER_*`
environment makes a worker of a distributed search runs `search_worker`.
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

from keras_nas import _project
from keras_nas._cli_devices import (
    fit_to_devices,
    hide_accelerators,
    make_strategy,
    strategy_scope,
)
from keras_nas._cli_env import UsageError, import_backend, plural, quietly
from keras_nas._cli_results import (
    Run,
    no_best_message,
    plots,
    prepare_directory,
    save_best,
    summary,
    trial_number,
)
from keras_nas._cli_tuners import (
    check_sizes,
    jit_setting,
    make_space,
    make_tuner,
    set_jit,
)


def _seed_everything(seed: int) -> None:
    import keras

    keras.utils.set_random_seed(seed)


def _load(args: argparse.Namespace) -> Any:
    from keras_nas.data import load_dataset

    try:
        return load_dataset(
            args.dataset,
            validation_split=args.validation_split,
            test_split=args.test_split,
            seed=args.seed,
            batch_size=args.batch_size,
            subset=args.subset,
            image_size=args.image_size,
        )
    except ValueError as e:
        raise UsageError(str(e)) from e


def _retrain(run: Run, data: Any, best: Any) -> dict[str, Any]:
    args = run.args
    _seed_everything(args.seed)
    with strategy_scope(run.strategy):  # --devices: retrained on them too.
        model = run.tuner.hypermodel.build(best.hyperparameters.copy())
    set_jit(model, jit_setting(args))
    started = time.perf_counter()
    model.fit(
        epochs=args.retrain_epochs,
        verbose=0,
        callbacks=_progress(args),
        **data.fit_kwargs("train+validation", args.batch_size),
    )
    train_seconds = time.perf_counter() - started
    loss, accuracy = _evaluate(model, data, args.batch_size)
    # Saved under another name, then renamed: a kill never leaves half a
    # best_model.keras.
    path = os.path.join(args.directory, "best_model.keras")
    model.save(os.path.join(args.directory, "best_model.tmp.keras"))
    os.replace(os.path.join(args.directory, "best_model.tmp.keras"), path)
    return {
        "test_accuracy": accuracy,
        "test_loss": loss,
        "retrain_seconds": round(train_seconds, 2),
        "num_parameters": int(model.count_params()),
    }


def _evaluate(model: Any, data: Any, batch_size: int) -> tuple[float, float]:
    metrics = model.evaluate(
        verbose=0, return_dict=True, **data.fit_kwargs("test", batch_size)
    )
    accuracy = metrics.get("accuracy")
    if accuracy is None:  # Auxiliary heads prefix the metric names.
        accuracy = next(v for k, v in metrics.items() if "accuracy" in k)
    return float(metrics["loss"]), float(accuracy)


def search_worker(args: argparse.Namespace) -> int:
    """A worker of a distributed search: runs the trials the chief hands out.

    keras-tuner's `KERASTUNER_*` environment variables make this process a
    worker (see README, "Scaling out"). It never clears `--directory` and
    writes no results: the chief (`KERASTUNER_TUNER_ID=chief`) does, and
    retrains the best architecture once every trial has ended.
    """
    tuner_id = os.environ["KERASTUNER_TUNER_ID"]
    args.overwrite = False  # Only the chief may clear the directory.
    os.makedirs(args.directory, exist_ok=True)
    run = Run(args, None)
    run.strategy, devices_line = make_strategy(args)
    data, dropped = fit_to_devices(_load(args), args.batch_size)
    run.space = make_space(args, data)
    _seed_everything(args.seed)

    def report(trial: Any, seconds: float) -> None:
        # The chief scores the trial when it ends.
        trial = run.tuner.oracle.get_trial(trial.trial_id)
        score = "failed" if trial.score is None else f"{trial.score:.4f}"
        run.say(
            f"worker {tuner_id}: trial {trial_number(trial.trial_id)} "
            f"score={score} time={seconds:.1f}s | "
            f"{summary(run.space, trial.hyperparameters.values)}"
        )

    run.tuner = make_tuner(args, run.space, data, report, run.strategy)
    run.say(
        f"keras-nas search worker {tuner_id}: chief at "
        f"{os.environ['KERASTUNER_ORACLE_IP']}:"
        f"{os.environ['KERASTUNER_ORACLE_PORT']}, directory {args.directory}"
    )
    for line in (devices_line, dropped):
        if line:
            run.say(line)
    run.tuner.search(
        epochs=args.epochs,
        validation_data=data.validation_data(),
        verbose=0,
        callbacks=search_callbacks(args),
        **_search_kwargs(data, args.batch_size),
    )
    run.say(f"worker {tuner_id}: no trials left; the chief writes the results")
    return 0


def _is_worker() -> bool:
    # keras-tuner's rule (`keras_tuner.src.distribute.utils`), read here
    # without importing keras-tuner, so that bad options fail fast.
    tuner_id = os.environ.get("KERASTUNER_TUNER_ID", "")
    return "KERASTUNER_ORACLE_IP" in os.environ and "chief" not in tuner_id


def search(args: argparse.Namespace) -> int:
    """Runs `keras-nas search`; returns the exit status."""
    # Bad options fail before any slow import, and before --overwrite
    # clears anything.
    check_sizes(args)
    hide_accelerators(args)  # --devices cpu: before TensorFlow loads.
    if _is_worker():
        return search_worker(args)
    # Too many --devices fail before --overwrite clears anything.
    strategy, devices_line = make_strategy(args)
    previous = prepare_directory(args)
    os.makedirs(args.directory, exist_ok=True)
    run = Run(args, previous)
    run.strategy = strategy
    run.say(
        f"keras-nas search: {args.space} space, {args.tuner} tuner, "
        f"directory {args.directory}"
    )
    with quietly(args.verbose):  # tfds imports TensorFlow.
        data = _load(args)
    run.say(import_backend(verbose=args.verbose))
    data, dropped = fit_to_devices(data, args.batch_size)
    for line in (devices_line, dropped):
        if line:
            run.say(line)
    run.space = make_space(args, data)
    _seed_everything(args.seed)
    _project.install_atomic_tuner_writes()
    run.tuner = make_tuner(args, run.space, data, run.report, strategy)
    _project.reconcile(run.tuner)
    run.tuner._announce = run.announce
    # Records the arguments now, so an interrupted search can be resumed.
    run.write_results(status="searching")
    _project.save_args(args.directory, vars(args))
    done = sum(
        1 for t in run.tuner.oracle.trials.values() if t.score is not None
    )
    sizes = data.sizes()
    run.say(
        f"dataset {args.dataset} {data.input_shape} "
        f"({data.num_classes} classes"
        + (
            f"; train/val/test {sizes['train']}/{sizes['validation']}/"
            f"{sizes['test']}"
            if None not in sizes.values()
            else ""
        )
        + ")"
    )
    if done:
        run.say(f"resuming: {done} trial(s) already done")
    search_started = time.perf_counter()
    run.tuner.search(
        epochs=args.epochs,
        validation_data=data.validation_data(),
        verbose=0,
        callbacks=search_callbacks(args),
        **_search_kwargs(data, args.batch_size),
    )
    search_seconds = time.perf_counter() - search_started
    best = run.best_trial()
    if best is None:
        run.write_results(status="failed")
        raise UsageError(no_best_message(run))
    genotype = save_best(run, best)
    prev = run.previous
    reuse = (
        prev.get("retrained", {}).get("trial_id") == best.trial_id
        and prev.get("retrained", {}).get("retrain_epochs")
        == args.retrain_epochs
        and "test_accuracy" in prev
    )
    model_path = os.path.join(args.directory, "best_model.keras")
    if reuse and _project.file_digest(model_path) != prev["retrained"].get(
        "sha256"
    ):
        reuse = False
        run.say(f"{model_path} is missing, damaged or changed: retraining")
    timings = dict(prev.get("timings", {}))
    timings["search_seconds"] = round(
        timings.get("search_seconds", 0.0) + search_seconds, 2
    )
    if reuse:
        run.say(
            f"best trial {trial_number(best.trial_id)} unchanged: keeping "
            "the retrained best_model.keras"
        )
        retrained = prev["retrained"]
        test = {"test_accuracy": prev["test_accuracy"]}
        test["test_loss"] = prev.get("test_loss")
    else:
        run.say(
            f"retraining trial {trial_number(best.trial_id)} from scratch "
            "on train+validation for "
            f"{plural(args.retrain_epochs, 'epoch')}..."
        )
        result = _retrain(run, data, best)
        test = {k: result[k] for k in ("test_accuracy", "test_loss")}
        retrained = {
            "trial_id": best.trial_id,
            "retrain_epochs": args.retrain_epochs,
            "num_parameters": result["num_parameters"],
            "sha256": _project.file_digest(model_path),
        }
        timings["retrain_seconds"] = result["retrain_seconds"]
    # Every invocation's time, as search_seconds (a resume adds to both).
    timings["total_seconds"] = round(
        timings.get("total_seconds", 0.0) + time.perf_counter() - run.started,
        2,
    )
    run.write_results(
        status="done", retrained=retrained, timings=timings, **test
    )
    plots(run, genotype)
    run.say(
        f"best trial {trial_number(best.trial_id)}: val_accuracy="
        f"{best.score:.4f}, test_accuracy={test['test_accuracy']:.4f}; "
        f"total {timings['total_seconds']:.1f}s; results in {args.directory}"
    )
    return 0


def search_callbacks(args: argparse.Namespace) -> list[Any]:
    callbacks = _progress(args)
    if getattr(args, "tensorboard", None) is None:
        return callbacks
    import keras

    return [*callbacks, keras.callbacks.TensorBoard(args.tensorboard)]


def _progress(args: argparse.Namespace) -> list[Any]:
    """A line per epoch, unless `--quiet`."""
    if getattr(args, "quiet", False):
        return []
    from keras_nas._cli_progress import EpochLine

    return [EpochLine()]


def _search_kwargs(data: Any, batch_size: int) -> dict[str, Any]:
    return data.fit_kwargs("train", batch_size)
