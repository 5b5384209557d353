"""Lost workers in keras-tuner's chief/worker mode: trial leases.

In keras-tuner's distributed mode the chief's oracle hands a trial to a worker
(`create_trial`) and waits for the worker's `end_trial`. keras-tuner itself
never learns that a worker died: its trial stays running forever, the trial
counts towards `max_trials` (so no other worker runs it) and the chief waits
for that worker before it exits.

`WorkerLeases` is an oracle mixin that gives every running trial a *lease*,
renewed whenever its worker is heard from (`create_trial`, `update_trial`,
`get_trial`: the keras-nas worker client sends a `get_trial` heartbeat while a
trial runs, see `keras_nas.tuners._distributed`). A trial whose lease is older
than the worker timeout is *lost*:

- its worker is forgotten (the chief no longer waits for it to exit), and
- the trial is queued again and run by the next worker that asks, keeping its
  id and values; a trial lost more than `max_retries_per_trial + 1` times is
  marked `FAILED` instead (a trial that kills its worker every time).

While trials are running and `max_trials` are already created, a worker that
asks for a trial gets an `IDLE` one (it asks again shortly) instead of
keras-tuner's `STOPPED`, so that workers stay available to run a trial that
is lost. A late report from a worker that was declared lost is accepted if the
trial has not ended meanwhile and dropped otherwise (`accept_end_report`), so
a trial is never recorded as ended twice.

The worker timeout is read from the environment variable
`KERASNAS_WORKER_TIMEOUT` (seconds, default 60); set the same value on every
machine of a search.
"""

from __future__ import annotations

import os
import time
from typing import Any

import keras_tuner
from keras_tuner.engine import trial as trial_module

__all__ = [
    "DEFAULT_WORKER_TIMEOUT",
    "WORKER_TIMEOUT_ENV",
    "WorkerLeases",
    "worker_timeout",
]

WORKER_TIMEOUT_ENV = "KERASNAS_WORKER_TIMEOUT"
DEFAULT_WORKER_TIMEOUT = 60.0

#: The clock of the leases (a module attribute, so tests can replace it).
_clock = time.monotonic


def worker_timeout() -> float:
    """Seconds without news after which a worker counts as lost.

    Returns:
        The value of `KERASNAS_WORKER_TIMEOUT`, or 60 when it is not set.
    """
    text = os.environ.get(WORKER_TIMEOUT_ENV)
    if text is None or text == "":
        return DEFAULT_WORKER_TIMEOUT
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):
        raise ValueError(
            f"Expected the environment variable {WORKER_TIMEOUT_ENV} to be "
            f"a positive number of seconds. Received: {WORKER_TIMEOUT_ENV}="
            f"{text!r}"
        )
    return value


class WorkerLeases:
    """Oracle mixin: trials of lost workers are run again (see module doc).

    Put it before `keras_tuner.Oracle` in the bases. It adds `lost_trials`
    (trial id -> times lost) to the oracle state.
    """

    def _lease_book(self) -> dict[str, Any]:
        # Created on first use: the mixin has no `__init__` of its own.
        book = self.__dict__.get("_worker_leases")
        if book is None:
            book = {"trial": {}, "tuner": {}, "timeout": None}
            self.__dict__["_worker_leases"] = book
        return book

    def _lost_counts(self) -> dict[str, int]:
        return self.__dict__.setdefault("_lost_trials", {})

    def _renew_trial_lease(self, trial_id: str) -> None:
        book = self._lease_book()
        if trial_id in book["trial"]:
            book["trial"][trial_id] = _clock()

    @keras_tuner.synchronized
    def create_trial(self, tuner_id: str):
        now = _clock()
        self._lease_book()["tuner"][tuner_id] = now
        self.expire_lost_workers(now)
        if (
            tuner_id not in self.ongoing_trials
            and not self._retry_queue
            and self.max_trials
            and len(self.trials) >= self.max_trials
            and self.ongoing_trials
        ):
            # Stay available in case a running trial is lost.
            self.tuner_ids.add(tuner_id)
            # An empty space: the worker only waits (copying the space
            # costs milliseconds, at every poll of every idle worker).
            return trial_module.Trial(
                keras_tuner.HyperParameters(),
                status=trial_module.TrialStatus.IDLE,
            )
        trial = super().create_trial(tuner_id)
        if trial.status == trial_module.TrialStatus.RUNNING:
            self._lease_book()["trial"][trial.trial_id] = now
        return trial

    @keras_tuner.synchronized
    def update_trial(self, trial_id: str, metrics: Any, step: int = 0):
        self._renew_trial_lease(trial_id)
        return super().update_trial(trial_id, metrics, step=step)

    @keras_tuner.synchronized
    def get_trial(self, trial_id: str):
        # Also the heartbeat of the keras-nas worker client.
        self._renew_trial_lease(trial_id)
        return super().get_trial(trial_id)

    @keras_tuner.synchronized
    def end_trial(self, trial) -> None:
        super().end_trial(trial)
        self._lease_book()["trial"].pop(trial.trial_id, None)

    @keras_tuner.synchronized
    def accept_end_report(self, trial_id: str) -> bool:
        """Whether a worker's `end_trial` for `trial_id` is to be recorded.

        `False` when the trial already ended (a worker that was declared lost
        reports late, after another worker ran the trial); the late worker is
        then no longer counted as running it. A late report for a trial that
        was queued again is accepted and the trial leaves the queue.
        """
        if trial_id not in self.trials:
            return False
        if trial_id in self.end_order:
            for tuner_id, trial in list(self.ongoing_trials.items()):
                if trial.trial_id == trial_id:
                    self.ongoing_trials.pop(tuner_id)
            return False
        if trial_id in self._retry_queue:
            self._retry_queue.remove(trial_id)
        return True

    @keras_tuner.synchronized
    def expire_lost_workers(self, now: float | None = None) -> list[str]:
        """Queues again the trials whose worker was not heard from in time.

        Args:
            now: The time to compare the leases with (default: now, on
                `time.monotonic`'s scale).

        Returns:
            The ids of the trials found lost.
        """
        now = _clock() if now is None else now
        book = self._lease_book()
        if book["timeout"] is None:
            book["timeout"] = worker_timeout()
        timeout = book["timeout"]
        lost = []
        for tuner_id, trial in list(self.ongoing_trials.items()):
            started = book["trial"].setdefault(trial.trial_id, now)
            if now - started <= timeout:
                continue
            lost.append(trial.trial_id)
            self.ongoing_trials.pop(tuner_id)
            self.tuner_ids.discard(tuner_id)
            book["trial"].pop(trial.trial_id, None)
            book["tuner"].pop(tuner_id, None)
            self._lose_trial(trial, tuner_id, timeout)
        for tuner_id, seen in list(book["tuner"].items()):
            busy = tuner_id in self.ongoing_trials
            if not busy and now - seen > timeout:
                # An idle worker that stopped asking for trials.
                self.tuner_ids.discard(tuner_id)
                book["tuner"].pop(tuner_id)
        if lost:
            self.save()
        return lost

    def _lose_trial(self, trial: Any, tuner_id: str, timeout: float) -> None:
        counts = self._lost_counts()
        counts[trial.trial_id] = counts.get(trial.trial_id, 0) + 1
        message = (
            f"Worker {tuner_id!r} sent no news for {timeout:g} s (environment "
            f"variable {WORKER_TIMEOUT_ENV}) while running trial "
            f"{trial.trial_id}"
        )
        if counts[trial.trial_id] > self.max_retries_per_trial + 1:
            trial.status = trial_module.TrialStatus.FAILED
            trial.message = (
                f"{message}; lost {counts[trial.trial_id]} times, failed."
            )
            self._run_times[trial.trial_id] += 1
            self.end_order.append(trial.trial_id)
            self._save_trial(trial)
            print(trial.message)
            return
        self._retry_queue.append(trial.trial_id)
        print(f"{message}; it will run again.")

    def get_state(self) -> dict[str, Any]:
        state = super().get_state()
        state["lost_trials"] = dict(self._lost_counts())
        return state

    def set_state(self, state: dict[str, Any]) -> None:
        super().set_state(state)
        self.__dict__["_lost_trials"] = dict(state.get("lost_trials", {}))
