"""The model server: one async Ray actor per GPU (or one on the CPU), answering one image per request.

Each `infer` call awaits its place in a `DynamicBatcher`; the batch's forward pass runs on a
thread with the engine's own `Predictor` (normalised on the device, the run's precision), so
the actor's event loop keeps taking requests while the model computes.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from engine.realtime.batcher import DynamicBatcher
from engine.realtime.config import RealtimeConfig

log = logging.getLogger(__name__)

START_TIMEOUT_S = 300.0  # a server still not up by then (no free GPU, a model that will not load) fails the run


class ModelServer:
    """Loads the model once; `infer` answers one HxWx3 uint8 image with its class and its timings."""

    def __init__(self, model: str, precision: str, image_size: int, max_batch: int, max_wait_s: float) -> None:
        from engine.core.inference import Predictor

        self.predictor = Predictor(model, None, precision)
        # One thread runs every forward pass, warm-up included: cuDNN and cuBLAS set up per thread, and a pool's
        # fresh thread would pay that on a live request.
        self.forward_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="forward")
        self.batcher = DynamicBatcher(self._forward, max_batch, max_wait_s, executor=self.forward_thread)
        blank = np.zeros((image_size, image_size, 3), np.uint8)
        for size in warm_up_sizes(max_batch, self.predictor.device.type):
            # kernel choice per batch shape happens here, not on a request
            self.forward_thread.submit(self._forward, [blank] * size).result()

    def _forward(self, images: list[np.ndarray]) -> list[int]:
        import torch

        with torch.inference_mode():
            x = torch.from_numpy(np.stack(images)).to(self.predictor.device, non_blocking=True)
            return self.predictor.logits(x).argmax(dim=1).cpu().tolist()

    async def infer(self, image: np.ndarray) -> tuple[int, float, float, int, int]:
        """(class index, queueing s, compute s, batch size, batch number) for one image."""
        served = await self.batcher.submit(image)
        return served.result, served.queue_s, served.compute_s, served.batch_size, served.batch

    async def where(self) -> dict:
        """The device, the node and the GPUs (as this node numbers them) this server holds."""
        import ray

        context = ray.get_runtime_context()
        gpus = [int(i) for i in context.get_accelerator_ids().get("GPU", []) if str(i).isdigit()]
        return {"device": str(self.predictor.device), "node": context.get_node_id(), "gpus": gpus}


def warm_up_sizes(max_batch: int, device_type: str) -> list[int]:
    """Batch sizes to run once before the first request.

    On a GPU the first forward at each new batch shape picks and loads its kernels, tens of
    milliseconds that would land on a request's latency, so every size the batcher can form is
    run once (a few ms each). On a CPU one forward per size costs up to a second, so only the
    smallest and the largest are.
    """
    if device_type == "cuda":
        return list(range(1, max_batch + 1))
    return sorted({1, max_batch})


def start_servers(config: RealtimeConfig) -> list:
    """One server per GPU (num_gpus > 0), else one on the CPU; returns their handles at once."""
    import ray

    options = {"num_gpus": 1, "num_cpus": 1} if config.num_gpus else {"num_gpus": 0, "num_cpus": 1}
    actor = ray.remote(ModelServer).options(max_concurrency=in_flight_cap(config) + 8, **options)
    args = (config.model, config.precision, config.image_size, config.max_batch, config.max_wait_ms / 1000)
    return [actor.remote(*args) for _ in range(config.servers)]


def in_flight_cap(config: RealtimeConfig) -> int:
    """Requests sent to one server and not yet answered, at most: four full batches (one running, three waiting).

    Enough that a server always finds its next batch full; past it, an overloaded server would only
    pile up work. Requests over the cap wait in the driver, and their wait counts in their latency.
    """
    return max(32, 4 * config.max_batch)


def stop_servers(servers: list) -> None:
    """End the servers now: a request still inside one is not waited for."""
    import ray

    for server in servers:
        try:
            ray.kill(server)
        except Exception as exc:
            log.debug("could not end a model server: %s", exc)
