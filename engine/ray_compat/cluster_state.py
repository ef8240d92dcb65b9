"""What Ray's GCS and raylets know that no public API gives in time: nodes, actors, workers, stores."""

from __future__ import annotations

import json
from dataclasses import dataclass

from engine.ray_compat.support import private

POOL_ACTOR_PREFIX = "MapWorker("  # Ray Data names its pool actors' class MapWorker(<operator>)


@dataclass(frozen=True)
class Node:
    """A Ray node as the GCS describes it."""

    node_id: str
    address: str
    manager_port: int  # the node's raylet, which serves its object-store and worker stats
    resources: dict[str, float]
    alive: bool


@dataclass(frozen=True)
class StoreStats:
    used_bytes: int
    available_bytes: int
    spilled_bytes: int


def _public_nodes(timeout: float) -> list[Node]:
    """`ray.nodes()`: public, but it waits for as long as the GCS is gone."""
    import ray

    return [
        Node(n["NodeID"], n["NodeManagerAddress"], n["NodeManagerPort"], dict(n["Resources"]), n["Alive"])
        for n in ray.nodes()
    ]


@private("node list with a timeout", fallback=_public_nodes)
def list_nodes(timeout: float) -> list[Node]:
    """Every node the GCS knows, alive or not; raises within `timeout` s when the GCS does not answer."""
    import ray
    from ray.core.generated.gcs_pb2 import GcsNodeInfo

    gcs = ray._private.worker.global_worker.gcs_client
    return [
        Node(
            node_id.hex(),
            node.node_manager_address,
            node.node_manager_port,
            dict(node.resources_total),
            node.state == GcsNodeInfo.GcsNodeState.ALIVE,
        )
        for node_id, node in gcs.get_all_node_info(timeout=timeout).items()
    ]


@private("live actor count")
def alive_pool_actors() -> int:
    """Ray Data pool actors alive right now, from the GCS's actor table."""
    import ray._private.state as state

    return sum(
        1
        for actor in state.actors().values()
        if actor.get("State") == "ALIVE" and str(actor.get("ActorClassName", "")).startswith(POOL_ACTOR_PREFIX)
    )


def _node_stats(address: str, port: int):
    from ray._private.internal_api import node_stats

    return node_stats(address, port, include_memory_info=False)


@private("per-node object store")
def object_store(address: str, port: int) -> StoreStats:
    """One node's object-store use, from its raylet."""
    store = _node_stats(address, port).store_stats
    return StoreStats(
        int(store.object_store_bytes_used), int(store.object_store_bytes_avail), int(store.spilled_bytes_total)
    )


@private("fresh-worker count")
def fresh_workers(address: str, port: int, any_job: bool = False) -> int:
    """Idle workers of this job on one node that have never run a task: the only ones Ray hands a new actor.

    `any_job`: those of no job yet instead (`prestart`'s for any job), which outlive this job; with them any that
    Ray started by itself, with no runtime env, for its first driver (one per CPU at most, on that node).
    """
    import ray
    from ray.core.generated import common_pb2

    job = ray.JobID.nil().binary() if any_job else bytes.fromhex(ray.get_runtime_context().get_job_id())
    return sum(
        1
        for w in _node_stats(address, port).core_workers_stats
        if w.job_id == job
        and w.worker_type == common_pb2.WORKER
        and not w.num_executed_tasks
        and ray.ActorID(w.actor_id).is_nil()
    )


@private("worker prestart", fallback=lambda *args, **kwargs: False)
def prestart(address: str, port: int, count: int, keep_alive_s: int, any_job: bool = False) -> bool:
    """Ask one node's raylet to start `count` workers of this job's runtime env now; True if asked.

    This is the call Ray uses itself. `any_job`: workers of no job, which outlive this one; Ray hands an idle
    worker of no job to the first job of its runtime env that needs one (the next CLI run joining this Ray).
    """
    import ray
    from ray._private.grpc_utils import init_grpc_channel
    from ray._private.utils import get_runtime_env_info
    from ray.core.generated import common_pb2, node_manager_pb2, node_manager_pb2_grpc
    from ray.runtime_env import RuntimeEnv

    context = ray.get_runtime_context()
    env = RuntimeEnv(**json.loads(context.get_runtime_env_string() or "{}"))
    request = node_manager_pb2.PrestartWorkersRequest(
        language=common_pb2.PYTHON,
        runtime_env_info=get_runtime_env_info(env, is_job_runtime_env=True, serialize=False),
        keep_alive_duration_secs=keep_alive_s,
        num_workers=count,
    )
    if not any_job:
        request.job_id = bytes.fromhex(context.get_job_id())
    channel = init_grpc_channel(f"{address}:{port}")
    node_manager_pb2_grpc.NodeManagerServiceStub(channel).PrestartWorkers(request, timeout=10)
    return True


@private("finding a Ray running on this machine", fallback=lambda: ["auto"])
def running_cluster_addresses() -> list[str]:
    """Addresses of Rays on this machine, the likeliest first: the last `ray start --head` (Ray's current-cluster
    file, which outlives a head that was killed), then each GCS process running here (the app's Ray among them)."""
    from ray._private import services

    recorded = services.find_bootstrap_address(None)
    found = [services.canonicalize_bootstrap_address(recorded)] if recorded else []
    return list(dict.fromkeys(found + sorted(services.find_gcs_addresses())))


@private("this machine's token for a Ray found on it", fallback=lambda: False)
def use_this_machines_token() -> bool:
    """Authenticate to a Ray found on this machine as `ray.init("auto")` does: with this machine's token where
    one exists and RAY_AUTH_MODE is unset (`ray.init` with an explicit address never looks). True if it will."""
    from ray._private.authentication.authentication_token_setup import maybe_enable_token_auth_if_token_available

    return maybe_enable_token_auth_if_token_available(warn_if_disabled=False)


@private("token authentication check")
def token_auth_enabled() -> bool:
    """Whether this Ray authenticates its RPCs with a token."""
    from ray._raylet import AuthenticationMode, get_authentication_mode

    return get_authentication_mode() == AuthenticationMode.TOKEN
