"""The run's own Ray Data execution: kept as it starts, so Stop and a lost cluster can end it.

Ray Data tells us (through `ray_compat.register_execution_hooks`) when each execution starts and
ends. Only the run's own execution is kept: the one started on the thread that called `install`
(a warm-up's dataset, running on its own thread while a run starts, is not the run's). `install`
also bounds one of Ray Data's waits, so that an execution given up for a lost cluster leaves Ray at once.
"""

from __future__ import annotations

import math
import threading

from engine import ray_compat
from engine.execution.connection import get_unless

_lock = threading.Lock()
_current: dict[str, object] = {}
_given_up = threading.Event()  # the running execution's cluster went away: its loop must leave Ray


def _started(executor) -> None:
    with _lock:
        if _current.get("owner") is threading.current_thread():
            _current["executor"] = executor
            _given_up.clear()


def _ended(executor) -> None:
    with _lock:
        if _current.get("executor") is executor:
            _current.pop("executor")


def _locations(ref) -> dict:
    """Ray Data's actor-location lookup in short waits that end once the execution is given up.

    Once the cluster is gone its answer never comes, and a loop still inside that wait when Ray is
    shut down ends the whole process as the wait returns (tests/lost_cluster.py).
    """
    return get_unless(ref, math.inf, _given_up, RuntimeError("the cluster went away: actor locations unknown"))


def install() -> None:
    """Keep the executions this thread starts (a run's), and bound Ray Data's actor-location wait."""
    with _lock:
        _current["owner"] = threading.current_thread()
    ray_compat.register_execution_hooks(_started, _ended)
    ray_compat.bound_actor_location_wait(_locations)


def shutdown_current() -> bool:
    """Force-stop the running execution, if any; True when one was stopped."""
    with _lock:
        executor = _current.pop("executor", None)
    return executor is not None and ray_compat.shut_down(executor)


def abort_current(error: Exception, stop_loop: bool = False) -> bool:
    """End the running execution at once with `error`: its consumer raises it instead of waiting for output.

    With `stop_loop` (a cluster that went away) its scheduling loop also ends after its current step;
    `join_stopped` then waits for the loop, so that nothing is still calling Ray when Ray is shut down.
    """
    with _lock:
        executor = _current.pop("executor", None)
        if executor is not None and stop_loop:
            _current["stopping"] = executor
    if executor is None:
        return False
    if stop_loop:
        _given_up.set()
    return ray_compat.end_with_error(executor, error, stop_loop)


def join_stopped(timeout: float) -> threading.Thread | None:
    """Wait up to `timeout` for the scheduling loop that `abort_current(stop_loop=True)` ended.

    Returns the loop's thread if it is still going on (blocked in a call to Ray), else None.
    """
    with _lock:
        executor = _current.pop("stopping", None)
    loop = ray_compat.loop_thread(executor) if executor is not None else None
    if loop is not None:
        loop.join(timeout)
        if loop.is_alive():
            return loop
    return None
