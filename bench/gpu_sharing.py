"""How fast does one GPU go when P processes x T threads share it, without Ray? The bound for each actor layout.

    python -m bench.gpu_sharing [--layouts 1x1,1x3,4x2] [--inputs host,device] [--seconds 6] [--out FILE]

A layout is PROCESSESxTHREADS, as a pipeline of P actors with T batches in flight each
would run. Every process builds the engine's `Predictor` (random weights; throughput is
the same) and each of its threads calls it in a loop on one fixed batch:

- `host`: the actor's whole call, `Predictor(batch)`, on a uint8 numpy batch that is
  copied to the GPU on every call, from pageable memory as Ray's object store hands it over;
- `device`: only the forward pass, on a batch already on the GPU, then the small labels
  copy back that syncs each call (what `ceiling` measures, one sync per batch).

All processes start each phase together (a barrier) and run it for `--seconds`, of which the
first second is not counted. A row gives the total img/s, and the process CPU seconds
spent per batch. What Ray Data adds on top of a layout is the gap between its
`bench.tune_actor` cell and its `host` row here.

The processes also start building their Predictors together, as a pool's actors do at
launch (torch already imported, as in a warm Ray worker): `load_s` lists how long each
took from that common start, its wait for the GPU's load turn included
(`engine.core.inference.gpu_load_turn`; `PLAYGROUND_GPU_LOADS=together` in the environment
builds them all at once), to set against a run's `load_model` phase.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import sys
import threading
import time

from engine.core.config import ConfigError, RunConfig

WARM_S = 1.0


def parse_layouts(text: str) -> list[tuple[int, int]]:
    """`1x1,4x2` -> [(1, 1), (4, 2)]: processes and threads per process, each at least 1."""
    layouts = []
    for part in text.split(","):
        try:
            procs, threads = (int(n) for n in part.split("x"))
        except ValueError:
            raise argparse.ArgumentTypeError(f"layout {part!r}: want PROCESSESxTHREADS, e.g. 4x2") from None
        if procs < 1 or threads < 1:
            raise argparse.ArgumentTypeError(f"layout {part!r}: processes and threads must be at least 1")
        layouts.append((procs, threads))
    return layouts


def _phase(predictor, batch, on_device, threads: int, seconds: float) -> dict:
    """Run `threads` callers for `seconds`; count the calls that start after the first WARM_S."""
    start = time.perf_counter()
    warm_end, deadline = start + WARM_S, start + seconds
    counted, spans, lock = [0], [], threading.Lock()

    def caller():
        import torch

        first = last = None
        while (t0 := time.perf_counter()) < deadline:
            if on_device is None:
                predictor(batch)
            else:
                with torch.inference_mode(), predictor.stream():
                    predictor.logits(on_device).argmax(dim=1).cpu()
            if t0 >= warm_end:
                first = t0 if first is None else first
                last = time.perf_counter()
                with lock:
                    counted[0] += 1
        if first is not None:
            with lock:
                spans.append((first, last))

    cpu = time.process_time()
    workers = [threading.Thread(target=caller) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    cpu = time.process_time() - cpu
    seconds_counted = max(s[1] for s in spans) - min(s[0] for s in spans) if spans else 0.0
    return {"batches": counted[0], "seconds": seconds_counted, "cpu_s": cpu}


def _worker(args: dict, phases: list[tuple[int, str]], barrier, results) -> None:
    """One process: build the Predictor (timed, all at once), warm every thread's stream up, then run each phase."""
    import numpy as np
    import torch

    from engine.core.data import synthetic_image
    from engine.core.inference import Predictor
    from engine.execution.warm import prepare_worker

    prepare_worker()  # the imports a warm Ray worker has done before its actor starts
    barrier.wait()
    start = time.perf_counter()
    predictor = Predictor(args["model"], None, args["precision"])
    results.put(time.perf_counter() - start)
    size, count = args["image_size"], args["batch_size"]
    images = np.stack([synthetic_image(i, size) for i in range(count)])
    batch = {"image": images, "key": np.arange(count)}
    resident = torch.from_numpy(images).to(predictor.device)
    if predictor.device.type == "cuda":
        torch.cuda.synchronize()
    for threads in sorted({t for t, _ in phases}):
        _phase(predictor, batch, None, threads, WARM_S + 1)  # cuDNN autotuning, each thread's stream
    for threads, inputs in phases:
        barrier.wait()
        results.put(_phase(predictor, batch, resident if inputs == "device" else None, threads, args["seconds"]))
    results.close()
    results.join_thread()  # every row has reached the parent
    # Skip the interpreter's teardown: on a 2-core CI machine a CPU worker once crashed in it (SIGSEGV)
    # after sending all its rows.
    os._exit(0)


def _abort_if_one_dies(workers: list, barrier) -> None:
    """Break the barrier once a worker has failed, so that the parent stops at once instead of at its timeout;
    returns once every worker has ended."""
    while any(w.exitcode is None for w in workers):
        if any(w.exitcode not in (None, 0) for w in workers):
            barrier.abort()
            return
        time.sleep(0.5)


def _next(results, workers: list, timeout: float):
    """The next item a worker sent; fails as soon as a worker has failed instead of waiting `timeout` for it."""
    import queue

    deadline = time.time() + timeout
    while True:
        try:
            return results.get(timeout=min(1.0, max(0.0, deadline - time.time())))
        except queue.Empty:
            failed = [w.exitcode for w in workers if w.exitcode not in (None, 0)]
            if failed or time.time() >= deadline:
                raise RuntimeError(f"a worker process failed or went silent (exit codes {failed})") from None


def run(args: dict, layouts: list[tuple[int, int]], inputs: list[str]) -> tuple[list[dict], list[dict]]:
    """Every layout and input kind (rows), and each process count's Predictor build times (loads).

    The processes of one count are started once and run all their phases.
    """
    rows, loads = [], []
    ctx = mp.get_context("spawn")
    for procs in dict.fromkeys(p for p, _ in layouts):
        phases = [(t, kind) for p, t in layouts if p == procs for kind in inputs]
        barrier, results = ctx.Barrier(procs + 1), ctx.Queue()
        workers = [ctx.Process(target=_worker, args=(args, phases, barrier, results)) for _ in range(procs)]
        for w in workers:
            w.start()
        threading.Thread(target=_abort_if_one_dies, args=(workers, barrier), daemon=True).start()
        barrier.wait(timeout=600)
        took = sorted(round(_next(results, workers, 600), 2) for _ in range(procs))
        loads.append({"processes": procs, "load_s": took})
        print(json.dumps(loads[-1]), flush=True)
        for threads, kind in phases:
            barrier.wait(timeout=600)
            parts = [_next(results, workers, args["seconds"] + 600) for _ in range(procs)]
            rate = sum(p["batches"] * args["batch_size"] / p["seconds"] for p in parts if p["seconds"] > 0)
            batches = sum(p["batches"] for p in parts)
            rows.append({"processes": procs, "threads": threads, "inputs": kind, "images_per_sec": round(rate, 1),
                         "cpu_s_per_batch": round(sum(p["cpu_s"] for p in parts) / max(batches, 1), 4)})  # fmt: skip
            print(json.dumps(rows[-1]), flush=True)
        for w in workers:
            w.join(timeout=60)
        if any(w.exitcode != 0 for w in workers):
            raise RuntimeError(f"a {procs}-process worker failed (exit codes {[w.exitcode for w in workers]})")
    return rows, loads


def table(rows: list[dict]) -> str:
    lines = ["| processes x threads | inputs | img/s | CPU s per batch |", "|---|---|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['processes']}x{r['threads']} | {r['inputs']} | {r['images_per_sec']:,.0f} | "
                     f"{r['cpu_s_per_batch']} |")  # fmt: skip
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="resnet50")
    parser.add_argument("--precision", default="bf16")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--layouts", default="1x1,1x2,1x3,2x2,4x1,4x2,8x1")
    parser.add_argument("--inputs", default="host,device", help="host, device or both (comma list)")
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--out", help="append the result as one JSON line to this file")
    argv = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(argv)
    try:
        layouts = parse_layouts(args.layouts)
    except argparse.ArgumentTypeError as exc:
        parser.error(str(exc))
    inputs = args.inputs.split(",")
    if not set(inputs) <= {"host", "device"}:
        parser.error(f"--inputs {args.inputs!r}: want host, device or host,device")
    if args.seconds <= WARM_S:
        parser.error(f"--seconds must be more than {WARM_S:g} (the first second is not counted)")
    try:  # the engine's own checks, before any process starts: a bad model would leave the others on the barrier
        RunConfig(model=args.model, precision=args.precision, batch_size=args.batch_size,
                  image_size=args.image_size).validate()  # fmt: skip
    except ConfigError as exc:
        parser.error(str(exc))
    import torch

    from bench.run_bench import environment

    gpu, env = environment(torch.cuda.is_available())
    settings = {k: getattr(args, k) for k in ("model", "precision", "batch_size", "image_size", "seconds")}
    rows, loads = run(settings, layouts, inputs)
    print(table(rows))
    for load in loads:
        print(f"{load['processes']} Predictors built at once: {', '.join(f'{s:.2f}' for s in load['load_s'])} s")
    if args.out:
        command = "python -m bench.gpu_sharing " + " ".join(argv)
        report = {"gpu": gpu, **env, "command": command, "settings": settings, "rows": rows, "loads": loads}
        with open(args.out, "a") as f:
            f.write(json.dumps(report) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
