"""Decoding image files inside the model's actors, a batch at a time on their device.

A GPU classifies photos faster than the host's cores can decode them, so with GPU
decode the actors take the files' bytes and decode them where the model runs:
nvImageCodec on the GPU's hardware JPEG engines where it is installed and the GPU
has them, else torchvision's nvJPEG decoder. Each batch is then resized on the
device to the model's input size. A file the batch decoder cannot read is found by
decoding the batch file by file; it and every file that is not a JPEG are then
decoded by PIL on the CPU, and what PIL cannot read either is skipped and named.

Nothing here imports torch or a decoder at import time: the driver only asks
`decodes_in_actors`, and nvImageCodec is optional.
"""

from __future__ import annotations

import importlib.util
import io
import logging
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from engine.core.config import RunConfig
from engine.core.lean_import import torchvision

log = logging.getLogger(__name__)

JPEG_MAGIC = b"\xff\xd8\xff"  # SOI marker, then the first segment's marker
CPU_DECODER = "PIL (CPU)"
NVIMGCODEC_CPU_THREADS = 4  # an actor's nvImageCodec decoder keeps a pool of this many; a GPU holds several actors
DECODER_ENV = "PLAYGROUND_GPU_DECODER"  # torchvision or a name from NVIMGCODEC_MIXES: overrides the choice below

# The ways nvImageCodec can share each batch between its decoders: the name the run reports, then
# (backend, its first share of the batch), first to last. A share below 1 is adaptive: each batch's
# split moves so that the decoders finish together. A file a backend cannot read (a progressive JPEG
# on the hardware engines) goes to the next. Where the GPU has no JPEG engines, "cuda" decodes.
NVIMGCODEC_MIXES: dict[str, tuple[str, tuple[tuple[str, float], ...]]] = {
    "nvimgcodec": ("hardware", (("HW_GPU_ONLY", 1.0), ("GPU_ONLY", 1.0))),
    "nvimgcodec-hw+cuda": ("hardware + CUDA", (("HW_GPU_ONLY", 0.7), ("GPU_ONLY", 1.0))),
    "nvimgcodec-hw+hybrid": ("hardware + hybrid", (("HW_GPU_ONLY", 0.7), ("HYBRID_CPU_GPU", 1.0))),
    "nvimgcodec-hw+cpu": ("hardware + CPU", (("HW_GPU_ONLY", 0.7), ("CPU_ONLY", 1.0))),
    "cuda": ("CUDA", (("GPU_ONLY", 1.0),)),
}
DEFAULT_MIX = "nvimgcodec"

# One batch of JPEG bytes -> one image per file (CHW uint8 on the device) or None where that file failed;
# raising means the whole batch failed.
BatchFn = Callable[[Sequence[bytes]], list[Any]]


def is_jpeg(data: bytes) -> bool:
    """JPEG files start with FF D8 FF whatever their extension says; anything else goes to PIL."""
    return bytes(data[:3]) == JPEG_MAGIC


def decodes_in_actors(config: RunConfig) -> bool:
    """Whether the model's actors decode the files (bytes in) instead of CPU read tasks (images in).

    `auto` decodes in the actors when they have a GPU. Synthetic images need no decoding; the naive
    pipeline has no actors, and a cpu_preprocess stage is there to decode on the CPU.
    """
    if config.data == "synthetic" or config.pipeline != "actor" or config.stages == "cpu_preprocess":
        return False
    return config.decode == "gpu" or (config.decode == "auto" and config.num_gpus > 0)


def nvimgcodec_installed() -> bool:
    """Whether nvImageCodec can be imported, without importing it (it loads CUDA libraries)."""
    try:
        return importlib.util.find_spec("nvidia.nvimgcodec") is not None
    except (ImportError, ValueError):
        return False


def pil_rgb(data: bytes, size: int) -> np.ndarray:
    """One file decoded by PIL on the CPU, as HxWx3 uint8 (a JPEG at a reduced scale when it is much larger)."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as img:
        img.draft("RGB", (size, size))
        return np.array(img.convert("RGB"))  # writable, so torch.from_numpy takes it without a warning


def resize_batch(images: list, size: int, device):
    """Images of any sizes (CHW uint8 on `device`) -> one NCHW float32 batch of size x size, 0-255, in input order.

    Bilinear without antialiasing, sampled where `F.interpolate(align_corners=False)` samples. The
    batch is four gathers from one buffer that holds every image's bytes: the same few kernels
    whatever its images' sizes, where a resize per photo launches a few per image.
    """
    import torch

    if not images:
        return torch.empty((0, 3, size, size), device=device)
    flats, layout, offset = [], [], 0
    for image in images:
        flat, (sc, sh, sw) = _flat(image)
        flats.append(flat)
        layout.append((offset, sc, sh, sw, image.shape[1], image.shape[2]))
        offset += flat.numel()
    buffer = torch.cat(flats)
    index = torch.int32 if offset < 2**31 else torch.int64  # half the index traffic where it fits
    # non_blocking: staged at once, so the host does not wait for the stream's decode to finish first
    start, sc, sh, sw, height, width = torch.tensor(layout, dtype=torch.int64).to(device, non_blocking=True).T
    y0, y1, wy = _sample_points(height, size)
    x0, x1, wx = _sample_points(width, size)
    channels = start[:, None] + torch.arange(3, device=device) * sc[:, None]  # N x 3
    rows = [(channels[:, :, None] + (y * sh[:, None])[:, None, :]).to(index) for y in (y0, y1)]  # N x 3 x size
    cols = [(x * sw[:, None]).to(index)[:, None, None, :] for x in (x0, x1)]  # N x 1 x 1 x size

    def pixels(row, col):
        return buffer.index_select(0, (row[..., None] + col).view(-1)).view(len(images), 3, size, size).float()

    wx = wx[:, None, None, :]
    top = torch.lerp(pixels(rows[0], cols[0]), pixels(rows[0], cols[1]), wx)
    bottom = torch.lerp(pixels(rows[1], cols[0]), pixels(rows[1], cols[1]), wx)
    return torch.lerp(top, bottom, wy[:, None, :, None])


def _flat(image) -> tuple[Any, tuple[int, int, int]]:
    """One CHW image's memory as a 1-D view from its first pixel to its last, and its C, H, W strides in it.

    A view, never a copy: decoders hand out interleaved RGB, planar RGB or rows padded to a pitch, and
    the strides say where each pixel is in any of them.
    """
    import torch

    span = 1 + sum((length - 1) * stride for length, stride in zip(image.shape, image.stride(), strict=True))
    return torch.as_strided(image, (span,), (1,), image.storage_offset()), image.stride()


def _sample_points(lengths, size: int):
    """For each image's side (a length per image) and each of `size` outputs: the two pixels it blends and the
    second one's weight, as `F.interpolate(mode="bilinear", align_corners=False)` computes them."""
    import torch

    src = (torch.arange(size, device=lengths.device) + 0.5)[None, :] * (lengths.float() / size)[:, None] - 0.5
    src = src.clamp(min=0)
    last = (lengths - 1)[:, None]
    low = torch.minimum(src.long(), last)
    return low, torch.minimum(low + 1, last), src - low


@dataclass
class Decoded:
    """One batch's images on the device, and what happened to each of its files."""

    images: Any  # NCHW float32, 0-255, the model's size; row i is file keys[i]
    keys: list[str]
    on_gpu: int  # decoded by the batch decoder on a GPU
    on_cpu: int  # decoded on the CPU: PIL's fallbacks, and the batch decoder's own when the device is a CPU
    bad: list[tuple[str, str]] = field(default_factory=list)  # (path, why) of each file nothing could read


class BatchDecoder:
    """JPEG bytes -> the model's input batch on `device`; one per actor, called from several threads at once.

    `decode_batch` is the device decoder (tests pass a fake one to run this on a CPU). Threads take
    turns at it: nvImageCodec's decoder must not be used by two threads at once, and torchvision's
    takes turns inside anyway. Only the decode is a turn: one thread resizes its batch and another
    runs the model while a third decodes. `gpu` says whether what the decoder decodes counts as
    decoded on a GPU (by default: whether `device` is one).
    """

    def __init__(self, name: str, device, size: int, decode_batch: BatchFn, gpu: bool | None = None) -> None:
        self.name, self.device, self.size = name, device, size
        self.decode_batch = decode_batch
        self.gpu = device.type == "cuda" if gpu is None else gpu
        self._turn = threading.Lock()

    @classmethod
    def for_device(cls, device, size: int, prefer: str | None = None) -> BatchDecoder:
        """The best decoder this device has: see `pick`. `prefer` (or PLAYGROUND_GPU_DECODER) overrides it."""
        name, decode_batch = pick(device, prefer or os.environ.get(DECODER_ENV))
        return cls(name, device, size, decode_batch)

    def _decode(self, blobs: Sequence[bytes]) -> list[Any]:
        with self._turn:
            return self.decode_batch(blobs)

    def decode_jpegs(self, blobs: list[bytes]) -> list[Any]:
        """Each JPEG on the device, or None: the whole batch at once; if that fails, file by file to find which."""
        if not blobs:
            return []
        try:
            images = self._decode(blobs)
        except Exception as exc:
            log.debug("batch of %d JPEGs failed (%s); decoding them one by one", len(blobs), exc)
            images = [self._one(blob) for blob in blobs]
        return [image if _is_rgb(image) else None for image in images]

    def _one(self, blob: bytes):
        try:
            return self._decode([blob])[0]
        except Exception:
            return None

    def __call__(self, paths: Sequence[str], blobs: Sequence[bytes]) -> Decoded:
        """Decode a batch of files: JPEGs on the device, the rest and the device's failures by PIL, then resize."""
        import torch

        jpegs = [i for i, blob in enumerate(blobs) if is_jpeg(blob)]
        images: dict[int, Any] = {}
        for i, image in zip(jpegs, self.decode_jpegs([blobs[i] for i in jpegs]), strict=True):
            if image is not None:
                images[i] = image
        on_device = len(images)
        bad = []
        for i in (i for i in range(len(blobs)) if i not in images):
            try:
                images[i] = torch.from_numpy(pil_rgb(blobs[i], self.size)).permute(2, 0, 1).to(self.device)
            except Exception as exc:
                bad.append((str(paths[i]), type(exc).__name__))
        kept = sorted(images)
        batch = resize_batch([images[i] for i in kept], self.size, self.device)
        on_gpu = on_device if self.gpu else 0
        return Decoded(batch, [str(paths[i]) for i in kept], on_gpu, len(kept) - on_gpu, bad)


def _is_rgb(image) -> bool:
    """A decoder's output that can join the batch: three channels (CHW). Anything else goes to PIL."""
    return image is not None and image.ndim == 3 and image.shape[0] == 3


def pick(device, prefer: str | None = None) -> tuple[str, BatchFn]:
    """(name, decoder) for `device`.

    On a GPU: nvImageCodec where it imports and the GPU has hardware JPEG engines (NVML reads their
    utilisation), else torchvision's nvJPEG. On a CPU: torchvision's libjpeg-turbo. `prefer`
    ("torchvision" or a name from NVIMGCODEC_MIXES) forces one where it can run.
    """
    if prefer and prefer != "torchvision" and prefer not in NVIMGCODEC_MIXES:
        log.warning("%s=%s is not torchvision or one of %s: choosing as if unset", DECODER_ENV, prefer,
                    ", ".join(NVIMGCODEC_MIXES))  # fmt: skip
    if device.type != "cuda":
        return "torchvision (CPU)", _torchvision_fn(device)
    if prefer != "torchvision" and nvimgcodec_installed():
        engines = _has_jpeg_engines(device)
        if engines or prefer in NVIMGCODEC_MIXES:
            mix = (prefer if prefer in NVIMGCODEC_MIXES else DEFAULT_MIX) if engines else "cuda"
            try:
                return f"nvimgcodec ({NVIMGCODEC_MIXES[mix][0]})", _nvimgcodec_fn(device, NVIMGCODEC_MIXES[mix][1])
            except Exception as exc:  # it cannot start (no nvJPEG library): say so once, in the actor's log
                log.warning("nvImageCodec cannot decode on %s (%s); using torchvision", device, exc)
    return "torchvision (CUDA)", _torchvision_fn(device)


def _has_jpeg_engines(device) -> bool:
    import torch

    from engine.observe import nvml

    props = torch.cuda.get_device_properties(device)
    return nvml.has_jpeg_engines(f"{props.pci_domain_id:08X}:{props.pci_bus_id:02X}:{props.pci_device_id:02X}.0")


def _torchvision_fn(device) -> BatchFn:
    import torch

    codec = torchvision().io

    def decode(blobs: Sequence[bytes]) -> list[Any]:
        data = [torch.frombuffer(bytearray(blob), dtype=torch.uint8) for blob in blobs]
        return list(codec.decode_jpeg(data, mode=codec.ImageReadMode.RGB, device=device))

    return decode


def nvimgcodec_backends(mix: Sequence[tuple[str, float]]) -> list[Any]:
    """nvImageCodec's backends for one of NVIMGCODEC_MIXES' lists, in order, each with its share and policy."""
    from nvidia import nvimgcodec

    adaptive, fixed = nvimgcodec.LoadHintPolicy.ADAPTIVE_MINIMIZE_IDLE_TIME, nvimgcodec.LoadHintPolicy.FIXED
    split = len(mix) > 1 and mix[0][1] < 1
    return [
        nvimgcodec.Backend(getattr(nvimgcodec, kind), load_hint=share, load_hint_policy=adaptive if split else fixed)
        for kind, share in mix
    ]


def _nvimgcodec_fn(device, mix: Sequence[tuple[str, float]]) -> BatchFn:
    """nvImageCodec with the given backends.

    It decodes on the calling thread's current CUDA stream, so a batch's decode overlaps the model's
    forward pass of another thread's batch. What its CPU backend decodes comes back in host memory.
    """
    import torch
    from nvidia import nvimgcodec

    decoder = nvimgcodec.Decoder(device_id=device.index or 0, max_num_cpu_threads=NVIMGCODEC_CPU_THREADS,
                                 backends=nvimgcodec_backends(mix))  # fmt: skip
    params = nvimgcodec.DecodeParams(color_spec=nvimgcodec.ColorSpec.SRGB)
    host = nvimgcodec.ImageBufferKind.STRIDED_HOST

    def tensor(image):
        if image.buffer_kind == host:
            return torch.from_numpy(np.asarray(image)).to(device, non_blocking=True).permute(2, 0, 1)
        return torch.as_tensor(image, device=device).permute(2, 0, 1)

    def decode(blobs: Sequence[bytes]) -> list[Any]:
        streams = [nvimgcodec.CodeStream(bytes(blob)) for blob in blobs]
        stream = torch.cuda.current_stream(device).cuda_stream
        images = decoder.decode(streams, params=params, cuda_stream=stream)
        return [None if image is None else tensor(image) for image in images]

    return decode
