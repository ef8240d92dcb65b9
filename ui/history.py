"""The history table: every run the store recorded, from any browser or earlier app session."""

from __future__ import annotations

import pandas as pd


def history_frame(rows: list[dict]) -> pd.DataFrame:
    """One row per recorded run (from the run store), newest first."""
    frame = pd.DataFrame(rows, columns=["id", "started_at", "status", "pipeline", "model", "images_per_sec", "error"])
    frame["started_at"] = pd.to_datetime(frame["started_at"], unit="s").dt.strftime("%Y-%m-%d %H:%M:%S")
    return frame.rename(columns={"started_at": "started", "images_per_sec": "images/s"})


def with_settings(frame: pd.DataFrame, store) -> pd.DataFrame:
    """Add each run's main settings, read from its stored config."""
    by_id = store.configs(list(frame["id"]))
    configs = [by_id.get(run_id, {}) for run_id in frame["id"]]
    for key, column in (("batch_size", "batch"), ("concurrency", "concurrency"), ("num_gpus", "GPUs/actor"),
                        ("block_size_mb", "block MB"), ("precision", "precision"), ("data", "data")):  # fmt: skip
        frame.insert(len(frame.columns) - 1, column, [c.get(key) for c in configs])
    return frame
