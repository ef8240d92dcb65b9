"""The table of every run this app server has seen, and its downloads."""

from __future__ import annotations

import json

import pandas as pd


def history_frame(runs) -> pd.DataFrame:
    """One row per run, newest first."""
    rows = []
    for run in reversed(runs):
        s = run.summary or {}
        rows.append(
            {
                "id": run.id,
                "started": pd.Timestamp(run.launched_at, unit="s").strftime("%H:%M:%S"),
                "status": run.status,
                "pipeline": run.config.pipeline,
                "model": run.config.model,
                "images": run.config.images,
                "batch": run.config.batch_size,
                "concurrency": run.config.concurrency,
                "block MB": run.config.block_size_mb,
                "GPUs/actor": run.config.num_gpus,
                "precision": run.config.precision,
                "data": run.config.data,
                "images/s": s.get("images_per_sec"),
                "steady images/s": s.get("steady_images_per_sec"),
                "first result s": s.get("first_result_s"),
                "model loads": s.get("model_loads"),
                "error": run.error,
            }
        )
    return pd.DataFrame(rows)


def history_json(runs) -> str:
    """Every finished run's full summary (time series included)."""
    return json.dumps([r.summary for r in runs if r.summary], indent=1, default=str)
