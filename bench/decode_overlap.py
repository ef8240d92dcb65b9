"""Can one process's GPU decode overlap its model's forward pass? Rates, GIL shares and a CUDA trace.

    python -m bench.decode_overlap [--batches 12] [--jpeg-shape 500x375 --jpeg-kb 50] [--out FILE]

One process without Ray, on one GPU, with the engine's decoders (`engine.core.decode.BatchDecoder`)
and its model (`engine.core.inference.Predictor`), on the engine's generated JPEG photos. For each
decoder (nvImageCodec's default, torchvision's) it times, in img/s over the same batches:

- `model`: the forward pass alone, on one decoded batch again and again;
- `decode`: decode and resize alone;
- `serial`: decode, then the model, on one thread (one actor call);
- `pipelined`: a decoding thread and a model thread, each on a CUDA stream of its own, a queue of
  two batches between them: the overlap one actor could reach with its calls in flight;
- `pipelined_graph`: the same with the forward pass replayed as one CUDA graph, which holds the
  GIL for one launch instead of one per layer;
- `pipelined_priority`: `pipelined` with decode on a stream of the highest priority, whose kernels
  the GPU schedules before the model's as SMs free up.

`beside` asks what slows decode down when something else runs: decode's rate while another thread
keeps busy a CUDA stream with a one-block sleep kernel (the device busy, its SMs free), replays the
model's CUDA graph (SMs busy, the GIL mostly free), runs the model eagerly, or spins in Python (the GIL
busy, the GPU idle); and the model graph's rate while another thread decodes. Each is timed on its
own stream, so a figure near `decode` alone means that neighbour does not hold decode back.

`gil_share` is the share of the GIL that a spinning Python thread gets while the decoder (or the
model) runs, against while the main thread sleeps: 1.0 means the call releases the GIL. `trace` is
a torch profiler trace of `pipelined`: the CUDA calls that took the most host time, and how long
kernels ran on two streams at once against on any.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import queue
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from engine.core.config import ConfigError, RunConfig

DECODERS = ("nvimgcodec", "torchvision")
HIGH_PRIORITY = -100  # torch maps it to the device's highest stream priority


def graphed(model, batch_shape: tuple[int, ...], device):
    """`model.logits` as one CUDA graph replay on a static input (full batches only)."""
    import torch

    static_x = torch.zeros(batch_shape, device=device)
    side = torch.cuda.Stream(device)
    side.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(side), torch.inference_mode():
        for _ in range(3):  # cuDNN's and the allocator's first-call work stays out of the graph
            model.logits(static_x)
    torch.cuda.current_stream(device).wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.inference_mode(), torch.cuda.graph(graph):
        out = model.logits(static_x)

    def logits(x):
        static_x.copy_(x)
        graph.replay()
        return out

    return logits


def pipelined(decode: Callable, logits: Callable, batches: list, device, depth: int = 2, priority: int = 0) -> None:
    """Decode on one thread and stream, the model on another, a bounded queue of decoded batches between.

    `priority` is the decode stream's (lower is higher; torch clamps it to the device's range).
    """
    import torch

    handoff: queue.Queue = queue.Queue(maxsize=depth)
    decode_stream, model_stream = torch.cuda.Stream(device, priority=priority), torch.cuda.Stream(device)
    errors: list[BaseException] = []

    def produce() -> None:
        try:
            with torch.inference_mode(), torch.cuda.stream(decode_stream):
                for paths, blobs in batches:
                    images = decode(paths, blobs).images
                    ready = torch.cuda.Event()
                    ready.record(decode_stream)
                    handoff.put((images, ready))
        except BaseException as exc:
            errors.append(exc)
        finally:
            handoff.put(None)  # the model thread ends whatever happened here

    def consume() -> None:
        with torch.inference_mode(), torch.cuda.stream(model_stream):
            while (item := handoff.get()) is not None:
                if errors:
                    continue  # drain, so the decoding thread never waits on a full queue
                images, ready = item
                model_stream.wait_event(ready)
                images.record_stream(model_stream)  # the decode stream's memory, read on this one
                try:
                    logits(images)
                except BaseException as exc:
                    errors.append(exc)

    threads = [threading.Thread(target=produce), threading.Thread(target=consume)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]


def seconds_on(device, work: Callable[[], Any]) -> float:
    """Seconds from an idle GPU until `work` and everything it queued on the GPU have finished."""
    import torch

    torch.cuda.synchronize(device)
    start = time.perf_counter()
    work()
    torch.cuda.synchronize(device)
    return time.perf_counter() - start


def beside(work: Callable[[], Any], neighbour: Callable[[], Any], device, priority: int = 0) -> float:
    """Seconds `work` takes on this thread's stream (of `priority`) while `neighbour` runs again and again on
    another thread."""
    import torch

    stop = threading.Event()
    errors: list[BaseException] = []

    def loop() -> None:
        try:
            with torch.inference_mode(), torch.cuda.stream(torch.cuda.Stream(device)):
                while not stop.is_set():
                    neighbour()
                    torch.cuda.current_stream(device).synchronize()  # a bounded queue, the GIL free while waiting
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=loop)
    thread.start()
    time.sleep(0.5)  # the neighbour is in its stride before the clock starts
    try:
        with torch.cuda.stream(torch.cuda.Stream(device, priority=priority)):
            start = time.perf_counter()
            work()
            torch.cuda.current_stream(device).synchronize()
            seconds = time.perf_counter() - start
    finally:
        stop.set()
        thread.join()
    if errors:
        raise errors[0]
    return seconds


def spin() -> None:
    """About 10 ms of pure Python: holds the GIL, touches no GPU."""
    end = time.perf_counter() + 0.01
    while time.perf_counter() < end:
        pass


def sleep_kernel(device) -> Callable[[], None]:
    """About 10 ms of one GPU block spinning on the clock: the device busy, nearly all its SMs free."""
    import torch

    khz = getattr(torch.cuda.get_device_properties(device), "clock_rate", 1_750_000)
    cycles = int(khz * 10)

    def run() -> None:
        torch.cuda._sleep(cycles)

    return run


def decode_parts(device, batches: list, size: int) -> dict[str, dict[str, float]]:
    """nvImageCodec's decode taken apart, each part alone and beside a sleep kernel on another stream (img/s).

    `library`: the decoder's call alone; `as_tensor` / `from_dlpack`: that call and each image handed to
    torch through the CUDA array interface (what the engine does) or DLPack (which passes torch's stream to
    the producer); `torchvision`: torchvision's nvJPEG decoder as the engine calls it; `resize`: the engine's
    batched resize of decoded images; `layout_pageable` / `layout_pinned`:
    the resize's per-image table copied to the GPU from pageable or pinned host memory. Each with the device's
    default memory pool as it is, then kept (`keep_default_pool`).
    """
    import torch
    from nvidia import nvimgcodec

    from engine.core.decode import (
        DEFAULT_MIX,
        NVIMGCODEC_CPU_THREADS,
        NVIMGCODEC_MIXES,
        nvimgcodec_backends,
        pick,
        resize_batch,
    )

    decoder = nvimgcodec.Decoder(device_id=device.index or 0, max_num_cpu_threads=NVIMGCODEC_CPU_THREADS,
                                 backends=nvimgcodec_backends(NVIMGCODEC_MIXES[DEFAULT_MIX][1]))  # fmt: skip
    params = nvimgcodec.DecodeParams(color_spec=nvimgcodec.ColorSpec.SRGB)
    images = len(batches) * len(batches[0][0])

    def library(blobs):
        streams = [nvimgcodec.CodeStream(bytes(blob)) for blob in blobs]
        return decoder.decode(streams, params=params, cuda_stream=torch.cuda.current_stream(device).cuda_stream)

    _, torchvision_decode = pick(device, "torchvision")
    decoded = [[torch.as_tensor(i, device=device).permute(2, 0, 1) for i in library(b)] for _, b in batches]
    layout = [(i * 600_000, 1, 1500, 3, 375, 500) for i in range(len(batches[0][0]))]
    parts = {
        "library": lambda: [library(b) for _, b in batches],
        "as_tensor": lambda: [[torch.as_tensor(i, device=device) for i in library(b)] for _, b in batches],
        "from_dlpack": lambda: [[torch.from_dlpack(i) for i in library(b)] for _, b in batches],
        "torchvision": lambda: [torchvision_decode(b) for _, b in batches],
        "resize": lambda: [resize_batch(batch, size, device) for batch in decoded],
        "layout_pageable": lambda: [torch.tensor(layout).to(device, non_blocking=True) for _ in batches],
        "layout_pinned": lambda: [torch.tensor(layout).pin_memory().to(device, non_blocking=True) for _ in batches],
    }
    sleep = sleep_kernel(device)
    result = {}
    for pool in ("default", "kept"):
        if pool == "kept" and not keep_default_pool(device):
            break
        for name, work in parts.items():
            try:
                work()  # first-call set-up out of the timing
                alone = round(images / seconds_on(device, work), 1)
                near = round(images / beside(work, sleep, device), 1)
            except Exception as exc:  # one part that cannot run must not cost the others' figures
                result[f"{name} ({pool} pool)"] = {"error": f"{type(exc).__name__}: {exc}"}
                print(f"part {name}, {pool} pool: {type(exc).__name__}: {exc}", flush=True)
                continue
            result[f"{name} ({pool} pool)"] = {"alone": alone, "beside_sleep_kernel": near}
            print(f"part {name}, {pool} pool: alone {alone} img/s, beside a sleep kernel {near} img/s", flush=True)
    return result


def keep_default_pool(device) -> bool:
    """Set the device's default CUDA memory pool to keep freed memory instead of releasing it at each sync.

    nvImageCodec allocates each image with `cudaMallocAsync` from that pool, whose release threshold is 0
    by default: memory freed goes back to the driver at the next synchronisation and is mapped again.
    True if the driver took the setting.
    """
    import ctypes

    cuda = ctypes.CDLL("libcuda.so.1")
    handle, pool = ctypes.c_int(), ctypes.c_void_p()
    threshold = ctypes.c_uint64(2**64 - 1)
    codes = [
        cuda.cuDeviceGet(ctypes.byref(handle), device.index or 0),
        cuda.cuDeviceGetDefaultMemPool(ctypes.byref(pool), handle),
        cuda.cuMemPoolSetAttribute(pool, 4, ctypes.byref(threshold)),  # CU_MEMPOOL_ATTR_RELEASE_THRESHOLD
    ]
    print(f"keeping the default memory pool: CUDA driver results {codes}", flush=True)
    return not any(codes)


def gil_share(work: Callable[[], Any]) -> float:
    """A spinning thread's loop rate while `work` runs on this thread, over its rate while this thread sleeps."""
    state = {"stop": False, "loops": 0}

    def spin() -> None:
        while not state["stop"]:
            state["loops"] += 1

    def loop_rate(task: Callable[[], Any]) -> tuple[float, float]:
        state.update(stop=False, loops=0)
        spinner = threading.Thread(target=spin)
        spinner.start()
        start = time.perf_counter()
        task()
        seconds = time.perf_counter() - start
        state["stop"] = True
        spinner.join()
        return state["loops"] / seconds, seconds

    busy, seconds = loop_rate(work)
    idle, _ = loop_rate(lambda: time.sleep(seconds))
    return round(busy / idle, 3)


def trace(work: Callable[[], Any]) -> dict[str, Any]:
    """CUDA calls by host time, and kernel time on two streams at once against on any, while `work` runs."""
    import tempfile

    import torch
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        work()
        torch.cuda.synchronize()
    with tempfile.NamedTemporaryFile(suffix=".json") as file:
        prof.export_chrome_trace(file.name)
        events = json.loads(pathlib.Path(file.name).read_text())["traceEvents"]
    calls: dict[str, list[float]] = {}
    streams: dict[str, float] = {}
    edges: list[tuple[float, int]] = []
    for event in events:
        if event.get("cat") in ("cuda_runtime", "cuda_driver"):
            count_us = calls.setdefault(event["name"], [0, 0.0])
            count_us[0] += 1
            count_us[1] += event.get("dur", 0)
        elif event.get("cat") in ("kernel", "gpu_memcpy", "gpu_memset") and event.get("dur", 0) > 0:
            edges += [(event["ts"], 1), (event["ts"] + event["dur"], -1)]
            key = f"stream {event['args'].get('stream')}"
            streams[key] = streams.get(key, 0.0) + event["dur"]
    edges.sort()
    active, last, any_us, both_us = 0, None, 0.0, 0.0
    for at, step in edges:
        if last is not None and active:
            any_us += at - last
            both_us += (at - last) if active >= 2 else 0.0
        active, last = active + step, at
    top = sorted(calls.items(), key=lambda item: -item[1][1])[:12]
    return {"cuda_calls": [[name, n, round(us)] for name, (n, us) in top],
            "gpu_busy_us": round(any_us), "two_streams_us": round(both_us),
            "stream_busy_us": {k: round(v) for k, v in sorted(streams.items())}}  # fmt: skip


def profile_decoder(kind: str, model, batches: list, size: int) -> dict[str, Any]:
    """Every figure in the module's docstring, for one decoder."""
    import torch

    from engine.core.decode import BatchDecoder

    device = model.device
    decoder = BatchDecoder.for_device(device, size, kind)
    images = len(batches) * len(batches[0][0])

    def rate(name: str, work: Callable[[], Any]) -> float:
        result = round(images / seconds_on(device, work), 1)
        print(f"{kind} {name}: {result} img/s", flush=True)  # a run cut short still shows what it measured
        return result

    def serial(logits: Callable) -> None:
        with torch.inference_mode():
            for paths, blobs in batches:
                logits(decoder(paths, blobs).images)

    serial(model.logits)  # warm-up: decoder state, cuDNN's first calls
    with torch.inference_mode():
        one = decoder(*batches[0]).images

    def model_only(logits: Callable = model.logits) -> None:
        with torch.inference_mode():
            for _ in batches:
                logits(one)

    def decode_only() -> None:
        with torch.inference_mode():
            for paths, blobs in batches:
                decoder(paths, blobs)

    graph = graphed(model, tuple(one.shape), device)

    def beside_rate(
        name: str, work: Callable[[], Any], neighbour: Callable[[], Any], priority: int = 0, count: int = images
    ) -> float:
        result = round(count / beside(work, neighbour, device, priority), 1)
        print(f"{kind} {name}: {result} img/s", flush=True)
        return result

    def decode_loop() -> None:
        with torch.inference_mode():
            decoder(*batches[0])

    def eager_model() -> None:
        with torch.inference_mode():
            model.logits(one)

    def graph_model() -> None:
        graph(one)

    besides = {
        "decode_beside_sleep_kernel": beside_rate("decode beside a sleep kernel", decode_only, sleep_kernel(device)),
        "decode_beside_model_graph": beside_rate("decode beside the model graph", decode_only, graph_model),
        "decode_high_priority_beside_model_graph": beside_rate(
            "decode on a high-priority stream beside the model graph", decode_only, graph_model, HIGH_PRIORITY
        ),
        "decode_beside_model_eager": beside_rate("decode beside the eager model", decode_only, eager_model),
        # one batch: beside a thread that holds the GIL, decode runs at a few dozen img/s
        "decode_beside_python_spin": beside_rate(
            "decode beside a spinning thread", decode_loop, spin, count=len(batches[0][0])
        ),
        "model_graph_beside_decode": beside_rate("model graph beside decode", lambda: model_only(graph), decode_loop),
        "jpegs_only": rate("jpegs_only", lambda: [decoder.decode_jpegs(blobs) for _, blobs in batches]),
        "jpegs_beside_sleep_kernel": beside_rate(
            "jpegs beside a sleep kernel",
            lambda: [decoder.decode_jpegs(blobs) for _, blobs in batches],
            sleep_kernel(device),
        ),
    }
    return {
        "beside": besides,
        "decoder": decoder.name,
        "images_per_sec": {
            "model": rate("model", model_only),
            "model_graph": rate("model_graph", lambda: model_only(graph)),
            "decode": rate("decode", decode_only),
            "serial": rate("serial", lambda: serial(model.logits)),
            "pipelined": rate("pipelined", lambda: pipelined(decoder, model.logits, batches, device)),
            "pipelined_graph": rate("pipelined_graph", lambda: pipelined(decoder, graph, batches, device)),
            "pipelined_priority": rate(
                "pipelined_priority",
                lambda: pipelined(decoder, model.logits, batches, device, priority=HIGH_PRIORITY),
            ),
        },
        "gil_share": {"decode": gil_share(decode_only), "model": gil_share(model_only)},
        "trace": trace(lambda: pipelined(decoder, model.logits, batches, device)),
    }


def main(argv: list[str] | None = None) -> int:
    from bench.run_bench import TorchModel, environment, photo_shape, record

    p = argparse.ArgumentParser(prog="python -m bench.decode_overlap", description=__doc__.splitlines()[0])
    p.add_argument("--model", default="resnet50")
    p.add_argument("--precision", default="bf16", choices=("fp32", "bf16", "fp16"))
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--image-size", type=int, default=224)
    p.add_argument("--batches", type=int, default=12, help="batches timed per figure")
    p.add_argument("--jpeg-shape", type=photo_shape, default=None, help="photos of one size, WxH (e.g. 500x375)")
    p.add_argument("--jpeg-kb", type=int, default=None, help="the file size each photo aims at, KB")
    p.add_argument("--decoders", default=",".join(DECODERS), help=f"any of {', '.join(DECODERS)}")
    p.add_argument("--parts", action="store_true", help="only nvImageCodec's decode taken apart (see decode_parts)")
    p.add_argument("--out", default=None, help="write the whole result as JSON here")
    args = p.parse_args(argv)
    for name in ("batches", "jpeg_kb"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    try:  # the engine's own checks of the model, precision, batch and image size
        RunConfig(model=args.model, precision=args.precision, batch_size=args.batch_size,
                  image_size=args.image_size).validate()  # fmt: skip
    except ConfigError as exc:
        p.error(str(exc))
    decoders = args.decoders.split(",")
    if not set(decoders) <= set(DECODERS):
        p.error(f"--decoders takes {', '.join(DECODERS)}, not {args.decoders}")
    import torch

    if not torch.cuda.is_available():
        print("decode_overlap needs an NVIDIA GPU: CUDA streams are what it measures", file=sys.stderr)
        return 2
    from engine.core.data import ensure_jpegs

    aim = args.jpeg_kb * 1000 if args.jpeg_kb else None
    files = ensure_jpegs(args.batch_size * args.batches, shape=args.jpeg_shape, aim_bytes=aim)
    blobs = [pathlib.Path(path).read_bytes() for path in files]
    step = args.batch_size
    batches = [(files[i : i + step], blobs[i : i + step]) for i in range(0, len(files), step)]
    model = TorchModel(args.model, args.precision)
    gpu, env = environment(cuda=True)
    command = "python -m bench.decode_overlap " + " ".join(sys.argv[1:] if argv is None else argv)
    if args.parts:
        result = {"gpu": gpu, **env, "command": command}
        result["headline"] = result["parts"] = decode_parts(model.device, batches, args.image_size)
        record(result, "headline", args.out)
        return 0
    figures = {kind: profile_decoder(kind, model, batches, args.image_size) for kind in decoders}
    result = {"gpu": gpu, **env, "command": command, "decoders": figures}
    result["headline"] = {kind: r["images_per_sec"] for kind, r in result["decoders"].items()}
    record(result, "headline", args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
