"""Why is a Ray session's first GPU actor pool slower than its next? The same cell, twice, in a fresh Ray.

    python -m bench.first_pool --images 150000 [--out bench/results/first-pool.json]

Each process has its own Ray session and appends its result to `--out`. A cell is the
engine's default layout for the machine (`engine.core.defaults.pick_layout`), ResNet-50 bf16, over synthetic images
with a 4 GB object-store limit, run after the app's own warm-up.
Set `RAY_preallocate_plasma_memory=1` in the environment to have Ray touch its
object-store pages at start instead of during the first run.

The warm-up it runs after includes one short task per CPU (`engine.execution.warm.fill_task_workers`).

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

from bench.run_bench import environment, start_warm_ray
from engine import RunConfig, runner, start
from engine.core.config import ConfigError
from engine.core.defaults import Machine, detect_machine, pick_layout
from engine.observe.samplers import wait_for_quiet_cpu


def cell_config(images: int, machine: Machine) -> RunConfig:
    """The engine's default actor layout for `machine`, ResNet-50 bf16, a 4 GB store limit."""
    layout = pick_layout("actor", machine).settings()
    return RunConfig(model="resnet50", object_store_limit_mb=4096, **{**layout, "images": images, "precision": "bf16"})


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--images", type=int, default=150_000)
    p.add_argument("--cells", type=int, default=2)
    p.add_argument("--out", default=os.path.join("bench", "results", f"{time.strftime('%Y-%m-%d')}-first-pool.json"))
    a = p.parse_args(argv)
    if a.cells < 1:
        p.error("--cells must be 1 or more")
    try:  # checked before Ray starts: a bad value is one line, and nothing runs
        cell_config(a.images, Machine(gpus=1)).validate()
    except ConfigError as exc:
        p.error(str(exc))
    ray_start_s = round(start_warm_ray(), 3)
    config = cell_config(a.images, detect_machine())
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
    gpu_name, env = environment(config.num_gpus > 0)
    result = {"gpu": gpu_name, **env, "command": "python -m bench.first_pool " + " ".join(argv),
              "preallocate_plasma_memory": os.environ.get("RAY_preallocate_plasma_memory"),
              "warm_workers": runner().warm_workers, "ray_start_s": ray_start_s, "cells": cells}  # fmt: skip
    runs = []
    if os.path.exists(a.out):
        with open(a.out) as f:
            runs = json.load(f)
    with open(a.out, "w") as f:
        json.dump(runs + [result], f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
