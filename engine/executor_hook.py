"""A Ray Data execution callback that hands us the running executor.

Ray Data calls `before_execution_starts` with the StreamingExecutor of each
execution; keeping that handle is what lets Stop shut the pipeline down (actors
and GPU memory included) even while workers are still starting. Only the run's own
execution is kept: the one started on the thread that installed the hook (a warm-up's
dataset, running on its own thread while a run starts, is not the run's). `install` also
puts a bounded version of one of Ray Data's waits in its place (`_actor_locations`),
so that an execution given up for a lost cluster leaves Ray at once.
"""

from __future__ import annotations

import math
import threading

from ray.data._internal.execution.execution_callback import ExecutionCallback
from ray.data._internal.execution.node_trackers.actor_location import get_or_create_actor_location_tracker
from ray.data._internal.execution.operators import actor_pool_map_operator
from ray.data._internal.utils.cache import timed_cache

from engine.cluster import get_unless

_lock = threading.Lock()
_current: dict[str, object] = {}
_given_up = threading.Event()  # the running execution's cluster went away: its loop must leave Ray


class CaptureExecutor(ExecutionCallback):
    def before_execution_starts(self, executor) -> None:
        with _lock:
            if _current.get("owner") is threading.current_thread():
                _current["executor"] = executor
                _given_up.clear()

    def after_execution_succeeds(self, executor) -> None:
        self._forget(executor)

    def after_execution_fails(self, executor, error: Exception) -> None:
        self._forget(executor)

    @staticmethod
    def _forget(executor) -> None:
        with _lock:
            if _current.get("executor") is executor:
                _current.pop("executor")


@timed_cache(ttl=1)
def _actor_locations(logical_actor_ids: tuple[str, ...]) -> dict[str, str]:
    """Ray Data's own lookup (its scheduling loop asks every second where the pool's actors are), in short waits.

    Ray Data waits for the answer without a timeout; once the cluster is gone it never comes, and a
    loop still inside that wait when Ray is shut down ends the whole process as the wait returns
    (tests/lost_cluster.py). Here the wait ends as soon as the execution is given up.
    """
    if not logical_actor_ids:
        return {}
    ref = get_or_create_actor_location_tracker().get_actor_locations.remote(logical_actor_ids)
    return get_unless(ref, math.inf, _given_up, RuntimeError("the cluster went away: actor locations unknown"))


def install() -> None:
    """Keep the executions this thread starts (a run's), and bound Ray Data's actor-location wait."""
    from ray.data import DataContext

    with _lock:
        _current["owner"] = threading.current_thread()

    classes = DataContext.get_current().custom_execution_callback_classes
    if CaptureExecutor not in classes:
        classes.append(CaptureExecutor)
    actor_pool_map_operator.get_actor_locations = _actor_locations


def shutdown_current() -> bool:
    """Force-stop the running execution, if any; True when one was stopped."""
    with _lock:
        executor = _current.pop("executor", None)
    if executor is None:
        return False
    executor.shutdown(force=True)
    return True


def abort_current(error: Exception, stop_loop: bool = False) -> bool:
    """End the running execution at once with `error`: its consumer raises it instead of waiting for output.

    With `stop_loop` (a cluster that went away): Ray Data's scheduling loop ends after its current step
    and Ray Data's own shutdown becomes a no-op, since it would wait on calls that never return;
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
        executor._shutdown = True
    executor._output_node[1].mark_finished(error)
    return True


def join_stopped(timeout: float):
    """Wait up to `timeout` for the scheduling loop that `abort_current(stop_loop=True)` ended.

    Returns the loop's thread if it is still going on (blocked in a call to Ray), else None.
    """
    with _lock:
        executor = _current.pop("stopping", None)
    if executor is not None:
        executor.join(timeout)
        if executor.is_alive():
            return executor
    return None
