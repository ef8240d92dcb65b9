"""How long a queued run waits: the run in progress's remaining images at its own rate, then each run ahead's
images at the rate its model and pipeline last ran here (whole runs, start-up included)."""

from __future__ import annotations


def queue_wait(runner, run) -> tuple[int, float | None]:
    """(runs ahead of `run`, about how many seconds they take; None where some rate is unknown)."""
    runs = list(runner.runs)
    going = [r for r in runs if r.status in ("starting", "running")]
    waiting = [r for r in runs if r.status == "queued"]
    ahead = going + waiting[: waiting.index(run)] if run in waiting else going
    known = _rates(runner.store.history(limit=200))
    seconds = 0.0
    for other in ahead:
        remaining = getattr(other, "total", other.config.images) - _rows(other)
        rate = _current_rate(other) or known.get((other.config.model, other.config.pipeline))
        if not rate:
            return len(ahead), None
        seconds += max(0, remaining) / rate
    return len(ahead), seconds


def remaining_seconds(run) -> float | None:
    """The run in progress's images still to do, at its current rate."""
    rate = _current_rate(run)
    return (getattr(run, "total", run.config.images) - _rows(run)) / rate if rate else None


def _rows(run) -> int:
    points = run.timeseries()
    return points[-1]["rows"] if points else 0


def _current_rate(run) -> float | None:
    points = run.timeseries()
    return points[-1]["images_per_sec"] if points and points[-1]["images_per_sec"] > 0 else None


def _rates(history: list[dict]) -> dict[tuple[str, str], float]:
    """The newest finished whole-run rate of each (model, pipeline) in the store."""
    found: dict[tuple[str, str], float] = {}
    for row in history:  # newest first
        if row["status"] == "finished" and row["images_per_sec"]:
            found.setdefault((row["model"], row["pipeline"]), row["images_per_sec"])
    return found
