"""What the connected Ray cluster has, and whether it is still there while a run uses it."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from engine import ray_compat

# A cluster whose GCS stops answering this long is gone: the run fails and the connection is dropped.
# Ray itself would wait much longer and then end the whole process (the app with it), so the app
# notices first and carries on (ray_compat.env sets Ray's own limit well past this).
LOST_AFTER_S = 10.0
NODES_TIMEOUT_S = 3.0  # a GCS that does not answer the node list within this is treated as unreachable
NODE_GRACE_S = 30.0  # after a node leaves, how long Ray may take to move its work before the run fails


class ClusterError(RuntimeError):
    """Ray could not be started or joined, or lacks what the run asks for."""


@dataclass(frozen=True)
class NodeInfo:
    node_id: str
    address: str
    cpus: float
    gpus: float
    object_store_bytes: float
    alive: bool
    heap_bytes: float = 0.0  # Ray's "memory" resource: what tasks and actors may use beside the object store
    manager_port: int = 0  # the node's raylet, which serves its object-store stats


def nodes(timeout_s: float = NODES_TIMEOUT_S) -> list[NodeInfo]:
    """Every node the GCS knows, alive or not; raises within `timeout_s` when the GCS does not answer.

    `ray.nodes()` waits for as long as the GCS is gone, and a thread still inside such a call when
    a lost cluster is dropped can take the whole process down: hence a timeout where Ray allows one.
    """
    return [
        NodeInfo(
            node_id=n.node_id,
            address=n.address,
            cpus=n.resources.get("CPU", 0.0),
            gpus=n.resources.get("GPU", 0.0),
            object_store_bytes=n.resources.get("object_store_memory", 0.0),
            alive=n.alive,
            heap_bytes=n.resources.get("memory", 0.0),
            manager_port=n.manager_port,
        )
        for n in ray_compat.list_nodes(timeout_s)
    ]


def node_label(address: str, node_id: str) -> str:
    """How charts and summaries name a node: its address, plus a short id (several nodes may share a host)."""
    return f"{address} ({node_id[:6]})"


def check_resources(num_gpus: float, concurrency: int) -> None:
    """Fail at once when the cluster cannot place what the run asks for."""
    alive = [n for n in nodes() if n.alive]
    total = sum(n.gpus for n in alive)
    if num_gpus > 0:
        biggest = max((n.gpus for n in alive), default=0.0)
        if biggest < num_gpus:
            raise ClusterError(
                f"asked for {num_gpus:g} GPU per worker but the largest node has {biggest:g} GPU(s); "
                "set GPUs per actor to 0 to run on the CPU"
            )
        if num_gpus * concurrency > total:
            raise ClusterError(
                f"asked for {concurrency} x {num_gpus:g} GPU = {num_gpus * concurrency:g} GPUs "
                f"but the cluster has {total:g}; lower concurrency or GPUs per actor"
            )


def live_pool_actors() -> int | None:
    """Ray Data pool actors alive right now; None where this Ray cannot say."""
    return ray_compat.alive_pool_actors()


def watch(
    label: str, done: threading.Event, rows: Callable[[], int], on_lost: Callable[[str, bool], None]
) -> threading.Thread:
    """Until `done`, watch the cluster a run uses; call `on_lost(reason, gone)` once if it cannot go on.

    Nothing in Ray tells a driver in time: its calls just wait. `gone` (the GCS stopped accepting
    connections for LOST_AFTER_S): the cluster is lost. Not gone: a node the run started with left
    and, for NODE_GRACE_S since, no image was done (Ray could not reschedule the work on the rest).
    Returns the thread that asks Ray for its nodes: it ends once `on_lost` is called, so that a caller
    about to shut Ray down can wait for it.
    """
    import ray

    host, port = ray.get_runtime_context().gcs_address.rsplit(":", 1)
    started_with = {n.node_id: n for n in nodes() if n.alive}
    fired = threading.Lock()

    def lose(reason: str, gone: bool) -> None:
        if fired.acquire(blocking=False):
            on_lost(reason, gone)

    def probe_gcs() -> None:
        answered = time.time()
        while not done.wait(1.0):
            try:
                socket.create_connection((host, int(port)), timeout=1.0).close()
                answered = time.time()
            except OSError:
                if time.time() - answered >= LOST_AFTER_S:
                    return lose(f"{label} went away mid-run: its GCS did not answer for {LOST_AFTER_S:g} s", True)

    def check_nodes() -> None:
        last_rows, moved = rows(), time.time()
        while not done.wait(2.0) and not fired.locked():
            if rows() != last_rows:
                last_rows, moved = rows(), time.time()
            try:
                alive = {n.node_id for n in nodes() if n.alive}
            except Exception:  # the GCS itself is going: probe_gcs reports that
                continue
            left = [started_with[n] for n in started_with if n not in alive]
            if left and time.time() - moved >= NODE_GRACE_S:
                names = ", ".join(node_label(n.address, n.node_id) for n in left)
                return lose(
                    f"node {names} left the cluster mid-run and the rest did no work for {NODE_GRACE_S:g} s", False
                )

    threading.Thread(target=probe_gcs, name="gcs-watch", daemon=True).start()
    node_watch = threading.Thread(target=check_nodes, name="node-watch", daemon=True)
    node_watch.start()
    return node_watch
