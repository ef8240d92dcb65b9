"""Which actor settings feed one GPU best? A small grid, run through the engine, side by side.

    python -m bench.tune_actor --model resnet50 --precision bf16 --batch-size 256 --images 20000

Each cell is a real engine run (synthetic images); the table gives steady
images/sec, GPU utilisation and time to first result. The engine's defaults come
from the best cell: record the command and the table with them.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from bench.run_bench import environment
from engine import RunConfig, cluster, runner, start

GRID = [  # (actors, GPUs per actor, concurrent batches per actor, block MB)
    (1, 1.0, 1, 16),
    (1, 1.0, 2, 16),
    (1, 1.0, 2, 64),
    (2, 0.5, 1, 64),
    (2, 0.5, 2, 64),
    (4, 0.25, 2, 64),
]


def gpu_util(summary: dict) -> float | None:
    first = summary["first_result_s"] or 0
    values = [p["gpu_util_pct"] for p in summary["timeseries"] if p["t"] >= first and p["gpu_util_pct"] is not None]
    return round(sum(values) / len(values), 1) if values else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="resnet50")
    parser.add_argument("--precision", default="bf16")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--images", type=int, default=20000)
    parser.add_argument("--out", default="bench/results")
    args = parser.parse_args(argv)
    cluster.connect(None)
    runner().warm_up(wait=True)
    gpus = 1.0 if __import__("ray").cluster_resources().get("GPU") else 0.0
    rows = []
    for actors, share, calls, block in GRID:
        config = RunConfig(model=args.model, precision=args.precision, batch_size=args.batch_size,
                           images=args.images, concurrency=actors, num_gpus=share * gpus,
                           calls_per_actor=calls, block_size_mb=block)  # fmt: skip
        run = start(config)
        run.wait()
        s = run.summary
        row = {"actors": actors, "gpus_per_actor": share * gpus, "calls_per_actor": calls, "block_mb": block,
               "status": s["status"], "error": s["error"], "steady_images_per_sec": s["steady_images_per_sec"],
               "images_per_sec": s["images_per_sec"], "first_result_s": s["first_result_s"],
               "gpu_util_mean": gpu_util(s)}  # fmt: skip
        rows.append(row)
        print(json.dumps(row), flush=True)
    command = "python -m bench.tune_actor " + " ".join(argv if argv is not None else sys.argv[1:])
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, f"{time.strftime('%Y-%m-%d')}-tune-actor.json")
    with open(path, "w") as f:
        gpu, env = environment(bool(gpus))
        json.dump({"gpu": gpu, **env, "command": command, "settings": vars(args), "cells": rows}, f, indent=1)
    print("| actors | GPU/actor | calls/actor | block MB | steady img/s | GPU util % | first result s |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        steady = f"{r['steady_images_per_sec']:.0f}" if r["steady_images_per_sec"] else r["status"]
        print(
            f"| {r['actors']} | {r['gpus_per_actor']:g} | {r['calls_per_actor']} | {r['block_mb']} | {steady} | "
            f"{r['gpu_util_mean']} | {r['first_result_s']} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
