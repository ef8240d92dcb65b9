"""Starting or joining Ray once, and sharing that connection between runs, warm-ups and pages.

The engine never schedules anything itself: it starts a local embedded Ray or joins an
existing cluster, reuses that connection for every run, and switches address only when
nothing uses it (Ray ends a process whose threads call it while it shuts down).
"""

from __future__ import annotations

import logging
import os
import queue
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager

from engine import ray_compat
from engine.core.errors import redact
from engine.execution import reaper
from engine.observe.cluster import ClusterError
from engine.ray_compat import env

log = logging.getLogger(__name__)

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SETUP_HOOK = "engine.execution.warm.prepare_worker"
_lock = threading.Lock()
_connected: dict[str, str | None] = {}
_users: list[tuple[str, bool]] = []  # what holds the current connection, and whether briefly; a switch needs none
_idle = threading.Condition()


class _OwnerThread:
    """One thread that runs what it is given, in order: the thread every local Ray is started from.

    Ray's local processes die with the *thread* that started them (Linux parent-death signal), and
    Streamlit runs each script pass on a short-lived thread; this one lives as long as the process.
    It is a daemon: Python's exit joins a ThreadPoolExecutor's thread before the exit handlers run,
    which would end the GCS and raylet before Ray's own exit handler says goodbye to them (it then
    waits 5 s for a GCS that is gone, at every exit).
    """

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        threading.Thread(target=self._serve, name="ray-owner", daemon=True).start()

    def submit(self, fn: Callable, *args) -> Future:
        future: Future = Future()
        self._queue.put((future, fn, args))
        return future

    def _serve(self) -> None:
        while True:
            future, fn, args = self._queue.get()
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(fn(*args))
                except BaseException as exc:  # handed to the caller, as an executor would
                    future.set_exception(exc)


_owner = _OwnerThread()
_torch_ready_workers = threading.Event()  # set by connect(warm=True), for good
_reaping = threading.Event()  # set once a reaper watches this process (engine.execution.reaper)
PROBE_TIMEOUT_S = 3.0  # a cluster address whose GCS port does not accept a connection this soon is refused


def connect(address: str | None = None, wait_s: float = 0.0, warm: bool = False, join_running: bool = False) -> str:
    """Start or join Ray once and reuse it; return a label for where we are.

    With no address (and no RAY_ADDRESS), an embedded local Ray is started. A different address from
    the current one reconnects once nothing uses the current one: it waits up to `wait_s` for brief
    holders (`held`), and fails at once, with ClusterError, under a long one (`using`: a run).

    `warm`: this process warms workers before Launch (`Runner.warm_up`: the app, the benchmarks), so
    from this Ray start or join on, every worker imports torch as it starts (SETUP_HOOK). Elsewhere
    Ray's own workers (Ray Data's bookkeeping actors, read tasks) would each import torch for nothing.
    """
    if warm:
        _torch_ready_workers.set()
    return _owner.submit(_connect, address, wait_s, None, join_running).result()


def torch_ready_workers() -> bool:
    """Whether the workers of this process's Ray import torch as they start (a `connect(warm=True)` was made)."""
    return _torch_ready_workers.is_set()


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
                f"{label(_connected.get('address'))} is busy with {busy}: {label(wanted)} can be used once it ends"
            )


def _connect(address: str | None, wait_s: float = 0.0, user: str | None = None, join_running: bool = False) -> str:
    import ray

    wanted = wanted_address(address)
    with _lock:
        if _is_current(wanted):
            if user:
                _hold(user)
            return label(_connected.get("address"))
        if ray.is_initialized():
            _wait_until_unused(wanted, wait_s)
        if wanted:
            _check_reachable(wanted)
        if ray.is_initialized():
            ray.shutdown()
        asked = address or os.environ.get("RAY_ADDRESS")  # "local" asks for a Ray of this process's own
        wanted = _init(wanted, join_running and not asked)
        _connected["address"] = wanted
        from engine.execution.reporter import forget_reporter

        forget_reporter()  # a new Ray session: the old reporter's handle is void
        if user:
            _hold(user)
        return label(wanted)


def wanted_address(address: str | None) -> str | None:
    """The address a connect means: the one given, else RAY_ADDRESS; None (or Ray's "local") is a local Ray."""
    wanted = address or os.environ.get("RAY_ADDRESS") or None
    return None if wanted == "local" else wanted


def _check_reachable(address: str) -> None:
    """Refuse an address where no gRPC server answers (Ray's GCS is one) before anything about the current Ray
    changes: `ray.init` would wait for minutes on a host that is down or on a port that is not Ray's."""
    import grpc

    if address == "auto":
        return
    hostport = address.split("://", 1)[-1].rsplit("@", 1)[-1]
    host, _, port = hostport.rpartition(":")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=PROBE_TIMEOUT_S).close()
        with grpc.insecure_channel(f"{host}:{port}") as channel:
            grpc.channel_ready_future(channel).result(timeout=PROBE_TIMEOUT_S)
    except ValueError:
        raise ClusterError(redact(f"could not join Ray at {address}: not HOST:PORT")) from None
    except OSError as exc:
        raise ClusterError(redact(f"could not join Ray at {address}: nothing answers there ({exc})")) from None
    except grpc.FutureTimeoutError:
        raise ClusterError(redact(f"could not join Ray at {address}: it does not answer as Ray does")) from None


def _init(wanted: str | None, join_running: bool = False) -> str | None:
    """`ray.init` for a cluster's address, or a local Ray when none is wanted; returns the address joined."""
    import ray

    env.quiet_expected_notices()
    # Local workers are forked from our raylet: let them import `engine`.
    paths = [PROJECT_ROOT] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    os.environ["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    kwargs = {"include_dashboard": False, "logging_level": logging.WARNING, "log_to_driver": False, "runtime_env": {}}
    if _torch_ready_workers.is_set():
        kwargs["runtime_env"]["worker_process_setup_hook"] = SETUP_HOOK
    try:
        joined = _join_running(kwargs) if join_running else None
        if wanted and not joined:
            ray.init(address=wanted, **{**kwargs, "runtime_env": _joined_env(kwargs)})
        elif not joined:
            store = os.environ.get("PLAYGROUND_OBJECT_STORE_MB")
            if store:
                kwargs["object_store_memory"] = int(store) * 2**20
            os.environ.update(env.local_ray_settings())
            ray.init(address="local", **{**kwargs, "runtime_env": _local_env(kwargs["runtime_env"])})
            if not _reaping.is_set():  # its processes end with this one, however this one ends
                _reaping.set()
                reaper.start(os.getpid())
    except Exception as exc:
        where = "join Ray at " + wanted if wanted else "start local Ray"
        raise ClusterError(redact(f"could not {where}: {exc}".splitlines()[0])) from exc
    _start_ray_data_actors_bare()
    return joined or wanted


def _join_running(kwargs: dict) -> str | None:
    """Join a Ray running on this machine with the app's torch-ready env; its GCS address, else None."""
    import ray

    running = _running_local_ray()
    if not running:
        return None
    ray_compat.use_this_machines_token()  # as `ray.init("auto")` would for a Ray it finds
    # The app's torch-ready env: workers an earlier run left for any job serve this one, and those it leaves the next.
    warm_env = _local_env({**kwargs["runtime_env"], "worker_process_setup_hook": SETUP_HOOK})
    try:
        ray.init(address=running, **{**kwargs, "runtime_env": warm_env})
    except ConnectionError:  # no Ray runs on this machine after all: start one
        return None
    _torch_ready_workers.set()
    return ray.get_runtime_context().gcs_address


def _start_ray_data_actors_bare() -> None:
    """Ray Data's bookkeeping actors, asked for before any execution could start them in torch-ready workers."""
    from engine.execution.warm import bookkeeping_env

    env = bookkeeping_env()  # None where workers do not import torch: nothing to spare them
    if env is None:
        return
    try:
        ray_compat.start_ray_data_actors(env)
    except Exception as exc:  # an optimisation: Ray Data starts them itself at its first execution
        log.warning("Ray Data's bookkeeping actors start with the job's workers: %s", exc)


def _running_local_ray() -> str | None:
    """The address of a Ray already running on this machine that answers, else None (then one is started).

    A head killed without `ray stop` leaves its address behind, and `ray.init` would wait on it for minutes.
    """
    gone = []
    for found in ray_compat.running_cluster_addresses():
        try:
            _check_reachable(found)
            return found
        except ClusterError as exc:
            gone.append(str(exc))
    if gone:
        log.warning("no Ray on this machine answers (%s): starting a local one", "; ".join(gone))
    return None


def _local_env(runtime_env: dict) -> dict:
    """A Ray on this machine, for workers that import torch as they start: they import `engine` from this
    checkout, whoever started that Ray.

    Every such process here asks for the same env (the app, each CLI run joining a Ray), and Ray hands an idle
    worker of no job only to a job of its env: the workers one leaves (`warm.prestart`) serve the others. An
    empty env stays empty: Ray then starts each worker without its runtime-env agent.
    """
    if not runtime_env:
        return runtime_env
    return {**runtime_env, "env_vars": {"PYTHONPATH": PROJECT_ROOT + os.pathsep + "${PYTHONPATH}"}}


def _joined_env(kwargs: dict) -> dict:
    """A joined cluster's workers get `engine` with the job (its nodes need only Ray, torch and torchvision)."""
    return {**kwargs["runtime_env"], "py_modules": [os.path.join(PROJECT_ROOT, "engine")]}


def _is_current(wanted: str | None) -> bool:
    """`wanted` is the Ray this process uses now: its address, or the GCS address of the local Ray it started.

    Joining our own local Ray by its address would shut it down first (it is ours), then find nothing there.
    """
    import ray

    if not ray.is_initialized():
        return False
    current = _connected.get("address")
    return wanted == current or (current is None and wanted == ray.get_runtime_context().gcs_address)


def label(address: str | None) -> str:
    """How the UI names a Ray: the cluster's address (credentials masked) or the local one."""
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

    from engine.execution.reporter import forget_reporter

    with _lock:
        _connected.clear()
        forget_reporter()
        ray.shutdown()


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
