"""Pure arithmetic over measured request timings: percentiles, live samples, and the overload verdict.

Every figure comes from real requests; a figure with nothing to measure is None, never 0.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

PERCENTILES = (50, 95, 99)
SERVED_SHARE = 0.9  # answered below this share of what arrived: the server falls behind


@dataclass(slots=True)
class Request:
    """One request's life, in the driver's clock (seconds) except the server's own two durations."""

    key: int
    arrived: float  # when the open-loop schedule sent it: its latency starts here
    sent: float | None = None  # when it left the driver (later than `arrived` when it waited there)
    answered: float | None = None  # when its answer reached the driver
    queue_s: float = 0.0  # in the server: arrival to its batch's start
    compute_s: float = 0.0  # its batch's forward pass
    batch_size: int = 0
    batch: tuple[int, int] = (0, 0)  # (server, batch number): requests of one batch share it

    @property
    def latency_s(self) -> float:
        return self.answered - self.arrived

    @property
    def held_s(self) -> float:
        """Waiting in the driver: for a free slot under the in-flight cap, or for the driver's own event loop."""
        return self.sent - self.arrived

    @property
    def transfer_s(self) -> float:
        """The rest: to the server and back through Ray."""
        return max(0.0, self.answered - self.sent - self.queue_s - self.compute_s)


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0-100), linear between the closest ranks; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def percentiles_ms(seconds: Sequence[float], prefix: str = "latency") -> dict[str, float | None]:
    """`{prefix}_p50_ms`, `_p95_ms`, `_p99_ms` of durations given in seconds."""
    return {f"{prefix}_p{q}_ms": _ms(percentile(seconds, q)) for q in PERCENTILES}


def batch_size_mean(answered: Iterable[Request]) -> float | None:
    """Requests per batch formed: requests over distinct batches (a mean over batches, not over requests)."""
    answered = list(answered)
    batches = {r.batch for r in answered}
    return len(answered) / len(batches) if batches else None


def sample(
    t: float, arrived: int, answered: int, window: Sequence[Request], window_s: float, gpu: float | None
) -> dict:
    """One live point: the trailing window's percentiles, throughput and batch size, and the queue now.

    `window`: the requests answered in the last `window_s` seconds. `arrived`, `answered`: counts so far.
    """
    return {
        "t": round(t, 3),
        "arrived": arrived,
        "answered": answered,
        "queue_depth": arrived - answered,
        "throughput": len(window) / window_s,
        **percentiles_ms([r.latency_s for r in window]),
        "batch_size_mean": batch_size_mean(window),
        "gpu_util_pct": gpu,
    }


def is_overloaded(points: Sequence[dict], seconds: float, max_batch: int) -> bool:
    """Whether the offered rate exceeded what the servers answer, from the samples taken while sending.

    Over the later half of the sending time (past any start-up), the answers fall below
    SERVED_SHARE of the arrivals and the queue (arrived, not answered) grows by more than two
    full batches: a queue that keeps growing, not one burst. Below capacity the queue stays
    within a batch or two however long the run.
    """
    sending = [p for p in points if p["t"] <= seconds + 1e-6]
    window = [p for p in sending if p["t"] >= seconds / 2] or sending
    if len(window) < 2:
        return False
    first, last = window[0], window[-1]
    arrived = last["arrived"] - first["arrived"]
    answered = last["answered"] - first["answered"]
    growth = last["queue_depth"] - first["queue_depth"]
    return arrived > 0 and answered < SERVED_SHARE * arrived and growth > 2 * max_batch


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 3)
