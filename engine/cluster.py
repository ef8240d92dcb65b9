"""Connecting to Ray (a local embedded one, or an existing cluster) and reading it.

The engine never schedules anything itself: it starts or joins Ray once, reuses
that connection for every run, and asks Ray what the cluster has.
"""

from __future__ import annotations

import logging
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

log = logging.getLogger(__name__)

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_lock = threading.Lock()
_connected: dict[str, str | None] = {}
# Ray's local processes die with the *thread* that started them (Linux parent-death
# signal), and Streamlit runs each script pass on a short-lived thread. So Ray is
# always started from this one thread, which lives as long as the process.
_owner = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ray-owner")


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


def connect(address: str | None = None) -> str:
    """Start or join Ray once and reuse it; return a label for where we are.

    With no address (and no RAY_ADDRESS), an embedded local Ray is started.
    A different address from the current one reconnects.
    """
    return _owner.submit(_connect, address).result()


def _connect(address: str | None) -> str:
    import ray

    wanted = address or os.environ.get("RAY_ADDRESS") or None
    with _lock:
        if ray.is_initialized() and _connected.get("address") == wanted:
            return _label(wanted)
        if ray.is_initialized():
            ray.shutdown()
        # Local workers are forked from our raylet: let them import `engine`.
        paths = [PROJECT_ROOT] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
        os.environ["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
        kwargs = {
            "include_dashboard": False,
            "logging_level": logging.WARNING,
            "log_to_driver": False,
            "runtime_env": {"worker_process_setup_hook": "engine.warm.prepare_worker"},
        }
        try:
            if wanted:
                kwargs["runtime_env"]["py_modules"] = [os.path.join(PROJECT_ROOT, "engine")]
                ray.init(address=wanted, **kwargs)
            else:
                store = os.environ.get("PLAYGROUND_OBJECT_STORE_MB")
                if store:
                    kwargs["object_store_memory"] = int(store) * 2**20
                ray.init(address="local", **kwargs)
        except Exception as exc:
            raise ClusterError(f"could not {'join Ray at ' + wanted if wanted else 'start local Ray'}: {exc}") from exc
        _connected["address"] = wanted
        from engine.reporter import forget_reporter

        forget_reporter()  # a new Ray session: the old reporter's handle is void
        return _label(wanted)


def _label(address: str | None) -> str:
    return f"Ray cluster at {address}" if address else "local embedded Ray"


def connected_address() -> str | None:
    return _connected.get("address")


def node_label(address: str, node_id: str) -> str:
    """How charts and summaries name a node: its address, plus a short id (several nodes may share a host)."""
    return f"{address} ({node_id[:6]})"


def nodes() -> list[NodeInfo]:
    import ray

    found = []
    for node in ray.nodes():
        res = node.get("Resources", {})
        found.append(
            NodeInfo(
                node_id=node["NodeID"],
                address=node["NodeManagerAddress"],
                cpus=res.get("CPU", 0.0),
                gpus=res.get("GPU", 0.0),
                object_store_bytes=res.get("object_store_memory", 0.0),
                alive=bool(node["Alive"]),
            )
        )
    return found


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


def live_pool_actors() -> int:
    """Ray Data pool actors (class MapWorker) alive right now, from Ray's actor table."""
    import ray._private.state as state

    return sum(
        1
        for actor in state.actors().values()
        if actor.get("State") == "ALIVE" and str(actor.get("ActorClassName", "")).startswith("MapWorker")
    )
