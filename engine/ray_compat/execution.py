"""Ray Data's running execution: hooks on its start and end, stopping it, one of its waits, its stats."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from engine.ray_compat.support import private

_locations: dict[str, Any] = {"calls": 0, "cache": {}}
_locations_lock = threading.Lock()
LOCATIONS_TTL_S = 1.0  # as Ray's own cache of this lookup


@private("execution hooks", fallback=lambda *args: False)
def register_execution_hooks(on_start: Callable[[Any], None], on_end: Callable[[Any], None]) -> bool:
    """Have Ray Data call `on_start(executor)` as each execution starts and `on_end(executor)` as it ends."""
    from ray.data import DataContext

    from engine.ray_compat.hooks import Hooks, listeners

    listeners.update(start=on_start, end=on_end)
    classes = DataContext.get_current().custom_execution_callback_classes
    if Hooks not in classes:
        classes.append(Hooks)
    return True


@private("execution stop", fallback=lambda *args: False)
def shut_down(executor) -> bool:
    """Ray Data's own forced shutdown of an execution: its tasks and actors end."""
    executor.shutdown(force=True)
    return True


@private("execution abort", fallback=lambda *args: False)
def end_with_error(executor, error: Exception, stop_loop: bool) -> bool:
    """The execution's consumer raises `error` at once; with `stop_loop` its scheduling loop ends after its step
    and its own shutdown becomes a no-op (a cluster that went away would never answer what it waits on)."""
    if stop_loop:
        executor._shutdown = True
    executor._output_node[1].mark_finished(error)
    return True


def loop_thread(executor) -> threading.Thread | None:
    """The thread that runs an execution's scheduling loop (Ray 2.60's executor is one)."""
    return executor if isinstance(executor, threading.Thread) else None


@private("bounded actor-location wait", fallback=lambda *args: False)
def bound_actor_location_wait(wait: Callable[[Any], dict]) -> bool:
    """Ray Data asks every second where a pool's actors are and waits for the answer without a timeout.

    Its lookup is replaced by one that waits through `wait(ref)`, which can give up, and caches
    answers for LOCATIONS_TTL_S as Ray's does.
    """
    from ray.data._internal.execution.node_trackers.actor_location import get_or_create_actor_location_tracker
    from ray.data._internal.execution.operators import actor_pool_map_operator

    def actor_locations(logical_actor_ids: tuple[str, ...]) -> dict[str, str]:
        with _locations_lock:
            _locations["calls"] += 1
            hit = _locations["cache"].get(logical_actor_ids)
        if hit and time.monotonic() - hit[0] < LOCATIONS_TTL_S:
            return hit[1]
        if not logical_actor_ids:
            return {}
        found = wait(get_or_create_actor_location_tracker().get_actor_locations.remote(logical_actor_ids))
        with _locations_lock:
            fresh = {k: v for k, v in _locations["cache"].items() if time.monotonic() - v[0] < LOCATIONS_TTL_S}
            _locations["cache"] = {**fresh, logical_actor_ids: (time.monotonic(), found)}
        return found

    if getattr(actor_pool_map_operator.get_actor_locations, "bounded", False):
        return True
    actor_locations.bounded = True
    actor_pool_map_operator.get_actor_locations = actor_locations
    return True


def actor_location_calls() -> int:
    """How often Ray Data has asked the bounded lookup so far (a contract test sees it is really called)."""
    return _locations["calls"]


@private("per-operator stats")
def operator_stats(dataset) -> list[dict]:
    """Each executed operator's figures from Ray Data's stats summary, source first."""
    rows: list[dict] = []

    def walk(summary) -> None:
        for parent in summary.parents:
            walk(parent)
        extra = summary.extra_metrics or {}
        for op in summary.operators_stats:
            rows.append({
                "operator": op.operator_name,
                "tasks": extra.get("num_tasks_finished"),
                "wall_s": op.time_total_s,
                "task_wall_s": op.wall_time.sum if op.wall_time else None,
                "task_cpu_s": op.cpu_time.sum if op.cpu_time else None,
                "submission_backpressure_s": extra.get("task_submission_backpressure_time"),
                "output_backpressure_s": extra.get("task_output_backpressure_time"),
                "rows_out": op.output_num_rows.sum if op.output_num_rows else None,
                "blocks_out": op.output_num_rows.count if op.output_num_rows else None,
                "bytes_out": op.output_size_bytes.sum if op.output_size_bytes else None,
            })  # fmt: skip

    walk(dataset.get_stats_summary())
    return rows


RAY_DATA_ACTORS = ("datasets_stats_actor", "ActorLocationTracker", "AutoscalingCoordinator")  # their names
_options_lock = threading.Lock()


@private("Ray Data's bookkeeping actors without torch", fallback=lambda runtime_env: False)
def start_ray_data_actors(runtime_env: dict) -> bool:
    """Start Ray Data's own bookkeeping actors (stats, actor locations, autoscaling) now, in `runtime_env`.

    Ray Data starts them at its first execution in the job's runtime env, whose worker set-up may
    import torch they never use. They are detached and looked up by name, so the ones asked for here
    are the ones every later execution finds. Ray Data's own functions ask for them, with their own
    options and ours added; they start in the background. True once asked for.
    """
    from ray.actor import ActorClass
    from ray.data._internal.cluster_autoscaler.default_autoscaling_coordinator import (
        get_or_create_autoscaling_coordinator,
    )
    from ray.data._internal.execution.node_trackers.actor_location import get_or_create_actor_location_tracker
    from ray.data._internal.stats import get_or_create_stats_actor

    original = ActorClass.options

    def options(self, **actor_options):
        if actor_options.get("name") in RAY_DATA_ACTORS:
            actor_options["runtime_env"] = runtime_env
        return original(self, **actor_options)

    with _options_lock:
        ActorClass.options = options
        try:
            get_or_create_stats_actor()
            get_or_create_actor_location_tracker()
            get_or_create_autoscaling_coordinator()
        finally:
            ActorClass.options = original
    return True
