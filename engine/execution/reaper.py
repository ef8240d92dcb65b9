"""Ending a local Ray's processes once the process that started it has ended, however it ended.

Ray starts its raylet, GCS and agents in sessions of their own, and on a signal the driver can exit
without running its exit handlers: agents of the raylet then outlive the app (a process-group kill
does not reach them either). `python -m engine.execution.reaper PID` watches PID's descendants
while PID lives, then ends whatever of them is left.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

POLL_S = 1.0
GRACE_S = 3.0  # between asking the processes left to end (SIGTERM) and ending them (SIGKILL)


def start(parent: int) -> None:
    """Start a reaper for `parent` (in its own session, so a signal to the app's group does not end it first)."""
    subprocess.Popen(
        [sys.executable, "-m", "engine.execution.reaper", str(parent)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
    )


def watch(parent: int) -> list:
    """Wait for `parent` to end, then end its last known descendants; returns the processes ended."""
    import psutil

    known: dict[int, psutil.Process] = {}
    try:
        watched = psutil.Process(parent)
        while watched.is_running() and watched.status() != psutil.STATUS_ZOMBIE:
            for child in watched.children(recursive=True):
                if child.pid != os.getpid():
                    known.setdefault(child.pid, child)
            time.sleep(POLL_S)
    except psutil.Error:  # it ended between two looks
        pass
    left = [p for p in known.values() if p.is_running()]
    for process in left:
        try:
            process.terminate()
        except psutil.Error:
            pass
    _, stubborn = psutil.wait_procs(left, timeout=GRACE_S)
    for process in stubborn:
        try:
            process.kill()
        except psutil.Error:
            pass
    return left


if __name__ == "__main__":
    watch(int(sys.argv[1]))
