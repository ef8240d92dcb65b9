"""Real readings, taken together at a fixed interval while a run goes.

Each point joins what the workers reported (rows, model loads) with NVML, Ray's
object-store stats and psutil. A figure that cannot be read is `None`.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

import psutil

from engine import nvml
from engine.cluster import live_pool_actors

log = logging.getLogger(__name__)

SAMPLE_INTERVAL_S = 0.5
RATE_WINDOW_S = 2.0  # images/sec is measured over this trailing window


@dataclass(frozen=True)
class StoreReading:
    node: str
    used_bytes: int
    capacity_bytes: int
    spilled_bytes: int


def read_object_store() -> list[StoreReading]:
    """Object-store use of every live node, from each raylet's own stats."""
    import ray
    from ray._private.internal_api import node_stats

    readings = []
    for node in ray.nodes():
        if not node["Alive"]:
            continue
        try:
            stats = node_stats(node["NodeManagerAddress"], node["NodeManagerPort"], include_memory_info=False)
        except Exception as exc:  # a node going away mid-read
            log.debug("object store of %s unreadable: %s", node["NodeManagerAddress"], exc)
            continue
        store = stats.store_stats
        readings.append(
            StoreReading(
                node=node["NodeManagerAddress"],
                used_bytes=int(store.object_store_bytes_used),
                capacity_bytes=int(store.object_store_bytes_avail),
                spilled_bytes=int(store.spilled_bytes_total),
            )
        )
    return readings


def read_host() -> dict:
    """CPU % and RAM of this machine."""
    return {"cpu_pct": psutil.cpu_percent(interval=None), "ram_used_bytes": int(psutil.virtual_memory().used)}


class MetricsSampler:
    """Background thread that appends one point every `interval` seconds."""

    def __init__(self, started_at: float, read_workers, interval: float = SAMPLE_INTERVAL_S) -> None:
        self.started_at = started_at
        self.read_workers = read_workers
        self.interval = interval
        self.points: list[dict] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="metrics-sampler", daemon=True)
        self._recent: list[tuple[float, int]] = [(started_at, 0)]

    def start(self) -> MetricsSampler:
        psutil.cpu_percent(interval=None)  # prime: the first call has no interval
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.sample()  # a last point, so the series ends at the end

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.sample()
            except Exception:  # a sampler must never take the run down
                log.exception("metrics sample failed")

    def sample(self) -> dict:
        now = time.time()
        workers = self.read_workers()
        rows = workers["rows"]
        self._recent = [(t, r) for t, r in self._recent if now - t <= RATE_WINDOW_S] or self._recent[-1:]
        last_t, last_rows = self._recent[0]
        self._recent.append((now, rows))
        elapsed = now - self.started_at
        gpus = nvml.read_gpus()
        stores = read_object_store()
        known_util = [g.util_pct for g in gpus if g.util_pct is not None]
        known_mem = [g.mem_used_bytes for g in gpus if g.mem_used_bytes is not None]
        point = {
            "t": round(elapsed, 3),
            "rows": rows,
            "images_per_sec": (rows - last_rows) / (now - last_t) if now > last_t else 0.0,
            "cumulative_images_per_sec": rows / elapsed if elapsed > 0 else 0.0,
            "gpu_util_pct": sum(known_util) / len(known_util) if known_util else None,
            "gpu_mem_used_bytes": sum(known_mem) if known_mem else None,
            "gpus": [
                {
                    "index": g.index,
                    "util_pct": g.util_pct,
                    "mem_used_bytes": g.mem_used_bytes,
                    "mem_total_bytes": g.mem_total_bytes,
                }
                for g in gpus
            ],
            "object_store_used_bytes": sum(s.used_bytes for s in stores) if stores else None,
            "object_store_capacity_bytes": sum(s.capacity_bytes for s in stores) if stores else None,
            "object_store_spilled_bytes": sum(s.spilled_bytes for s in stores) if stores else None,
            **read_host(),
            "live_actors": live_pool_actors(),
            "model_loads": workers["model_loads"],
        }
        self.points.append(point)
        return point
