"""Scaling over GPUs: the tuned actor pipeline on 1 GPU, then on every GPU of the host, side by side.

    python -m bench.scaling --model resnet50 --precision bf16 --batch-size 256 --images 200000

Same engine run, same settings; only the number of actors grows with the GPUs
(4 actors sharing each GPU, as bench.tune_actor found best). Prints and writes
the steady images/sec of each and the scaling efficiency (rate_N / (N x rate_1)).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from bench.run_bench import environment, start_warm_ray
from engine import RunConfig, start


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--model", default="resnet50")
    p.add_argument("--precision", default="bf16")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--images", type=int, default=200_000)
    p.add_argument("--actors-per-gpu", type=int, default=4)
    p.add_argument(
        "--object-store-limit-mb",
        type=int,
        default=None,
        help="bounds the backlog built while actors start, which otherwise inflates a short run's rate",
    )
    p.add_argument("--out", default="bench/results")
    args = p.parse_args(argv)
    start_warm_ray()
    import ray

    gpus = int(ray.cluster_resources().get("GPU", 0))
    if gpus < 2:
        print(f"needs 2 or more GPUs; this host has {gpus}")
        return 2
    rows = []
    for n in (1, gpus):
        config = RunConfig(model=args.model, precision=args.precision, batch_size=args.batch_size, images=args.images,
                           concurrency=n * args.actors_per_gpu, num_gpus=1 / args.actors_per_gpu,
                           block_size_mb=64, object_store_limit_mb=args.object_store_limit_mb)  # fmt: skip
        run = start(config)
        run.wait()
        s = run.summary
        rows.append({"gpus": n, "actors": config.concurrency, "status": s["status"], "error": s["error"],
                     "steady_images_per_sec": s["steady_images_per_sec"], "first_result_s": s["first_result_s"],
                     "seconds": s["seconds"], "nodes": s["nodes"]})  # fmt: skip
        print(json.dumps({k: v for k, v in rows[-1].items() if k != "nodes"}), flush=True)
    one, many = rows[0]["steady_images_per_sec"], rows[-1]["steady_images_per_sec"]
    gpu, env = environment(True)
    result = {
        "gpu": gpu,
        **env,
        "command": "python -m bench.scaling " + " ".join(argv if argv is not None else sys.argv[1:]),
        "settings": vars(args),
        "runs": rows,
        "speedup": many / one if one and many else None,
        "efficiency": many / (gpus * one) if one and many else None,
    }
    os.makedirs(args.out, exist_ok=True)
    name = f"{time.strftime('%Y-%m-%d')}-scaling-{gpus}gpu-{args.actors_per_gpu}-actors-per-gpu.json"
    with open(os.path.join(args.out, name), "w") as f:
        json.dump(result, f, indent=1)
    print(json.dumps({"speedup": result["speedup"], "efficiency": result["efficiency"]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
