"""`python -m engine run` and `compare`: runs followed in the terminal, Ctrl-C stopping them cleanly."""

from __future__ import annotations

import argparse
import sys

from engine.cli.output import follow_until_done, human, progress_line, write_json
from engine.cli.parser import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE
from engine.core.config import ConfigError, RunConfig
from engine.core.defaults import Machine, detect_machine, fill, pick_layout
from engine.observe.cluster import ClusterError


class Interrupted(Exception):
    """Ctrl-C ended a run; carries its summary."""

    def __init__(self, summary: dict) -> None:
        self.summary = summary


def config_from(args: argparse.Namespace, machine: Machine, **overrides) -> RunConfig:
    """The validated RunConfig the flags describe; every setting left out comes from the machine's layout."""
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
        "decode": args.decode,
        "address": args.address,
        "weights_file": args.weights_file,
    }
    values.update(overrides)
    device = "cpu" if values["num_gpus"] == 0 else args.device
    layout = pick_layout(values.get("pipeline", "actor"), machine, device)
    if values["num_gpus"] and values.get("concurrency") is None and machine.gpus:  # whole GPUs per actor: fill them
        values["concurrency"] = max(1, int(machine.gpus / values["num_gpus"]))
    values, layout = fill(values, layout)
    if layout.applied:
        values["defaults"] = layout.describe()
    return RunConfig(**values).validate()


def configs_for(args: argparse.Namespace, machine: Machine) -> list[RunConfig]:
    """`run`: one config; `compare`: naive then actor, on the same images (the naive default's, sized for a demo)."""
    if args.command == "run":
        return [config_from(args, machine, pipeline=args.pipeline, output=args.output)]
    naive = config_from(
        args, machine, pipeline="naive", batch_size=args.naive_batch_size, concurrency=args.naive_concurrency
    )
    return [naive, config_from(args, machine, pipeline="actor", images=naive.images)]


def needs_machine(args: argparse.Namespace) -> bool:
    """Whether any setting is left to the machine's defaults (then Ray is asked what the machine has)."""
    names = ("images", "batch_size", "concurrency", "block_size_mb", "num_gpus", "precision")
    return any(getattr(args, name, None) is None for name in names)


def runs_command(args: argparse.Namespace, command: str) -> int:
    """`run` (one config) or `compare` (naive, then actor); prints each summary, writes JSON."""
    try:
        configs = configs_for(args, Machine())  # bad input is refused here, before Ray starts
        if needs_machine(args):
            address = connect_for_cli(args.address)
            args.address = address
            configs = configs_for(args, detect_machine())
            if configs[-1].defaults:
                print(f"{configs[-1].defaults} (flags override; --device cpu for the CPU)")
    except (ConfigError, TypeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ClusterError as exc:  # Ray could not be started or joined: nothing ran, and the summary says why
        print(f"error: {exc}", file=sys.stderr)
        write_json(args.json_path, {"status": "failed", "error": str(exc), "command": command})
        return EXIT_FAILED
    summaries = []
    try:
        for config in configs:
            summaries.append(follow(config, args.quiet))
            print(human(summaries[-1]))
        leave_warm_workers()
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


def connect_for_cli(address: str | None) -> str | None:
    """Join `address`, else a Ray already running on this machine (the app's, `ray start --head`), else start one.

    Returns the address joined (None for a Ray started here), for the runs to use.
    """
    from engine.execution import connection

    connection.connect(address, join_running=address is None)
    return connection.connected_address()


def leave_warm_workers() -> None:
    """In a Ray running here that this process joined, top each node back up to torch-ready workers of no job.

    They outlive this process and serve the next one of the same env (the next CLI run, the app's runs): its
    actors start in workers that have imported torch already.
    """
    from engine.execution import connection, warm
    from engine.execution.runner import WARM_WORKERS

    if connection.torch_ready_workers() and connection.connected_address():
        with connection.held("leaving warm workers") as connected:
            if connected:
                warm.prestart(WARM_WORKERS, any_job=True)  # None where this Ray cannot (ray_compat names it)


def follow(config: RunConfig, quiet: bool) -> dict:
    """Start a run and draw its progress until it ends; Ctrl-C stops it and still returns its summary."""
    from engine.execution.runner import start

    run = start(config)
    if follow_until_done(run, _progress, quiet):
        raise Interrupted(run.summary or {"status": "stopped"})
    return run.summary


def _progress(run) -> None:
    points = run.timeseries()
    last = points[-1] if points else {"rows": 0, "images_per_sec": 0.0}
    progress_line(last["rows"], run.total, last["images_per_sec"], run.phase)


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
