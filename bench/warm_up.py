"""The app's warm-up on a fresh local Ray, phase by phase: what a Launch made right after start waits for.

    python -m bench.warm_up [--runs 3] [--out bench/results/<date>-cpu-warm-up.json]

Each run is a fresh process that does what the app does at start: it starts a local Ray whose workers
import torch as they start (`connection.connect(None, warm=True)`), warms it as the runner does
(`keep_warm(WARM_WORKERS)`), then waits for the prestarted workers' imports to end
(`wait_until_imported`). Prints each run's seconds per phase, then their medians, as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

from bench.run_bench import environment, record

PHASES = ("connect", "keep_warm", "settle", "total")
ONE_RUN = """
import json, time
started = time.time()
from engine.execution import connection, warm
from engine.execution.runner import WARM_SETTLE_S, WARM_WORKERS
connection.connect(None, warm=True)
connected = time.time()
kept = warm.keep_warm(WARM_WORKERS)
warmed = time.time()
warm.wait_until_imported(connected, WARM_SETTLE_S)
done = time.time()
print(json.dumps({"connect": connected - started, "keep_warm": warmed - connected, "settle": done - warmed,
                  "total": done - started, "warm_workers": kept}))
"""


def one_run() -> dict:
    """One fresh process's warm-up; its last stdout line is the phases' JSON."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    done = subprocess.run([sys.executable, "-c", ONE_RUN], cwd=root, env=env, capture_output=True, text=True,
                          timeout=600, check=True)  # fmt: skip
    return {k: round(v, 2) for k, v in json.loads(done.stdout.strip().splitlines()[-1]).items()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    if args.runs < 1:
        p.error(f"--runs must be at least 1, not {args.runs}")
    runs = []
    for _ in range(args.runs):
        runs.append(one_run())
        print(json.dumps(runs[-1]), flush=True)
    gpu, env = environment(False)
    result = {
        "gpu": gpu,
        **env,
        "what": "the app's warm-up on a fresh local Ray",
        "command": "python -m bench.warm_up " + " ".join(sys.argv[1:] if argv is None else argv),
        "runs": runs,
        "median_s": {phase: statistics.median(r[phase] for r in runs) for phase in PHASES},
    }
    record(result, "median_s", args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
