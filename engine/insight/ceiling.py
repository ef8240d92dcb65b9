"""The GPU's own ceiling: the engine's forward pass on images already on the device.

Measured once per device, model, precision, batch size and image size, in a Ray
task placed like an actor would be, and cached in a JSON file, so the playground
can say "72% of this GPU's ceiling".
"""

from __future__ import annotations

import json
import os
import threading
import time

from engine.core.config import RunConfig
from engine.core.data import cache_dir, synthetic_image
from engine.execution.connection import held
from engine.observe.cluster import ClusterError

_lock = threading.Lock()
MIN_SECONDS = 2.0


def _path() -> str:
    return os.path.join(cache_dir(), "ceilings.json")


def _key(device: str, config: RunConfig) -> str:
    return f"{device}|{config.model}|{config.precision}|{config.batch_size}|{config.image_size}"


def _read() -> dict:
    try:
        with open(_path()) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def local_device(gpu: bool) -> str:
    """This machine's device name, as the ceiling table keys it."""
    from engine.observe import nvml

    gpus = nvml.read_gpus() if gpu else []
    return gpus[0].name if gpus else f"CPU ({os.cpu_count()} cores)"


def cached(config: RunConfig) -> dict | None:
    """A ceiling measured before on this machine's device for these settings, if any."""
    return _read().get(_key(local_device(config.num_gpus > 0), config))


def _bare_forward(config: RunConfig) -> dict:
    """Runs on the worker: time `Predictor.logits` on a uint8 batch that never leaves the device."""
    import numpy as np
    import torch

    from engine.core.inference import Predictor

    predictor = Predictor(config.model, config.weights_file, config.precision)
    device = predictor.device
    images = np.stack([synthetic_image(i, config.image_size) for i in range(config.batch_size)])
    batch = torch.from_numpy(images).to(device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    with torch.inference_mode():
        for _ in range(5 if device.type == "cuda" else 1):  # warm-up (first-call allocations and kernel loads)
            predictor.logits(batch)
        sync()
        start, done = time.perf_counter(), 0
        while time.perf_counter() - start < MIN_SECONDS or done < 3:
            predictor.logits(batch)
            done += 1
            if device.type == "cuda" and done % 10:
                continue
            sync()
        sync()
        seconds = time.perf_counter() - start
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({os.cpu_count()} cores)"
    return {"device": name, "images_per_sec": done * config.batch_size / seconds, "batches": done}


def measure(config: RunConfig) -> dict:
    """Measure (on one GPU if the run asks for one, else one CPU) and cache the ceiling."""
    import ray

    with held("measuring the ceiling") as connected:
        if not connected:
            raise ClusterError("not connected to Ray: the ceiling is measured on its workers")
        task = ray.remote(num_gpus=1 if config.num_gpus > 0 else 0, num_cpus=1)(_bare_forward)
        result = ray.get(task.remote(config))
    result["measured_at"] = time.time()
    with _lock:
        table = _read()
        table[_key(result["device"], config)] = result
        with open(_path(), "w") as f:
            json.dump(table, f, indent=1)
    return result
