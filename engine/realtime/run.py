"""One real-time run, with the shape the engine's queue and run store read (as a batch `Run` has).

`Runner.enqueue` runs it on the queue's thread, one run at a time with the batch runs, so a
real-time run never shares the cluster with a batch one. Whatever happens, a caller sees a
status and a one-line error, never an exception, and the summary is written on every ending.
"""

from __future__ import annotations

import functools
import logging
import time
import traceback
from typing import Any

from engine.core.errors import one_line, redact
from engine.core.models import weights_kind
from engine.execution.run import RunState, RunStopped
from engine.realtime.config import RealtimeConfig
from engine.realtime.load import Client
from engine.realtime.summary import summarize

log = logging.getLogger(__name__)

SWITCH_WAIT_S = 120.0  # as a batch run: the wait for warm-up (or a ceiling) to let go of Ray before another address
PERSIST_EVERY_S = 2.0


class RealtimeRun(RunState):
    """Requests at a rate into a model behind a dynamic batcher: live samples while it goes, a summary at the end."""

    def __init__(self, config: RealtimeConfig, origin: str = "api", owner: str | None = None) -> None:
        super().__init__(config, origin, owner)
        self.client: Client | None = None

    def timeseries(self) -> list[dict]:
        return list(self.client.points) if self.client else []

    def stop(self) -> None:
        """End the run: no more requests are sent, and its servers end within a moment."""
        self._stop.set()
        if self.status == "queued":
            self._end("stopped", None, {})

    def execute(self) -> None:
        """Start the servers, send the requests, drain, and account for it; never raises."""
        from engine.execution import connection
        from engine.realtime.server import stop_servers

        if self.stopping:
            return self._end("stopped", None, {})
        self.launched_at = time.time()
        servers: list = []
        known: dict[str, Any] = {}
        try:
            self.status, self.phase = "starting", "connecting to Ray"
            self.persist()
            with connection.using(self.config.address, "a run", wait_s=SWITCH_WAIT_S):
                try:
                    known = self._serve(servers, self._start(servers))
                finally:
                    stop_servers(servers)
            if self.client and self.client.error and not self.stopping:
                raise RuntimeError(self.client.error)
            self._end("stopped" if self.stopping else "finished", None, known)
        except BaseException as exc:  # noqa: BLE001 - a run must never take its caller down
            if self.stopping:
                self._end("stopped", None, known)
            else:
                self.error_detail = redact(traceback.format_exc())
                log.debug("real-time run %s failed\n%s", self.id, self.error_detail)
                self._end("failed", one_line(exc), known)

    def _start(self, servers: list) -> list[dict]:
        """Start the servers into `servers`; once each has loaded its model, return where each runs.

        Stop ends the wait at once; the caller ends whichever servers started.
        """
        from engine.execution import connection
        from engine.observe import cluster
        from engine.realtime.server import START_TIMEOUT_S, start_servers

        if self.config.num_gpus:
            cluster.check_resources(1.0, self.config.num_gpus)
        self.phase = f"starting {self.config.servers} model server(s): {self.config.model}"
        servers.extend(start_servers(self.config))
        return [connection.get_unless(s.where.remote(), START_TIMEOUT_S, self._stop, RunStopped()) for s in servers]

    def _serve(self, servers: list, places: list[dict]) -> dict[str, Any]:
        """Send the request stream and wait for its answers; returns the device and the start-up time."""
        import ray

        from engine.realtime.server import in_flight_cap

        started = time.time() - self.launched_at
        self.status, self.phase = "running", f"sending {self.config.rate:g} requests/s"
        self.persist()
        here = ray.get_runtime_context().get_node_id()
        gpus = [i for p in places if p["node"] == here for i in p["gpus"]]
        cap, gpu_util = in_flight_cap(self.config), functools.partial(_gpu_util, gpus)
        self.client = Client(
            servers, self.config, cap, self._stop, gpu_util, lambda: self.persist_every(PERSIST_EVERY_S)
        )
        self.client.run()
        return {"device": places[0]["device"], "startup_s": round(started, 3)}

    def _end(self, status: str, error: str | None, known: dict[str, Any]) -> None:
        try:
            weights = weights_kind(self.config.model)
            self.summary = summarize(self.config, self.client, status, error, id=self.id, weights=weights, **known)
        except Exception as exc:
            log.exception("summary failed")
            status, error = "failed", error or one_line(exc)
            self.summary = {"id": self.id, "status": status, "error": error, **self.config.to_dict()}
        self.finish(status, error)


def _gpu_util(indices: list[int]) -> float | None:
    """Mean utilisation (%) of the GPUs the servers hold, read here through NVML; None without one."""
    from engine.observe import nvml

    readings = [g.util_pct for g in nvml.read_gpus() if g.index in indices and g.util_pct is not None]
    return sum(readings) / len(readings) if readings else None
