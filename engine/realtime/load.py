"""The driver's side of a real-time run: an open-loop request stream, and every answer timed.

Requests arrive on a seeded Poisson schedule whatever the servers do (open loop): a slow
server does not slow the arrivals down, it makes them wait, as users of a service would.
A request's latency runs from its scheduled arrival to its answer reaching the driver. At most
`in_flight_cap` requests per server are out at once; the rest wait in the driver, and that wait
is part of their latency. After `seconds` no request arrives; the ones out are waited for
DRAIN_S at most, and not at all once the samples show the servers fell behind.
"""

from __future__ import annotations

import asyncio
import bisect
import threading
import time
from collections import deque
from collections.abc import Callable

import numpy as np

from engine.core.data import synthetic_image
from engine.core.errors import one_line
from engine.realtime import stats
from engine.realtime.config import RealtimeConfig
from engine.realtime.stats import Request

SAMPLE_INTERVAL_S = 0.5
WINDOW_S = 2.0  # live percentiles, throughput and batch size are over the answers of this trailing window
DRAIN_S = 5.0  # after the last arrival, the longest wait for the answers still out
TICK_S = 0.1  # the longest sleep between looks at Stop


def arrival_times(rate: float, seconds: float, seed: int = 0) -> np.ndarray:
    """Arrival offsets (s) of a Poisson stream at `rate`/s within [0, seconds): exponential gaps, seeded."""
    rng = np.random.default_rng(seed)
    expected = rate * seconds
    gaps = rng.exponential(1 / rate, int(expected + 6 * np.sqrt(expected) + 16))
    while gaps.sum() < seconds:  # (vanishingly rare: more arrivals than six deviations above the mean)
        gaps = np.concatenate([gaps, rng.exponential(1 / rate, len(gaps))])
    times = np.cumsum(gaps)
    return times[times < seconds]


class Client:
    """Sends the requests of one run to its servers and times every answer; `run()` blocks until done."""

    def __init__(
        self,
        servers: list,
        config: RealtimeConfig,
        cap: int,
        stop: threading.Event,
        gpu_util: Callable[[], float | None],
        on_sample: Callable[[], None],
    ) -> None:
        self.servers, self.config, self.cap = servers, config, cap
        self.stop, self.gpu_util, self.on_sample = stop, gpu_util, on_sample
        self.requests: list[Request] = []  # in arrival order
        self.answers: list[Request] = []  # in answer order
        self.points: list[dict] = []
        self.error: str | None = None
        self.started = self.sent_until = self.ended = 0.0
        self._backlog: deque[Request] = deque()
        self._out = [0] * len(servers)
        self._tasks: set[asyncio.Task] = set()

    def run(self) -> None:
        asyncio.run(self._run())

    async def _run(self) -> None:
        self.started = time.perf_counter()
        sampler = asyncio.create_task(self._sample_every())
        try:
            await self._send()
            self.sent_until = time.perf_counter()
            await self._drain()
        finally:
            sampler.cancel()
            self.ended = time.perf_counter()
            self._sample()

    async def _send(self) -> None:
        for key, offset in enumerate(arrival_times(self.config.rate, self.config.seconds)):
            if not await self._sleep_until(self.started + float(offset)):
                return
            request = Request(key, self.started + float(offset))
            self.requests.append(request)
            self._backlog.append(request)
            self._dispatch()

    async def _sleep_until(self, when: float) -> bool:
        """Sleep until `when` (at least a yield, so answers are taken in); False once stopped or failed."""
        await asyncio.sleep(0)
        while not (self.stop.is_set() or self.error):
            remaining = when - time.perf_counter()
            if remaining <= 0:
                return True
            await asyncio.sleep(min(remaining, TICK_S))
        return False

    async def _drain(self) -> None:
        deadline = time.perf_counter() + DRAIN_S
        while len(self.answers) < len(self.requests) and time.perf_counter() < deadline:
            if self.stop.is_set() or self.error or self.overloaded():
                return
            await asyncio.sleep(0.02)

    def overloaded(self) -> bool:
        return stats.is_overloaded(self.points, self.config.seconds, self.config.max_batch)

    def _dispatch(self) -> None:
        """Send waiting requests to the least busy server while it is under the cap."""
        while self._backlog:
            server = min(range(len(self.servers)), key=self._out.__getitem__)
            if self._out[server] >= self.cap:
                return
            request = self._backlog.popleft()
            request.sent = time.perf_counter()
            ref = self.servers[server].infer.remote(synthetic_image(request.key, self.config.image_size))
            self._out[server] += 1
            task = asyncio.ensure_future(self._receive(request, server, ref))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _receive(self, request: Request, server: int, ref) -> None:
        try:
            _, request.queue_s, request.compute_s, request.batch_size, batch = await ref
        except Exception as exc:  # a server that died or a forward that failed ends the run in one line
            self.error = self.error or one_line(exc)
            return
        finally:
            self._out[server] -= 1
        request.answered = time.perf_counter()
        request.batch = (server, batch)
        self.answers.append(request)
        self._dispatch()

    async def _sample_every(self) -> None:
        while True:
            await asyncio.sleep(SAMPLE_INTERVAL_S - (time.perf_counter() - self.started) % SAMPLE_INTERVAL_S)
            self._sample()

    def _sample(self) -> None:
        now = time.perf_counter()
        since = bisect.bisect_left(self.answers, now - WINDOW_S, key=lambda r: r.answered)
        window_s = min(WINDOW_S, now - self.started) or WINDOW_S
        t, window, gpu = now - self.started, self.answers[since:], self.gpu_util()
        self.points.append(stats.sample(t, len(self.requests), len(self.answers), window, window_s, gpu))
        self.on_sample()
