"""Recorded runs played back at their real speed: the same charts and figures, with no Ray, GPU or network.

A replay reads like a run (status, phase, time series, summary), so the pages draw it with the
same code; its figures appear as they did live, second by second, from the recording.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime

from engine.core.config import ConfigError, RunConfig


class Replay:
    """One recorded run, played back from the moment it is made."""

    origin = "replay"
    owner = None

    def __init__(self, record: dict, previous: Replay | None = None, clock: Callable[[], float] = time.time) -> None:
        points = record.get("timeseries") or []
        if not points:
            raise ConfigError(f"run {record.get('id')} has no recorded samples to replay")
        self.record = record
        self.id = f"replay-{record['id']}"
        self.config = RunConfig.from_dict(record["config"])
        self.previous = previous  # a replay drawn faintly beside this one
        self._points = points
        self._clock = clock
        self._stopped_at: float | None = None
        self.launched_at = self.submitted_at = clock()
        self.duration = float((record.get("summary") or {}).get("seconds") or points[-1]["t"])
        self.label = f"replay of a run on {_machine(points)}, recorded {_date(record)}"

    def elapsed(self) -> float:
        end = self._stopped_at if self._stopped_at is not None else self._clock()
        return min(end - self.launched_at, self.duration)

    def timeseries(self) -> list[dict]:
        shown = self.elapsed()
        return [p for p in self._points if p["t"] <= shown]

    @property
    def done(self) -> bool:
        return self._stopped_at is not None or self.elapsed() >= self.duration

    @property
    def status(self) -> str:
        if self._stopped_at is not None:
            return "stopped"
        return self.record.get("status", "finished") if self.done else "running"

    @property
    def phase(self) -> str:
        return f"{self.label} · {self.elapsed():.0f} of {self.duration:.0f} s"

    @property
    def summary(self) -> dict | None:
        return self.record.get("summary") if self.done else None

    @property
    def error(self) -> str | None:
        return self.record.get("error") if self.done else None

    def stop(self) -> None:
        self._stopped_at = self._clock()

    def wait(self, timeout: float | None = None) -> bool:
        time.sleep(max(0.0, min(timeout or 0.0, self.duration - self.elapsed())))
        return self.done


def records_from_export(text: str) -> list[dict]:
    """The runs of a `history --export` file (or the app's JSON download), each as the store's `get` gives it."""
    try:
        rows = json.loads(text)["runs"]
        return [_parsed(row) for row in rows]
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"not a run export file: {type(exc).__name__}: {exc}".splitlines()[0]) from None


def _parsed(row: dict) -> dict:
    def field(name: str):
        value = row.get(name)
        return json.loads(value) if isinstance(value, str) else value

    return {
        "id": row["id"],
        "status": row["status"],
        "error": row.get("error"),
        "config": field("config"),
        "summary": field("summary"),
        "timeseries": field("timeseries") or [],
    }


def _machine(points: list[dict]) -> str:
    gpus = {(g.get("node", ""), g["index"]): g["name"] for p in points for g in p.get("gpus") or []}
    if not gpus:
        return "a CPU"
    names = sorted(set(gpus.values()))
    return f"{len(gpus)} × {names[0]}" if len(names) == 1 else f"{len(gpus)} GPUs ({', '.join(names)})"


def _date(record: dict) -> str:
    started = (record.get("summary") or {}).get("started_at")
    return datetime.fromtimestamp(started, UTC).strftime("%Y-%m-%d") if started else "at an unknown date"
