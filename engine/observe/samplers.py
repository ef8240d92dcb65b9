"""Real readings, taken together at a fixed interval while a run goes.

Each point joins what the workers reported (rows, model loads) with NVML, Ray's
object-store stats and psutil. A figure that cannot be read is `None`.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from dataclasses import dataclass

import psutil
import ray

from engine import ray_compat
from engine.observe import nvml
from engine.observe.cluster import live_pool_actors, node_label, nodes

log = logging.getLogger(__name__)

SAMPLE_INTERVAL_S = 0.5
MIN_RATE_WINDOW_S = 3.0  # images/sec is measured over at least this trailing window


class RateMeter:
    """Images/sec over a trailing window long enough to hold two completions, so it never reads 0 while rows flow.

    Rows arrive in steps (a batch, a block); over a fixed short window a slow pipeline reads 0
    between its steps. The window here is twice the longest gap seen between steps, at least
    MIN_RATE_WINDOW_S, and always reaches back past the latest step (a stall shows as a decay).
    """

    def __init__(self, started_at: float) -> None:
        self.readings: list[tuple[float, int]] = [(started_at, 0)]
        self.last_step: float | None = None  # when rows last went up
        self.longest_gap = 0.0

    def rate(self, now: float, rows: int) -> float:
        last_t, last_rows = self.readings[-1]
        if rows > last_rows:
            if self.last_step is not None:
                self.longest_gap = max(self.longest_gap, now - self.last_step)
            self.last_step = now
        self.readings.append((now, rows))
        since_step = now - self.last_step + MIN_RATE_WINDOW_S if self.last_step is not None else 0.0
        window = max(MIN_RATE_WINDOW_S, 2 * self.longest_gap, since_step)
        older = [r for r in self.readings if r[0] <= now - window]
        then_t, then_rows = older[-1] if older else self.readings[0]
        self.readings = self.readings[len(older) - 1 :] if len(older) > 1 else self.readings
        return (rows - then_rows) / (now - then_t) if now > then_t else 0.0


@dataclass(frozen=True)
class StoreReading:
    node: str
    used_bytes: int
    capacity_bytes: int
    spilled_bytes: int


def read_object_store() -> list[StoreReading]:
    """Object-store use of every live node, from each raylet's own stats; empty where this Ray cannot say."""
    readings = []
    for node in nodes():
        if not node.alive:
            continue
        try:
            store = ray_compat.object_store(node.address, node.manager_port)
        except Exception as exc:  # a node going away mid-read
            log.debug("object store of %s unreadable: %s", node.address, exc)
            continue
        if store is not None:
            readings.append(
                StoreReading(node_label(node.address, node.node_id), store.used_bytes, store.available_bytes,
                             store.spilled_bytes)
            )  # fmt: skip
    return readings


@ray.remote(num_cpus=0)
class NodeGpus:
    """A tiny actor pinned to one node: reads that node's GPUs through NVML."""

    def read(self) -> list[dict]:
        return [dataclasses.asdict(g) for g in nvml.read_gpus()]


class GpuReader:
    """Every GPU of the cluster: this node's in-process, other GPU nodes' through a NodeGpus actor each."""

    def __init__(self) -> None:
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        here = ray.get_runtime_context().get_node_id()
        alive = [n for n in nodes() if n.alive]
        self.local = next((node_label(n.address, here) for n in alive if n.node_id == here), "local")
        self.remote = {
            node_label(n.address, n.node_id): NodeGpus.options(
                scheduling_strategy=NodeAffinitySchedulingStrategy(n.node_id, soft=False)
            ).remote()
            for n in alive
            if n.node_id != here and n.gpus > 0
        }

        self.pending = {node: actor.read.remote() for node, actor in self.remote.items()}
        self.last: dict[str, list[dict]] = {}

    def read(self) -> list[dict]:
        """Never waits on a remote node: each point takes the newest reading that has arrived."""
        readings = [{**dataclasses.asdict(g), "node": self.local} for g in nvml.read_gpus()]
        for node, ref in list(self.pending.items()):
            ready, _ = ray.wait([ref], timeout=0)
            if ready:
                try:
                    self.last[node] = [{**g, "node": node} for g in ray.get(ref)]
                except Exception as exc:  # a node going away: its GPUs drop out
                    log.debug("GPUs of %s unreadable: %s", node, exc)
                    self.last.pop(node, None)
                self.pending[node] = self.remote[node].read.remote()
            readings += self.last.get(node, [])
        return readings

    def close(self) -> None:
        for actor in self.remote.values():
            ray.kill(actor)


class HostReader:
    """CPU % of this machine since this reader's previous reading, and RAM in use.

    psutil.cpu_percent(None) measures since the last call made anywhere in the process, so
    another caller in between (a second run's sampler, a wait for a quiet CPU) would leave a
    near-empty interval and a false 0 %; each reader keeps its own CPU times instead.
    """

    def __init__(self) -> None:
        self.last = psutil.cpu_times()

    def read(self) -> dict:
        now = psutil.cpu_times()
        total = sum(now) - sum(self.last)
        idle = (now.idle + getattr(now, "iowait", 0.0)) - (self.last.idle + getattr(self.last, "iowait", 0.0))
        self.last = now
        cpu_pct = round(100.0 * (1 - idle / total), 1) if total > 0 else None
        return {"cpu_pct": cpu_pct, "ram_used_bytes": int(psutil.virtual_memory().used)}


class MetricsSampler:
    """Background thread that appends one point every `interval` seconds."""

    def __init__(self, started_at: float, read_workers, interval: float = SAMPLE_INTERVAL_S, on_sample=None) -> None:
        self.started_at = started_at
        self.on_sample = on_sample or (lambda: None)
        self.read_workers = read_workers
        self.interval = interval
        self.points: list[dict] = []
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="metrics-sampler", daemon=True)
        self.meter = RateMeter(started_at)

    def start(self) -> MetricsSampler:
        self.host = HostReader()
        self.gpus = GpuReader()
        self.thread.start()
        return self

    def stop(self, final: bool = True, wait_s: float = 5.0) -> bool:
        """End sampling, waiting up to `wait_s` for a reading in flight; False if it is still going on.

        With `final`, a last point (so the series ends at the end) and the GPU readers freed. Without it
        (the cluster went away and Ray is about to be shut down), no further Ray call: one made while Ray
        shuts down ends the whole process.
        """
        if not self._stop.is_set():
            self._stop.set()
            self.thread.join(timeout=wait_s)
            if final:
                self.sample()
                self.gpus.close()
        return not self.thread.is_alive()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.sample()
                self.on_sample()
            except Exception:  # a sampler must never take the run down
                if not self._stop.is_set():  # (one cut short by stop() is no news)
                    log.exception("metrics sample failed")

    def sample(self) -> dict:
        now = time.time()
        workers = self.read_workers()
        rows = workers["rows"]
        elapsed = now - self.started_at
        gpus = self.gpus.read()
        stores = read_object_store()
        known_util = [g["util_pct"] for g in gpus if g["util_pct"] is not None]
        known_mem = [g["mem_used_bytes"] for g in gpus if g["mem_used_bytes"] is not None]
        point = {
            "t": round(elapsed, 3),
            "rows": rows,
            "images_per_sec": self.meter.rate(now, rows),
            "cumulative_images_per_sec": rows / elapsed if elapsed > 0 else 0.0,
            "gpu_util_pct": sum(known_util) / len(known_util) if known_util else None,
            "gpu_mem_used_bytes": sum(known_mem) if known_mem else None,
            "gpus": gpus,
            "object_store_used_bytes": sum(s.used_bytes for s in stores) if stores else None,
            "object_store_capacity_bytes": sum(s.capacity_bytes for s in stores) if stores else None,
            "object_store_spilled_bytes": sum(s.spilled_bytes for s in stores) if stores else None,
            "object_store_by_node": {s.node: s.used_bytes for s in stores},
            **self.host.read(),
            "live_actors": live_pool_actors(),
            "model_loads": workers["model_loads"],
        }
        self.points.append(point)
        return point


def wait_for_quiet_cpu(limit_s: float = 20.0, busy_pct: float = 20.0) -> float:
    """Wait until host CPU use drops under `busy_pct` (or `limit_s` passes); returns the seconds waited.

    A run's teardown and Ray prestarting workers (each importing torch) must not slow what is timed next.
    """
    t = time.perf_counter()
    while time.perf_counter() - t < limit_s and psutil.cpu_percent(interval=0.5) > busy_pct:
        pass
    return round(time.perf_counter() - t, 1)
