"""The CLI's defaults and start-up against the app's: first result and steady rate of the same run.

    python -m bench.cli_start --runs 3 [--pause 10] [--model resnet18 --images 256] [--out bench/results/...json]

Cold: no Ray runs on the machine (`RAY_ADDRESS=local`: the CLI starts its own). Warm: a Ray
started with `ray start --head` runs already, and the CLI joins it (what it does by itself when
one runs on the machine), each run `--pause` seconds after the one before. Each CLI run uses no
layout flag (the machine's defaults) and reports its first result counted from the command's
start, and its steady rate. Then the app's path: this
process warms Ray's workers as the app does at start, and runs the same settings through the
queue, as a Launch does. Medians of each.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

from bench.run_bench import environment, record
from engine.observe import nvml


def one_run(args: argparse.Namespace, warm: bool, out: str) -> dict:
    env = {**os.environ, "RAY_ADDRESS": "" if warm else "local", "PLAYGROUND_DB": os.path.join(out, "runs.sqlite")}
    summary_path = os.path.join(out, f"run-{time.time_ns()}.json")
    started = time.time()
    cmd = [sys.executable, "-m", "engine", "run", "--model", args.model, "--images", str(args.images), "--quiet",
           "--json", summary_path, *args.flags]  # fmt: skip
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    with open(summary_path) as f:
        summary = json.load(f)
    first = summary.get("first_result_s")
    return {
        "ray": "running (joined)" if warm else "started by the CLI",
        "exit": done.returncode,
        "first_result_from_command_s": round(summary["started_at"] + first - started, 2) if first else None,
        "connect_s": (summary.get("startup") or {}).get("connect_ray"),
        "steady_images_per_sec": summary.get("steady_images_per_sec"),
        "wall_s": round(time.time() - started, 2),
        "defaults": summary.get("config", {}).get("defaults"),
        "config": summary.get("config"),
    }


def app_path(args: argparse.Namespace, config: dict) -> dict:
    """The same settings as the CLI's runs, through this process's warmed queue, as the app launches a run."""
    from engine import RunConfig, runner
    from engine.execution import connection

    connection.connect(None, warm=True)
    queue = runner()
    queue.warm_up(wait=True)
    run = queue.submit(RunConfig.from_dict({**config, "address": None}), origin="playground")
    run.wait()
    s = run.summary
    return {"path": "app (warm workers, the queue)", "status": s["status"], "first_result_s": s["first_result_s"],
            "steady_images_per_sec": s["steady_images_per_sec"], "defaults": s["config"]["defaults"]}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--model", default="resnet18")
    p.add_argument("--images", type=int, default=256)
    p.add_argument("--pause", type=float, default=0.0, help="seconds between one joined run's exit and the next")
    p.add_argument("--out", default=None)
    p.add_argument("flags", nargs="*", help="more `engine run` flags")
    args = p.parse_args(argv)
    if args.pause < 0:
        p.error("--pause must be 0 or more seconds")
    out = tempfile.mkdtemp(prefix="cli-start-")
    runs = []
    for _ in range(args.runs):
        runs.append(one_run(args, warm=False, out=out))
        print(json.dumps(runs[-1]), flush=True)
    ray_cli = [sys.executable, "-m", "ray.scripts.scripts"]
    subprocess.run([*ray_cli, "start", "--head", "--disable-usage-stats"], check=True, capture_output=True)
    try:
        one_run(args, warm=True, out=out)  # the joined Ray's first job warms its node; then measure
        for _ in range(args.runs):
            time.sleep(args.pause)  # a person's next command comes seconds later, not at once
            runs.append(one_run(args, warm=True, out=out))
            print(json.dumps(runs[-1]), flush=True)
    finally:
        subprocess.run([*ray_cli, "stop", "--force"], capture_output=True)
    app = app_path(args, runs[-1]["config"])
    print(json.dumps(app), flush=True)
    medians = {
        kind: statistics.median(r["first_result_from_command_s"] for r in runs if r["ray"].startswith(kind))
        for kind in ("started", "running")
    }
    cli_rates = [r["steady_images_per_sec"] for r in runs if r["steady_images_per_sec"]]
    gpu, env = environment(bool(nvml.read_gpus()))
    result = {"gpu": gpu, **env, "command": "python -m bench.cli_start " + " ".join(argv or sys.argv[1:]),
              "runs": runs, "app": app,
              "median_first_result_s": {"cold": medians["started"], "ray_running": medians["running"]},
              "median_cli_steady_images_per_sec": statistics.median(cli_rates) if cli_rates else None}  # fmt: skip
    record(result, "median_first_result_s", args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
