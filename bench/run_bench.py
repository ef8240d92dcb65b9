"""One honest batch-inference benchmark, in the spirit of Ray's release test
`release/nightly_tests/dataset/gpu_batch_inference.py`.

    python -m bench.run_bench --model resnet50 --precision bf16 --batch-size 256 --images 20000

All cases run in one process, one after another, with the same model, precision and
batch size, on deterministic synthetic images (`engine.core.data.synthetic_image`) or on
the engine's generated JPEG photos of mixed sizes (`engine.core.data.ensure_jpegs`: each
side 300-800 px, 65-125 KB a file; `--jpeg-shape WxH --jpeg-kb KB` makes a set of one size instead,
read by the engine as a folder):

- ceiling: the bare model on uint8 images already on the device (normalise,
  channels_last and cast as the engine's Predictor does), timed after warm-up with
  CUDA synchronised. No data loading at all: the upper bound for everything else.
- naive: the engine's naive pipeline (model built per batch, one image at a time).
- seed_actor: a tutorial-style Ray Data actor pipeline written here: float
  conversion and normalisation in numpy on the CPU, fp32 model, float32 copy to the device.
- tuned_actor: the engine's actor pipeline (uint8 to the device, normalised there).
- torch_dataloader: a plain PyTorch DataLoader with worker processes and pinned
  memory, with tuned_actor's device-side preprocessing and precision.
- real_jpeg: the engine's actor pipeline on the JPEG photos, its default path: decode
  auto, so the actors decode on their GPU (engine.core.decode: nvImageCodec on the
  hardware JPEG engines where installed, else torchvision's nvJPEG; --gpu-decoder),
  and on a CPU-only machine the read tasks decode with PIL (the result names the decoder).
- real_jpeg_cpu_decode: the same with decode="cpu": PIL in the read tasks.
- torch_dataloader_jpeg_cpu: a DataLoader whose workers (one per host core) read and
  decode the same photos with PIL (the engine's CPU decode), then the model on the device.
- torch_dataloader_jpeg_gpu: a DataLoader whose workers read the photos' bytes; the loop
  decodes each batch with the engine's GPU decoder, then runs the model.

Ray starts once and its workers are warmed first, as the app does at start, so every
case runs "with Ray already up". Each case reports steady_images_per_sec (from the first result to the end, so start-up
is excluded), first_result_s (pipeline start to first output) and gpu_util_mean (NVML
over the steady part). Pipelines written here count rows as they reach the driver;
engine runs use the engine's summary (rows the workers finished, sampled every 0.5 s).
Extra sections: monitoring_overhead (engine samplers on vs off), streaming_1m
(object-store budget and host RAM over a long run), startup (five cold, five warm
launches) and decode_profile (each of the engine's decoders alone, the model alone, and both
in turn, in one process without Ray: where a GPU-decode actor's time goes). Before each case the
script waits (up to 20 s) for the host CPU to go quiet, so one case's teardown does not
slow the next. Results are rewritten after every case,
so a run cut short still leaves them.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import platform
import re
import shlex
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import numpy as np
import psutil
import ray
import torch
from ray.data import ActorPoolStrategy
from torch.utils.data import DataLoader, Dataset

import engine.execution.runner
import engine.execution.steps
from engine import RunConfig, start
from engine.core.config import ConfigError
from engine.core.data import PHOTO_SIDES, build_dataset, decode_images, ensure_jpegs, jpeg_dir, synthetic_image
from engine.core.decode import CPU_DECODER, DECODER_ENV, NVIMGCODEC_MIXES, BatchDecoder, nvimgcodec_installed
from engine.core.defaults import Machine, pick_layout
from engine.core.inference import MEAN, STD
from engine.core.lean_import import torchvision
from engine.core.models import build_model, weights_kind
from engine.core.pipeline import configure_context
from engine.execution import connection
from engine.insight.summary import steady_rate
from engine.observe import nvml
from engine.observe.samplers import SAMPLE_INTERVAL_S, MetricsSampler, wait_for_quiet_cpu

log = logging.getLogger("bench")
CASES = ("ceiling", "naive", "seed_actor", "tuned_actor", "torch_dataloader")
CASES += ("real_jpeg", "real_jpeg_cpu_decode", "torch_dataloader_jpeg_cpu", "torch_dataloader_jpeg_gpu")
DECODE_FIGURES = ("decoder", "decoded_on_gpu", "decoded_on_cpu", "decode_seconds", "decode_share")
SECTIONS = ("monitoring_overhead", "streaming_1m", "startup", "decode_profile")
T0 = time.perf_counter()


def say(message: str) -> None:
    print(f"[{time.perf_counter() - T0:7.1f}s] {message}", flush=True)


class TorchModel:
    """engine.core.inference.Predictor's own preprocessing and forward pass, called outside Ray."""

    def __init__(self, name: str, precision: str) -> None:
        from engine.core.inference import Predictor

        self.predictor = Predictor(name, None, precision)
        self.device = self.predictor.device

    def logits(self, nchw):
        """NCHW images of 0-255 on the device: uint8, or the float batch the engine's GPU decoder makes."""
        import torch

        with torch.inference_mode():
            return self.predictor.forward(nchw)

    def classify(self, nchw) -> dict[str, np.ndarray]:
        """Logits -> label index and confidence on the host, as Predictor returns them."""
        import torch

        conf, idx = torch.softmax(self.logits(nchw).float(), dim=1).max(dim=1)
        return {"label_index": idx.cpu().numpy().astype(np.int32), "confidence": conf.cpu().numpy()}


class SeedPredictor:
    """Tutorial style: float conversion and normalisation on the CPU in numpy, fp32 model."""

    def __init__(self, model_name: str) -> None:
        import torch

        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.model = build_model(model_name)[0].to(self.device)
        self.mean, self.std = np.array(MEAN, np.float32), np.array(STD, np.float32)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        import torch

        x = (batch["image"].astype(np.float32) / 255.0 - self.mean) / self.std
        x = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
        with torch.inference_mode():
            conf, idx = torch.softmax(self.model(torch.from_numpy(x).to(self.device)), dim=1).max(dim=1)
        out = {"key": batch["key"], "label_index": idx.cpu().numpy(), "confidence": conf.cpu().numpy()}
        return {**out, "done_at": np.full(len(idx), time.time())}


class UtilSampler:
    """NVML GPU utilisation every 0.25 s on a thread; mean over a time window."""

    def __init__(self) -> None:
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> UtilSampler:
        if nvml.read_gpus():
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _loop(self) -> None:
        while not self._stop.wait(0.25):
            utils = [g.util_pct for g in nvml.read_gpus() if g.util_pct is not None]
            if utils:
                self.samples.append((time.perf_counter(), sum(utils) / len(utils)))

    def mean(self, start: float | None, end: float) -> float | None:
        inside = [u for t, u in self.samples if start is not None and start <= t <= end]
        return round(statistics.fmean(inside), 1) if inside else None


def measure(counts: Iterator[int], t0: float) -> dict[str, Any]:
    """Consume per-batch row counts; the steady rate counts rows after the first batch."""
    rows, first, first_rows = 0, None, 0
    with UtilSampler() as util:
        for n in counts:
            rows += n
            if first is None:
                first, first_rows = time.perf_counter(), rows
        end = time.perf_counter()
    steady = (rows - first_rows) / (end - first) if first is not None and rows > first_rows else None
    first_s = round(first - t0, 3) if first is not None else None
    return dict(images=rows, steady_images_per_sec=steady, first_result_s=first_s, seconds=round(end - t0, 3),
                gpu_util_mean=util.mean(first, end))  # fmt: skip


def measure_ray(ds, t0: float) -> dict[str, Any]:
    """Driver-side figures, plus the same steady rate from the workers' own batch end times
    (`done_at`), which the driver's polling lag cannot skew (a cross-check)."""
    done: list[tuple[int, float]] = []

    def counts() -> Iterator[int]:
        for batch in ds.iter_batches(batch_size=None):
            done.append((len(batch["done_at"]), float(batch["done_at"].max())))
            yield done[-1][0]

    result = measure(counts(), t0)
    span = done[-1][1] - done[0][1] if len(done) > 1 else 0
    result["worker_steady_images_per_sec"] = sum(n for n, _ in done[1:]) / span if span > 0 else None
    return result


def engine_case(config: RunConfig, timeout_s: float = 3600) -> dict[str, Any]:
    """One run through the engine's public API; figures from its summary (kept under _summary)."""
    run = start(config)
    if not run.wait(timeout_s):
        run.stop()
        run.wait(30)
        raise TimeoutError(f"engine run still {run.status} after {timeout_s:.0f} s")
    s = run.summary or {}
    if run.status != "finished":
        raise RuntimeError(run.error or run.status)
    first = s["first_result_s"]
    after_first = [p for p in s["timeseries"] if first is not None and p["t"] >= first]
    utils = [p["gpu_util_pct"] for p in after_first if p["gpu_util_pct"] is not None]
    jpeg = [g["jpeg_util_pct"] for p in after_first for g in p.get("gpus") or [] if g.get("jpeg_util_pct") is not None]
    steady, source = s["steady_images_per_sec"], "engine timeseries"
    if steady is None and first is not None and s["seconds"] > first:  # too short for two samples
        steady, source = (s["rows"] - min(config.batch_size, s["rows"])) / (s["seconds"] - first), "coarse"
    plan = (s.get("plan") or "").split("Physical Plan (Optimized) --------")[-1].strip()
    loads_end = sorted(round(load["end_s"], 2) for load in s.get("loads") or [])
    full_pool = steady_rate(s["timeseries"], loads_end[-1]) if loads_end else None  # once every actor is up
    return dict(images=s["rows"], steady_images_per_sec=steady, steady_source=source, first_result_s=first,
                gpu_util_mean=round(statistics.fmean(utils), 1) if utils else None, seconds=s["seconds"],
                jpeg_util_mean=round(statistics.fmean(jpeg), 1) if jpeg else None,
                model_loads=s["model_loads"], loads_end_s=loads_end, full_pool_images_per_sec=full_pool,
                startup=s["startup"], operator=(plan.splitlines() or [None])[0], _summary=s)  # fmt: skip


def _columns(items: list[tuple[str, bytes]]) -> tuple[list[str], list[bytes]]:
    """A DataLoader batch of (path, bytes) pairs as two lists: bytes of different lengths do not stack."""
    paths, blobs = zip(*items, strict=True)
    return list(paths), list(blobs)


def free_device_memory() -> None:
    """Give back what driver-side cases (ceiling, torch_dataloader) cached on the GPU."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


class QuietSampler(MetricsSampler):
    """Samples only once, at the run's end (interval 1e9 s): monitoring off."""

    def __init__(self, started_at: float, read_workers: Callable, **kwargs: Any) -> None:
        super().__init__(started_at, read_workers, **{**kwargs, "interval": 1e9})


class TimedSampler(MetricsSampler):
    """The engine's sampler, also counting the driver CPU time each sample takes."""

    cpu_s: list[float] = []

    def sample(self) -> dict:
        t = time.thread_time()
        point = super().sample()
        TimedSampler.cpu_s.append(time.thread_time() - t)
        return point


@contextmanager
def sampler_class(cls: type[MetricsSampler]) -> Iterator[None]:
    """Within the block, engine runs use `cls` for their metrics."""
    engine.execution.steps.MetricsSampler = cls
    try:
        yield
    finally:
        engine.execution.steps.MetricsSampler = MetricsSampler


class Bench:
    """The cases and sections; each method returns one JSON-able dict."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.cuda = torch.cuda.is_available()
        self.gpus = 1 if self.cuda else 0
        self.device = "cuda" if self.cuda else "cpu"
        gpu_defaults = pick_layout("actor", Machine(gpus=1))  # the engine's tuned GPU layout, for one GPU
        block_mb = args.block_size_mb or (1 if args.smoke else gpu_defaults.block_size_mb)
        actors = gpu_defaults.concurrency if args.actors is None else args.actors
        share = gpu_defaults.num_gpus if args.gpus_per_actor is None else args.gpus_per_actor
        actors, share = (actors, share) if self.cuda else (1, 0.0)
        self.tuned = RunConfig(model=args.model, pipeline="actor", images=args.images, image_size=args.image_size,
                               batch_size=args.batch_size, precision=args.precision, num_gpus=share,
                               concurrency=actors, block_size_mb=block_mb, calls_per_actor=args.calls_per_actor,
                               object_store_limit_mb=args.object_store_limit_mb).validate()  # fmt: skip
        self.jpeg_images = args.jpeg_images or args.images
        self.jpeg_set = {"shape": args.jpeg_shape, "aim_bytes": args.jpeg_kb * 1000 if args.jpeg_kb else None}
        fixed = any(self.jpeg_set.values())
        self.jpeg_data = jpeg_dir(**self.jpeg_set) if fixed else "jpeg"  # the engine reads a fixed set as a folder

    def ceiling(self) -> dict[str, Any]:
        a = self.args
        model = TorchModel(a.model, a.precision)
        images = np.stack([synthetic_image(i, a.image_size) for i in range(a.batch_size)])
        x = torch.from_numpy(images).to(self.device).permute(0, 3, 1, 2)
        # GPU: a fixed count after warm-up (cudnn autotuning). CPU: a few batches, about 5 s.
        warm, iters, min_s = (10, max(20, min(200, a.images // a.batch_size)), 0) if self.cuda else (2, 3, 5)
        sync = torch.cuda.synchronize if self.cuda else (lambda: None)
        for _ in range(warm):
            model.logits(x)
        sync()
        done = 0
        with UtilSampler() as util:
            t = time.perf_counter()
            while done < iters or time.perf_counter() - t < min_s:
                model.logits(x)
                done += 1
            sync()
            end = time.perf_counter()
        rate = done * a.batch_size / (end - t)
        return dict(images=done * a.batch_size, images_per_sec=rate, steady_images_per_sec=rate,
                    gpu_util_mean=util.mean(t, end), seconds=round(end - t, 3), warmup_batches=warm)  # fmt: skip

    def naive(self) -> dict[str, Any]:
        # naive_predict never moves its model to the GPU, so it asks for none.
        images = self.args.naive_images or max(64, self.args.images // 20)
        return engine_case(self.tuned.replace(pipeline="naive", batch_size=4, concurrency=2, images=images, num_gpus=0))

    def seed_actor(self) -> dict[str, Any]:
        configure_context(self.tuned)  # the same block size; resets any object-store limit
        images = self.args.seed_images or max(self.args.batch_size, self.args.images // 20)
        t0 = time.perf_counter()
        ds = build_dataset(self.tuned.replace(images=images))
        ds = self._actor_map(ds, SeedPredictor, {"model_name": self.tuned.model})
        return measure_ray(ds, t0)

    def tuned_actor(self) -> dict[str, Any]:
        return engine_case(self.tuned)

    def torch_dataloader(self) -> dict[str, Any]:
        a = self.args

        class Synthetic(Dataset):
            def __len__(self) -> int:
                return a.images

            def __getitem__(self, i: int):
                return torch.from_numpy(synthetic_image(i, a.image_size))

        return {**self._loader_case(Synthetic(), min(8, os.cpu_count() or 1)), "pin_memory": self.cuda}

    def _loader_case(self, dataset, workers: int) -> dict[str, Any]:
        """A DataLoader of HxWx3 uint8 images in `workers` processes, each batch into the model on this device."""
        a = self.args
        model = TorchModel(a.model, a.precision)
        t0 = time.perf_counter()
        loader = DataLoader(dataset, batch_size=a.batch_size, num_workers=workers, pin_memory=self.cuda)

        def counts() -> Iterator[int]:
            for batch in loader:
                model.classify(batch.to(self.device, non_blocking=True).permute(0, 3, 1, 2))
                yield len(batch)

        return {**measure(counts(), t0), "num_workers": workers}

    def real_jpeg(self) -> dict[str, Any]:
        """The engine's default path on its JPEG photos: decode auto, in the actors on their GPU where they have one."""
        return self._engine_jpeg("auto")

    def real_jpeg_cpu_decode(self) -> dict[str, Any]:
        return self._engine_jpeg("cpu")

    def _engine_jpeg(self, decode: str) -> dict[str, Any]:
        self._jpegs()  # written before the run, so first_result_s excludes writing them
        case = engine_case(self.tuned.replace(data=self.jpeg_data, images=self.jpeg_images, decode=decode))
        figures = {k: case["_summary"].get(k) for k in DECODE_FIGURES}
        say(f"  decoded by {figures['decoder']}: {figures['decoded_on_gpu']} on the GPU, "
            f"{figures['decoded_on_cpu']} on the CPU{'' if self.cuda else ' (no CUDA GPU here)'}")  # fmt: skip
        return {**case, **figures, "files": self.jpeg_images}

    def torch_dataloader_jpeg_cpu(self) -> dict[str, Any]:
        """Worker processes (one per host core) read and decode each photo with PIL as the engine's CPU path does."""
        a, paths = self.args, self._jpegs()

        class Photos(Dataset):
            def __len__(self) -> int:
                return len(paths)

            def __getitem__(self, i: int):
                with open(paths[i], "rb") as f:
                    one = {"path": [paths[i]], "bytes": [f.read()]}
                return torch.from_numpy(decode_images(one, a.image_size, False, None, "")["image"][0])

        return {**self._loader_case(Photos(), os.cpu_count() or 1), "decoder": CPU_DECODER, "files": len(paths)}

    def torch_dataloader_jpeg_gpu(self) -> dict[str, Any]:
        """Workers read the photos' bytes; the loop decodes each batch with the engine's decoder, then the model."""
        a, paths = self.args, self._jpegs()

        class Blobs(Dataset):
            def __len__(self) -> int:
                return len(paths)

            def __getitem__(self, i: int) -> tuple[str, bytes]:
                with open(paths[i], "rb") as f:
                    return paths[i], f.read()

        workers = os.cpu_count() or 1
        model = TorchModel(a.model, a.precision)
        decode = BatchDecoder.for_device(model.device, a.image_size)
        if not self.cuda:
            say(f"  no CUDA GPU: {decode.name} decodes on the CPU")
        t0 = time.perf_counter()
        loader = DataLoader(Blobs(), batch_size=a.batch_size, num_workers=workers, collate_fn=_columns)

        def counts() -> Iterator[int]:
            for batch_paths, blobs in loader:
                decoded = decode(batch_paths, blobs)
                model.classify(decoded.images)
                yield len(decoded.keys)

        return {**measure(counts(), t0), "num_workers": workers, "decoder": decode.name, "files": len(paths)}

    def _actor_map(self, ds, udf: type, kwargs: dict[str, Any]):
        """The seed's layout: one actor, on a whole GPU where there is one."""
        return ds.map_batches(udf, fn_constructor_kwargs=kwargs, batch_size=self.tuned.batch_size,
                              compute=ActorPoolStrategy(size=1), num_gpus=self.gpus, batch_format="numpy")  # fmt: skip

    def _jpegs(self, count: int | None = None) -> list[str]:
        t = time.perf_counter()
        paths = ensure_jpegs(count or self.jpeg_images, **self.jpeg_set)
        say(f"  {len(paths)} JPEG files ready in {time.perf_counter() - t:.1f} s")
        return paths

    def decode_profile(self) -> dict[str, Any]:
        """Where a GPU-decode batch's time goes, in this process without Ray, for each of the engine's decoders
        (`engine.core.decode.NVIMGCODEC_MIXES` and torchvision): the decoder alone, then with the resize, then
        with the model after it, as one actor call does them; and `pool_threads` threads, each with its own
        decoder and CUDA stream, decoding and classifying at once, as a GPU's actors do (img/s, synchronised).
        The model alone and PIL (the engine's CPU decode, one core) are timed for scale."""
        a = self.args
        files = self._jpegs(min(a.batch_size * (16 if self.cuda else 2), self.jpeg_images))
        blobs = [open(p, "rb").read() for p in files]
        batches = [
            (files[i : i + a.batch_size], blobs[i : i + a.batch_size]) for i in range(0, len(blobs), a.batch_size)
        ]
        model = TorchModel(a.model, a.precision)
        sync = torch.cuda.synchronize if self.cuda else (lambda: None)
        threads = self.tuned.concurrency

        def rate(step: Callable[[list[str], list[bytes]], Any], rounds: int = 2 if self.cuda else 1) -> float:
            for b in batches[:2]:
                step(*b)  # warm-up: decoder state, cudnn autotuning
            sync()
            t = time.perf_counter()
            for _ in range(rounds):
                for b in batches:
                    step(*b)
            sync()
            return round(rounds * len(files) / (time.perf_counter() - t), 1)

        def pool_rate(kind: str) -> float:
            decoders = [BatchDecoder.for_device(model.device, a.image_size, kind) for _ in range(threads)]

            def work(decode: BatchDecoder) -> None:
                with torch.inference_mode(), torch.cuda.stream(torch.cuda.Stream(model.device)):
                    for b in batches:
                        model.classify(decode(*b).images)

            with ThreadPoolExecutor(threads) as pool:
                list(pool.map(work, decoders[:1]))  # warm-up
                t = time.perf_counter()
                list(pool.map(work, decoders))
            return round(threads * len(files) / (time.perf_counter() - t), 1)

        kinds = ["torchvision", *(NVIMGCODEC_MIXES if self.cuda and nvimgcodec_installed() else [])]
        result: dict[str, Any] = {"batch_size": a.batch_size, "batches": len(batches), "pool_threads": threads,
                                  "jpeg_bytes_mean": round(statistics.fmean(map(len, blobs)))}  # fmt: skip
        result[CPU_DECODER] = {"decode_only_images_per_sec": rate(
            lambda paths, data: decode_images({"path": paths, "bytes": data}, a.image_size, True, None, ""), 1
        )}  # fmt: skip
        with torch.inference_mode():
            first = BatchDecoder.for_device(model.device, a.image_size, "torchvision")(*batches[0]).images
            result["model_only_images_per_sec"] = rate(lambda paths, data: model.logits(first[: len(data)]))
            for kind in kinds:
                try:
                    decode = BatchDecoder.for_device(model.device, a.image_size, kind)
                    result[kind] = {
                        "decoder": decode.name,
                        "decoder_only_images_per_sec": rate(lambda paths, data, d=decode: d.decode_jpegs(data)),
                        "decode_only_images_per_sec": rate(decode),
                        "decode_then_model_images_per_sec": rate(
                            lambda paths, data, d=decode: model.classify(d(paths, data).images)
                        ),
                        "pool_images_per_sec": pool_rate(kind) if self.cuda else None,
                    }
                except Exception as exc:  # one decoder that cannot run here does not end the profile
                    result[kind] = {"error": f"{type(exc).__name__}: {exc}"}
                say(f"  {kind}: {result[kind]}")
        return result

    def monitoring_overhead(self) -> dict[str, Any]:
        """tuned_actor with the engine's sampler on and off, in pairs ordered on-off, off-on, ... so drift
        cancels; medians compared. Also the driver CPU time each sample takes."""
        rates: dict[str, list[float]] = {"on": [], "off": []}
        config = self.tuned.replace(images=self.args.overhead_images or self.tuned.images)
        order = [m for i in range(self.args.overhead_pairs) for m in (("on", "off"), ("off", "on"))[i % 2]]
        TimedSampler.cpu_s.clear()
        for mode in order:
            wait_for_quiet_cpu()
            with sampler_class(QuietSampler if mode == "off" else TimedSampler):
                s = engine_case(config)["_summary"]
            # One formula both ways: with the sampler off there are no points to read.
            rates[mode].append((s["rows"] - self.tuned.batch_size) / (s["seconds"] - s["first_result_s"]))
            first, secs = s["first_result_s"], s["seconds"]
            say(f"  sampler {mode}: {rates[mode][-1]:.1f} img/s (first result {first} s, end {secs} s)")
        on, off = statistics.median(rates["on"]), statistics.median(rates["off"])
        per_sample = statistics.median(TimedSampler.cpu_s) if TimedSampler.cpu_s else None
        return dict(order=order, images=config.images, on_images_per_sec=rates["on"], off_images_per_sec=rates["off"],
                    median_on=on, median_off=off, overhead_pct=round((off - on) / off * 100, 2),
                    sampler_cpu_ms_per_sample=per_sample and round(per_sample * 1e3, 2),
                    sampler_cpu_pct_of_one_core=per_sample and round(per_sample / SAMPLE_INTERVAL_S * 100, 2),
                    rate="(rows - batch_size) / (seconds - first_result_s) from the engine summary")  # fmt: skip

    def streaming_1m(self) -> dict[str, Any]:
        a = self.args
        limit_mb = a.object_store_limit_mb or (256 if a.smoke else 2048)
        images = a.streaming_images or (20_000 if a.smoke else 1_000_000)
        case = engine_case(self.tuned.replace(images=images, object_store_limit_mb=limit_mb), timeout_s=7200)
        points = case.pop("_summary")["timeseries"]
        configure_context(self.tuned)  # lift the limit again for whatever runs next
        peak = max((p["object_store_used_bytes"] or 0 for p in points), default=None)
        at20 = next((p["ram_used_bytes"] for p in points if p["rows"] >= 0.2 * images), None)
        end = points[-1]["ram_used_bytes"] if points else None
        growth = round((end - at20) / at20 * 100, 2) if at20 and end else None
        by_rows = [(p["rows"], p["object_store_used_bytes"]) for p in points[:: max(1, len(points) // 60)]]
        return dict(**case, object_store_peak_bytes=peak, object_store_limit_bytes=limit_mb * 2**20,
                    limit_held=peak is not None and peak <= limit_mb * 2**20,
                    images_cross_object_store="_make_images" not in (case["operator"] or ""),
                    host_ram_used_at_20pct_bytes=at20, host_ram_used_end_bytes=end, host_ram_growth_pct=growth,
                    rss_flat=growth is not None and growth < 10,
                    object_store_used_by_rows=by_rows)  # fmt: skip

    def startup(self) -> dict[str, Any]:
        """Five cold launches (each the first after a fresh Ray start), then five warm ones, as the app does."""
        cold, ray_starts = [], []
        for i in range(5):
            connection.disconnect()
            t = time.perf_counter()
            connection.connect(None, warm=True)
            ray_starts.append(round(time.perf_counter() - t, 3))
            c = engine_case(self.tuned.replace(images=256))
            cold.append({"first_result_s": c["first_result_s"], "startup": c["startup"]})
            say(f"  cold launch {i + 1}: first result {c['first_result_s']} s")
        engine.execution.runner.runner().warm_up(wait=True)
        warm = []
        for i in range(5):
            wait_for_quiet_cpu()
            c = engine_case(self.tuned.replace(images=256))
            warm.append({"first_result_s": c["first_result_s"], "startup": c["startup"]})
            say(f"  warm launch {i + 1}: first result {c['first_result_s']} s")
        warm_workers = engine.execution.runner.runner().warm_workers
        return dict(ray_start_s=statistics.median(ray_starts), images=256, warm_workers=warm_workers,
                    cold=cold, cold_median_first_result_s=_median_first(cold), cold_median_startup=_median_phases(cold),
                    warm=warm, warm_median_first_result_s=_median_first(warm),
                    warm_median_startup=_median_phases(warm))  # fmt: skip


def _median_first(launches: list[dict]) -> float | None:
    known = [x["first_result_s"] for x in launches if x["first_result_s"] is not None]
    return statistics.median(known) if known else None


def _median_phases(launches: list[dict]) -> dict[str, float]:
    known = [x["startup"] for x in launches if x["startup"]]
    return {k: statistics.median(p[k] for p in known) for k in (known[0] if known else {})}


# --- report ------------------------------------------------------------------
def fmt(value: Any, spec: str = ".1f") -> str:
    return "-" if value is None else format(value, spec)


def table(cases: dict[str, dict]) -> str:
    ceiling = cases.get("ceiling", {}).get("steady_images_per_sec")
    lines = ["| case | steady img/s | % of ceiling | first result s | GPU util % | JPEG engines % | decoder |"]
    lines.append("|---|---:|---:|---:|---:|---:|---|")
    for name, c in cases.items():
        if "error" in c or "skipped" in c:
            lines.append(f"| {name} | {'error: ' + c['error'][:80] if 'error' in c else 'skipped'} | | | | | |")
            continue
        rate = c.get("steady_images_per_sec")
        pct = rate / ceiling * 100 if rate and ceiling else None
        first, util, jpeg = (
            fmt(c.get("first_result_s"), ".2f"),
            fmt(c.get("gpu_util_mean")),
            fmt(c.get("jpeg_util_mean")),
        )
        lines.append(f"| {name} | {fmt(rate)} | {fmt(pct)} | {first} | {util} | {jpeg} | {c.get('decoder') or '-'} |")
    return "\n".join(lines)


def speedups(cases: dict[str, dict]) -> dict[str, float | None]:
    def ratio(a: str, b: str) -> float | None:
        x, y = (cases.get(n, {}).get("steady_images_per_sec") for n in (a, b))
        return round(x / y, 3) if x and y else None

    return {
        "naive_to_tuned": ratio("tuned_actor", "naive"),
        "tuned_vs_ceiling": ratio("tuned_actor", "ceiling"),
        "tuned_vs_dataloader": ratio("tuned_actor", "torch_dataloader"),
        "real_jpeg_vs_ceiling": ratio("real_jpeg", "ceiling"),
        "real_jpeg_vs_cpu_decode": ratio("real_jpeg", "real_jpeg_cpu_decode"),
        "real_jpeg_vs_dataloader": ratio("real_jpeg", "torch_dataloader"),
        "real_jpeg_vs_dataloader_jpeg_cpu": ratio("real_jpeg", "torch_dataloader_jpeg_cpu"),
        "real_jpeg_vs_dataloader_jpeg_gpu": ratio("real_jpeg", "torch_dataloader_jpeg_gpu"),
    }


def start_warm_ray() -> float:
    """Start Ray as the app does at start (torch-ready workers, warm pool up); return the connect's seconds."""
    t = time.perf_counter()
    connection.connect(None, warm=True)  # Ray through the engine, so its worker set-up hook is used
    connect_s = time.perf_counter() - t
    engine.execution.runner.runner().warm_up(wait=True)
    return connect_s


def record(result: dict, headline: str, out: str | None) -> None:
    """Print a benchmark's headline figures (`result[headline]`); write the whole result as JSON to `out`."""
    print(json.dumps(result[headline]))
    if out:
        with open(out, "w") as f:
            json.dump(result, f, indent=1)


def environment(cuda: bool) -> tuple[str, dict[str, Any]]:
    versions = {"python": platform.python_version(), **{m.__name__: m.__version__ for m in (ray, torch, torchvision())}}
    gpu = "cpu"
    if cuda:
        gpus = nvml.read_gpus()
        gpu = gpus[0].name if gpus else torch.cuda.get_device_name(0)
        versions["cuda"] = torch.version.cuda
        try:
            with open("/proc/driver/nvidia/version") as f:
                versions["driver"] = re.search(r"Kernel Module(?: for \S+)?\s+(\d[\d.]*)", f.read()).group(1)
        except (OSError, AttributeError):
            query = ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"]
            try:
                versions["driver"] = subprocess.run(query, capture_output=True, text=True, timeout=20).stdout.split()[0]
            except (OSError, IndexError, subprocess.SubprocessError):
                versions["driver"] = None
    machine = {"cpu_count": os.cpu_count(), "ram_bytes": psutil.virtual_memory().total, "platform": platform.platform()}
    playground_env = {k: v for k, v in os.environ.items() if k.startswith("PLAYGROUND_")}  # switches the run obeyed
    return gpu, {"versions": versions, "machine": machine, "playground_env": playground_env}


def write(stem: str, report: dict[str, Any]) -> None:
    with open(stem + ".json", "w") as f:
        json.dump(report, f, indent=2, default=str)
    lines = [f"# {report['gpu']}", "", f"`{report['command']}`", "", table(report["cases"]), ""]
    lines += [f"- speedups: {json.dumps(report['speedups'])}"]
    if "monitoring_overhead" in report:
        lines.append(f"- monitoring_overhead_pct: {report['monitoring_overhead_pct']}")
    for key in ("streaming_1m", "startup"):
        if key in report:
            brief = {k: v for k, v in report[key].items() if not isinstance(v, (list, dict))}
            lines.append(f"- {key}: {json.dumps(brief, default=str)}")
    if "decode_profile" in report:
        lines.append(f"- decode_profile: {json.dumps(report['decode_profile'])}")
    with open(stem + ".md", "w") as f:
        f.write("\n".join(lines) + "\n")


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.run_bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="resnet50")
    p.add_argument("--precision", default="bf16", choices=("fp32", "bf16", "fp16"))
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--images", type=int, default=20_000)
    p.add_argument("--image-size", type=int, default=224)
    p.add_argument("--cases", default=",".join(CASES + SECTIONS), help="comma-separated subset, in any order")
    p.add_argument("--smoke", action="store_true", help="small sizes; GPU decode may run on the CPU")
    p.add_argument("--out", default=os.path.join("bench", "results"))
    p.add_argument("--time-budget-s", type=float, default=None, help="skip the cases left once this has passed")
    p.add_argument("--block-size-mb", type=int, default=None, help="tuned cases; default 64 (smoke 1)")
    p.add_argument("--actors", type=int, default=None, help="tuned cases on a GPU; default: the engine's GPU default")
    p.add_argument("--gpus-per-actor", type=float, default=None, help="tuned cases on a GPU; default: the engine's")
    p.add_argument("--calls-per-actor", type=int, default=None, help="batches per actor at once; default: the engine's")
    p.add_argument("--naive-images", type=int, default=None, help="default: images // 20, at least 64")
    p.add_argument("--seed-images", type=int, default=None, help="default: images // 20, at least one batch")
    p.add_argument("--overhead-images", type=int, default=None, help="monitoring_overhead runs; default: --images")
    p.add_argument("--overhead-pairs", type=int, default=3, help="monitoring_overhead: on/off pairs")
    p.add_argument(
        "--jpeg-images", type=int, default=None, help="JPEG cases: photos written and read (default: --images)"
    )
    p.add_argument(
        "--jpeg-shape", type=photo_shape, default=None, help="JPEG cases: photos of one size, WxH (e.g. 500x375)"
    )
    p.add_argument("--jpeg-kb", type=int, default=None, help="JPEG cases: the file size each photo aims at, KB")
    p.add_argument(
        "--gpu-decoder",
        default="auto",
        choices=("auto", "torchvision", *NVIMGCODEC_MIXES),
        help=f"GPU decode everywhere ({DECODER_ENV}): auto = nvImageCodec where installed and the GPU has JPEG engines",
    )
    p.add_argument("--streaming-images", type=int, default=None, help="default 1,000,000 (smoke 20,000)")
    p.add_argument(
        "--object-store-limit-mb",
        type=int,
        default=None,
        help="every Ray case's object-store limit (default none; streaming_1m: 2048, smoke 256)",
    )
    args = p.parse_args(argv)
    positive = (
        "jpeg_images",
        "jpeg_kb",
        "object_store_limit_mb",
        "seed_images",
        "overhead_images",
        "overhead_pairs",
        "actors",
        "calls_per_actor",
    )
    for name in positive:
        if getattr(args, name) is not None and getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1, not {getattr(args, name)}")
    if args.gpu_decoder in NVIMGCODEC_MIXES and not (nvimgcodec_installed() and torch.cuda.is_available()):
        p.error(
            f"--gpu-decoder {args.gpu_decoder} needs a CUDA GPU and `pip install nvidia-nvimgcodec-cu13 nvidia-nvjpeg`"
        )
    args.cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    unknown = sorted(set(args.cases) - set(CASES + SECTIONS))
    if unknown:
        p.error(f"unknown case(s) {', '.join(unknown)}; choose from {', '.join(CASES + SECTIONS)}")
    return args


def photo_shape(text: str) -> tuple[int, int]:
    """`WxH` -> (height, width), each side within what the photo generator can cut."""
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not WIDTHxHEIGHT, e.g. 500x375") from None
    if not all(16 <= side <= PHOTO_SIDES[1] for side in (width, height)):
        raise argparse.ArgumentTypeError(f"each side must be 16 to {PHOTO_SIDES[1]} px, not {text}")
    return height, width


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        bench = Bench(args)  # validates the tuned layout before Ray starts
    except ConfigError as exc:
        print(f"python -m bench.run_bench: error: {exc}", file=sys.stderr)
        return 2
    if args.gpu_decoder != "auto":
        os.environ[DECODER_ENV] = args.gpu_decoder  # before Ray starts, so its workers inherit it
    start_warm_ray()
    gpu, env = environment(bench.cuda)
    slug = "cpu" if gpu == "cpu" else re.sub(r"[^a-z0-9]+", "-", gpu.lower()).strip("-")
    stem = os.path.join(args.out, f"{time.strftime('%Y-%m-%d')}-{slug}{'-smoke' if args.smoke else ''}")
    os.makedirs(args.out, exist_ok=True)
    settings = {**{k: v for k, v in vars(args).items() if k != "out"}, "device": bench.device}
    settings.update(block_size_mb=bench.tuned.block_size_mb, weights=weights_kind(args.model))
    command = " ".join(["python -m bench.run_bench", *map(shlex.quote, argv)])
    report: dict[str, Any] = {"gpu": gpu, **env, "command": command, "settings": settings, "cases": {}}
    say(f"benchmark on {gpu}: {args.model} {args.precision}, batch {args.batch_size}, {args.images} images")
    for name in [n for n in CASES + SECTIONS if n in args.cases]:
        elapsed = time.perf_counter() - T0
        if args.time_budget_s is not None and elapsed > args.time_budget_s:
            result: dict[str, Any] = {"skipped": f"time budget {args.time_budget_s:.0f} s used up at {elapsed:.0f} s"}
        else:
            quiet = wait_for_quiet_cpu()
            say(f"{name}: starting (waited {quiet} s for a quiet CPU)")
            try:
                result = getattr(bench, name)()
                result.pop("_summary", None)
            except Exception as exc:  # one broken case must not lose the others
                log.warning("%s failed", name, exc_info=True)
                result = {"error": f"{type(exc).__name__}: {exc}".splitlines()[0][:500]}
            free_device_memory()
        if name in CASES:
            report["cases"][name] = result
            say(f"{name}: done " + table({name: result}).splitlines()[-1])
        else:
            report[name] = result
            if name == "monitoring_overhead":
                report["monitoring_overhead_pct"] = result.get("overhead_pct")
            say(f"{name}: done " + json.dumps({k: v for k, v in result.items() if not isinstance(v, (list, dict))}))
        report["speedups"] = speedups(report["cases"])
        write(stem, report)
    say(f"results in {stem}.json and {stem}.md\n\n{table(report['cases'])}\n\nspeedups: {report['speedups']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
