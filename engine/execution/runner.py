"""The process-wide run queue: one run uses the cluster at a time, the rest wait their turn.

A second `submit` waits in the queue (status "queued") and never runs on top of the first.
Between runs the runner keeps Ray's pool topped up with torch-ready workers (engine.execution.warm).
"""

from __future__ import annotations

import gc
import logging
import queue
import threading
import time

from engine.core.config import RunConfig
from engine.execution.connection import held
from engine.execution.run import Run
from engine.execution.warm import keep_warm, wait_until_imported
from engine.store import RunStore, StoreError

log = logging.getLogger(__name__)

WARM_WORKERS = 8  # fresh torch-ready workers kept idle per node between runs (and no more than its CPUs)
WARM_SETTLE_S = 60.0  # the most a warm-up waits for the prestarted workers' torch imports to end


class Runner:
    """Runs queued runs one after another on a single background thread."""

    def __init__(self, store: RunStore | None = None) -> None:
        self.store_error: str | None = None  # why runs are not being recorded, when the store cannot be opened
        if store is None:
            store, self.store_error = _open_store()
        self.store = store
        lost = self.store.mark_interrupted()
        if lost:
            log.warning("%d run(s) from an earlier process marked interrupted", lost)
        self._queue: queue.Queue = queue.Queue()  # callables, run one at a time
        self._lock = threading.Lock()
        self.runs: list[Run] = []
        self.warm_workers = 0
        self._warmed = threading.Event()  # cleared while a warm-up goes on
        self._warmed.set()
        self._thread = threading.Thread(target=self._loop, name="run-worker", daemon=True)
        self._thread.start()

    def submit(self, config: RunConfig, origin: str = "api", owner: str | None = None) -> Run:
        """Validate and queue a batch run; returns it at once. `origin` names what started it (a page, the CLI),
        `owner` who did (None on a one-user playground)."""
        return self.enqueue(Run(config.validate(), origin=origin, owner=owner))

    def enqueue(self, run):
        """Queue any run that has Run's shape (id, status, stopping, execute(), persist, ...); returns it."""
        run.persist = lambda: self._save(run)
        run.persist()
        with self._lock:
            self.runs.append(run)
        self._queue.put(lambda: self._execute(run))
        return run

    def wait_idle(self, timeout: float) -> bool:
        """Wait until everything queued so far is done, each run's top-up of warm workers included."""
        done = threading.Event()
        self._queue.put(done.set)
        return done.wait(timeout)

    @property
    def warming(self) -> bool:
        return not self._warmed.is_set()

    def warm_up(self, wait: bool = False) -> None:
        """Warm workers in the background (a run launched meanwhile waits for it); `wait` blocks until done."""
        self._warmed.clear()
        thread = threading.Thread(target=self._rewarm, name="warm-up", daemon=True)
        thread.start()
        if wait:
            thread.join()

    def active(self) -> Run | None:
        """The run using the cluster now, else the next queued one."""
        with self._lock:
            going = [r for r in self.runs if r.status in ("starting", "running")]
            waiting = [r for r in self.runs if r.status == "queued"]
        return (going or waiting or [None])[0]

    def queued(self) -> list[Run]:
        """Runs waiting for the cluster, oldest first."""
        with self._lock:
            return [r for r in self.runs if r.status == "queued"]

    def latest(self) -> Run | None:
        with self._lock:
            return self.runs[-1] if self.runs else None

    def get(self, run_id: str) -> Run | None:
        with self._lock:
            return next((r for r in self.runs if r.id == run_id), None)

    def _save(self, run: Run) -> None:
        """Write a run to the store; a full disk or a locked file is logged, never fatal."""
        try:
            self.store.save(run)
        except Exception as exc:
            log.warning("could not record run %s: %s", run.id, exc)

    def _loop(self) -> None:
        while True:
            self._queue.get()()

    def _execute(self, run) -> None:
        self._wait_for_warm_up(run)
        run.execute()
        # A failed pipeline's exception keeps its pool actors in a reference cycle: they (and the GPU
        # memory they hold) would stay until Python's next cycle collection, which an idle app may never run.
        gc.collect()
        if self.warm_workers:
            with held("warming workers") as connected:
                if connected:  # top each node back up to its fresh workers, whatever took them (actors, tasks)
                    keep_warm(WARM_WORKERS, wait=False)

    def _wait_for_warm_up(self, run) -> None:
        """A run launched during the warm-up starts once it is over (or once the run is stopped).

        Side by side they would share the cores and Ray's worker starts, and both take longer.
        """
        if self.warming and not run.stopping:
            run.phase = "waiting for the warm-up (Ray's workers importing torch)"
            while not self._warmed.wait(0.5) and not run.stopping:
                pass

    def _rewarm(self) -> None:
        """Fill Ray's pool with idle torch-ready workers for the next Launch; done once their imports are.

        "Warm" is said only once the workers it started on this machine are idle (WARM_SETTLE_S at
        most): a Launch while they still import torch shares the cores with them.
        """
        started = time.time()
        try:
            with held("warming workers") as connected:
                if connected:
                    self.warm_workers = keep_warm(WARM_WORKERS)
            if self.warm_workers:
                wait_until_imported(started, WARM_SETTLE_S)
        finally:
            self._warmed.set()


def _open_store() -> tuple[RunStore, str | None]:
    """The run store, or where it cannot be opened (a full or read-only disk) one in memory and why: runs go on,
    and the pages and the CLI say that they are not being recorded."""
    try:
        return RunStore(), None
    except StoreError as exc:
        why = f"runs are not being recorded: {exc}"
        log.warning(why)
        return RunStore(":memory:"), why


_runner: Runner | None = None
_runner_lock = threading.Lock()


def runner() -> Runner:
    """The process-wide runner (one queue, one run at a time)."""
    global _runner
    with _runner_lock:
        if _runner is None:
            _runner = Runner()
        return _runner


def start(config: RunConfig) -> Run:
    """Validate and queue a run; returns at once. Raises ConfigError for bad input."""
    return runner().submit(config)
