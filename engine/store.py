"""Every run, kept in an embedded SQLite database, written while it goes.

A page reload, a second browser or an app restart reads the history from here; a
run whose process died is marked `interrupted`, never left `running`. The schema
carries a version and migrates forward without losing rows.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from typing import Any

import psutil

from engine.core.data import cache_dir

LIVE = ("queued", "starting", "running")
MIGRATIONS = [
    """CREATE TABLE runs (
        id TEXT PRIMARY KEY,
        started_at REAL NOT NULL,
        updated_at REAL NOT NULL,
        status TEXT NOT NULL,
        pipeline TEXT NOT NULL,
        model TEXT NOT NULL,
        images_per_sec REAL,
        error TEXT,
        pid INTEGER NOT NULL,
        config TEXT NOT NULL,
        summary TEXT,
        timeseries TEXT NOT NULL DEFAULT '[]'
    )""",
    "CREATE INDEX runs_started ON runs (started_at DESC)",
]
COLUMNS = ("id", "started_at", "status", "pipeline", "model", "images_per_sec", "error")


def default_path() -> str:
    return os.environ.get("PLAYGROUND_DB") or os.path.join(cache_dir(), "runs.sqlite")


class RunStore:
    """A small thread-safe wrapper around one SQLite file."""

    def __init__(self, path: str | None = None) -> None:
        self.path = path or default_path()
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._migrate()

    def _migrate(self) -> None:
        with self._lock, self._db:
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            for step, sql in enumerate(MIGRATIONS[version:], start=version + 1):
                self._db.execute(sql)
                self._db.execute(f"PRAGMA user_version = {step}")

    def save(self, run) -> None:
        """Insert or update a run with everything known about it now."""
        summary = run.summary
        row = {
            "id": run.id,
            "started_at": run.submitted_at,
            "updated_at": time.time(),
            "status": run.status,
            "pipeline": run.config.pipeline,
            "model": run.config.model,
            "images_per_sec": (summary or {}).get("images_per_sec"),
            "error": run.error,
            "pid": os.getpid(),
            "config": json.dumps(run.config.to_dict()),
            "summary": json.dumps({k: v for k, v in summary.items() if k != "timeseries"}, default=str)
            if summary
            else None,
            "timeseries": json.dumps(run.timeseries(), default=str),
        }
        self._upsert(row)

    def _upsert(self, row: dict[str, Any]) -> None:
        names = ", ".join(row)
        marks = ", ".join(f":{k}" for k in row)
        updates = ", ".join(f"{k} = excluded.{k}" for k in row if k != "id")
        with self._lock, self._db:
            self._db.execute(
                f"INSERT INTO runs ({names}) VALUES ({marks}) ON CONFLICT(id) DO UPDATE SET {updates}", row
            )

    def history(self, limit: int = 500) -> list[dict]:
        """Newest first: id, started_at, status, pipeline, model, images_per_sec, error."""
        with self._lock:
            rows = self._db.execute(
                f"SELECT {', '.join(COLUMNS)} FROM runs ORDER BY started_at DESC LIMIT ?", (limit,)
            ).fetchall()
        return [dict(zip(COLUMNS, r, strict=True)) for r in rows]

    def get(self, run_id: str) -> dict | None:
        """One run in full: config, summary and time series."""
        with self._lock:
            row = self._db.execute(
                "SELECT config, summary, timeseries, status, error FROM runs WHERE id = ?", (run_id,)
            ).fetchone()
        if row is None:
            return None
        config, summary, timeseries, status, error = row
        return {"id": run_id, "config": json.loads(config), "summary": json.loads(summary) if summary else None,
                "timeseries": json.loads(timeseries), "status": status, "error": error}  # fmt: skip

    def configs(self, run_ids: list[str]) -> dict[str, dict]:
        """The configs of these runs, in one query (without their time series)."""
        with self._lock:
            rows = self._db.execute(
                f"SELECT id, config FROM runs WHERE id IN ({', '.join('?' * len(run_ids))})", run_ids
            ).fetchall()
        return {run_id: json.loads(config) for run_id, config in rows}

    def mark_interrupted(self) -> int:
        """Runs left live by a process that is gone become `interrupted`; returns how many."""
        with self._lock:
            rows = self._db.execute(
                f"SELECT id, pid FROM runs WHERE status IN ({', '.join('?' * len(LIVE))})", LIVE
            ).fetchall()
        dead = [run_id for run_id, pid in rows if pid != os.getpid() and not psutil.pid_exists(pid)]
        with self._lock, self._db:
            self._db.executemany(
                "UPDATE runs SET status = 'interrupted', error = COALESCE(error, 'the process running it ended'),"
                " updated_at = ? WHERE id = ?",
                [(time.time(), run_id) for run_id in dead],
            )
        return len(dead)

    def export_json(self) -> str:
        with self._lock:
            cursor = self._db.execute("SELECT * FROM runs ORDER BY started_at")
            names = [d[0] for d in cursor.description]
            rows = [dict(zip(names, r, strict=True)) for r in cursor.fetchall()]
        return json.dumps({"schema": len(MIGRATIONS), "runs": rows}, indent=1)

    def import_json(self, text: str) -> int:
        """Add (or refresh) the runs of an export; returns how many."""
        runs = json.loads(text)["runs"]
        for row in runs:
            self._upsert({k: row[k] for k in row if k in _COLUMN_NAMES})
        return len(runs)


_COLUMN_NAMES = {"id", "started_at", "updated_at", "status", "pipeline", "model", "images_per_sec", "error", "pid",
                 "config", "summary", "timeseries"}  # fmt: skip
