"""A tiny Ray actor that workers tell what they actually did.

Workers report every model they construct and every batch they finish, so
model-load counts, rows done and the start-up timeline are facts reported by
the processes doing the work, not estimates made by the driver. It also carries
the stop request back to the workers.
"""

from __future__ import annotations

import os
import socket
import threading
import time

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from engine.execution.warm import bookkeeping_env

SKIPPED_NAMES = 20  # the summary names at most this many skipped files (and counts them all)


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=-1)
class Reporter:
    def __init__(self) -> None:
        self.reset(None)

    def reset(self, run_id: str | None) -> None:
        """Start counting for `run_id`; nothing changes where its reports already started the count."""
        if run_id is not None and run_id == self.run_id:
            return
        self.run_id = run_id
        self.rows = 0
        self.batches = 0
        self.loads: list[dict] = []
        self.workers: dict[str, float] = {}
        self.first_batch_in: float | None = None
        self.first_result: float | None = None
        self.stop = False
        self.nodes: dict[str, dict] = {}
        self.skipped: list[str] = []
        self.decoders: list[str] = []  # each decoder that ran, in the order they reported
        self.decoded = {"gpu": 0, "cpu": 0}
        self.decode_seconds = 0.0  # wherever decoding ran: read tasks or actors
        self.actor_decode_seconds = 0.0  # decoding inside the model's actors...
        self.actor_call_seconds = 0.0  # ...and the whole calls it was part of: their ratio is the decode share

    def _counts(self, run_id: str) -> bool:
        """Whether a worker's report is for the run being counted.

        The driver does not wait for its `reset` before the run's workers start, so on a reporter
        whose actor starts with the run, a worker's first report can arrive before that reset: a
        reporter that counts no run yet takes the first run it hears of as its own.
        """
        if self.run_id is None:
            self.reset(run_id)
        return run_id == self.run_id

    def _node(self, worker: str) -> dict:
        node = worker.split(":", 1)[0]
        return self.nodes.setdefault(node, {"rows": 0, "model_loads": 0, "workers": 0})

    def worker_started(self, run_id: str, worker: str, at: float) -> bool:
        if self._counts(run_id) and worker not in self.workers:
            self.workers[worker] = at
            self._node(worker)["workers"] += 1
        return self.stop

    def model_loaded(self, run_id: str, worker: str, start: float, end: float) -> bool:
        if self._counts(run_id):
            self.loads.append({"worker": worker, "start": start, "end": end})
            self._node(worker)["model_loads"] += 1
        return self.stop

    def batch_done(self, run_id: str, worker: str, rows: int, start: float, end: float) -> bool:
        if self._counts(run_id):
            self.rows += rows
            self._node(worker)["rows"] += rows
            self.batches += 1
            self.first_batch_in = start if self.first_batch_in is None else min(self.first_batch_in, start)
            self.first_result = end if self.first_result is None else min(self.first_result, end)
        return self.stop

    def files_skipped(self, run_id: str, paths: list[str]) -> bool:
        if self._counts(run_id):
            self.skipped += paths
        return self.stop

    def images_decoded(
        self, run_id: str, decoder: str, on_gpu: int, on_cpu: int, seconds: float, call_seconds: float | None
    ) -> bool:
        """A batch of files decoded: by which decoder, where, and how long it took.

        `call_seconds` is the whole actor call the decoding was part of; None where a read task decoded.
        """
        if self._counts(run_id):
            if decoder not in self.decoders:
                self.decoders.append(decoder)
            self.decoded["gpu"] += on_gpu
            self.decoded["cpu"] += on_cpu
            self.decode_seconds += seconds
            if call_seconds is not None:
                self.actor_decode_seconds += seconds
                self.actor_call_seconds += call_seconds
        return self.stop

    def request_stop(self, run_id: str) -> None:
        if run_id == self.run_id:
            self.stop = True

    def snapshot(self, with_loads: bool = False) -> dict:
        return {
            "rows": self.rows,
            "batches": self.batches,
            "model_loads": len(self.loads),
            "workers": len(self.workers),
            "first_worker": min(self.workers.values(), default=None),
            "first_batch_in": self.first_batch_in,
            "first_result": self.first_result,
            "loads": list(self.loads) if with_loads else None,
            "nodes": {node: dict(figures) for node, figures in self.nodes.items()},
            "skipped_files": len(self.skipped),
            "skipped_names": self.skipped[:SKIPPED_NAMES] if with_loads else None,
            "decoders": list(self.decoders),
            "decoded_on_gpu": self.decoded["gpu"],
            "decoded_on_cpu": self.decoded["cpu"],
            "decode_seconds": self.decode_seconds,
            "actor_decode_seconds": self.actor_decode_seconds,
            "actor_call_seconds": self.actor_call_seconds,
        }


_handle: dict[str, object] = {}


def get_reporter():
    """The session's reporter actor, created on first use and reused by later runs.

    The driver keeps a handle for as long as it lives: a named actor whose last
    handle goes away is destroyed, and re-creating it costs a worker start. It
    lives on the driver's own node: on another node, losing that node would
    restart it empty and every count of the run so far would be lost with it.
    """
    if "reporter" not in _handle:
        here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
        # Unnamed: looked up by name, a reporter whose last handle was just dropped (a reconnect) could be
        # handed back while Ray destroys it, and the next run would fail on a dead actor.
        _handle["reporter"] = Reporter.options(
            lifetime=None, scheduling_strategy=here, runtime_env=bookkeeping_env()
        ).remote()
    return _handle["reporter"]


def forget_reporter() -> None:
    _handle.clear()


def worker_id() -> str:
    """`<Ray node id>:<host>:<pid>`: which node and process did the work."""
    return f"{ray.get_runtime_context().get_node_id()}:{socket.gethostname()}:{os.getpid()}"


class StopRequested(RuntimeError):
    """Raised inside a worker when the user pressed Stop."""


class ReportClient:
    """Worker-side handle: reports without blocking and notices a stop request."""

    def __init__(self, reporter, run_id: str) -> None:
        self.reporter, self.run_id, self.pending = reporter, run_id, []
        self.lock = threading.Lock()  # an actor may run several batches at once, on threads

    def send(self, method: str, *args) -> None:
        ref = getattr(self.reporter, method).remote(self.run_id, *args)
        with self.lock:
            self.pending.append(ref)
            ready, self.pending = ray.wait(self.pending, num_returns=len(self.pending), timeout=0)
        if ready and any(ray.get(ready)):
            raise StopRequested("run stopped by the user")


def now() -> float:
    return time.time()
