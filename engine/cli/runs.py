"""`python -m engine run` and `compare`: runs followed in the terminal, Ctrl-C stopping them cleanly."""

from __future__ import annotations

import argparse
import sys

from engine.cli.output import human, progress_line, write_json
from engine.cli.parser import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE
from engine.core.config import ConfigError, RunConfig, pipeline_defaults

STOP_WAIT_S = 180.0  # after Ctrl-C, how long to wait for the run to end (it may still be connecting to Ray)


class Interrupted(Exception):
    """Ctrl-C ended a run; carries its summary."""

    def __init__(self, summary: dict) -> None:
        self.summary = summary


def config_from(args: argparse.Namespace, **overrides) -> RunConfig:
    """The validated RunConfig the flags describe; a setting left out takes its pipeline's default."""
    values = {
        "model": args.model,
        "images": args.images,
        "image_size": args.image_size,
        "batch_size": getattr(args, "batch_size", None),
        "concurrency": getattr(args, "concurrency", None),
        "block_size_mb": getattr(args, "block_size_mb", None),
        "num_gpus": args.num_gpus,
        "precision": args.precision,
        "data": args.data,
        "object_store_limit_mb": args.object_store_limit_mb,
        "stages": args.stages,
        "preprocess_cpus": args.preprocess_cpus,
        "preprocess_concurrency": args.preprocess_concurrency,
        "second_model": args.second_model,
        "on_bad_file": args.on_bad_file,
        "address": args.address,
        "weights_file": args.weights_file,
    }
    values.update(overrides)
    defaults = pipeline_defaults(values.get("pipeline", "actor"))
    if values["num_gpus"]:
        defaults["batch_size"] = pipeline_defaults("actor", gpu=True)["batch_size"]
    for key in ("batch_size", "concurrency"):
        if values.get(key) is None:
            values[key] = defaults[key]
    return RunConfig(**values).validate()


def runs_command(args: argparse.Namespace, command: str) -> int:
    """`run` (one config) or `compare` (naive, then actor); prints each summary, writes JSON."""
    try:
        if args.command == "run":
            configs = [config_from(args, pipeline=args.pipeline, output=args.output)]
        else:
            naive = config_from(
                args, pipeline="naive", batch_size=args.naive_batch_size, concurrency=args.naive_concurrency
            )
            configs = [naive, config_from(args, pipeline="actor")]
    except (ConfigError, TypeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    summaries = []
    try:
        for config in configs:
            summaries.append(follow(config, args.quiet))
            print(human(summaries[-1]))
    except Interrupted as stopped:
        summaries.append(stopped.summary)
        write_json(args.json_path, {**payload(args.command, summaries), "command": command})
        print(human(stopped.summary) if "pipeline" in stopped.summary else "stopped")
        return EXIT_INTERRUPTED
    result = {**payload(args.command, summaries), "command": command}
    if args.command == "compare" and "speedup" in result:
        print(f"speedup (actor vs naive, images/sec): {result['speedup']:.1f}x")
    write_json(args.json_path, result)
    return EXIT_OK if all(s["status"] == "finished" for s in summaries) else EXIT_FAILED


def follow(config: RunConfig, quiet: bool) -> dict:
    """Start a run and draw its progress until it ends; Ctrl-C stops it and still returns its summary."""
    from engine.execution.runner import start

    run = start(config)
    try:
        while not run.wait(0.5):
            if not quiet:
                points = run.timeseries()
                last = points[-1] if points else {"rows": 0, "images_per_sec": 0.0}
                progress_line(last["rows"], config.images, last["images_per_sec"], run.phase)
        if not quiet:
            sys.stderr.write("\n")
    except KeyboardInterrupt:
        sys.stderr.write("\nstopping... (Ctrl-C again to quit without waiting)\n")
        run.stop()
        try:
            run.wait(STOP_WAIT_S)  # exiting while the run still talks to Ray could hang in Ray's own shutdown
        except KeyboardInterrupt:
            pass
        raise Interrupted(run.summary or {"status": "stopped"}) from None
    return run.summary


def payload(command: str, summaries: list[dict]) -> dict:
    """What `--json` holds: a run's summary, or a comparison's runs and speedups."""
    if command == "run":
        return summaries[0]
    result: dict = {"runs": summaries}
    if len(summaries) == 2 and all(s["status"] == "finished" for s in summaries):
        naive, actor = summaries
        result["speedup"] = actor["images_per_sec"] / naive["images_per_sec"]
        if naive.get("steady_images_per_sec") and actor.get("steady_images_per_sec"):
            result["steady_speedup"] = actor["steady_images_per_sec"] / naive["steady_images_per_sec"]
    return result
