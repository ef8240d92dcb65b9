"""Which actor settings feed one GPU best, and where does each spend its time? Real engine runs, side by side.

    python -m bench.tune_actor --model resnet50 --precision bf16 --batch-size 256 --images 20000 \
        [--layouts 1x1x3x64,4x0.25x2x64x2048] [--warm-up-images 5000]

A layout is ACTORSxGPUS_PER_ACTORxBATCHES_IN_FLIGHT_PER_ACTORxBLOCK_MB[xOBJECT_STORE_LIMIT_MB].
Each cell is a real engine run on `--data` (synthetic images by default; `jpeg` for the engine's
generated photos, decoded where the engine's `decode=auto` puts them, or a folder); it records steady images/sec,
GPU utilisation, time to first result with its start-up phases and each actor's model
load, and Ray Data's per-operator profile (wall, task and CPU time, backpressure), so a
gap to the GPU's ceiling can be put on a stage. The engine's defaults come from the
best cell: record the command and the table with them.

Before the cells, an untimed run of the first layout (`--warm-up-images`, 0 for none): whatever
a Ray session's first run pays once stays out of the table.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time

from bench.run_bench import environment, start_warm_ray
from engine import RunConfig, start
from engine.core.config import ConfigError
from engine.insight.anatomy import operator_times
from engine.observe.samplers import wait_for_quiet_cpu

DEFAULT_LAYOUTS = "1x1x1x64,1x1x2x64,1x1x3x64,2x0.5x2x64,4x0.25x2x64"


def parse_layout(text: str) -> tuple[int, float, int, int, int | None]:
    """`4x0.25x2x64[x2048]` -> (actors, GPUs per actor, batches in flight, block MB, object-store limit MB)."""
    parts = text.split("x")
    if len(parts) not in (4, 5):
        raise argparse.ArgumentTypeError(f"layout {text!r}: want ACTORSxGPUSxCALLSxBLOCK_MB[xSTORE_LIMIT_MB]")
    try:
        limit = int(parts[4]) if len(parts) == 5 else None
        return int(parts[0]), float(parts[1]), int(parts[2]), int(parts[3]), limit
    except ValueError:
        raise argparse.ArgumentTypeError(f"layout {text!r}: not numbers") from None


def cell_config(args: argparse.Namespace, layout: tuple, images: int, gpus: float) -> RunConfig:
    """The engine run of one layout; `gpus` is 1.0 where Ray has a GPU, else 0.0 (a CPU smoke test)."""
    actors, share, calls, block, limit = layout
    return RunConfig(model=args.model, precision=args.precision, batch_size=args.batch_size, images=images,
                     data=args.data, image_size=args.image_size, concurrency=actors, num_gpus=share * gpus,
                     calls_per_actor=calls, block_size_mb=block, object_store_limit_mb=limit)  # fmt: skip


def gpu_util(summary: dict) -> float | None:
    first = summary["first_result_s"] or 0
    values = [p["gpu_util_pct"] for p in summary["timeseries"] if p["t"] >= first and p["gpu_util_pct"] is not None]
    return round(sum(values) / len(values), 1) if values else None


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="resnet50")
    parser.add_argument("--precision", default="bf16")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--images", type=int, default=20000)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--data", default="synthetic", help="synthetic, jpeg, or a folder/URI of images")
    parser.add_argument("--layouts", default=DEFAULT_LAYOUTS, help="comma list of layouts (see above)")
    parser.add_argument("--warm-up-images", type=int, default=5000, help="untimed run of the first layout first")
    parser.add_argument("--out", default="bench/results")
    args = parser.parse_args(argv)
    try:
        layouts = [parse_layout(t) for t in args.layouts.split(",")]
    except argparse.ArgumentTypeError as exc:
        parser.error(str(exc))  # one line, exit 2
    if args.warm_up_images < 0:
        parser.error("--warm-up-images must be 0 or more")
    try:  # every cell checked before Ray starts: a bad value is one line, and nothing runs
        for layout in layouts:
            cell_config(args, layout, args.images, 1.0).validate()
    except ConfigError as exc:
        parser.error(str(exc))
    start_warm_ray()
    gpus = 1.0 if __import__("ray").cluster_resources().get("GPU") else 0.0
    gpu, env = environment(bool(gpus))
    command = "python -m bench.tune_actor " + " ".join(argv)
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, f"{time.strftime('%Y-%m-%d')}-tune-actor.json")
    rows, warm_up = [], None

    def run_to_end(config: RunConfig):
        wait_for_quiet_cpu()  # the last run's teardown and worker refill must not slow this one
        run = start(config)
        run.wait()
        return run

    if args.warm_up_images:
        s = run_to_end(cell_config(args, layouts[0], args.warm_up_images, gpus)).summary
        warm_up = {"layout": args.layouts.split(",")[0], "images": args.warm_up_images, "status": s["status"],
                   "first_result_s": s["first_result_s"], "startup": s["startup"], "loads": s["loads"]}  # fmt: skip
        print(json.dumps({"warm_up": warm_up}), flush=True)
    for layout in layouts:
        actors, share, calls, block, limit = layout
        run = run_to_end(cell_config(args, layout, args.images, gpus))
        s = run.summary
        row = {"actors": actors, "gpus_per_actor": share * gpus, "calls_per_actor": calls, "block_mb": block,
               "object_store_limit_mb": limit, "status": s["status"], "error": s["error"],
               "steady_images_per_sec": s["steady_images_per_sec"], "images_per_sec": s["images_per_sec"],
               "first_result_s": s["first_result_s"], "startup": s["startup"], "loads": s["loads"],
               "gpu_util_mean": gpu_util(s), "decoder": s.get("decoder"), "decode_share": s.get("decode_share"),
               "peak_object_store_bytes": s.get("peak_object_store_bytes")}  # fmt: skip
        try:
            row["operators"] = [dataclasses.asdict(op) for op in operator_times(run)]
        except Exception as exc:  # a profile is a bonus; the cell's figures stand without it
            row["operators"] = f"unavailable: {type(exc).__name__}: {exc}".splitlines()[0]
        rows.append(row)
        print(json.dumps(row), flush=True)
        with open(path, "w") as f:  # after every cell, so a run cut short keeps what it measured
            json.dump({"gpu": gpu, **env, "command": command, "settings": vars(args), "warm_up": warm_up,
                       "cells": rows}, f, indent=1)  # fmt: skip
    print("| actors | GPU/actor | calls/actor | block MB | store limit MB | steady img/s | GPU util % | first s |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        steady = f"{r['steady_images_per_sec']:.0f}" if r["steady_images_per_sec"] else r["status"]
        print(
            f"| {r['actors']} | {r['gpus_per_actor']:g} | {r['calls_per_actor']} | {r['block_mb']} | "
            f"{r['object_store_limit_mb'] or '-'} | {steady} | {r['gpu_util_mean']} | {r['first_result_s']} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
