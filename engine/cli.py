"""`python -m engine`: run, compare and inspect batch-inference runs from a terminal.

Bad arguments print one line and exit 2; a run prints a progress bar on stderr,
a short summary on stdout, and writes its full summary with `--json`.
"""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import sqlite3
import sys

from engine.config import ConfigError, RunConfig, pipeline_defaults
from engine.errors import redact
from engine.models import MODEL_NAMES

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
STOP_WAIT_S = 180.0  # after Ctrl-C, how long to wait for the run to end (it may still be connecting to Ray)


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports a bad argument in one line (and exit code 2)."""

    def error(self, message: str) -> None:
        self.exit(EXIT_USAGE, f"error: {message}\n")


def _positive_float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None


def _add_run_flags(
    p: argparse.ArgumentParser, batch_default: int | None, concurrency_default: int | None, grid: bool = False
) -> None:
    """The flags every run takes; with `grid`, batch size, concurrency and block size take comma lists."""
    p.add_argument("--model", default="resnet18", help=f"one of {', '.join(MODEL_NAMES)}")
    p.add_argument("--images", type=int, default=256)
    p.add_argument("--image-size", type=int, default=224)
    if grid:
        p.add_argument("--batch-sizes", default="16,64,256", help="comma list, e.g. 16,64,256")
        p.add_argument("--concurrency", dest="concurrency_grid", default="1,2", help="comma list, e.g. 1,2")
        p.add_argument("--block-size-mb", dest="block_grid", default="16", help="comma list, e.g. 32,128")
    else:
        p.add_argument("--batch-size", type=int, default=batch_default)
        p.add_argument("--concurrency", type=int, default=concurrency_default)
        p.add_argument("--block-size-mb", type=int, default=16)
    p.add_argument("--num-gpus", type=_positive_float, default=0.0, help="GPUs per worker (0 = CPU)")
    p.add_argument("--precision", default="fp32", help="fp32, bf16 or fp16")
    p.add_argument("--data", default="synthetic", help="synthetic, jpeg, or a folder/URI of images")
    p.add_argument("--stages", default="single", help="single, cpu_preprocess or ensemble")
    p.add_argument("--preprocess-cpus", type=_positive_float, default=1.0, help="CPUs per pre-processing task")
    p.add_argument("--preprocess-concurrency", type=int, default=2, help="pre-processing tasks at once")
    p.add_argument("--second-model", default=None, help="the ensemble's second classifier")
    p.add_argument("--on-bad-file", default="skip", help="skip (counted and named) or fail")
    p.add_argument("--object-store-limit-mb", type=int, default=None)
    p.add_argument("--address", default=None, help="join an existing Ray cluster (HOST:PORT)")
    p.add_argument("--weights-file", default=None, help="a torchvision state-dict file")
    p.add_argument("--json", dest="json_path", default=None, help="write the full summary here")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def build_parser() -> OneLineParser:
    parser = OneLineParser(prog="python -m engine", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)
    run = sub.add_parser("run", help="one run of the naive or actor pipeline")
    run.add_argument("--pipeline", default="actor", help="naive or actor")
    run.add_argument("--output", default=None, help="write predictions as Parquet into this folder")
    _add_run_flags(run, None, None)
    compare = sub.add_parser("compare", help="naive, then actor, on the same data; prints the speedup")
    _add_run_flags(compare, 32, 1)
    compare.add_argument("--naive-batch-size", type=int, default=4)
    compare.add_argument("--naive-concurrency", type=int, default=2)
    history = sub.add_parser("history", help="every recorded run, newest first")
    history.add_argument("--json", dest="json_path", default=None, help="write the list here")
    history.add_argument("--export", default=None, help="write every run in full (JSON) to this file")
    history.add_argument("--import", dest="import_path", default=None, help="add the runs of an export file")
    history.add_argument("--db", default=None, help="the SQLite file (default: PLAYGROUND_DB or the cache folder)")
    sweep = sub.add_parser("sweep", help="a grid of runs, one at a time, ending in a recommendation")
    sweep.add_argument("--pipeline", default="actor", help="naive or actor")
    _add_run_flags(sweep, None, None, grid=True)
    advise = sub.add_parser("advise", help="concurrency, batch size and block size for a GPU node and a model")
    advise.add_argument("--gpus", type=int, required=True, help="GPUs on the node")
    advise.add_argument("--gpu-mem-gb", type=_positive_float, required=True, help="memory of one GPU")
    advise.add_argument("--node-mem-gb", type=_positive_float, required=True, help="the node's memory (RAM)")
    advise.add_argument("--model-size-gb", type=_positive_float, required=True, help="the model's weights")
    advise.add_argument("--sample-mb", type=_positive_float, default=3.0, help="GPU memory one sample needs")
    advise.add_argument("--batch-mem-gb", type=_positive_float, default=2.0, help="host memory per batch in an actor")
    advise.add_argument("--image-size", type=int, default=224)
    advise.add_argument("--calls-per-actor", type=int, default=1, help="batches an actor works on at once")
    advise.add_argument("--json", dest="json_path", default=None, help="write the advice here")
    return parser


def _advise(args: argparse.Namespace) -> int:
    """Print each constraint (the binding one marked) and the advice; write it with what a run should use."""
    from engine.advisor import AdviceError, advise, explain, predicted

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
        _write_json(args.json_path, {**advice.to_dict(), "predicted": predicted(advice)})
    except OSError as exc:
        print(f"error: advise: {exc}".splitlines()[0], file=sys.stderr)
        return EXIT_USAGE
    return EXIT_OK


def _history(args: argparse.Namespace) -> int:
    from engine.store import RunStore

    store = RunStore(args.db)
    if args.import_path:
        with open(args.import_path) as f:
            print(f"imported {store.import_json(f.read())} run(s)")
    if args.export:
        with open(args.export, "w") as f:
            f.write(store.export_json())
    runs = store.history()
    for r in runs:
        rate = f"{r['images_per_sec']:.1f} img/s" if r["images_per_sec"] else "-"
        print(f"{r['id']}  {r['status']:<11} {r['pipeline']:<5} {r['model']:<18} {rate}  {r['error'] or ''}")
    _write_json(args.json_path, {"runs": runs})
    return EXIT_OK


def _sweep(args: argparse.Namespace, command: str) -> int:
    """Run the grid, printing each cell as it ends; Ctrl-C stops it and keeps what finished."""
    from engine.run import runner
    from engine.sweep import Sweep, parse_grid

    try:
        batches = parse_grid(args.batch_sizes, "--batch-sizes")
        concurrencies = parse_grid(args.concurrency_grid, "--concurrency")
        blocks = parse_grid(args.block_grid, "--block-size-mb")
        base = _config(
            args, pipeline=args.pipeline, batch_size=batches[0], concurrency=concurrencies[0], block_size_mb=blocks[0]
        )
        sweep = Sweep(base, batches, concurrencies, blocks)
    except (ConfigError, TypeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    sweep.start(runner())
    shown = 0
    try:
        while not sweep.wait(0.5):
            shown = _print_cells(sweep, shown, args.quiet)
    except KeyboardInterrupt:
        sys.stderr.write("\nstopping the sweep...\n")
        sweep.stop()
        sweep.wait(60)
    _print_cells(sweep, shown, quiet=True)
    best = sweep.recommended()
    if best:
        print(
            f"recommended: batch {best.batch_size}, concurrency {best.concurrency}, "
            f"block {best.block_size_mb} MB = {best.rate:,.1f} img/s"
        )
    else:
        print("no cell finished: nothing to recommend")
    _write_json(args.json_path, {**sweep.to_dict(), "command": command})
    return EXIT_INTERRUPTED if sweep.status == "stopped" else (EXIT_OK if best else EXIT_FAILED)


def _print_cells(sweep, shown: int, quiet: bool) -> int:
    """Print the cells that ended since the last call, and the one in progress; return how many are printed."""
    ended = [c for c in sweep.cells if c.status not in ("pending", "running")]
    for cell in ended[shown:]:
        rate = f"{cell.rate:9,.1f} img/s" if cell.rate else "        - img/s"
        print(
            f"batch {cell.batch_size:>5}  concurrency {cell.concurrency:>3}  block {cell.block_size_mb:>4} MB  "
            f"{cell.status:<8} {rate}  {cell.error or ''}"
        )
    run = sweep.current
    if run is not None and not quiet:
        done, total = sweep.progress()
        points = run.timeseries()
        rows = points[-1]["rows"] if points else 0
        sys.stderr.write(f"\rcell {done + 1}/{total}: {rows}/{run.config.images} images  {run.phase[:40]:<40}")
        sys.stderr.flush()
    return len(ended)


def _config(args: argparse.Namespace, **overrides) -> RunConfig:
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
        value = defaults[key]
        if values.get(key) is None:
            values[key] = value
    return RunConfig(**values).validate()


def _progress(run, total: int, quiet: bool) -> None:
    """Wait for the run, drawing a one-line progress bar on stderr."""
    while not run.wait(0.5):
        if quiet:
            continue
        points = run.timeseries()
        rows = points[-1]["rows"] if points else 0
        rate = points[-1]["images_per_sec"] if points else 0.0
        filled = int(30 * rows / total) if total else 0
        sys.stderr.write(
            f"\r[{'#' * filled}{'.' * (30 - filled)}] {rows}/{total} images  {rate:7.1f} img/s  {run.phase[:40]:<40}"
        )
        sys.stderr.flush()
    if not quiet:
        sys.stderr.write("\n")


def _human(summary: dict) -> str:
    steady = summary.get("steady_images_per_sec")
    first = summary.get("first_result_s")
    line = (
        f"{summary['status']}: {summary['pipeline']} {summary['model']} ({summary['weights']} weights) "
        f"{summary['rows']}/{summary['images']} images in {summary['seconds']:.1f}s = "
        f"{summary['images_per_sec']:.1f} img/s"
    )
    if steady:
        line += f", steady {steady:.1f} img/s"
    if first is not None:
        line += f", first result {first:.2f}s"
    if summary.get("skipped_files"):
        names = ", ".join(summary["skipped_names"][:3])
        line += f"\nskipped {summary['skipped_files']} unreadable file(s): {names}"
    line += f", model loads {summary['model_loads']}"
    if summary.get("error"):
        line += f"\nerror: {summary['error']}"
    return line


def _execute(config: RunConfig, quiet: bool) -> dict:
    """Start a run and follow it; Ctrl-C stops it and still returns its summary."""
    from engine.run import start

    run = start(config)
    try:
        _progress(run, config.images, quiet)
    except KeyboardInterrupt:
        sys.stderr.write("\nstopping... (Ctrl-C again to quit without waiting)\n")
        run.stop()
        try:
            run.wait(STOP_WAIT_S)  # exiting while the run still talks to Ray could hang in Ray's own shutdown
        except KeyboardInterrupt:
            pass
        raise _Interrupted(run.summary or {"status": "stopped"}) from None
    return run.summary


class _Interrupted(Exception):
    def __init__(self, summary: dict) -> None:
        self.summary = summary


def _write_json(path: str | None, payload: dict) -> None:
    if path:
        with open(path, "w") as f:
            json.dump(payload, f, indent=1, default=str)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    command = redact(shlex.join(["python", "-m", "engine", *argv]))
    if args.command == "advise":
        return _advise(args)
    if args.command == "sweep":
        return _sweep(args, command)
    if args.command == "history":
        try:
            return _history(args)
        except (OSError, ValueError, KeyError, sqlite3.Error) as exc:  # missing file, bad export, unusable db
            print(f"error: history: {exc}".splitlines()[0], file=sys.stderr)
            return EXIT_USAGE
    try:
        if args.command == "run":
            config = _config(args, pipeline=args.pipeline, output=args.output)
            configs = [config]
        else:
            configs = [
                _config(args, pipeline="naive", batch_size=args.naive_batch_size, concurrency=args.naive_concurrency),
                _config(args, pipeline="actor"),
            ]
    except (ConfigError, TypeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE

    summaries = []
    try:
        for config in configs:
            summaries.append(_execute(config, args.quiet))
            print(_human(summaries[-1]))
    except _Interrupted as stopped:
        summaries.append(stopped.summary)
        _write_json(args.json_path, {**_payload(args.command, summaries), "command": command})
        print(_human(stopped.summary) if "pipeline" in stopped.summary else "stopped")
        return EXIT_INTERRUPTED
    payload = {**_payload(args.command, summaries), "command": command}
    if args.command == "compare" and "speedup" in payload:
        print(f"speedup (actor vs naive, images/sec): {payload['speedup']:.1f}x")
    _write_json(args.json_path, payload)
    return EXIT_OK if all(s["status"] == "finished" for s in summaries) else EXIT_FAILED


def _payload(command: str, summaries: list[dict]) -> dict:
    if command == "run":
        return summaries[0]
    payload: dict = {"runs": summaries}
    if len(summaries) == 2 and all(s["status"] == "finished" for s in summaries):
        naive, actor = summaries
        payload["speedup"] = actor["images_per_sec"] / naive["images_per_sec"]
        if naive.get("steady_images_per_sec") and actor.get("steady_images_per_sec"):
            payload["steady_speedup"] = actor["steady_images_per_sec"] / naive["steady_images_per_sec"]
    return payload
