"""The one door to Ray's internals (`ray._*`, `ray.data._internal`, generated protos, patches).

Nothing else in the playground imports them. Each use is one small function named for what it
gets; on a Ray outside `SUPPORTED`, or once an internal has moved, it answers "not available"
(or a public fallback), logs once, and `notice()` names it for the page. `tests/test_ray_compat.py`
is the contract: run it after changing the Ray pin to see what moved.
"""

from engine.ray_compat.cluster_state import (
    Node,
    StoreStats,
    alive_pool_actors,
    fresh_workers,
    list_nodes,
    object_store,
    prestart,
    running_cluster_addresses,
    token_auth_enabled,
    use_this_machines_token,
)
from engine.ray_compat.execution import (
    actor_location_calls,
    bound_actor_location_wait,
    end_with_error,
    loop_thread,
    operator_stats,
    register_execution_hooks,
    shut_down,
    start_ray_data_actors,
)
from engine.ray_compat.planning import (
    PLAN_TITLES,
    Fusion,
    executed_operators,
    explain_text,
    fusion_trace,
    plan_texts,
    store_budget_fraction,
)
from engine.ray_compat.support import SUPPORTED, degraded, fake_version, notice, unsupported_reason

__all__ = [
    "PLAN_TITLES",
    "SUPPORTED",
    "Fusion",
    "Node",
    "StoreStats",
    "actor_location_calls",
    "alive_pool_actors",
    "bound_actor_location_wait",
    "degraded",
    "end_with_error",
    "executed_operators",
    "explain_text",
    "fake_version",
    "fresh_workers",
    "fusion_trace",
    "list_nodes",
    "loop_thread",
    "notice",
    "object_store",
    "operator_stats",
    "plan_texts",
    "prestart",
    "register_execution_hooks",
    "running_cluster_addresses",
    "shut_down",
    "start_ray_data_actors",
    "store_budget_fraction",
    "token_auth_enabled",
    "unsupported_reason",
    "use_this_machines_token",
]
