"""Background runs: `start(config)` returns a `Run` at once and work goes on in a thread.

One run uses the cluster at a time: a second `start` waits in a queue (status
"queued") and never runs on top of the first. Whatever happens inside the
pipeline, the caller gets a status and a one-line error, never an exception.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import logging
import queue
import sqlite3
import threading
import time
import traceback
import uuid
from typing import Any

from engine import cluster, executor_hook
from engine.config import RunConfig
from engine.errors import one_line, redact
from engine.models import weights_kind
from engine.reporter import get_reporter
from engine.samplers import MetricsSampler
from engine.store import RunStore
from engine.summary import summarize
from engine.warm import keep_warm, wait_until_imported

log = logging.getLogger(__name__)

STATUSES = ("queued", "starting", "running", "finished", "failed", "stopped")
DONE = ("finished", "failed", "stopped")
SAMPLE_ROWS = 8
SWITCH_WAIT_S = 120.0  # a run for another address waits this long for warm-up (or a ceiling) to let go of Ray
# How long a run's threads are given to stop calling Ray before a gone cluster is dropped: longer than a
# node-list call may take, so none is still inside one then.
QUIET_S = cluster.NODES_TIMEOUT_S + 1.0
DROP_AFTER_S = 60.0  # a run that has not ended this long after its cluster went away: drop the cluster anyway
WARM_WORKERS = 8  # fresh torch-ready workers kept idle per node between runs (and no more than its CPUs)
WARM_SETTLE_S = 60.0  # the most a warm-up waits for the prestarted workers' torch imports to end


class RunStopped(Exception):
    """The user stopped the run."""


class Run:
    """One batch-inference job: its status, live metrics and final summary."""

    def __init__(self, config: RunConfig) -> None:
        self.id = uuid.uuid4().hex[:12]
        self.config = config
        self.status = "queued"
        self.phase = "waiting for the previous run"
        self.error: str | None = None
        self.submitted_at = time.time()
        self.launched_at = self.submitted_at  # reset when the run leaves the queue
        self.summary: dict[str, Any] | None = None
        self.predictions: list[dict] = []
        self.sampler: MetricsSampler | None = None
        self.dataset = None  # the Ray Dataset once planned: its stats and plan go in the summary
        self.materialized = None  # with config.materialize: the executed copy of `dataset`, holding its stats
        self.marks: dict[str, float] = {}
        self._stop = threading.Event()
        self._done = threading.Event()
        self._unwatch = threading.Event()  # set when the run ends: stop checking that the cluster is there
        self._lost: str | None = None  # why the cluster went away, if it did
        self._gone = False  # ...and whether it is gone altogether (its GCS stopped answering)
        self._node_watch: threading.Thread | None = None  # asks Ray for its nodes while the run goes
        self._letting_go = threading.Event()  # set once the cluster is gone and is about to be dropped
        self.persist = lambda: None  # set by the runner: writes the run to the store
        self._persisted_at = 0.0

    # --- what callers read -------------------------------------------------
    def timeseries(self) -> list[dict]:
        return list(self.sampler.points) if self.sampler else []

    @property
    def done(self) -> bool:
        return self.status in DONE

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the run ends; True if it did within `timeout`."""
        return self._done.wait(timeout)

    def stop(self) -> None:
        """Ask the run to end; its actors and GPU memory are freed within seconds."""
        self._stop.set()
        if self.status == "queued":
            self._finish("stopped")
            return
        try:
            import ray

            if ray.is_initialized() and not self._gone:  # (a gone cluster is being dropped: no Ray call now)
                get_reporter().request_stop.remote(self.id)
        except Exception as exc:
            log.debug("could not tell workers to stop: %s", exc)
        executor_hook.shutdown_current()

    # --- what the runner does ---------------------------------------------
    def _finish(self, status: str, error: str | None = None) -> None:
        self._unwatch.set()
        self.status, self.error = status, error
        self.phase = status
        self.persist()
        self._done.set()

    def _persist_every(self, seconds: float) -> None:
        """Called after each metrics sample: write the run out every few seconds while it goes."""
        if time.time() - self._persisted_at >= seconds:
            self._persisted_at = time.time()
            self.persist()

    def execute(self) -> None:
        """Run the pipeline to its end; never raises."""
        if self._stop.is_set():
            return self._finish("stopped")
        reporter = None
        self.launched_at = time.time()
        with contextlib.ExitStack() as connection:  # closed after the wrap-up: no address switch until then
            try:
                self.status, self.phase = "starting", "connecting to Ray"
                self.persist()
                connection.enter_context(cluster.using(self.config.address, "a run", wait_s=SWITCH_WAIT_S))
                self._raise_if_stopped()  # connecting can take long on a busy machine: a Stop then ends it here
                self._node_watch = cluster.watch(
                    self._unwatch, lambda: (self.timeseries() or [{"rows": 0}])[-1]["rows"], self._lose_cluster
                )
                cluster.check_resources(self.config.num_gpus, self.config.concurrency * self.config.model_stages)
                executor_hook.install()
                self._raise_if_stopped()
                reporter = get_reporter()
                import ray

                # (the reporter's actor may be starting)
                cluster.get_unless(reporter.reset.remote(self.id), 60, self._stop, RunStopped())
                self.marks["connected"] = time.time()
                self.sampler = MetricsSampler(
                    self.launched_at,
                    lambda: cluster.get_unless(
                        reporter.snapshot.remote(), 10, self._letting_go, RuntimeError("letting go")
                    ),
                    on_sample=lambda: self._persist_every(2.0),
                ).start()
                self._consume(reporter)
                if self._lost:  # the pipeline ended early because the cluster did
                    raise cluster.ClusterError(self._lost)
                if not self._stop.is_set():
                    _check_some_images_read(self.config, ray.get(reporter.snapshot.remote(with_loads=True)))
                status = "stopped" if self._stop.is_set() else "finished"
                self._wrap_up(reporter, status, None)
            except BaseException as exc:  # noqa: BLE001 - a run must never take its caller down
                if self._stop.is_set():
                    self._wrap_up(reporter, "stopped", None)
                else:
                    # the traceback as text: a log record holding the live exception would keep the pool's actors
                    log.warning("run %s failed\n%s", self.id, redact(traceback.format_exc()))
                    self._wrap_up(reporter, "failed", self._lost or one_line(exc, self.config))

    def _lose_cluster(self, reason: str, gone: bool) -> None:
        """The run cannot go on: fail it with `reason`.

        A cluster that is `gone` is dropped by the run itself as it ends, once none of its threads calls
        Ray any more (a Ray call made while Ray shuts down ends the whole process). Should the run not end
        within DROP_AFTER_S, it is dropped from here, before Ray's own limit ends the process.
        """
        self._lost, self._gone = reason, gone
        executor_hook.abort_current(cluster.ClusterError(reason), stop_loop=gone)
        if gone and not self._done.wait(DROP_AFTER_S):
            cluster.disconnect()

    def _drop_gone_cluster(self) -> None:
        """Quiet this run's threads that call Ray, then drop the connection to the cluster that went away.

        Each thread is told to make no further Ray call, and given QUIET_S to finish what it is doing.
        One still inside a call then (most often asking the dead GCS for its state) is made to end at
        its next Python step, so that when its call returns after the shutdown it does not go on calling
        a Ray that is gone: that crashed the process as the next run started Ray afresh
        (tests/lost_cluster.py, about 1 run in 14). Ray is dropped all the same, since left connected
        to a dead GCS it ends the process itself.
        """
        self._letting_go.set()
        deadline = time.time() + QUIET_S
        busy = {}
        if self.sampler and not self.sampler.stop(final=False, wait_s=QUIET_S):
            busy["the metrics sampler"] = self.sampler.thread
        loop = executor_hook.join_stopped(timeout=max(0.0, deadline - time.time()))
        if loop:
            busy["Ray Data's scheduling loop"] = loop
        if self._node_watch:
            self._node_watch.join(timeout=max(0.0, deadline - time.time()))
            if self._node_watch.is_alive():
                busy["the node watch"] = self._node_watch
        if busy:
            log.warning("dropping the lost cluster while %s still wait(s) on it", ", ".join(busy))
            for thread in busy.values():
                _end_at_next_step(thread)
        cluster.disconnect()

    def _consume(self, reporter) -> None:
        from engine.pipeline import build

        self.phase = "planning the pipeline"

        def jpeg_progress(done: int, total: int) -> None:
            self.phase = f"writing JPEG files {done}/{total} (first use only)"

        ds = build(self.config, reporter, self.id, jpeg_progress)
        self.dataset = ds
        self._raise_if_stopped()  # before there is a pipeline to shut down
        self.status, self.phase = "running", "running"
        self.persist()
        if self.config.materialize:
            self.phase = "materializing: every stage runs to its end before any result is read"
            ds = self.materialized = ds.materialize()
        if self.config.output:
            ds.write_parquet(self.config.output)
            self.predictions = _read_sample(self.config.output)
            return
        for batch in ds.iter_batches(batch_size=None, batch_format="pandas"):
            self.marks.setdefault("first_read", time.time())  # the first result this process received
            if len(self.predictions) < SAMPLE_ROWS:
                self.predictions += batch.head(SAMPLE_ROWS - len(self.predictions)).to_dict("records")
            if self._stop.is_set():
                raise RunStopped()

    def _raise_if_stopped(self) -> None:
        """End the run here if Stop was pressed while it was starting."""
        if self._stop.is_set():
            raise RunStopped()

    def _wrap_up(self, reporter, status: str, error: str | None) -> None:
        ended = time.time()
        workers = {}
        try:
            if self._gone:
                self._drop_gone_cluster()
            else:
                if self.sampler:
                    self.sampler.stop()
                if reporter is not None:
                    import ray

                    workers = ray.get(reporter.snapshot.remote(with_loads=True), timeout=10)
        except Exception as exc:
            log.debug("final readings incomplete: %s", exc)
        try:
            self.summary = summarize(
                self, status, error, ended, workers, weights_kind(self.config.model, self.config.weights_file)
            )
        except Exception as exc:
            log.exception("summary failed")
            error = error or one_line(exc, self.config)
            status = "failed"
        self._finish(status, error)


def _end_at_next_step(thread: threading.Thread) -> None:
    """Have `thread` raise SystemExit as soon as it runs Python again (a thread blocked in C stays blocked)."""
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread.ident), ctypes.py_object(SystemExit))


def _check_some_images_read(config: RunConfig, reported: dict) -> None:
    """A folder where every file was skipped is a failed run, not an empty success."""
    if reported["rows"] == 0 and reported["skipped_files"]:
        example = (reported.get("skipped_names") or ["?"])[0]
        raise ValueError(
            f"no readable images in {config.data}: {reported['skipped_files']} file(s) skipped, e.g. {example}"
        )


def _open_store() -> RunStore:
    """The run store; where it cannot be opened (a full or read-only disk), one in memory: runs go on, unrecorded."""
    try:
        return RunStore()
    except (sqlite3.Error, OSError) as exc:
        log.warning("runs are not being recorded: the run store cannot be opened: %s", exc)
        return RunStore(":memory:")


def _read_sample(folder: str) -> list[dict]:
    import pyarrow.dataset as pads

    table = pads.dataset(folder, format="parquet").head(SAMPLE_ROWS)
    return table.to_pylist()


class Runner:
    """Runs queued runs one after another on a single background thread."""

    def __init__(self, store: RunStore | None = None) -> None:
        self.store = store or _open_store()
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

    def submit(self, config: RunConfig) -> Run:
        run = Run(config.validate())
        run.persist = lambda: self._save(run)
        run.persist()
        with self._lock:
            self.runs.append(run)
        self._queue.put(lambda: self._execute(run))
        return run

    @property
    def warming(self) -> bool:
        return not self._warmed.is_set()

    def warm_up(self, wait: bool = False) -> None:
        """Warm workers in the background (a run launched meanwhile waits for it); `wait` blocks until done.

        The workers are torch-ready where Ray was started or joined with `cluster.connect(..., warm=True)`.
        """
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

    def _execute(self, run: Run) -> None:
        self._wait_for_warm_up(run)
        run.execute()
        # A failed pipeline's exception keeps its pool actors in a reference cycle: they (and the GPU
        # memory they hold) would stay until Python's next cycle collection, which an idle app may never run.
        gc.collect()
        if self.warm_workers:
            with cluster.held("warming workers") as connected:
                if connected:  # top each node back up to its fresh workers, whatever took them (actors, tasks)
                    keep_warm(WARM_WORKERS, wait=False)

    def _wait_for_warm_up(self, run: Run) -> None:
        """A run launched during the warm-up starts once it is over (or once the run is stopped).

        Side by side they share the cores and Ray's worker starts: the browser test (the app joined to
        two loopback nodes on the 2-core dev machine, a 192-image run launched as the page opens) took
        124 s with the run beside the warm-up and 101 s with the run waiting for it (one run each).
        """
        if not self._warmed.is_set() and not run._stop.is_set():
            run.phase = "waiting for the warm-up (Ray's workers importing torch)"
            while not self._warmed.wait(0.5) and not run._stop.is_set():
                pass

    def _rewarm(self) -> None:
        """Fill Ray's pool with idle torch-ready workers for the next Launch; done once their imports are.

        "Warm" is said only once the workers it started on this machine are idle (WARM_SETTLE_S at
        most): a Launch while they still import torch shares the cores with them.
        """
        started = time.time()
        try:
            with cluster.held("warming workers") as connected:
                if connected:
                    self.warm_workers = keep_warm(WARM_WORKERS)
            if self.warm_workers:
                wait_until_imported(started, WARM_SETTLE_S)
        finally:
            self._warmed.set()


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
