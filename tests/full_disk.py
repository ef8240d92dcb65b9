"""The app's side of test_faults' full-disk test, run where FULL is a small tmpfs of its own.

`python -m tests.full_disk FULL DB`: opens a run store on FULL while there is room, fills FULL up,
then runs three times through Runners as the app does: predictions written to FULL (store in DB),
the store on FULL, and a store that cannot even be opened there. One JSON line per run. The runs
are naive ones: a disk failing does not depend on the pipeline, and naive tasks share their workers'
torch import, where each actor run would start (and import torch in) a worker of its own.
"""

import json
import logging
import os
import sys

from engine import RunConfig
from engine.execution.runner import Runner
from engine.store import RunStore

TINY = RunConfig(pipeline="naive", images=24, image_size=32, batch_size=8, block_size_mb=1)


def fill(folder: str) -> None:
    """Write zeros until the filesystem says it is full."""
    with open(os.path.join(folder, "filler"), "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 2**16)
        except OSError:
            pass


def main(full: str, db: str) -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    store_on_full = RunStore(os.path.join(full, "runs.sqlite"))  # opened while there is room
    fill(full)
    os.environ["PLAYGROUND_DB"] = os.path.join(full, "new.sqlite")
    cases = {
        "output": (Runner(RunStore(db)), TINY.replace(output=os.path.join(full, "preds"))),
        "store": (Runner(store_on_full), TINY),
        "unopenable_store": (Runner(), TINY),
    }
    for case, (runner, config) in cases.items():
        run = runner.submit(config)
        ended = run.wait(240)
        recorded = runner.store.get(run.id)
        print(json.dumps({
            "case": case, "ended": ended, "status": run.status, "error": run.error,
            "recorded": recorded and [recorded["status"], recorded["error"]],
        }), flush=True)  # fmt: skip


if __name__ == "__main__":
    main(*sys.argv[1:])
