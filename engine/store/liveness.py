"""Whether the process that saved a live run still runs it.

A PID alone is not enough: once a process ends the system hands its PID to another one, and its run
would read `running` forever. Each row keeps its process's start time beside the PID; the run is live
while a process with that PID and that start time exists.
"""

from __future__ import annotations

import functools
import os
import time
from typing import Any

import psutil

from engine.store.rows import LIVE

ENDED = "the process running it ended"
# A start time is read as boot time + time since boot, and the boot time the system reports is the wall
# clock less the time since boot, in whole seconds: it flips by a second as the clock is slewed, and
# drifts by up to 500 ppm (the fastest the kernel slews) of the time since the process started.
START_SLACK_S = 2.0
MAX_SLEW = 5e-4


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
    if started_at is None:
        return False
    return abs(created - started_at) > START_SLACK_S + MAX_SLEW * max(0.0, time.time() - started_at)


def as_read(row: dict[str, Any]) -> dict[str, Any]:
    """The row as every read shows it: a live run whose process ended is `interrupted`."""
    if row["status"] in LIVE and ended(row["pid"], row["pid_started_at"]):
        row.update(status="interrupted", error=row["error"] or ENDED)
    return row
