"""A grid of real runs, one cell at a time, ending in a recommendation.

Each cell is an ordinary run through the shared runner, so it is queued behind
other runs, recorded in the run store and stoppable like any other. A cell that
fails (out of memory, too many GPUs asked for) is recorded as such and the
sweep goes on; the recommendation is the fastest cell that finished.
"""

from __future__ import annotations

import csv
import io
import itertools
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from engine.core.config import ConfigError, RunConfig

CELL_STATUSES = ("pending", "running", "finished", "oom", "failed", "stopped", "skipped")
MEASURES = {
    "steady_images_per_sec": "steady images/sec (from the first result to the end)",
    "images_per_sec": "whole-run images/sec (start-up included: a cell was too short for a steady window)",
}


@dataclass
class Cell:
    """One grid point: its settings, what became of it, and its figures."""

    batch_size: int
    concurrency: int
    block_size_mb: int
    status: str = "pending"
    run_id: str | None = None
    steady_images_per_sec: float | None = None
    images_per_sec: float | None = None
    first_result_s: float | None = None
    peak_gpu_mem_bytes: float | None = None
    peak_object_store_bytes: float | None = None
    error: str | None = None

    def record(self, summary: dict[str, Any]) -> None:
        status, error = summary["status"], summary.get("error")
        if status == "failed" and error and "out of memory" in error.lower():
            status = "oom"
        self.status, self.error = status, error
        self.steady_images_per_sec = summary.get("steady_images_per_sec")
        self.images_per_sec = summary.get("images_per_sec")
        self.first_result_s = summary.get("first_result_s")
        self.peak_gpu_mem_bytes = summary.get("peak_gpu_mem_used_bytes")
        self.peak_object_store_bytes = summary.get("peak_object_store_bytes")


def parse_grid(text: str, name: str) -> list[int]:
    """'16,64,256' -> [16, 64, 256]; anything else is a one-line ConfigError."""
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ConfigError(f"{name} must be whole numbers separated by commas (got {text!r})") from None
    if not values:
        raise ConfigError(f"{name} needs at least one value (got {text!r})")
    return sorted(set(values))


@dataclass
class Sweep:
    """The grid over batch size x concurrency x block size, for one base config."""

    base: RunConfig
    batch_sizes: list[int]
    concurrencies: list[int]
    block_sizes: list[int]
    cells: list[Cell] = field(default_factory=list)
    status: str = "pending"  # pending, running, finished, stopped
    owner: str | None = None  # who started it, on a shared server

    def __post_init__(self) -> None:
        grid = itertools.product(self.block_sizes, self.concurrencies, self.batch_sizes)
        self.cells = [Cell(batch, conc, block) for block, conc, batch in grid]
        for cell in self.cells:
            self.config_for(cell).validate()  # refuse a bad grid before anything runs
        self.started_at = time.time()
        self._stop = threading.Event()
        self._current = None
        self._done = threading.Event()

    def config_for(self, cell: Cell) -> RunConfig:
        return self.base.replace(
            batch_size=cell.batch_size, concurrency=cell.concurrency, block_size_mb=cell.block_size_mb
        )

    # --- running -----------------------------------------------------------
    def start(self, runner) -> Sweep:
        """Run the cells one after another on a background thread; returns at once."""
        self.status = "running"
        threading.Thread(target=self._run_all, args=(runner,), name="sweep", daemon=True).start()
        return self

    def _run_all(self, runner) -> None:
        for cell in self.cells:
            if self._stop.is_set():
                cell.status = "skipped"
                continue
            cell.status = "running"
            run = runner.submit(self.config_for(cell))
            self._current, cell.run_id = run, run.id
            run.wait()
            cell.record(run.summary or {"status": run.status, "error": run.error})
        self._current = None
        self.status = "stopped" if self._stop.is_set() else "finished"
        self._done.set()

    def stop(self) -> None:
        """Stop the cell in progress and skip the rest."""
        self._stop.set()
        if self._current is not None:
            self._current.stop()

    def wait(self, timeout: float | None = None) -> bool:
        return self._done.wait(timeout)

    @property
    def done(self) -> bool:
        return self._done.is_set()

    @property
    def current(self):
        """The run of the cell in progress, for live progress."""
        return self._current

    # --- results -----------------------------------------------------------
    def measure(self) -> str:
        """What the cells are ranked by, the same for all: steady images/sec, unless a finished cell was too short
        for a steady window (then the whole-run rate, start-up included)."""
        finished = [c for c in self.cells if c.status == "finished"]
        return "images_per_sec" if any(c.steady_images_per_sec is None for c in finished) else "steady_images_per_sec"

    def rate(self, cell: Cell) -> float | None:
        return getattr(cell, self.measure())

    def recommended(self) -> Cell | None:
        """The fastest cell that finished, by `measure()`: the best throughput that fits in memory."""
        finished = [c for c in self.cells if c.status == "finished" and self.rate(c)]
        return max(finished, key=self.rate, default=None)

    def progress(self) -> tuple[int, int]:
        """(cells ended, cells in all)."""
        ended = sum(c.status not in ("pending", "running") for c in self.cells)
        return ended, len(self.cells)

    def rows(self) -> list[dict[str, Any]]:
        return [{**asdict(c), "rate": self.rate(c)} for c in self.cells]

    def to_dict(self) -> dict[str, Any]:
        best = self.recommended()
        return {
            "status": self.status,
            "base": self.base.to_dict(),
            "grid": {
                "batch_sizes": self.batch_sizes,
                "concurrency": self.concurrencies,
                "block_size_mb": self.block_sizes,
            },
            "cells": self.rows(),
            "measure": MEASURES[self.measure()],
            "recommended": {**asdict(best), "rate": self.rate(best)} if best else None,
        }

    def to_csv(self) -> str:
        out = io.StringIO()
        rows = self.rows()
        writer = csv.DictWriter(out, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
        return out.getvalue()
