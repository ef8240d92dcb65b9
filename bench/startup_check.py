"""Time from Launch to the first result, warm: Ray up, idle torch-ready workers in its pool.

    python -m bench.startup_check --model resnet50 --precision bf16 --batch-size 256 --launches 3

Each launch is the engine's tuned actor run on 256 synthetic images; prints the
start-up phases of every launch and their median as JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

from bench.run_bench import environment, start_warm_ray
from engine import RunConfig, runner, start


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--model", default="resnet50")
    p.add_argument("--precision", default="bf16")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--actors", type=int, default=4)
    p.add_argument("--gpus-per-actor", type=float, default=0.25)
    p.add_argument("--launches", type=int, default=5)
    p.add_argument("--pause-s", type=float, default=8.0, help="idle time between launches, as between demo clicks")
    args = p.parse_args(argv)
    start_warm_ray()
    import ray

    gpu = bool(ray.cluster_resources().get("GPU"))
    config = RunConfig(model=args.model, precision=args.precision, batch_size=args.batch_size, images=256,
                       concurrency=args.actors if gpu else 1, num_gpus=args.gpus_per_actor if gpu else 0.0,
                       block_size_mb=64)  # fmt: skip
    launches = []
    for _ in range(args.launches):
        time.sleep(args.pause_s)
        run = start(config)
        run.wait()
        launches.append({"first_result_s": run.summary["first_result_s"], "startup": run.summary["startup"]})
        print(json.dumps(launches[-1]), flush=True)
    firsts = [x["first_result_s"] for x in launches if x["first_result_s"] is not None]
    gpu_name, env = environment(gpu)
    command = "python -m bench.startup_check " + " ".join(sys.argv[1:] if argv is None else argv)
    median = statistics.median(firsts)
    print(json.dumps({"gpu": gpu_name, **env, "command": command, "warm_workers": runner().warm_workers,
                      "median_first_result_s": median}))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
