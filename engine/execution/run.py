"""One batch-inference run: its status, live metrics and final summary, readable from any thread.

`Runner` (engine.execution.runner) queues runs and calls `execute`, which goes through
`engine.execution.steps`; whatever happens inside the pipeline, a caller only ever sees a
status and a one-line error, never an exception.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from typing import Any

from engine.core.config import RunConfig
from engine.execution.lost_cluster import LostCluster

log = logging.getLogger(__name__)

STATUSES = ("queued", "starting", "running", "finished", "failed", "stopped")
DONE = ("finished", "failed", "stopped")


class RunStopped(Exception):
    """The user stopped the run."""


class RunState:
    """What every run the queue executes shares: its id, config, status and phase, who and what started it,
    Stop, its end, and its writes to the store (set up by the runner as `persist`)."""

    def __init__(self, config, origin: str = "api", owner: str | None = None) -> None:
        self.id = uuid.uuid4().hex[:12]
        self.config = config
        self.origin = origin  # what started it: a page ("playground", "compare", ...), "cli" or "api"
        self.owner = owner  # who started it, on a shared server; None on a one-user playground
        self.status = "queued"
        self.phase = "waiting for the previous run"
        self.error: str | None = None
        self.error_detail: str | None = None  # a failure's traceback, for the run's record and the debug log
        self.submitted_at = time.time()
        self.launched_at = self.submitted_at  # reset when the run leaves the queue
        self.summary: dict[str, Any] | None = None
        self.persist = lambda: None  # set by the runner: writes the run to the store
        self._stop = threading.Event()
        self._done = threading.Event()
        self._persisted_at = 0.0
        self._persist_lock = threading.Lock()  # the sampler's periodic write never lands after the final one

    @property
    def done(self) -> bool:
        return self.status in DONE

    @property
    def stopping(self) -> bool:
        """Stop was asked for."""
        return self._stop.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the run ends; True if it did within `timeout`."""
        return self._done.wait(timeout)

    def raise_if_stopped(self) -> None:
        """End the run here if Stop was pressed."""
        if self._stop.is_set():
            raise RunStopped()

    def finish(self, status: str, error: str | None = None) -> None:
        with self._persist_lock:
            self.status, self.error = status, error
            self.phase = status
            self.persist()
        self._done.set()

    def persist_every(self, seconds: float) -> None:
        """Called after each metrics sample: write the run out every few seconds while it goes (never once it ended:
        a sample still in flight as the run ends would otherwise record it as running after its final status)."""
        with self._persist_lock:
            if not self.done and time.time() - self._persisted_at >= seconds:
                self._persisted_at = time.time()
                self.persist()


class Run(RunState):
    """One batch-inference job: its status, live metrics and final summary."""

    def __init__(self, config: RunConfig, origin: str = "api", owner: str | None = None) -> None:
        super().__init__(config, origin, owner)
        self.total = config.images  # the images it goes through: fewer when its folder holds fewer (steps counts them)
        self.predictions: list[dict] = []
        self.sampler = None  # the MetricsSampler, once the run is connected
        self.dataset = None  # the Ray Dataset once planned: its stats and plan go in the summary
        self.materialized = None  # with config.materialize: the executed copy of `dataset`, holding its stats
        self.marks: dict[str, float] = {}
        self.lost = LostCluster()
        self.node_watch: threading.Thread | None = None  # asks Ray for its nodes while the run goes
        self._unwatch = threading.Event()  # set when the run ends: stop checking that the cluster is there

    def timeseries(self) -> list[dict]:
        return list(self.sampler.points) if self.sampler else []

    def stop(self) -> None:
        """Ask the run to end; its actors and GPU memory are freed within seconds."""
        from engine.execution import executor_control

        self._stop.set()
        if self.status == "queued":
            self.finish("stopped")
            return
        try:
            import ray

            from engine.execution.reporter import get_reporter

            if ray.is_initialized() and not self.lost.gone:  # (a gone cluster is being dropped: no Ray call now)
                get_reporter().request_stop.remote(self.id)
        except Exception as exc:
            log.debug("could not tell workers to stop: %s", exc)
        executor_control.shutdown_current()

    # --- what the run's own thread does -------------------------------------
    def execute(self) -> None:
        """Run the pipeline to its end; never raises."""
        from engine.execution.steps import execute

        execute(self)

    def lose_cluster(self, reason: str, gone: bool) -> None:
        """Called by the cluster watch: the run cannot go on."""
        self.lost.lose(reason, gone, self._done)

    def finish(self, status: str, error: str | None = None) -> None:
        self._unwatch.set()
        super().finish(status, error)
