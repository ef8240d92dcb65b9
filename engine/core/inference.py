"""The two ways of running a classifier over batches, as Ray Data UDFs.

`naive_predict` is the tutorial's wrong way: a function that builds the model
for every batch and classifies images one at a time. `Predictor` is the right
way: a class whose constructor loads the model once per actor and whose call
runs one vectorised forward pass per batch, normalising on the device.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import tempfile
import threading
import time

import numpy as np

from engine.core.models import build_model, class_names
from engine.execution.reporter import ReportClient, now, worker_id

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
GPU_LOAD_WAIT_S = 60.0  # a load that takes longer than this stops holding the others back


def _dtype(precision: str):
    import torch

    return {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def _labels(probs, names: list[str], keys: np.ndarray) -> dict[str, np.ndarray]:
    conf, idx = probs.max(dim=1)
    idx = idx.cpu().numpy()
    return {
        "key": keys,
        "label_index": idx.astype(np.int32),
        "label": np.array([names[i] for i in idx]),
        "confidence": conf.float().cpu().numpy(),
    }


def naive_predict(batch: dict[str, np.ndarray], model_name: str, weights_file, reporter, run_id) -> dict:
    """Build the model inside the batch, then classify each image on its own (slow on purpose)."""
    import torch

    client = ReportClient(reporter, run_id)
    start = now()
    client.send("worker_started", worker_id(), start)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model, _ = build_model(model_name, weights_file)
    model = model.to(device)
    client.send("model_loaded", worker_id(), start, now())
    names = class_names(model_name)
    mean = torch.tensor(MEAN, device=device).view(3, 1, 1)
    std = torch.tensor(STD, device=device).view(3, 1, 1)
    batch_start = now()
    outputs = [torch.zeros(0, 1000, device=device)]  # every file of a batch may have been skipped
    with torch.inference_mode():
        for image in batch["image"]:
            x = torch.from_numpy(np.ascontiguousarray(image)).to(device).permute(2, 0, 1).float() / 255
            outputs.append(torch.softmax(model(((x - mean) / std).unsqueeze(0)), dim=1))
    result = _labels(torch.cat(outputs), names, batch["key"])
    client.send("batch_done", worker_id(), len(batch["key"]), batch_start, now())
    return result


def sleep_while_waiting_for_gpu() -> int | None:
    """Make this process's waits for the GPU sleep instead of spin (cudaDeviceScheduleBlockingSync).

    CUDA spins a core per waiting thread by default; with several actors and two
    calls each on one host, those spinning cores are taken from the tasks that feed
    the GPU. `PLAYGROUND_CUDA_SYNC=spin` keeps CUDA's default; any other value sleeps. Returns CUDA's status
    (0 = set), or None when not set.
    """
    import torch

    if os.environ.get("PLAYGROUND_CUDA_SYNC") == "spin" or not torch.version.cuda:
        return None
    try:
        cudart = ctypes.CDLL(f"libcudart.so.{torch.version.cuda.split('.')[0]}")
    except OSError:
        return None
    return cudart.cudaSetDeviceFlags(4)  # cudaDeviceScheduleBlockingSync


def _normalisers(device):
    """ImageNet mean and std on `device`, shaped to broadcast over NCHW images of 0-255."""
    import torch

    shape = (1, 3, 1, 1)
    return torch.tensor(MEAN, device=device).view(shape) * 255, torch.tensor(STD, device=device).view(shape) * 255


@contextlib.contextmanager
def gpu_load_turn():
    """This GPU's load turn: one process at a time starts CUDA on it and uploads its model.

    Loads that share a GPU slow each other down, so taking turns brings the pool's first actor
    (and first result) up sooner, while the loaded ones already compute. The turn is a lock file
    per set of GPUs the process sees
    (Ray's CUDA_VISIBLE_DEVICES); the OS releases it if its holder dies, and after
    GPU_LOAD_WAIT_S a waiter goes ahead anyway. `PLAYGROUND_GPU_LOADS=together` skips it.
    """
    try:
        import fcntl
    except ImportError:  # no POSIX locks (Windows): load together
        fcntl = None
    if fcntl is None or os.environ.get("PLAYGROUND_GPU_LOADS") == "together":
        yield
        return
    gpus = os.environ.get("CUDA_VISIBLE_DEVICES", "all").replace(",", "-") or "none"
    with open(os.path.join(tempfile.gettempdir(), f"playground-gpu-load-{gpus}.lock"), "a") as lock:
        deadline = time.monotonic() + GPU_LOAD_WAIT_S
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    break
                time.sleep(0.02)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


class Predictor:
    """Loads the model once per actor; each call is one batched forward pass.

    Several calls may run at once on threads (`engine.core.pipeline.actor_pool`); each
    thread has its own CUDA stream, so one call's copy can overlap another's compute.

    With `decode_size` the actor takes files' bytes (`path`, `bytes`) instead of images and
    decodes them on its device (`engine.core.decode`), on the calling thread's stream: one
    call's decode overlaps another's forward pass.

    In a two-model ensemble the first stage runs with `emit_logits`: it passes
    the images on with its logits, and the second stage averages its own logits
    with them before labelling. Only the labelling stage counts rows.
    """

    def __init__(
        self,
        model_name: str,
        weights_file,
        precision: str,
        reporter=None,
        run_id: str = "",
        emit_logits: bool = False,
        decode_size: int | None = None,
        skip_bad: bool = True,
    ) -> None:
        import torch

        self.emit_logits = emit_logits
        self.skip_bad = skip_bad
        self.client = ReportClient(reporter, run_id) if reporter is not None else None
        start = now()
        self._report("worker_started", start)
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.dtype = _dtype(precision)
        model, _ = build_model(model_name, weights_file)  # on the CPU, alongside the other actors
        self.names = class_names(model_name)
        self._local = threading.local()
        self.gpu_wait = None
        if self.device.type == "cuda":
            with gpu_load_turn():
                self.gpu_wait = sleep_while_waiting_for_gpu()
                # cuDNN's own kernel choice, not autotuning: the first forward of a fresh actor comes
                # a second or more sooner, for a steady rate within a percent (python -m bench.fresh_process).
                torch.backends.cudnn.benchmark = False
                model = model.to(self.device, dtype=self.dtype, memory_format=torch.channels_last)
                self.mean, self.std = _normalisers(self.device)
                torch.cuda.synchronize(self.device)  # the upload is done before the next actor's turn
        else:
            self.mean, self.std = _normalisers(self.device)
        self.model = model
        self.decoder = None
        if decode_size is not None:
            from engine.core.decode import BatchDecoder

            self.decoder = BatchDecoder.for_device(self.device, decode_size)
        self._report("model_loaded", start, now())

    def _report(self, method: str, *args) -> None:
        """Tell the reporter (when running as a pipeline actor) what this worker did."""
        if self.client is not None:
            self.client.send(method, worker_id(), *args)

    def logits(self, nhwc_uint8):
        """The forward pass on uint8 images already on the device: normalise there, then the model."""
        return self.forward(nhwc_uint8.permute(0, 3, 1, 2))

    def forward(self, nchw):
        """The forward pass on NCHW images of 0-255 (uint8, or float from the decoder's resize) on the device."""
        import torch

        x = (nchw.float() - self.mean) / self.std
        if self.device.type == "cuda":
            return self.model(x.to(self.dtype).contiguous(memory_format=torch.channels_last))
        with torch.autocast("cpu", dtype=self.dtype, enabled=self.dtype != torch.float32):
            return self.model(x)

    def stream(self):
        """A CUDA stream per calling thread: one call's copy to the GPU overlaps another's compute."""
        import torch

        if self.device.type != "cuda":
            return contextlib.nullcontext()
        if not hasattr(self._local, "stream"):
            self._local.stream = torch.cuda.Stream(self.device)
        return torch.cuda.stream(self._local.stream)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        import torch

        start = now()
        decoded = None
        with torch.inference_mode(), self.stream():
            if self.decoder is None:
                keys = batch["key"]
                x = torch.from_numpy(np.ascontiguousarray(batch["image"])).to(self.device, non_blocking=True)
                x = x.permute(0, 3, 1, 2)
            else:
                marks = [_mark(self.device)]
                decoded = self._decode(batch)
                marks.append(_mark(self.device))
                keys, x = np.array(decoded.keys, dtype=object), decoded.images
            logits = self.forward(x).float() if len(keys) else torch.zeros(0, 1000, device=self.device)
            if self.emit_logits:
                images = batch["image"] if decoded is None else _nhwc_uint8(x)
                result = {"key": keys, "image": images, "logits": logits.cpu().numpy()}
            else:
                if "logits" in batch:
                    logits = (logits + torch.from_numpy(batch["logits"]).to(self.device)) / 2
                result = _labels(torch.softmax(logits, dim=1), self.names, keys)
        if decoded is not None and self.client is not None:  # results are on the host: the stream passed both marks
            seconds = _seconds(self.device, *marks)
            self.client.send(
                "images_decoded", self.decoder.name, decoded.on_gpu, decoded.on_cpu, seconds, now() - start
            )
        if not self.emit_logits:
            self._report("batch_done", len(keys), start, now())
        return result

    def _decode(self, batch: dict[str, np.ndarray]):
        """The batch's files decoded on the device; a file nothing can read fails the run or is reported skipped."""
        decoded = self.decoder(batch["path"], batch["bytes"])
        if decoded.bad and not self.skip_bad:
            path, why = decoded.bad[0]
            raise ValueError(f"not a readable image: {path} ({why})")
        if decoded.bad and self.client is not None:
            self.client.send("files_skipped", [path for path, _ in decoded.bad])
        return decoded


def _mark(device):
    """A point on the calling thread's stream: a CUDA event on a GPU (recorded, not waited for), the clock on a CPU."""
    import torch

    if device.type != "cuda":
        return time.perf_counter()
    event = torch.cuda.Event(enable_timing=True)
    event.record()
    return event


def _seconds(device, began, ended) -> float:
    """Seconds between two marks; on a GPU, the stream's own time between its two events."""
    if device.type != "cuda":
        return ended - began
    ended.synchronize()
    return began.elapsed_time(ended) / 1000


def _nhwc_uint8(nchw_float):
    """The decoder's float batch as the uint8 images a second model stage takes, on the host."""
    import torch

    return nchw_float.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
