"""Real-time against batch on one machine: the largest request rate served within a p99 target, and the batch rate.

    python -m bench.realtime --model resnet50 --precision bf16 --num-gpus 1

In one process, through the engine, after Ray is up with its workers warm (as the app starts):

- batch: the engine's actor pipeline in its starting layout for this machine (`engine.core.defaults`),
  at the given precision; its steady images/sec (first result to the end) is what offline inference reaches.
- realtime: the engine's real-time runs (one image per request, Poisson arrivals, one model server
  per GPU with dynamic batching), each `--seconds` long, or long enough for `--min-requests` at a low
  rate. The rate doubles from `--start-rate` while
  p99 latency stays within `--target-p99-ms` with every request answered, then bisects between the
  largest rate that met it and the smallest that did not (`engine.realtime.search`).

One results file, `<out>/<date>-<gpu>-realtime.json`, rewritten after every run, holds the command,
versions, machine, every run's figures and the verdict.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import sys
import time
from typing import Any

from engine.core.config import ConfigError, RunConfig
from engine.realtime.config import RealtimeConfig

KEPT = ("status", "error", "rate", "seconds", "offered_rate", "requests", "answered", "unanswered", "throughput",
        "latency_p50_ms", "latency_p95_ms", "latency_p99_ms", "queueing_p50_ms", "queueing_p99_ms", "compute_p50_ms",
        "compute_p99_ms", "transfer_p50_ms", "transfer_p99_ms",
        "batch_size_mean", "breakdown_mean_ms", "gpu_util_mean_pct", "overloaded", "device", "weights",
        "startup_s")  # fmt: skip


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.realtime", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="resnet50")
    p.add_argument("--precision", default=None, help="fp32, bf16 or fp16 (default: bf16 with GPUs, else fp32)")
    p.add_argument("--num-gpus", type=int, default=0, help="one model server per GPU; 0 = one on the CPU")
    p.add_argument("--image-size", type=int, default=224)
    p.add_argument("--max-batch", type=int, default=32)
    p.add_argument("--max-wait-ms", type=float, default=5.0)
    p.add_argument("--seconds", type=float, default=10.0, help="each real-time run's sending time, at least")
    p.add_argument(
        "--min-requests",
        type=int,
        default=200,
        help="requests per run at least: a low rate sends for longer (a p99 of under 100 requests is their maximum)",
    )
    p.add_argument("--target-p99-ms", type=float, default=50.0)
    p.add_argument("--start-rate", type=float, default=50.0, help="requests/s of the first run")
    p.add_argument("--runs", type=int, default=12, help="the most real-time runs of the search")
    p.add_argument("--batch-images", type=int, default=None, help="default: the layout's own")
    p.add_argument("--out", default=os.path.join("bench", "results"))
    args = p.parse_args(argv)
    if args.min_requests < 0:
        p.error(f"--min-requests must be 0 or more, not {args.min_requests}")
    if args.runs < 1:
        p.error(f"--runs must be at least 1, not {args.runs}")
    if args.target_p99_ms <= 0:
        p.error(f"--target-p99-ms must be more than 0, not {args.target_p99_ms:g}")
    args.precision = args.precision or ("bf16" if args.num_gpus else "fp32")
    return args


def realtime_config(args: argparse.Namespace) -> RealtimeConfig:
    """The search's base settings, validated (its rate is the first run's)."""
    return RealtimeConfig(model=args.model, rate=args.start_rate, max_batch=args.max_batch,
                          max_wait_ms=args.max_wait_ms, seconds=args.seconds, image_size=args.image_size,
                          num_gpus=args.num_gpus, precision=args.precision).validate()  # fmt: skip


def batch_config(args: argparse.Namespace, machine) -> RunConfig:
    """The engine's actor pipeline in this machine's starting layout, at the benchmark's precision."""
    from engine.core.defaults import pick_layout

    layout = pick_layout("actor", machine, "auto" if args.num_gpus else "cpu")
    settings = {**layout.settings(), "precision": args.precision, "images": args.batch_images or layout.images}
    return RunConfig(model=args.model, image_size=args.image_size, defaults=layout.describe(), **settings).validate()


def batch_rate(config: RunConfig) -> dict[str, Any]:
    """One batch run of `config` through the engine's queue: its rates and first result."""
    from engine.execution.runner import runner
    from engine.observe.samplers import wait_for_quiet_cpu

    wait_for_quiet_cpu()  # (Ray prestarting workers after the warm-up must not slow what is timed)
    run = runner().submit(config, origin="cli")
    run.wait()
    s = run.summary or {}
    keys = ("status", "error", "images", "images_per_sec", "steady_images_per_sec", "first_result_s")
    return {"config": config.to_dict(), **{k: s.get(k) for k in keys}}


def sending_seconds(rate: float, seconds: float, min_requests: int) -> float:
    """How long a run at `rate` sends: `seconds`, or long enough for `min_requests` on average."""
    return max(seconds, min_requests / rate)


def search(base: RealtimeConfig, args: argparse.Namespace, progress) -> dict[str, Any]:
    """The rate search, each point a real-time run through the engine's queue, started on a quiet CPU."""
    from engine.execution.runner import runner
    from engine.observe.samplers import wait_for_quiet_cpu
    from engine.realtime.run import RealtimeRun
    from engine.realtime.search import find_max_rate

    points: list[dict] = []

    def measure(rate: float) -> dict:
        quiet = wait_for_quiet_cpu()
        config = base.replace(rate=rate, seconds=sending_seconds(rate, base.seconds, args.min_requests)).validate()
        run = runner().enqueue(RealtimeRun(config, origin="cli"))
        run.wait()
        summary = run.summary or {"status": run.status}
        points.append({**{k: summary.get(k) for k in KEPT}, "waited_for_quiet_cpu_s": quiet})
        progress(points)
        return summary

    found = find_max_rate(measure, args.target_p99_ms, base.rate, args.runs)
    best = found["best"]
    return {"best": {k: best.get(k) for k in KEPT} if best else None, "points": points}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse(argv)
    try:
        base = realtime_config(args)
    except ConfigError as exc:
        print(f"python -m bench.realtime: error: {exc}", file=sys.stderr)
        return 2
    from bench.run_bench import environment, start_warm_ray
    from engine.core.defaults import detect_machine

    start_warm_ray()
    gpu, env = environment(bool(args.num_gpus))
    slug = "cpu" if gpu == "cpu" else re.sub(r"[^a-z0-9]+", "-", gpu.lower()).strip("-")
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, f"{time.strftime('%Y-%m-%d')}-{slug}-realtime.json")
    command = " ".join(["python -m bench.realtime", *map(shlex.quote, argv)])
    report: dict[str, Any] = {"gpu": gpu, **env, "command": command, "settings": base.to_dict(),
                              "target_p99_ms": args.target_p99_ms}  # fmt: skip
    report["batch"] = batch_rate(batch_config(args, detect_machine()))
    write(path, report)
    print(f"batch: {report['batch']['steady_images_per_sec'] or 0:,.1f} img/s steady", flush=True)

    def progress(points: list[dict]) -> None:
        p = points[-1]
        print(f"realtime {p['rate']:g} req/s: {p['status']}, p99 {p['latency_p99_ms']} ms, "
              f"{p['throughput'] or 0:,.1f} req/s answered, overloaded {p['overloaded']}", flush=True)  # fmt: skip
        report["realtime"] = {"points": points}
        write(path, report)

    report["realtime"] = search(base, args, progress)
    report["verdict"] = verdict(report)
    write(path, report)
    print(json.dumps(report["verdict"]), f"\nresults in {path}", flush=True)
    return 0


def verdict(report: dict[str, Any]) -> dict[str, Any]:
    """The two figures side by side: the real-time rate within the target, and the batch pipeline's steady rate."""
    best = report["realtime"]["best"]
    batch = report["batch"].get("steady_images_per_sec")
    served = best["throughput"] if best else None
    return {
        "target_p99_ms": report["target_p99_ms"],
        "realtime_max_rate_within_target": best["rate"] if best else None,
        "realtime_throughput_within_target": served,
        "batch_steady_images_per_sec": batch,
        "realtime_share_of_batch": round(served / batch, 3) if served and batch else None,
    }


def write(path: str, report: dict[str, Any]) -> None:
    with open(path, "w") as f:
        json.dump(report, f, indent=2, default=str)


if __name__ == "__main__":
    sys.exit(main())
