"""`python -m engine realtime`: requests at a rate into one model behind a dynamic batcher, measured.

A progress line on stderr while it runs, a one-line summary on stdout, the full summary with
`--json`. Bad input is one line and exit 2; Ctrl-C stops the run (exit 130, status "stopped").
"""

from __future__ import annotations

import argparse
import sys

from engine.cli.output import follow_until_done, write_json
from engine.cli.parser import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, number
from engine.core.config import ConfigError
from engine.core.models import MODEL_NAMES
from engine.realtime.config import RealtimeConfig


def add_realtime_parser(sub) -> None:
    """The `realtime` subcommand and its flags."""
    p = sub.add_parser("realtime", help="one image per request at a rate, dynamically batched; latency measured")
    p.add_argument("--model", default="resnet18", help=f"one of {', '.join(MODEL_NAMES)}")
    p.add_argument("--rate", type=number, default=20.0, help="requests per second offered (Poisson arrivals)")
    p.add_argument("--max-batch", type=int, default=8, help="the most requests in one forward pass")
    p.add_argument("--max-wait-ms", type=number, default=20.0, help="the longest the oldest request waits for more")
    p.add_argument("--seconds", type=number, default=10.0, help="how long requests arrive")
    p.add_argument("--image-size", type=int, default=224)
    p.add_argument("--num-gpus", type=int, default=0, help="one model server per GPU; 0 = one on the CPU")
    p.add_argument("--precision", default="fp32", help="fp32, bf16 or fp16")
    p.add_argument("--address", default=None, help="join an existing Ray cluster (HOST:PORT)")
    p.add_argument("--json", dest="json_path", default=None, help="write the full summary here")
    p.add_argument("--quiet", action="store_true", help="no progress line")


def realtime_command(args: argparse.Namespace, command: str) -> int:
    """Run it, follow it, print and write its summary; the exit code says how it ended."""
    from engine.execution.runner import runner
    from engine.realtime.run import RealtimeRun

    try:
        config = RealtimeConfig(
            model=args.model, rate=args.rate, max_batch=args.max_batch, max_wait_ms=args.max_wait_ms,
            seconds=args.seconds, image_size=args.image_size, num_gpus=args.num_gpus, precision=args.precision,
            address=args.address,
        ).validate()  # fmt: skip
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    run = runner().enqueue(RealtimeRun(config, origin="cli"))
    follow_until_done(run, _progress, args.quiet)
    summary = run.summary or {"status": "stopped"}
    write_json(args.json_path, {**summary, "command": command})
    print(human(summary))
    if summary["status"] == "stopped":
        return EXIT_INTERRUPTED
    return EXIT_OK if summary["status"] == "finished" else EXIT_FAILED


def _progress(run) -> None:
    """Redraw the one-line progress on stderr: time, counts, the latest window's latency and rate."""
    points = run.timeseries()
    if not points:
        sys.stderr.write(f"\r{run.phase[:70]:<70}")
    else:
        p = points[-1]
        sys.stderr.write(
            f"\r{p['t']:5.1f}/{run.config.seconds:g} s  sent {p['arrived']}  answered {p['answered']}  "
            f"p50 {_ms(p['latency_p50_ms'])}  p99 {_ms(p['latency_p99_ms'])}  {p['throughput']:7.1f} req/s  "
            f"queue {p['queue_depth']}   "
        )
    sys.stderr.flush()


def human(summary: dict) -> str:
    """A real-time run's summary in one line (a second one for an error)."""
    if "answered" not in summary:
        return summary["status"] + (f"\nerror: {summary['error']}" if summary.get("error") else "")
    batch = summary.get("batch_size_mean")
    line = (
        f"{summary['status']}: realtime {summary['model']} at {summary['rate']:g} req/s "
        f"(max batch {summary['max_batch']}, max wait {summary['max_wait_ms']:g} ms): "
        f"{summary['answered']}/{summary['requests']} answered, p50 {_ms(summary['latency_p50_ms'])}, "
        f"p95 {_ms(summary['latency_p95_ms'])}, p99 {_ms(summary['latency_p99_ms'])}, "
        f"{_number(summary['throughput'])} req/s, mean batch {_number(batch)}"
    )
    if summary.get("overloaded"):
        line += ", OVERLOADED: the rate exceeded what the servers answer"
    if summary.get("error"):
        line += f"\nerror: {summary['error']}"
    return line


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f} ms"


def _number(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}"
