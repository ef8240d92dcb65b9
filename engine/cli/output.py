"""What the command line prints and writes: progress bars on stderr, summaries on stdout, JSON files."""

from __future__ import annotations

import json
import sys

STOP_WAIT_S = 180.0  # after Ctrl-C, how long to wait for the run to end (it may still be connecting or starting)


def follow_until_done(run, draw, quiet: bool) -> bool:
    """Wait for `run`, calling `draw(run)` every half second; Ctrl-C stops it. Returns whether Ctrl-C came.

    After Ctrl-C the run is waited for (exiting while it still talks to Ray could hang in Ray's own
    shutdown); a second Ctrl-C quits at once and records the run as stopped.
    """
    try:
        while not run.wait(0.5):
            if not quiet:
                draw(run)
        if not quiet:
            sys.stderr.write("\n")
        return False
    except KeyboardInterrupt:
        sys.stderr.write("\nstopping... (Ctrl-C again to quit without waiting)\n")
        run.stop()
        try:
            run.wait(STOP_WAIT_S)
        except KeyboardInterrupt:
            run.finish("stopped", "the command was quit before the run ended")
        return True


def write_json(path: str | None, payload: dict) -> None:
    if path:
        with open(path, "w") as f:
            json.dump(payload, f, indent=1, default=str)


def progress_line(rows: int, total: int, rate: float, phase: str) -> None:
    """Redraw the one-line progress bar on stderr."""
    filled = int(30 * rows / total) if total else 0
    sys.stderr.write(
        f"\r[{'#' * filled}{'.' * (30 - filled)}] {rows}/{total} images  {rate:7.1f} img/s  {phase[:40]:<40}"
    )
    sys.stderr.flush()


def _decode_detail(summary: dict) -> str:
    """Where the images were decoded when both the GPU and the CPU did some, and the decode's share of the actors."""
    gpu, cpu, share = summary.get("decoded_on_gpu"), summary.get("decoded_on_cpu"), summary.get("decode_share")
    parts = [f"{gpu} on the GPU, {cpu} on the CPU"] if gpu and cpu else []
    if share is not None:
        parts.append(f"{share:.0%} of the actors' time")
    return f" ({'; '.join(parts)})" if parts else ""


def human(summary: dict) -> str:
    """A run's summary in one or a few lines."""
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
    if summary.get("decoder"):
        line += f", decoded by {summary['decoder']}{_decode_detail(summary)}"
    if summary.get("skipped_files"):
        names = ", ".join(summary["skipped_names"][:3])
        line += f"\nskipped {summary['skipped_files']} unreadable file(s): {names}"
    line += f", model loads {summary['model_loads']}"
    if summary.get("error"):
        line += f"\nerror: {summary['error']}"
    return line
