"""Connecting to Ray (a local embedded one, or an existing cluster) and reading it.

The engine never schedules anything itself: it starts or joins Ray once, reuses
that connection for every run, and asks Ray what the cluster has.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass

from engine.errors import redact

log = logging.getLogger(__name__)

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_lock = threading.Lock()
_connected: dict[str, str | None] = {}
_users: list[tuple[str, bool]] = []  # what holds the current connection, and whether briefly; a switch needs none
_idle = threading.Condition()
# Ray's local processes die with the *thread* that started them (Linux parent-death
# signal), and Streamlit runs each script pass on a short-lived thread. So Ray is
# always started from this one thread, which lives as long as the process.
_owner = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ray-owner")
# A cluster whose GCS stops answering this long is gone: the run fails and the connection is dropped.
# Ray itself would wait 60 s and then end the whole process (the app with it), so the driver's own
# limit is raised well past ours: the app notices first and carries on.
LOST_AFTER_S = 10.0
NODES_TIMEOUT_S = 3.0  # a GCS that does not answer the node list within this is treated as unreachable
NODE_GRACE_S = 30.0  # after a node leaves, how long Ray may take to move its work before the run fails
DRIVER_RECONNECT_TIMEOUT_S = "300"
# While objects keep dying, Ray's raylet deletes them in batches of 100. Image blocks are tens of MB, so
# dead blocks held up to 3.4 GB of an H200 host's object store against Ray Data's 2 GB limit. A local Ray
# deletes each at once. A cluster keeps its own setting: `RAY_free_objects_batch_size=1 ray start ...`.
LOCAL_SYSTEM_CONFIG = {"free_objects_batch_size": 1}
_torch_ready_workers = threading.Event()  # set by connect(warm=True), for good


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


def connect(address: str | None = None, wait_s: float = 0.0, warm: bool = False) -> str:
    """Start or join Ray once and reuse it; return a label for where we are.

    With no address (and no RAY_ADDRESS), an embedded local Ray is started. A different address from
    the current one reconnects once nothing uses the current one: it waits up to `wait_s` for brief
    holders (`held`), and fails at once, with ClusterError, under a long one (`using`: a run). Ray
    ends a process whose threads call it while it shuts down: a switch under a run would end the app.

    `warm`: this process warms workers before Launch (`Runner.warm_up`: the app, the benchmarks), so
    from this Ray start or join on, every worker imports torch as it starts (`engine.warm.prepare_worker`).
    Elsewhere Ray's own workers (Ray Data's bookkeeping actors, read tasks) would each import torch
    for nothing: on the 2-core CI machine a CLI run on a fresh local Ray took 33-41 s with it, its
    first result 21-28 s in, and 20 s without it, its first result 8.6-8.9 s in
    (bench/results/2026-12-02-cpu-worker-setup-hook.txt).
    """
    if warm:
        _torch_ready_workers.set()
    return _owner.submit(_connect, address, wait_s).result()


@contextmanager
def using(address: str | None, what: str, wait_s: float = 0.0) -> Iterator[str]:
    """`connect`, then keep the connection for the block; `what` ("a run") names it to a would-be switch."""
    label = _owner.submit(_connect, address, wait_s, what).result()
    try:
        yield label
    finally:
        _release(what)


@contextmanager
def held(what: str) -> Iterator[bool]:
    """Keep whatever Ray is connected now for a brief block; yields False (keeping nothing) when none is."""
    import ray

    with _lock:
        connected = ray.is_initialized()
        if connected:
            _hold(what, brief=True)
    try:
        yield connected
    finally:
        if connected:
            _release(what)


def _hold(what: str, brief: bool = False) -> None:
    with _idle:
        _users.append((what, brief))


def _release(what: str) -> None:
    with _idle:
        _users.remove(next(user for user in _users if user[0] == what))
        _idle.notify_all()


def _wait_until_unused(wanted: str | None, wait_s: float) -> None:
    """Wait (up to `wait_s`, while every holder is brief) until nothing holds the connection, or fail."""
    with _idle:
        _idle.wait_for(lambda: not _users or not all(brief for _, brief in _users), timeout=wait_s)
        if _users:
            busy = " and ".join(dict.fromkeys(what for what, _ in _users))
            raise ClusterError(
                f"{_label(_connected.get('address'))} is busy with {busy}: {_label(wanted)} can be used once it ends"
            )


def _connect(address: str | None, wait_s: float = 0.0, user: str | None = None) -> str:
    import ray

    wanted = address or os.environ.get("RAY_ADDRESS") or None
    with _lock:
        if _is_current(wanted):
            if user:
                _hold(user)
            return _label(_connected.get("address"))
        if ray.is_initialized():
            _wait_until_unused(wanted, wait_s)
            ray.shutdown()
        os.environ.setdefault("RAY_gcs_rpc_server_reconnect_timeout_s", DRIVER_RECONNECT_TIMEOUT_S)
        ray._raylet.Config.initialize("")  # re-read the environment, as Ray does when it turns token auth on
        from ray._private import auto_init_hook

        auto_init_hook.enable_auto_connect = False  # a Ray call after a lost cluster must fail, not join another
        # Local workers are forked from our raylet: let them import `engine`.
        paths = [PROJECT_ROOT] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
        os.environ["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
        kwargs = {
            "include_dashboard": False,
            "logging_level": logging.WARNING,
            "log_to_driver": False,
            "runtime_env": {},
        }
        if _torch_ready_workers.is_set():
            kwargs["runtime_env"]["worker_process_setup_hook"] = "engine.warm.prepare_worker"
        try:
            if wanted:
                kwargs["runtime_env"]["py_modules"] = [os.path.join(PROJECT_ROOT, "engine")]
                ray.init(address=wanted, **kwargs)
            else:
                store = os.environ.get("PLAYGROUND_OBJECT_STORE_MB")
                if store:
                    kwargs["object_store_memory"] = int(store) * 2**20
                # A copy: ray.init adds this session's spill directory to the dict it is given.
                ray.init(address="local", _system_config=dict(LOCAL_SYSTEM_CONFIG), **kwargs)
        except Exception as exc:
            where = "join Ray at " + wanted if wanted else "start local Ray"
            raise ClusterError(redact(f"could not {where}: {exc}")) from exc
        _connected["address"] = wanted
        from engine.reporter import forget_reporter

        forget_reporter()  # a new Ray session: the old reporter's handle is void
        if user:
            _hold(user)
        return _label(wanted)


def _is_current(wanted: str | None) -> bool:
    """`wanted` is the Ray this process uses now: its address, or the GCS address of the local Ray it started.

    Joining our own local Ray by its address would shut it down first (it is ours), then find nothing there.
    """
    import ray

    if not ray.is_initialized():
        return False
    current = _connected.get("address")
    return wanted == current or (current is None and wanted == ray.get_runtime_context().gcs_address)


def _label(address: str | None) -> str:
    return f"Ray cluster at {redact(address)}" if address else "local embedded Ray"


def connected_address() -> str | None:
    return _connected.get("address")


def disconnect(timeout: float = 30.0) -> None:
    """Drop the connection to a cluster that went away, so the next run starts or joins Ray afresh."""
    try:
        _owner.submit(_disconnect).result(timeout)
    except Exception as exc:  # a shutdown that hangs on a dead cluster must not hang the run too
        log.warning("could not disconnect from Ray cleanly: %s", exc)


def _disconnect() -> None:
    import ray

    from engine.reporter import forget_reporter

    with _lock:
        _connected.clear()
        forget_reporter()
        ray.shutdown()


def watch(done: threading.Event, rows: Callable[[], int], on_lost: Callable[[str, bool], None]) -> threading.Thread:
    """Until `done`, watch the cluster a run uses; call `on_lost(reason, gone)` once if it cannot go on.

    Nothing in Ray tells a driver in time: its calls just wait. `gone` (the GCS stopped accepting
    connections for LOST_AFTER_S): the cluster is lost. Not gone: a node the run started with left
    and, for NODE_GRACE_S since, no image was done (Ray could not reschedule the work on the rest).
    Returns the thread that asks Ray for its nodes: it ends once `on_lost` is called, so that a caller
    about to shut Ray down can wait for it.
    """
    import ray

    host, port = ray.get_runtime_context().gcs_address.rsplit(":", 1)
    label = _label(_connected.get("address"))
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


def get_unless(ref, timeout: float, given_up: threading.Event, error: Exception):
    """`ray.get(ref, timeout)` in short waits, raising `error` as soon as `given_up` is set (no `timeout`: inf).

    A Stop pressed ends a wait at once; so does a cluster being dropped, which must find no thread
    inside a Ray call (a wait still going on in Ray's core as Ray shuts down and starts again can end
    the whole process).
    """
    import ray

    deadline = time.time() + timeout
    while not ray.wait([ref], timeout=min(0.25, max(0.0, deadline - time.time())))[0]:
        if given_up.is_set():
            raise error
        if time.time() >= deadline:
            raise ray.exceptions.GetTimeoutError(f"no answer from Ray within {timeout:g} s")
    return ray.get(ref)


def node_label(address: str, node_id: str) -> str:
    """How charts and summaries name a node: its address, plus a short id (several nodes may share a host)."""
    return f"{address} ({node_id[:6]})"


def nodes(timeout_s: float = NODES_TIMEOUT_S) -> list[NodeInfo]:
    """Every node the GCS knows, alive or not; raises within `timeout_s` when the GCS does not answer.

    Asked through the GCS client with a timeout: `ray.nodes()` waits for as long as the GCS is gone
    (over 90 s measured), and a thread still inside such a call when a lost cluster is dropped
    can take the whole process down.
    """
    import ray
    from ray.core.generated.gcs_pb2 import GcsNodeInfo

    found = []
    for node_id, node in ray._private.worker.global_worker.gcs_client.get_all_node_info(timeout=timeout_s).items():
        res = node.resources_total
        found.append(
            NodeInfo(
                node_id=node_id.hex(),
                address=node.node_manager_address,
                cpus=res.get("CPU", 0.0),
                gpus=res.get("GPU", 0.0),
                object_store_bytes=res.get("object_store_memory", 0.0),
                alive=node.state == GcsNodeInfo.GcsNodeState.ALIVE,
                heap_bytes=res.get("memory", 0.0),
                manager_port=node.node_manager_port,
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
