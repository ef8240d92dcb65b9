"""Whether the process that saved a live run still runs it.

A PID alone is not enough: once a process ends the system hands its PID to another one, and its run
would read `running` forever. Each row keeps its process's start time beside the PID; the run is live
while a process with that PID and that start time exists.
"""

from __future__ import annotations

import functools
import os
from typing import Any

import psutil

from engine.store.rows import LIVE

ENDED = "the process running it ended"
START_SLACK_S = 1.0  # a start time counts from the boot time, which a clock adjustment can nudge


def this_process() -> tuple[int, float]:
    """This process's PID and start time (asked again in a forked child, whose PID differs)."""
    pid = os.getpid()
    return pid, _start_time(pid)


@functools.cache
def _start_time(pid: int) -> float:
    return psutil.Process(pid).create_time()


def ended(pid: int, started_at: float | None) -> bool:
    """No process has this PID, or the one that has it started at another time (rows saved before start
    times were kept are judged by the PID alone)."""
    if pid <= 0:
        return True
    try:
        created = psutil.Process(pid).create_time()
    except psutil.NoSuchProcess:
        return True
    except psutil.Error:  # it exists, but its start time cannot be read: no sign that it ended
        return False
    return started_at is not None and abs(created - started_at) > START_SLACK_S


def as_read(row: dict[str, Any]) -> dict[str, Any]:
    """The row as every read shows it: a live run whose process ended is `interrupted`."""
    if row["status"] in LIVE and ended(row["pid"], row["pid_started_at"]):
        row.update(status="interrupted", error=row["error"] or ENDED)
    return row
