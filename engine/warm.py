"""Warm workers: Ray worker processes that already imported torch before Launch.

Ray runs `prepare_worker` in every worker process it starts (a worker set-up
hook), and `keep_warm` makes sure a few such processes sit idle in Ray's own
worker pool, so the next run's actors and tasks start without paying the
multi-second torch import. Nothing about the user's run is precomputed.
"""

from __future__ import annotations

import logging
import os
import time

log = logging.getLogger(__name__)
HOLD_S = 6.0  # long enough that Ray starts one worker per hold task instead of reusing one
REFILL_HOLD_S = 0.5  # after a run: short, so a quick next Launch finds the workers idle, not holding


def prepare_worker() -> None:
    import ray.data  # noqa: F401
    import torch  # noqa: F401
    import torchvision.models  # noqa: F401


class _Identity:
    """A do-nothing actor UDF: one tiny actor-pool dataset starts Ray Data's own actors."""

    def __call__(self, batch):
        return batch


def _hold(seconds: float) -> int:
    time.sleep(seconds)
    return os.getpid()


def keep_warm(count: int, wait: bool = True) -> int:
    """Have `count` idle workers (torch imported) in Ray's pool; returns how many answered.

    Also starts what every run needs once per Ray session: our reporter actor and
    Ray Data's own bookkeeping actors (through a one-row actor-pool dataset). The hold tasks
    overlap in time, so each lands on its own worker process; when they end,
    those processes go back to Ray's idle pool.
    With `wait=False` it only asks Ray for the workers and returns `count` at once.
    """
    import ray

    from engine.reporter import get_reporter

    try:
        hold = ray.remote(num_cpus=0)(_hold)
        if not wait:
            [hold.remote(REFILL_HOLD_S) for _ in range(count)]
            return count
        ray.get(get_reporter().snapshot.remote(), timeout=120)
        ray.data.range(1).map_batches(_Identity, compute=ray.data.ActorPoolStrategy(size=1), num_cpus=0).take(1)
        pids = ray.get([hold.remote(HOLD_S) for _ in range(count)], timeout=120)
    except Exception as exc:  # warming is an optimisation; never fail for it
        log.warning("could not warm workers: %s", exc)
        return 0
    return len(set(pids))
