"""`python -m engine sweep`: a grid of runs, each cell printed as it ends, then the recommendation."""

from __future__ import annotations

import argparse
import sys

from engine.cli.output import write_json
from engine.cli.parser import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE
from engine.cli.runs import config_from, connect_for_cli, needs_machine
from engine.core.config import ConfigError
from engine.core.defaults import Machine, detect_machine


def sweep_command(args: argparse.Namespace, command: str) -> int:
    """Run the grid, printing each cell as it ends; Ctrl-C stops it and keeps what finished."""
    from engine.execution.runner import runner
    from engine.insight.sweep import MEASURES, Sweep, parse_grid

    try:
        batches = parse_grid(args.batch_sizes, "--batch-sizes")
        concurrencies = parse_grid(args.concurrency_grid, "--concurrency")
        blocks = parse_grid(args.block_grid, "--block-size-mb")
        grid = {"batch_size": batches[0], "concurrency": concurrencies[0], "block_size_mb": blocks[0]}
        base = config_from(args, Machine(), pipeline=args.pipeline, **grid)  # bad input: refused before Ray starts
        if needs_machine(args):
            args.address = connect_for_cli(args.address)
            base = config_from(args, detect_machine(), pipeline=args.pipeline, **grid)
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
            f"block {best.block_size_mb} MB = {sweep.rate(best):,.1f} img/s ({MEASURES[sweep.measure()]})"
        )
    else:
        print("no cell finished: nothing to recommend")
    write_json(args.json_path, {**sweep.to_dict(), "command": command})
    return EXIT_INTERRUPTED if sweep.status == "stopped" else (EXIT_OK if best else EXIT_FAILED)


def _print_cells(sweep, shown: int, quiet: bool) -> int:
    """Print the cells that ended since the last call, and the one in progress; return how many are printed."""
    ended = [c for c in sweep.cells if c.status not in ("pending", "running")]
    for cell in ended[shown:]:
        rate = f"{sweep.rate(cell):9,.1f} img/s" if sweep.rate(cell) else "        - img/s"
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
