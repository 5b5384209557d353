"""keras-tuner's chief/worker mode as the keras-nas tuners run it.

keras-tuner runs a search on several processes or machines when the
environment variables `KERASTUNER_TUNER_ID`, `KERASTUNER_ORACLE_IP` and
`KERASTUNER_ORACLE_PORT` are set: the process whose tuner id contains
`chief` serves the oracle over gRPC, the others (workers) ask it for trials.
The keras-nas tuners (`keras_nas.tuners._base.NasTuner`) use keras-tuner's
own service and messages, with two changes for workers that die:

- `serve_oracle` replaces keras-tuner's chief loop: it expires the trials of
  lost workers (`WorkerLeases.expire_lost_workers`) every `POLL` seconds,
  drops late end reports of trials that another worker ran meanwhile, and
  exits as soon as every trial has ended and every live worker was told to
  stop (keras-tuner checks every 20 s and waits for dead workers forever).
- `LeasedOracleClient` (a keras-tuner `OracleClient`) sends a heartbeat
  (`GetTrial`) every `worker_timeout() / 5` seconds (at most 10 s) while a
  trial runs, and waits `IDLE_WAIT` seconds before asking again when the
  chief answers `IDLE` (keras-tuner's tuner asks again at once).
"""

from __future__ import annotations

import os
import threading
import time
from concurrent import futures
from typing import Any

import grpc
from keras_tuner.engine import trial as trial_module
from keras_tuner.src import protos
from keras_tuner.src.distribute import oracle_chief, oracle_client
from keras_tuner.src.distribute import utils as dist_utils

from keras_nas.tuners._leases import worker_timeout

__all__ = [
    "IDLE_WAIT",
    "POLL",
    "LeasedOracleClient",
    "is_chief",
    "is_worker",
    "serve_oracle",
]

#: Seconds a worker waits after an `IDLE` answer before it asks again.
IDLE_WAIT = 0.5
#: Seconds between two checks of the chief for lost workers and for the end.
POLL = 0.1


def is_chief() -> bool:
    """Whether this process is the chief of a distributed search."""
    return dist_utils.is_chief_oracle()


def is_worker() -> bool:
    """Whether this process is a worker of a distributed search."""
    return dist_utils.has_chief_oracle() and not dist_utils.is_chief_oracle()


class _Servicer(oracle_chief.OracleServicer):
    def EndTrial(self, request, context):
        accept = getattr(self.oracle, "accept_end_report", None)
        if accept is None or accept(request.trial.trial_id):
            return super().EndTrial(request, context)
        return protos.get_service().EndTrialResponse()


def serve_oracle(oracle: Any, poll: float = POLL) -> None:
    """Serves `oracle` to the workers until the search is over.

    Args:
        oracle: The chief's oracle (a `WorkerLeases` oracle expires the
            trials of lost workers; any keras-tuner oracle can be served).
        poll: Seconds between two checks for lost workers and for the end.
    """
    address = (
        f"{os.environ['KERASTUNER_ORACLE_IP']}:"
        f"{os.environ['KERASTUNER_ORACLE_PORT']}"
    )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=1))
    servicer = _Servicer(oracle)
    protos.get_service_grpc().add_OracleServicer_to_server(servicer, server)
    server.add_insecure_port(address)
    server.start()
    expire = getattr(oracle, "expire_lost_workers", None)
    try:
        while True:
            time.sleep(poll)
            if expire is not None:
                expire()
            if servicer.stop_triggered and oracle_chief.exit_chief(oracle):
                break
    finally:
        # Lets the last `STOPPED` answers reach their workers.
        server.stop(grace=1.0).wait()


class LeasedOracleClient(oracle_client.OracleClient):
    """A worker's keras-tuner `OracleClient` with heartbeats and idle waits.

    Args:
        oracle: The worker's local oracle (as for `OracleClient`).
        heartbeat: Seconds between two heartbeats while a trial runs;
            default `min(worker_timeout() / 5, 10)`.
    """

    def __init__(self, oracle: Any, heartbeat: float | None = None):
        super().__init__(oracle)
        if heartbeat is None:
            heartbeat = min(worker_timeout() / 5.0, 10.0)
        self.heartbeat = heartbeat
        self._beat: tuple[threading.Event, threading.Thread] | None = None

    @classmethod
    def replacing(cls, client: Any) -> LeasedOracleClient:
        """The leased client for a keras-tuner `OracleClient`, same flags."""
        new = cls(client._oracle)
        new.multi_worker = client.multi_worker
        new.should_report = client.should_report
        return new

    def create_trial(self, tuner_id: str):
        trial = super().create_trial(tuner_id)
        if trial.status == trial_module.TrialStatus.IDLE:
            time.sleep(IDLE_WAIT)
        elif trial.status == trial_module.TrialStatus.RUNNING:
            self._start_heartbeat(trial.trial_id)
        return trial

    def end_trial(self, trial) -> None:
        try:
            super().end_trial(trial)
        finally:
            self._stop_heartbeat()

    def _start_heartbeat(self, trial_id: str) -> None:
        self._stop_heartbeat()
        stop = threading.Event()
        request = protos.get_service().GetTrialRequest(trial_id=trial_id)

        def beat():
            while not stop.wait(self.heartbeat):
                try:
                    self.stub.GetTrial(request, timeout=self.heartbeat)
                except grpc.RpcError:
                    pass  # The chief is busy or gone; the lease decides.

        thread = threading.Thread(
            target=beat, name=f"keras-nas-heartbeat-{trial_id}", daemon=True
        )
        thread.start()
        self._beat = (stop, thread)

    def _stop_heartbeat(self) -> None:
        if self._beat is not None:
            stop, thread = self._beat
            stop.set()
            thread.join()
            self._beat = None
