"""Scaling over GPUs: the engine's tuned actor pipeline on 1 GPU, then on more, side by side in one file.

    python -m bench.scaling --model resnet50 --precision bf16 --batch-size 256 --images 500000 [--gpus 1,2]

Same engine run, same data and settings for every count; only the actors grow with the GPUs (the
engine's layout: engine.core.defaults.pick_layout). Each count gets its own bounded object store
(--object-store-limit-mb per GPU) and a warm-up run before it is timed. Reports each count's
steady images/sec, the speedup and efficiency against one GPU, every GPU's mean utilisation over
the steady part, and what the Advisor predicted for the node beside what was measured.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import sys
import time

from bench.run_bench import environment, start_warm_ray
from engine import RunConfig, start
from engine.core.defaults import Machine, detect_machine, pick_layout


def gpu_counts(text: str, available: int) -> list[int]:
    counts = sorted({int(c) for c in text.split(",")}) if text else [1, available]
    if not counts or counts[0] < 1 or counts[-1] > available:
        raise SystemExit(f"--gpus must be counts from 1 to {available} (got {text!r})")
    return counts


def per_gpu_utilisation(points: list[dict], first_result_s: float | None) -> dict[str, float]:
    """Each GPU's mean utilisation over the steady part (from the first result on)."""
    after = [p for p in points if first_result_s is None or p["t"] >= first_result_s]
    found: dict[str, list[float]] = {}
    for point in after:
        for g in point.get("gpus") or []:
            if g.get("util_pct") is not None:
                found.setdefault(f"{g.get('node', '')} GPU {g['index']}".strip(), []).append(g["util_pct"])
    return {gpu: round(statistics.fmean(values), 1) for gpu, values in sorted(found.items())}


def run_count(args: argparse.Namespace, machine: Machine) -> dict:
    """Warm this count's actors once, then time it."""
    gpus = int(machine.gpus)
    layout = pick_layout("actor", machine)
    config = RunConfig(model=args.model, **{**layout.settings(), "images": args.images, "precision": args.precision,
                                           "batch_size": args.batch_size},
                       object_store_limit_mb=args.object_store_limit_mb * gpus)  # fmt: skip
    start(config.replace(images=max(args.batch_size * layout.concurrency * 4, 10_000))).wait()  # warm-up
    run = start(config)
    run.wait()
    s = run.summary
    return {"gpus": gpus, "actors": config.concurrency, "gpus_per_actor": config.num_gpus, "status": s["status"],
            "error": s["error"], "steady_images_per_sec": s["steady_images_per_sec"],
            "first_result_s": s["first_result_s"], "seconds": s["seconds"],
            "gpu_util_mean": per_gpu_utilisation(s["timeseries"], s["first_result_s"]),
            "peak_object_store_bytes": s["peak_object_store_bytes"]}  # fmt: skip


def advisor_prediction(args: argparse.Namespace, machine: Machine) -> dict:
    """What the Advisor advises for this node and model (it predicts layout and memory, not throughput)."""
    import psutil

    from engine.insight.advisor import PLANNED_GPU, advise, model_size_gb

    gpu_mem_gb = machine.gpu_mem_gb or PLANNED_GPU["gpu_mem_gb"]  # where NVML cannot say, as the Advisor page starts
    advice = advise(gpus=int(machine.gpus), gpu_mem_gb=gpu_mem_gb, node_mem_gb=psutil.virtual_memory().total / 2**30,
                    model_size_gb=model_size_gb(args.model))  # fmt: skip
    return {"concurrency": advice.concurrency, "batch_size": advice.batch_size, "binding": advice.binding}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--model", default="resnet50")
    p.add_argument("--precision", default="bf16")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--images", type=int, default=500_000)
    p.add_argument("--gpus", default="", help="GPU counts to time, e.g. 1,2 (default: 1 and all)")
    p.add_argument("--object-store-limit-mb", type=int, default=2048, help="per GPU: each count's own bound")
    p.add_argument("--out", default="bench/results")
    args = p.parse_args(argv)
    start_warm_ray()
    import ray

    available = int(ray.cluster_resources().get("GPU", 0))
    if available < 2:
        print(f"needs 2 or more GPUs; this host has {available}")
        return 2
    rows = []
    host = detect_machine()  # the layout and the Advisor see this host's GPUs, only fewer of them
    for gpus in gpu_counts(args.gpus, available):
        machine = dataclasses.replace(host, gpus=float(gpus))
        rows.append({**run_count(args, machine), "advisor": advisor_prediction(args, machine)})
        print(json.dumps(rows[-1]), flush=True)
    one = rows[0]["steady_images_per_sec"]
    for row in rows:
        rate = row["steady_images_per_sec"]
        row["speedup"] = rate / one if one and rate else None
        row["efficiency"] = rate / (row["gpus"] * one) if one and rate else None
    gpu, env = environment(True)
    result = {"gpu": gpu, **env, "command": "python -m bench.scaling " + " ".join(argv or sys.argv[1:]),
              "settings": vars(args), "runs": rows}  # fmt: skip
    os.makedirs(args.out, exist_ok=True)
    name = f"{time.strftime('%Y-%m-%d')}-scaling-{'-'.join(str(r['gpus']) for r in rows)}gpu.json"
    with open(os.path.join(args.out, name), "w") as f:
        json.dump(result, f, indent=1)
    print(json.dumps([{k: r[k] for k in ("gpus", "steady_images_per_sec", "speedup", "gpu_util_mean")} for r in rows]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
