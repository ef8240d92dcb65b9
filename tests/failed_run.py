"""The app's side of test_faults' tests that a failed run gives back what it held, in its own process.

In pytest's, the log capture would keep the failure's exception, and with it the run's actors.
`python -m tests.failed_run FAILING NEXT` (configs as JSON): runs FAILING through one Runner as the
app does, waits (bounded) for its pool actors and GPU memory to be given back, then runs NEXT.
Prints one JSON line per run.
"""

import json
import sys
import time

from engine import RunConfig
from engine.execution.runner import Runner
from engine.observe import nvml
from engine.observe.cluster import live_pool_actors
from engine.store import RunStore


def gpu_memory_used() -> int:
    return sum(g.mem_used_bytes or 0 for g in nvml.read_gpus())


def main(failing: str, following: str) -> None:
    runner = Runner(RunStore(":memory:"))
    before = gpu_memory_used()
    run = runner.submit(RunConfig.from_dict(json.loads(failing)))
    run.wait(480)
    deadline = time.time() + 60
    while (live_pool_actors() or gpu_memory_used() > before + 2**30) and time.time() < deadline:
        time.sleep(0.5)
    print(json.dumps({"status": run.status, "error": run.error, "actors": live_pool_actors(),
                      "gpu_mem_before": before, "gpu_mem_after": gpu_memory_used()}), flush=True)  # fmt: skip
    run = runner.submit(RunConfig.from_dict(json.loads(following)))
    run.wait(240)
    print(json.dumps({"status": run.status, "error": run.error}), flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:])
