"""`python -m engine advise`: the tutorial's decision framework for a GPU node and a model."""

from __future__ import annotations

import argparse
import sys

from engine.cli.output import write_json
from engine.cli.parser import EXIT_OK, EXIT_USAGE


def advise_command(args: argparse.Namespace) -> int:
    """Print each constraint (the binding one marked) and the advice; write it with what a run should use."""
    from engine.insight.advisor import AdviceError, advise, explain, predicted

    try:
        advice = advise(
            gpus=args.gpus,
            gpu_mem_gb=args.gpu_mem_gb,
            node_mem_gb=args.node_mem_gb,
            model_size_gb=args.model_size_gb,
            sample_mb=args.sample_mb,
            batch_mem_gb=args.batch_mem_gb,
            image_size=args.image_size,
            calls_per_actor=args.calls_per_actor,
        )
    except AdviceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    for name, constraint in advice.constraints.items():
        mark = "  <- binds" if name == advice.binding else ""
        print(f"{name:<13} {constraint['value']:>5}  {constraint['formula']}{mark}")
    print(f"batch size    {advice.batch_size:>5}  {advice.sizing['batch_size']}")
    print(f"block size MB {advice.block_size_mb:>5}  {advice.sizing['block_size_mb']}")
    print(
        f"advice: concurrency {advice.concurrency}, batch size {advice.batch_size}, "
        f"block size {advice.block_size_mb} MB ({advice.binding} binds)"
    )
    print(explain(advice))
    try:
        write_json(args.json_path, {**advice.to_dict(), "predicted": predicted(advice)})
    except OSError as exc:
        print(f"error: advise: {exc}".splitlines()[0], file=sys.stderr)
        return EXIT_USAGE
    return EXIT_OK
