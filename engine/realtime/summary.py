"""The final account of a real-time run: what arrived, what was answered, and what each request waited."""

from __future__ import annotations

from typing import Any

from engine.realtime import stats
from engine.realtime.config import RealtimeConfig
from engine.realtime.load import Client


def summarize(config: RealtimeConfig, client: Client | None, status: str, error: str | None, **extra) -> dict[str, Any]:
    """Every figure of the run; `extra` adds what the run knows besides (its id, weights, device, start-up)."""
    summary: dict[str, Any] = {"status": status, "error": error, **config.to_dict(), **extra}
    summary.update(figures(config, client, status))
    return summary


def figures(config: RealtimeConfig, client: Client | None, status: str) -> dict[str, Any]:
    """Counts, rates, percentiles and the overload verdict; None where nothing was measured."""
    requests = client.requests if client else []
    answered = client.answers if client else []
    points = client.points if client else []
    started, ended = (client.started, client.ended) if client else (0.0, 0.0)
    sending_s = (client.sent_until or ended) - started if client else 0.0
    span = max([ended, *(r.answered for r in answered)]) - started
    overloaded = stats.is_overloaded(points, config.seconds, config.max_batch)
    finished_short = status == "finished" and len(answered) < len(requests)  # the drain ended with requests out
    return {
        "requests": len(requests),
        "answered": len(answered),
        "unanswered": len(requests) - len(answered),
        "offered_rate": len(requests) / sending_s if sending_s > 0 else None,
        "throughput": len(answered) / span if requests and span > 0 else None,
        "images_per_sec": len(answered) / span if answered and span > 0 else None,  # the run store's column
        **stats.percentiles_ms([r.latency_s for r in answered]),
        **stats.percentiles_ms([r.queue_s for r in answered], "queueing"),
        **stats.percentiles_ms([r.compute_s for r in answered], "compute"),
        **stats.percentiles_ms([r.transfer_s for r in answered], "transfer"),
        "breakdown_mean_ms": breakdown(answered),
        "batch_size_mean": stats.batch_size_mean(answered),
        "gpu_util_mean_pct": _mean([p["gpu_util_pct"] for p in points if p["gpu_util_pct"] is not None]),
        "overloaded": overloaded or finished_short,
        "in_flight_cap": client.cap if client else None,
        "timeseries": points,
    }


def breakdown(answered: list) -> dict[str, float] | None:
    """Where the mean request's time went: waiting in the driver, queueing and compute in the server, transfer."""
    if not answered:
        return None
    parts = {
        "waiting in the driver": [r.held_s for r in answered],
        "queueing": [r.queue_s for r in answered],
        "compute": [r.compute_s for r in answered],
        "transfer": [r.transfer_s for r in answered],
    }
    return {name: round(1000 * sum(values) / len(values), 3) for name, values in parts.items()}


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None
