"""Dynamic batching: single requests in, batches to the model out.

The scheme of Ray Serve's `@serve.batch` and Triton's dynamic batcher: a batch starts as soon
as `max_batch` requests wait, or once the oldest waiting request has waited `max_wait_s`,
whichever comes first. One batch runs at a time (the model holds its device); what arrives
meanwhile waits, so a busy server forms full batches at once and an idle one answers a lone
request after at most `max_wait_s`. Nothing here knows Ray: the server actor wraps it.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Served:
    """One request's answer and what it waited for: queueing (arrival to its batch's start) and compute."""

    result: Any
    queue_s: float
    compute_s: float
    batch_size: int
    batch: int  # the batch's number on this batcher, from 0


def take_now(waiting: int, oldest_arrived: float, now: float, max_batch: int, max_wait_s: float) -> int:
    """How many waiting requests to batch now: up to `max_batch` once it is full or the oldest waited enough; else 0."""
    if waiting >= max_batch or (waiting and now - oldest_arrived >= max_wait_s):
        return min(waiting, max_batch)
    return 0


class DynamicBatcher:
    """Gathers `submit`ted items into batches for `forward` (a blocking function, run on a thread).

    `forward(items)` returns one result per item, in order; an exception it raises fails that batch's
    requests only. `clock` is monotonic seconds, the same for arrivals and batch starts.
    """

    def __init__(
        self,
        forward: Callable[[list], Sequence],
        max_batch: int,
        max_wait_s: float,
        clock: Callable[[], float] = time.perf_counter,
        executor: Executor | None = None,
    ) -> None:
        self.forward = forward
        self.executor = executor  # where `forward` runs; None: asyncio's default pool
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self.clock = clock
        self.batches = 0
        self._waiting: deque[tuple[Any, float, asyncio.Future]] = deque()
        self._arrived: asyncio.Event | None = None
        self._task: asyncio.Task | None = None

    async def submit(self, item: Any) -> Served:
        """Queue one item and wait for its batch to be answered."""
        if self._task is None:
            self._arrived = asyncio.Event()
            self._task = asyncio.create_task(self._serve())
        future = asyncio.get_running_loop().create_future()
        self._waiting.append((item, self.clock(), future))
        self._arrived.set()
        return await future

    async def next_batch(self) -> list[tuple[Any, float, asyncio.Future]]:
        """Wait until `take_now` says go; return that batch, oldest first."""
        while True:
            oldest = self._waiting[0][1] if self._waiting else 0.0
            count = take_now(len(self._waiting), oldest, self.clock(), self.max_batch, self.max_wait_s)
            if count:
                return [self._waiting.popleft() for _ in range(count)]
            self._arrived.clear()
            timeout = oldest + self.max_wait_s - self.clock() if self._waiting else None
            try:
                await asyncio.wait_for(self._arrived.wait(), timeout)
            except TimeoutError:
                pass  # the oldest request has waited max_wait: batch what is there

    async def _serve(self) -> None:
        while True:
            batch = await self.next_batch()
            number, self.batches = self.batches, self.batches + 1
            started = self.clock()
            try:
                items = [item for item, _, _ in batch]
                results = await asyncio.get_running_loop().run_in_executor(self.executor, self.forward, items)
            except Exception as exc:  # this batch's requests fail; the next batch is served
                for _, _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            compute = self.clock() - started
            for (_, arrived, future), result in zip(batch, results, strict=True):
                if not future.done():  # (a request whose caller gave up is not answered)
                    future.set_result(Served(result, started - arrived, compute, len(batch), number))
