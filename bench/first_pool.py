"""Why is a Ray session's first GPU actor pool slower than its next? The same cell, twice, in a fresh Ray.

    python -m bench.first_pool --prime none|fill --images 150000 [--out bench/results/first-pool.json]

Run once per `--prime`, each in its own process (so each gets its own Ray session);
every run appends its result to `--out`. A cell is the engine's default GPU layout
(4 actors x 0.25 GPU x 2 batches, 64 MB blocks) over synthetic images with a 4 GB
object-store limit. What runs before the cells, after the app's own warm-up:

- none: nothing more (what the app does now);
- fill: one short task per CPU at once, so Ray starts a worker per CPU (each runs
  the worker set-up hook and imports torch) before the first run needs them.

Set `RAY_preallocate_plasma_memory=1` in the environment to have Ray touch its
object-store pages at start instead of during the first run.

Each cell records its steady images/sec, first result, start-up phases, and the
images/sec, host CPU % and object-store use every sample, so a slow first cell can be
put on a phase and a moment.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from bench.run_bench import environment
from engine import RunConfig, cluster, runner, start
from engine.samplers import wait_for_quiet_cpu


def _pid_after(seconds: float) -> int:
    time.sleep(seconds)
    return os.getpid()


def fill_cpus() -> int:
    """One 3 s task per CPU at once: Ray starts a worker for each; returns how many distinct workers ran them."""
    import ray

    cpus = int(ray.cluster_resources().get("CPU", 1))
    hold = ray.remote(num_cpus=1)(_pid_after)
    return len(set(ray.get([hold.remote(3.0) for _ in range(cpus)])))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--prime", choices=("none", "fill"), default="none")
    p.add_argument("--images", type=int, default=150_000)
    p.add_argument("--cells", type=int, default=2)
    p.add_argument("--out", default=os.path.join("bench", "results", f"{time.strftime('%Y-%m-%d')}-first-pool.json"))
    a = p.parse_args(argv)
    t = time.perf_counter()
    cluster.connect(None)
    ray_start_s = round(time.perf_counter() - t, 3)
    runner().warm_up(wait=True)
    import ray

    gpu = bool(ray.cluster_resources().get("GPU"))
    primed = fill_cpus() if a.prime == "fill" else 0
    config = RunConfig(model="resnet50", precision="bf16", batch_size=256, images=a.images,
                       concurrency=4 if gpu else 1, num_gpus=0.25 if gpu else 0.0, calls_per_actor=2,
                       block_size_mb=64, object_store_limit_mb=4096)  # fmt: skip
    cells = []
    for _ in range(a.cells):
        waited = wait_for_quiet_cpu()
        run = start(config)
        run.wait()
        s = run.summary
        series = [[p["t"], round(p["images_per_sec"]), p["cpu_pct"], p["object_store_used_bytes"]]
                  for p in s["timeseries"]]  # fmt: skip
        cells.append({"status": s["status"], "waited_for_quiet_cpu_s": waited,
                      "steady_images_per_sec": s["steady_images_per_sec"], "first_result_s": s["first_result_s"],
                      "startup": s["startup"], "loads": s["loads"],
                      "series_t_rate_cpu_store": series})  # fmt: skip
        print(json.dumps({k: v for k, v in cells[-1].items() if k != "series_t_rate_cpu_store"}), flush=True)
    gpu_name, env = environment(gpu)
    result = {"gpu": gpu_name, **env, "command": "python -m bench.first_pool " + " ".join(argv),
              "preallocate_plasma_memory": os.environ.get("RAY_preallocate_plasma_memory"),
              "prime": a.prime, "primed_workers": primed, "ray_start_s": ray_start_s, "cells": cells}  # fmt: skip
    runs = json.load(open(a.out)) if os.path.exists(a.out) else []
    with open(a.out, "w") as f:
        json.dump(runs + [result], f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
