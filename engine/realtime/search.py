"""Where a model and its servers sit on the latency–throughput curve: the largest rate that meets a latency target.

Each point is one short real run. The rate doubles while the target holds (halves while it does
not), then bisects between the largest rate that met it and the smallest that did not. The
points along the way are the curve the page draws; the benchmark keeps the best one.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from engine.core.errors import one_line
from engine.realtime.config import LIMITS, RealtimeConfig

CLOSE_ENOUGH = 0.1  # bisection ends once the smallest failing rate is within 10 % of the largest passing one


def meets(summary: dict, p99_ms: float) -> bool:
    """A finished run, every request answered, not overloaded, with p99 latency within `p99_ms`."""
    p99 = summary.get("latency_p99_ms")
    return (
        summary.get("status") == "finished"
        and not summary.get("overloaded")
        and summary.get("unanswered") == 0
        and p99 is not None
        and p99 <= p99_ms
    )


def next_rate(good: float | None, bad: float | None) -> float | None:
    """The next rate to try, given the largest that met the target and the smallest that did not; None: done."""
    low, high = LIMITS["rate"]
    if bad is None:
        return None if good >= high else min(high, _round(good * 2))
    if good is None:
        return None if bad <= low else max(low, _round(bad / 2))
    if bad <= good * (1 + CLOSE_ENOUGH):
        return None
    return _round((good + bad) / 2)


def find_max_rate(measure: Callable[[float], dict], p99_ms: float, start: float, runs: int = 10) -> dict:
    """Search with `measure(rate) -> summary` (a real run each); at most `runs` runs.

    Returns {"best": the summary of the largest rate that met the target (None if none did),
    "points": every summary, in the order run}. A run that failed, was stopped or answered nothing ends it.
    """
    good = bad = best = None
    points: list[dict] = []
    rate: float | None = start
    while rate is not None and len(points) < runs:
        summary = measure(rate)
        points.append(summary)
        if summary.get("status") != "finished" or not summary.get("answered"):
            break  # failed, stopped, or a rate too low to send one request in the run's time: nothing to go on
        if meets(summary, p99_ms):
            good = rate
            best = summary if best is None or summary["throughput"] > best["throughput"] else best
        else:
            bad = rate if bad is None else min(bad, rate)
        rate = next_rate(good, bad)
    return {"best": best, "points": points}


class RateSweep:
    """The search on a thread of its own, each run queued like any other; what a page reads while it goes."""

    def __init__(self, submit: Callable[[RealtimeConfig], object], base: RealtimeConfig, p99_ms: float) -> None:
        self.submit, self.base, self.p99_ms = submit, base, p99_ms
        self.runs: list = []  # the runs so far, in order
        self.result: dict | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._search, name="realtime-sweep", daemon=True)

    def start(self) -> RateSweep:
        self._thread.start()
        return self

    @property
    def done(self) -> bool:
        return self.result is not None

    def stop(self) -> None:
        self._stop.set()
        if self.runs:
            self.runs[-1].stop()

    def _search(self) -> None:
        try:
            self.result = find_max_rate(self._measure, self.p99_ms, self.base.rate)
        except Exception as exc:  # a run that cannot be queued: the sweep ends, saying why in one line
            self.result = {"best": None, "points": [], "error": one_line(exc)}

    def _measure(self, rate: float) -> dict:
        if self._stop.is_set():
            return {"status": "stopped"}
        run = self.submit(self.base.replace(rate=rate).validate())
        self.runs.append(run)
        run.wait()
        return run.summary or {"status": run.status}


def _round(rate: float) -> float:
    """Three significant digits: rates a reader can repeat."""
    return float(f"{rate:.3g}")
