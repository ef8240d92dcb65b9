"""The Advisor's prediction checked against a real sweep on this machine.

    python -m bench.advisor_check --model resnet50 --precision bf16 --images 30000

1. Measures the GPU memory one sample needs (the slope of peak memory between
   two batch sizes of the bare model), the Advisor's `sample_mb` input.
2. Asks the Advisor for concurrency, batch size and block size for this node.
3. Runs the advised layout (clipped to this machine's GPUs, as Verify does) and
   a sweep around it, and writes both, with predicted against measured, to
   bench/results/<date>-<gpu>-advisor-check.json.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys

from bench.run_bench import environment, start_warm_ray
from engine import runner
from engine.insight import advisor
from engine.insight.sweep import Sweep
from engine.observe import cluster


def sample_mb(model: str, precision: str, image_size: int, small: int = 64, large: int = 256) -> float:
    """GPU memory per sample (MB) of the engine's forward pass, from two batch sizes' peak memory."""
    import torch

    from engine.core.inference import Predictor

    predictor = Predictor(model, None, precision)
    peaks = []
    for batch in (small, large):
        images = torch.randint(0, 256, (batch, image_size, image_size, 3), dtype=torch.uint8, device="cuda")
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        with torch.inference_mode():
            predictor.logits(images)
        torch.cuda.synchronize()
        peaks.append(torch.cuda.max_memory_allocated() - base)
        del images
    del predictor
    torch.cuda.empty_cache()
    return (peaks[1] - peaks[0]) / (large - small) / 2**20


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--model", default="resnet50")
    p.add_argument("--precision", default="bf16")
    p.add_argument("--images", type=int, default=30_000)
    p.add_argument("--batch-sizes", default="64,256,1024")
    p.add_argument("--concurrency", default="1,2,4", help="actors sharing the GPU(s) in the sweep")
    p.add_argument("--block-size-mb", type=int, default=64, help="sweep block size (advised run: its own)")
    p.add_argument("--sample-mb", type=float, default=None, help="skip measuring (needed without a GPU)")
    p.add_argument("--plan-gpus", type=int, default=None, help="advise for this many GPUs instead of this node's")
    p.add_argument("--plan-gpu-mem-gb", type=float, default=None, help="advise for this GPU memory instead")
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    command = "python -m bench.advisor_check " + " ".join(sys.argv[1:] if argv is None else argv)

    per_sample = args.sample_mb or sample_mb(args.model, args.precision, 224)
    start_warm_ray()
    machine = advisor.detect_machine(args.model)
    here = {"gpus": machine["gpus"], "cpus": sum(n.cpus for n in cluster.nodes() if n.alive)}
    advice = advisor.advise(
        gpus=args.plan_gpus or machine["gpus"],
        gpu_mem_gb=args.plan_gpu_mem_gb or machine["gpu_mem_gb"],
        node_mem_gb=machine["node_mem_gb"],
        model_size_gb=machine["model_size_gb"],
        sample_mb=round(per_sample, 2),
    )
    print(advisor.explain(advice), flush=True)
    config, notes = advisor.verify_config(advice, args.model, args.images, here["gpus"], here["cpus"])
    config = config.replace(precision=args.precision)
    advised = runner().submit(config)
    advised.wait()
    s = advised.summary
    verify = {
        "config": config.to_dict(),
        "clipped": notes,
        "predicted": advisor.predicted(advice, concurrency=config.concurrency, images=config.images),
        "measured": {k: s.get(k) for k in ("status", "error", "steady_images_per_sec", "images_per_sec",
                                           "peak_gpu_mem_used_bytes", "peak_object_store_bytes", "first_result_s")},
    }  # fmt: skip
    print(json.dumps(verify["measured"]), flush=True)

    batches = sorted({*map(int, args.batch_sizes.split(",")), advice.batch_size})
    concurrencies = [int(c) for c in args.concurrency.split(",")]
    share = round(here["gpus"] / max(concurrencies), 2) if here["gpus"] else 0.0
    base = config.replace(num_gpus=min(1.0, share), calls_per_actor=None, images=args.images)
    sweep = Sweep(base, batches, concurrencies, [args.block_size_mb]).start(runner())
    sweep.wait()
    best = sweep.recommended()
    for cell in sweep.cells:
        print(cell.batch_size, cell.concurrency, cell.status, sweep.rate(cell), cell.error, flush=True)

    gpu_name, env = environment(bool(here["gpus"]))
    report = {
        "gpu": gpu_name,
        **env,
        "command": command,
        "measured_sample_mb": per_sample,
        "machine": machine,
        "advice": advice.to_dict(),
        "verify": verify,
        "sweep": sweep.to_dict(),
        "advised_vs_recommended": {
            "advised": {
                "batch_size": advice.batch_size,
                "concurrency": config.concurrency,
                "images_per_sec": s.get("steady_images_per_sec") or s.get("images_per_sec"),
            },
            "recommended": {
                "batch_size": best.batch_size,
                "concurrency": best.concurrency,
                "images_per_sec": sweep.rate(best),
            }
            if best
            else None,
        },  # fmt: skip
    }
    stem = args.out or f"bench/results/{datetime.date.today()}-{gpu_name.lower().replace(' ', '-')}-advisor-check"
    with open(stem + ".json", "w") as f:
        json.dump(report, f, indent=2, default=str)
    print(json.dumps(report["advised_vs_recommended"]), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
