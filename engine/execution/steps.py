"""What a run does on its thread: connect, plan, stream the predictions, and account for it.

Each step checks for Stop as soon as it can (connecting can take long on a busy machine), and
the wrap-up always writes a summary, whether the run finished, failed or was stopped.
"""

from __future__ import annotations

import contextlib
import logging
import time
import traceback

import ray

from engine.core.config import RunConfig
from engine.core.errors import one_line, redact
from engine.core.models import weights_kind
from engine.execution import connection, executor_control
from engine.execution.reporter import get_reporter
from engine.execution.run import Run, RunStopped
from engine.insight.summary import summarize
from engine.observe import cluster
from engine.observe.samplers import MetricsSampler

log = logging.getLogger(__name__)

SAMPLE_ROWS = 8
SWITCH_WAIT_S = 120.0  # a run for another address waits this long for warm-up (or a ceiling) to let go of Ray
PERSIST_EVERY_S = 2.0
REPORTER_WAIT_S = 60.0  # a reporter's actor not up by the end of its run: Ray could not start it


def execute(run: Run) -> None:
    """Run the pipeline to its end; never raises."""
    if run.stopping:
        return run.finish("stopped")
    reporter = None
    run.launched_at = time.time()
    with contextlib.ExitStack() as connected:  # closed after the wrap-up: no address switch until then
        try:
            run.status, run.phase = "starting", "connecting to Ray"
            run.persist()
            label = connected.enter_context(connection.using(run.config.address, "a run", wait_s=SWITCH_WAIT_S))
            run.raise_if_stopped()
            reporter, reset = _prepare(run, label)
            _consume(run, reporter)
            if run.lost.reason:  # the pipeline ended early because the cluster did
                raise cluster.ClusterError(run.lost.reason)
            connection.get_unless(reset, REPORTER_WAIT_S, run._stop, RunStopped())
            if not run.stopping:
                _check_some_images_read(run.config, ray.get(reporter.snapshot.remote(with_loads=True)))
            _wrap_up(run, reporter, "stopped" if run.stopping else "finished", None)
        except BaseException as exc:  # noqa: BLE001 - a run must never take its caller down
            if run.stopping:
                _wrap_up(run, reporter, "stopped", None)
            else:
                # the traceback as text: a log record holding the live exception would keep the pool's actors.
                # It goes to the run's record and the debug log; what a person reads is one line.
                run.error_detail = redact(traceback.format_exc())
                log.debug("run %s failed\n%s", run.id, run.error_detail)
                _wrap_up(run, reporter, "failed", run.lost.reason or one_line(exc, run.config))


def _prepare(run: Run, label: str) -> tuple:
    """Watch the cluster, check it can place the run, reset the reporter and start sampling.

    Returns the reporter and its reset's reference.
    """
    run.node_watch = cluster.watch(
        label, run._unwatch, lambda: (run.timeseries() or [{"rows": 0}])[-1]["rows"], run.lose_cluster
    )
    cluster.check_resources(run.config.num_gpus, run.config.concurrency * run.config.model_stages)
    executor_control.install()
    run.raise_if_stopped()
    reporter = get_reporter()
    # Not waited for here: where the reporter's actor starts with the run (a CLI's first run), it
    # starts while the pipeline's workers do; it counts reports that overtake this reset.
    reset = reporter.reset.remote(run.id)
    run.marks["connected"] = time.time()

    def snapshot() -> dict:
        if not ray.wait([reset], timeout=0)[0]:
            return {"rows": 0, "model_loads": 0}  # the reporter is still starting: other readings go on
        return connection.get_unless(reporter.snapshot.remote(), 10, run.lost.letting_go, RuntimeError("letting go"))

    run.sampler = MetricsSampler(run.launched_at, snapshot, on_sample=lambda: run.persist_every(PERSIST_EVERY_S))
    run.sampler.start()
    return reporter, reset


def _consume(run: Run, reporter) -> None:
    """Plan the pipeline, then read its predictions as they stream in (or write them as Parquet)."""
    from engine.core.data import count_inputs
    from engine.core.pipeline import build

    run.phase = "listing the images"
    run.total = count_inputs(run.config)
    run.phase = "planning the pipeline"

    def jpeg_progress(done: int, total: int) -> None:
        run.phase = f"writing JPEG files {done}/{total} (first use only)"

    ds = build(run.config, reporter, run.id, jpeg_progress)
    run.dataset = ds
    run.raise_if_stopped()  # before there is a pipeline to shut down
    run.status, run.phase = "running", "running"
    run.persist()
    if run.config.materialize:
        run.phase = "materializing: every stage runs to its end before any result is read"
        ds = run.materialized = ds.materialize()
    if run.config.output:
        ds.write_parquet(run.config.output)
        run.predictions = _read_sample(run.config.output)
        return
    for batch in ds.iter_batches(batch_size=None, batch_format="pandas"):
        run.marks.setdefault("first_read", time.time())  # the first result this process received
        if len(run.predictions) < SAMPLE_ROWS:
            run.predictions += batch.head(SAMPLE_ROWS - len(run.predictions)).to_dict("records")
        run.raise_if_stopped()


def _wrap_up(run: Run, reporter, status: str, error: str | None) -> None:
    """Final readings, the summary, and the run's end; a summary that fails fails the run in one line."""
    ended = time.time()
    workers = {}
    try:
        if run.lost.gone:
            run.lost.drop(run.sampler, run.node_watch)
        else:
            if run.sampler:
                run.sampler.stop()
            if reporter is not None:
                workers = ray.get(reporter.snapshot.remote(with_loads=True), timeout=10)
    except Exception as exc:
        log.debug("final readings incomplete: %s", exc)
    try:
        weights = weights_kind(run.config.model, run.config.weights_file)
        run.summary = summarize(run, status, error, ended, workers, weights)
    except Exception as exc:
        log.exception("summary failed")
        error = error or one_line(exc, run.config)
        status = "failed"
    run.finish(status, error)


def _check_some_images_read(config: RunConfig, reported: dict) -> None:
    """A folder where every file was skipped is a failed run, not an empty success."""
    if reported["rows"] == 0 and reported["skipped_files"]:
        example = (reported.get("skipped_names") or ["?"])[0]
        raise ValueError(
            f"no readable images in {config.data}: {reported['skipped_files']} file(s) skipped, e.g. {example}"
        )


def _read_sample(folder: str) -> list[dict]:
    import pyarrow.dataset as pads

    table = pads.dataset(folder, format="parquet").head(SAMPLE_ROWS)
    return table.to_pylist()
