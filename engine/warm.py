"""Warm workers: fresh Ray worker processes that already imported torch before Launch.

Where Ray was started or joined to be warmed (`engine.cluster.connect(..., warm=True)`:
the app, the benchmarks), Ray runs `prepare_worker` in every worker process it starts
(a worker set-up hook). Ray hands an actor only a worker that has never run a task, so idle
workers left over from earlier tasks never speed up an actor pool: measured on
this project's CI machine, a run's first actor took 2.9 s to start that way,
and 0.1 s when a fresh worker was waiting. `keep_warm` therefore tops each
node up to a number of fresh workers for this job, counted from the raylet's
worker stats, through the raylet's own PrestartWorkers call (the one Ray uses
to prestart workers for a job), after the warm-up and again after every run; it
falls back to warming idle task workers with short tasks where that call is
unavailable. Before that it runs one short task per CPU (`fill_task_workers`), so the
first run's read tasks also find torch-ready workers. Nothing about the user's run is
precomputed.
"""

from __future__ import annotations

import json
import logging
import os
import time

log = logging.getLogger(__name__)
KEEP_ALIVE_S = 1800  # an unused prestarted worker exits after this
HOLD_S = 6.0  # fallback: long enough that Ray starts one worker per hold task instead of reusing one
FILL_HOLD_S = 1.0  # long enough that the tasks of one fill run side by side, each on a worker of its own
REFILL_HOLD_S = 0.5  # fallback after a run: short, so a quick next Launch finds the workers idle, not holding
IMPORTING_CPU_PCT = 10.0  # a worker process above this share of one core is still importing
MIN_SETTLE_S = 2.0  # the raylet starts prestarted workers a moment after the call: look at least this long


def prepare_worker() -> None:
    import ray.data  # noqa: F401
    import torch  # noqa: F401
    import torchvision.models  # noqa: F401


class _Identity:
    """A do-nothing actor UDF: one tiny actor-pool dataset starts Ray Data's own actors."""

    def __call__(self, batch):
        return batch


def _hold(seconds: float) -> int:
    time.sleep(seconds)
    return os.getpid()


def fill_task_workers() -> int:
    """One short task per CPU at once, so Ray starts a torch-ready task worker per CPU and keeps it idle.

    Otherwise a session's first run starts them itself, each importing torch while the actors
    load: on an H200 host the first run's CPUs sat at 100 % for 20 s, its actors took 7.5-8.8 s
    to load instead of 1.9-3.2 s, and it ran 8,041-10,167 img/s against 11,874-12,248 for the
    next run (bench/results/2026-12-02-nvidia-h200-first-pool.json). Returns how many distinct
    workers ran the tasks (fewer than the CPUs where a worker finished one before another started).
    """
    import ray

    cpus = int(ray.cluster_resources().get("CPU", 1))
    hold = ray.remote(num_cpus=1)(_hold)
    return len(set(ray.get([hold.remote(FILL_HOLD_S) for _ in range(cpus)], timeout=120)))


def fresh_workers(node) -> int:
    """Idle workers of this job on `node` that have never run a task: the only ones Ray hands a new actor.

    Any task may take one too (a read, a naive batch), so what a run used up is counted here, after it.
    """
    import ray
    from ray._private.internal_api import node_stats
    from ray.core.generated import common_pb2

    job = bytes.fromhex(ray.get_runtime_context().get_job_id())
    stats = node_stats(node.address, node.manager_port, include_memory_info=False)
    return sum(
        1
        for w in stats.core_workers_stats
        if w.job_id == job
        and w.worker_type == common_pb2.WORKER
        and not w.num_executed_tasks
        and ray.ActorID(w.actor_id).is_nil()
    )


def prestart(count: int) -> int:
    """Top every alive node up to `count` fresh workers of this job, and no more than its CPUs.

    Returns how many fresh workers the nodes keep in all. Asking only for what is missing lets every
    run end with a top-up: asking for what a run took, or for a fixed number, piled up idle workers
    (five naive runs on the 2-core dev machine: 10 -> 15 worker processes, 3.98 -> 6.20 GB PSS).
    More than a node's CPUs only queue behind each other's torch import: the app on a 2-core machine
    joined to two loopback nodes asked for 4 per node, and its first images came about 30 s after Launch.
    """
    import ray
    from ray._private.grpc_utils import init_grpc_channel
    from ray._private.utils import get_runtime_env_info
    from ray.core.generated import common_pb2, node_manager_pb2, node_manager_pb2_grpc
    from ray.runtime_env import RuntimeEnv

    from engine.cluster import nodes

    context = ray.get_runtime_context()
    env = RuntimeEnv(**json.loads(context.get_runtime_env_string() or "{}"))
    request = node_manager_pb2.PrestartWorkersRequest(
        language=common_pb2.PYTHON,
        job_id=bytes.fromhex(context.get_job_id()),
        runtime_env_info=get_runtime_env_info(env, is_job_runtime_env=True, serialize=False),
        keep_alive_duration_secs=KEEP_ALIVE_S,
    )
    kept = 0
    for node in nodes():
        wanted = min(count, int(node.cpus))
        if node.alive and wanted > 0:
            missing = wanted - fresh_workers(node)
            if missing > 0:
                request.num_workers = missing
                channel = init_grpc_channel(f"{node.address}:{node.manager_port}")
                node_manager_pb2_grpc.NodeManagerServiceStub(channel).PrestartWorkers(request, timeout=10)
            kept += wanted
    return kept


def keep_warm(count: int, wait: bool = True) -> int:
    """Have `count` fresh idle workers (torch imported) per node; returns how many the nodes keep.

    With `wait`, also starts what every run needs once per Ray session: our
    reporter actor, Ray Data's own bookkeeping actors (through a one-row
    actor-pool dataset) and a task worker per CPU, before the prestart so they
    don't use its workers.
    """
    import ray

    from engine.reporter import get_reporter

    try:
        if wait:
            ray.get(get_reporter().snapshot.remote(), timeout=120)
            ray.data.range(1).map_batches(_Identity, compute=ray.data.ActorPoolStrategy(size=1), num_cpus=0).take(1)
            fill_task_workers()
        try:
            return prestart(count)
        except Exception as exc:  # a private raylet call: if this Ray lacks it, warm task workers instead
            log.info("raylet prestart unavailable (%s); warming idle task workers", exc)
        hold = ray.remote(num_cpus=0)(_hold)
        if not wait:
            [hold.remote(REFILL_HOLD_S) for _ in range(count)]
            return count
        return len(set(ray.get([hold.remote(HOLD_S) for _ in range(count)], timeout=120)))
    except Exception as exc:  # warming is an optimisation; never fail for it
        log.warning("could not warm workers: %s", exc)
        return 0


def worker_processes_since(since: float) -> list:
    """This machine's Ray worker processes (psutil) started since `since`, in seconds since the epoch."""
    import psutil

    found = []
    for proc in psutil.process_iter(["cmdline", "create_time"]):
        cmdline = proc.info["cmdline"] or [""]
        is_worker = cmdline[0].startswith("ray::") or any(arg.endswith("default_worker.py") for arg in cmdline[:3])
        if is_worker and proc.info["create_time"] >= since - 1.0:  # (process start times are coarse)
            found.append(proc)
    return found


def wait_until_imported(since: float, limit_s: float) -> float:
    """Wait until this machine's Ray worker processes started since `since` are idle; returns the seconds waited.

    A prestarted worker is a `default_worker.py` process for its first second or so, then `ray::IDLE`,
    while its torch import goes on for several more (8 s for two at once on a 2-core machine): one
    near zero CPU twice in a row is done. The raylet starts them a moment after it is asked, hence
    MIN_SETTLE_S. Workers on other machines are not seen from here; `limit_s` bounds the wait.
    """
    import psutil

    started, readings = time.perf_counter(), {}
    while time.perf_counter() - started < limit_s:
        for proc in worker_processes_since(since):
            readings.setdefault(proc.pid, (proc, []))
        for pid, (proc, cpu) in list(readings.items()):
            try:
                cpu.append(proc.cpu_percent(None))  # the first reading only starts the count
            except psutil.Error:  # it ended: nothing left to wait for
                readings.pop(pid)
        settled = time.perf_counter() - started >= MIN_SETTLE_S
        if settled and all(len(cpu) >= 3 and max(cpu[-2:]) < IMPORTING_CPU_PCT for _, cpu in readings.values()):
            break
        time.sleep(0.5)
    return round(time.perf_counter() - started, 1)
