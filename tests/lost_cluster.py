"""The app's side of test_faults' lost-cluster test, in a process of its own (it drops its Ray connection).

`python -m tests.lost_cluster DB` starts a Ray on loopback (Ray's own test cluster, owned by this
process: a test process that made one would keep talking to its dead GCS), then runs through one
Runner as the app does: a run during which the only worker node is killed, one (on a new worker node)
during which the head with the GCS is killed, and one on a fresh local Ray. The head has no CPUs, so
all of a run's work is on the worker: once it is gone nothing can go on, whatever Ray retries (with
CPUs on the head, Ray could sometimes finish the run there, and the test would not know which
outcome to expect). Kills are SIGKILLs of every process of the node, as when a machine vanishes.
Prints one JSON line per run. The watcher's windows are shortened here (a node's grace 5 s instead
of 30, the GCS's silence 5 s instead of 10) to keep CI short, and so is the GCS's own health check of
its nodes (Ray's `RAY_health_check_*` settings: a dead node is noticed in about 2 s instead of 15);
what ends each run is the same.
"""

import json
import os
import sys
import time

from ray.cluster_utils import Cluster

from engine import RunConfig
from engine.execution.runner import Runner
from engine.observe import cluster as engine_cluster
from engine.store import RunStore

LONG = RunConfig(images=20000, image_size=32, batch_size=8, block_size_mb=1)


def main(db: str) -> None:
    engine_cluster.NODE_GRACE_S, engine_cluster.LOST_AFTER_S = 5.0, 5.0
    os.environ.update(RAY_health_check_period_ms="500", RAY_health_check_failure_threshold="3")
    cluster = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 0, "object_store_memory": 150 * 2**20, "include_dashboard": False},
    )
    workers = []

    def new_worker():
        cluster.worker_nodes.difference_update(workers)  # killed ones: Ray's own count must not wait for them
        workers.append(cluster.add_node(num_cpus=2, object_store_memory=150 * 2**20))
        cluster.wait_for_nodes(timeout=90)
        return workers[-1]

    runner = Runner(RunStore(db))
    steps = [
        (LONG.replace(address=cluster.address), new_worker),  # the node doing all the work goes
        (LONG.replace(address=cluster.address), lambda: new_worker() and cluster.head_node),  # the GCS goes
        (LONG.replace(images=24), lambda: None),  # local Ray
    ]
    try:
        for config, choose_victim in steps:
            victim = choose_victim()
            run = runner.submit(config)
            deadline = time.time() + 180
            while victim and not (run.timeseries() and run.timeseries()[-1]["rows"]) and time.time() < deadline:
                time.sleep(0.2)
            flowing = run.status == "running"
            if victim:
                victim.kill_all_processes(check_alive=False, allow_graceful=False, wait=True)
            ended = run.wait(240)
            recorded = [runner.store.get(run.id)[k] for k in ("status", "error")]
            print(json.dumps({"flowing": flowing, "ended": ended, "status": run.status, "error": run.error,
                              "recorded": recorded}), flush=True)  # fmt: skip
    finally:
        for node in (*workers, cluster.head_node):
            node.kill_all_processes(check_alive=False, allow_graceful=False, wait=True)


if __name__ == "__main__":
    main(*sys.argv[1:])
