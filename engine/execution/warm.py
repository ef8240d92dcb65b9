"""Warm workers: fresh Ray worker processes that already imported torch before Launch.

Where Ray was started or joined to be warmed (`engine.execution.connection.connect(..., warm=True)`:
the app, the benchmarks), Ray runs `prepare_worker` in every worker process it starts
(a worker set-up hook). Ray hands an actor only a worker that has never run a task, so idle
workers left over from earlier tasks never speed up an actor pool; a fresh worker waiting
for it starts an actor in a fraction of a second. `keep_warm` therefore tops each
node up to a number of fresh workers for this job, counted from the raylet's
worker stats, through the raylet's own PrestartWorkers call (the one Ray uses
to prestart workers for a job), after the warm-up and again after every run; it
falls back to warming idle task workers with short tasks where that call is
unavailable. Before that it runs one short task per CPU (`fill_task_workers`), so the
first run's read tasks also find torch-ready workers. The engine's own bookkeeping actors
(the reporter, the warm-up's one-row dataset) ask for workers without torch (`bookkeeping_env`). Nothing
about the user's run is precomputed.
"""

from __future__ import annotations

import logging
import os
import time

from engine import ray_compat
from engine.observe.cluster import nodes

log = logging.getLogger(__name__)
KEEP_ALIVE_S = 1800  # an unused prestarted worker exits after this
HOLD_S = 6.0  # fallback: long enough that Ray starts one worker per hold task instead of reusing one
FILL_HOLD_S = 1.0  # long enough that the tasks of one fill run side by side, each on a worker of its own
REFILL_HOLD_S = 0.5  # fallback after a run: short, so a quick next Launch finds the workers idle, not holding
TORCHLESS_VAR = "PLAYGROUND_TORCHLESS_WORKER"
TORCHLESS = {"env_vars": {TORCHLESS_VAR: "1"}}  # a runtime env whose workers `prepare_worker` leaves bare
IMPORTING_CPU_PCT = 10.0  # a worker process above this share of one core is still importing
MIN_SETTLE_S = 2.0  # the raylet starts prestarted workers a moment after the call: look at least this long


def bookkeeping_env() -> dict | None:
    """The runtime env for the engine's own bookkeeping actors (the reporter, the warm-up's one-row dataset).

    Where every worker imports torch as it starts, workers of their own without torch: on a small
    machine their start then shares no core with torch imports. Elsewhere the job's own workers, which
    Ray may have started already (a pool of their own would cost a worker start and spare nothing).
    """
    from engine.execution.connection import torch_ready_workers

    return TORCHLESS if torch_ready_workers() else None


def prepare_worker() -> None:
    if os.environ.get(TORCHLESS_VAR):
        return
    import ray.data  # noqa: F401

    from engine.core.lean_import import torchvision

    torchvision()


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
    load, and that run's actors load late and run slower than the next run's
    (python -m bench.first_pool). Returns how many distinct
    workers ran the tasks (fewer than the CPUs where a worker finished one before another started).
    """
    import ray

    cpus = int(ray.cluster_resources().get("CPU", 1))
    hold = ray.remote(num_cpus=1)(_hold)
    return len(set(ray.get([hold.remote(FILL_HOLD_S) for _ in range(cpus)], timeout=120)))


def fresh_workers(node, any_job: bool = False) -> int | None:
    """Idle workers of this job (`any_job`: of none yet) on `node` that have never run a task: the only ones
    Ray hands a new actor.

    Any task may take one too (a read, a naive batch), so what a run used up is counted here, after it.
    None where this Ray cannot say.
    """
    return ray_compat.fresh_workers(node.address, node.manager_port, any_job)


def prestart(count: int, any_job: bool = False) -> int | None:
    """Top every alive node up to `count` fresh workers of this job, and no more than its CPUs.

    `any_job`: workers of no job, left for whichever process of this runtime env comes next (a CLI run leaves
    them for the next one); a job's own would end with it.
    Returns how many fresh workers the nodes keep in all, or None where this Ray cannot prestart.
    Asking only for what is missing lets every run end with a top-up: asking for what a run took, or
    for a fixed number, piled up idle workers. More than a node's CPUs only queue behind each other's
    torch import.
    """
    kept = 0
    for node in nodes():
        wanted = min(count, int(node.cpus))
        if node.alive and wanted > 0:
            fresh = fresh_workers(node, any_job)
            if fresh is None:
                return None
            missing = wanted - fresh
            asked = missing <= 0 or ray_compat.prestart(node.address, node.manager_port, missing, KEEP_ALIVE_S, any_job)
            if not asked:
                return None
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

    from engine.execution.reporter import get_reporter

    try:
        if wait:
            ray.get(get_reporter().snapshot.remote(), timeout=120)
            ray.data.range(1).map_batches(
                _Identity, compute=ray.data.ActorPoolStrategy(size=1), num_cpus=0, runtime_env=bookkeeping_env()
            ).take(1)
            fill_task_workers()
        kept = prestart(count)
        if kept is not None:
            return kept
        log.info("raylet prestart not available on this Ray: warming idle task workers instead")
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
    while its torch import goes on for several seconds more: one
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
