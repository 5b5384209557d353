"""Crash-safe persistence helpers for keras-tuner oracles.

keras-tuner writes a trial's `trial.json` and then `oracle.json`, each with a
plain `open(...).write`. A process killed with SIGKILL can therefore leave a
truncated `oracle.json`, or a trial file that is newer than `oracle.json`:

- a trial created (its file written) but not in the saved oracle state: it
  would count towards `max_trials` but never run;
- a trial completed (its file says `COMPLETED`) while the saved oracle still
  lists it as running: keras-tuner would run it again. (`Oracle.end_trial`
  itself saves the state before it removes the trial from the running ones,
  so the last trial ended before a crash is always in this case.)

`save_json_atomic` removes the first problem and `reconcile_trials` repairs
the other two after `Oracle.reload()`. They are generic (any oracle can use
them); `ResumableOracle` is the mixin that applies both, with hooks for the
oracle's own accounting (every search oracle has it through
`keras_nas.tuners._oracle.SearchOracle`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

from keras_tuner.engine import trial as trial_module

from keras_nas.tuners._leases import WorkerLeases

__all__ = ["ResumableOracle", "reconcile_trials", "save_json_atomic"]


def save_json_atomic(path: str, obj: Any) -> None:
    """Writes `obj` as JSON to `path` through a temporary file + rename."""
    tmp = f"{path}.tmp"
    text = json.dumps(obj)  # The C encoder (`json.dump` is pure Python).
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def reconcile_trials(
    oracle: Any, on_completed: Callable[[Any], None] | None = None
) -> list[str]:
    """Makes a reloaded oracle agree with the trial files.

    Call it at the end of `Oracle.reload()` (after keras-tuner moved the
    saved running trials to the retry queue).

    - A trial whose file says it ended (`COMPLETED` or `FAILED`) but that the
      oracle still had queued for a retry is recorded as ended instead of
      being run again; `on_completed(trial)` is then called for a completed
      one so the algorithm can account for it as `end_trial` would have.
    - A trial that has a file but is unknown to the saved state (created just
      before the crash) is queued for a retry (and its values recorded as
      tried), so it runs once and keeps its id.

    Args:
        oracle: A reloaded `keras_tuner.Oracle`.
        on_completed: Optional callback for trials that completed.

    Returns:
        The ids of the trials that were repaired.
    """
    repaired = []
    ended = (
        trial_module.TrialStatus.COMPLETED,
        trial_module.TrialStatus.FAILED,
    )
    for trial_id in list(oracle._retry_queue):
        trial = oracle.trials[trial_id]
        if trial.status not in ended:
            continue
        oracle._retry_queue.remove(trial_id)
        repaired.append(trial_id)
        if trial_id in oracle.end_order:
            # `Oracle.end_trial` saves before it pops the ongoing trial.
            continue
        _record_end(oracle, trial, on_completed)
    known = set(oracle.start_order)
    for trial_id in sorted(oracle.trials):
        trial = oracle.trials[trial_id]
        if trial_id in known:
            continue
        oracle.start_order.append(trial_id)
        oracle._record_values(trial)
        if trial.status in ended:
            _record_end(oracle, trial, on_completed)
        else:
            oracle._retry_queue.append(trial_id)
        repaired.append(trial_id)
    return repaired


def _record_end(
    oracle: Any, trial: Any, on_completed: Callable[[Any], None] | None
) -> None:
    # What `Oracle.end_trial` records, plus the algorithm's accounting.
    oracle._run_times[trial.trial_id] += 1
    oracle.end_order.append(trial.trial_id)
    if (
        trial.status == trial_module.TrialStatus.COMPLETED
        and on_completed is not None
    ):
        on_completed(trial)


class ResumableOracle(WorkerLeases):
    """Mixin making a `keras_tuner.Oracle` subclass crash-safe.

    It is also a `WorkerLeases` oracle: in keras-tuner's chief/worker mode
    the trials of lost workers run again (`keras_nas.tuners._leases`).

    `save()` writes `oracle.json` atomically (`save_json_atomic`), without
    what the trial files hold (`compact_state`), and `reload()` repairs the
    state with `reconcile_trials`, then saves it again if anything was
    repaired. Put it before the oracle class in the
    bases: `class MyOracle(ResumableOracle, keras_tuner.Oracle)`.

    Subclasses override the two hooks rather than `reload()`:

    - `_account_reconciled_trial(trial)`: a trial completed after the last
      saved state; update the algorithm as `end_trial` would have (e.g.
      learn from its score). Default: nothing (state derived from the
      trials needs no accounting).
    - `_after_reconcile()`: called once after any repair, before the
      state is saved (e.g. rebuild structures derived from the trials).
    """

    #: Leave out of `oracle.json` what `reload()` rebuilds from the trial
    #: files: keras-tuner's hashes of the values of every trial
    #: (`tried_so_far`, `id_to_hash`: ~80 bytes a trial), the run counts
    #: that are 1 for an ended trial, and the display's start times of
    #: ended trials. keras-tuner rewrites `oracle.json` twice a trial; this
    #: keeps that O(trials) write about half as large.
    compact_state: bool = True

    def save(self) -> None:
        save_json_atomic(self._get_oracle_fname(), self.get_state())

    def _check_consecutive_failures(self) -> None:
        # keras-tuner scans every ended trial at every end (O(trials)); a
        # streak long enough to stop the search ends with the last trial,
        # and an earlier one would have stopped it then.
        limit = self.max_consecutive_failed_trials
        if not limit:  # None: no limit.
            return
        recent = self.end_order[-limit:]
        failed = trial_module.TrialStatus.FAILED
        if len(recent) == limit and all(
            self.trials[i].status == failed for i in recent
        ):
            raise RuntimeError(
                "Number of consecutive failures exceeded the limit "
                f"of {limit}.\n" + (self.trials[recent[-1]].message or "")
            )

    def get_state(self) -> dict[str, Any]:
        state = super().get_state()
        if self.compact_state:
            del state["tried_so_far"], state["id_to_hash"]
            # Run counts that differ from 1 for an ended trial, 0 otherwise.
            ended = set(state["end_order"])
            state["run_times"] = {
                k: v
                for k, v in state["run_times"].items()
                if v != (1 if k in ended else 0)
            }
            running = {t.trial_id for t in self.ongoing_trials.values()}
            display = dict(state["display"])
            for key in ("trial_start", "trial_number"):
                display[key] = {
                    k: v for k, v in display[key].items() if k in running
                }
            state["display"] = display
        return state

    def set_state(self, state: dict[str, Any]) -> None:
        if "id_to_hash" not in state:  # A compact state: rebuild.
            hashes = {
                trial_id: self._compute_values_hash(
                    trial.hyperparameters.values
                )
                for trial_id, trial in self.trials.items()
            }
            run_times = dict.fromkeys(state["end_order"], 1)
            run_times.update(state["run_times"])
            state = {
                **state,
                "id_to_hash": hashes,
                "tried_so_far": sorted(set(hashes.values())),
                "run_times": run_times,
            }
        super().set_state(state)

    def reload(self) -> None:
        super().reload()
        if reconcile_trials(self, self._account_reconciled_trial):
            self._after_reconcile()
            self.save()

    def _account_reconciled_trial(self, trial: Any) -> None:
        pass

    def _after_reconcile(self) -> None:
        pass
