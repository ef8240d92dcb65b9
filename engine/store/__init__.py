"""Every run, kept in an embedded SQLite database, written while it goes.

A page reload, a second browser, an app restart or a teammate's process reads the history from here;
a run whose process ended reads `interrupted` from every read, never `running`. The schema carries a
version and migrates forward without losing rows. The file is its owner's alone, and credentials are
masked in what is written. A store that cannot be opened raises `StoreError`; a write that fails (a
full disk) raises and leaves the reason in `recording_error` until a write succeeds again.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Callable
from typing import TypeVar

from engine.core.errors import redact
from engine.store.database import Database, one_line
from engine.store.liveness import ENDED, as_read, ended, this_process
from engine.store.rows import LISTED, LIVE, MIGRATIONS, checked_export, masked_json, upsert_sql

__all__ = ["LIVE", "MIGRATIONS", "RunStore", "StoreError", "default_path"]
T = TypeVar("T")


class StoreError(RuntimeError):
    """The run store cannot be opened; the message is one line naming the file and why."""


def default_path() -> str:
    if os.environ.get("PLAYGROUND_DB"):
        return os.environ["PLAYGROUND_DB"]
    from engine.core.data import cache_dir  # (it imports numpy: `python -m engine history --db` goes without)

    return os.path.join(cache_dir(), "runs.sqlite")


class RunStore:
    """Runs in one SQLite file, shared by this process's threads and by other processes."""

    def __init__(self, path: str | None = None) -> None:
        self.path = path or default_path()
        self.recording_error: str | None = None  # "recording stopped: ..." while writes fail
        db = None
        try:
            db = Database(self.path)
            db.migrate(MIGRATIONS)
        except (sqlite3.Error, OSError) as exc:
            if db is not None:
                db.close()
            raise StoreError(f"the run store cannot be opened at {self.path}: {one_line(exc)}") from exc
        self._db = db

    def _write(self, work: Callable[[sqlite3.Connection], T]) -> T:
        try:
            result = self._db.transaction(work)
        except (sqlite3.Error, OSError) as exc:
            self.recording_error = f"recording stopped: {one_line(exc)}"
            raise
        self.recording_error = None
        return result

    def save(self, run) -> None:
        """Insert or update a run with everything known about it now; raises if it cannot be written."""
        summary = run.summary
        pid, started = this_process()
        row = {
            "id": run.id,
            "started_at": run.submitted_at,
            "updated_at": time.time(),
            "status": run.status,
            "pipeline": run.config.pipeline,
            "model": run.config.model,
            "images_per_sec": (summary or {}).get("images_per_sec"),
            "error": run.error and redact(run.error),
            "pid": pid,
            "pid_started_at": started,
            "config": masked_json(run.config.to_dict()),
            "summary": masked_json({k: v for k, v in summary.items() if k != "timeseries"}) if summary else None,
            "timeseries": json.dumps(run.timeseries(), default=str),
            "owner": getattr(run, "owner", None),
            "origin": getattr(run, "origin", None),
        }
        self._write(lambda db: db.execute(upsert_sql(row), row))

    def history(self, limit: int = 500) -> list[dict]:
        """Newest first: id, started_at, status, pipeline, model, images_per_sec, error, owner, origin."""
        rows = self._db.rows(
            f"SELECT {', '.join(LISTED)}, pid, pid_started_at FROM runs ORDER BY started_at DESC LIMIT ?", (limit,)
        )
        return [{k: row[k] for k in LISTED} for row in map(as_read, rows)]

    def get(self, run_id: str) -> dict | None:
        """One run in full: config, summary and time series, with its status, error, owner and origin."""
        rows = self._db.rows(
            "SELECT id, config, summary, timeseries, status, error, owner, origin, pid, pid_started_at"
            " FROM runs WHERE id = ?",
            (run_id,),
        )
        if not rows:
            return None
        row = as_read(rows[0])
        del row["pid"], row["pid_started_at"]
        summary = row["summary"]
        return {**row, "config": json.loads(row["config"]), "summary": json.loads(summary) if summary else None,
                "timeseries": json.loads(row["timeseries"])}  # fmt: skip

    def configs(self, run_ids: list[str]) -> dict[str, dict]:
        """The configs of these runs, in one query (without their time series)."""
        rows = self._db.rows(f"SELECT id, config FROM runs WHERE id IN ({', '.join('?' * len(run_ids))})", run_ids)
        return {row["id"]: json.loads(row["config"]) for row in rows}

    def mark_interrupted(self) -> int:
        """Write `interrupted` into the rows that reads already show so; returns how many."""
        live = self._db.rows(
            f"SELECT id, pid, pid_started_at FROM runs WHERE status IN ({', '.join('?' * len(LIVE))})", LIVE
        )
        dead = [row["id"] for row in live if ended(row["pid"], row["pid_started_at"])]
        if not dead:
            return 0
        now = time.time()
        self._write(
            lambda db: db.executemany(
                f"UPDATE runs SET status = 'interrupted', error = COALESCE(error, ?), updated_at = ?"
                f" WHERE id = ? AND status IN ({', '.join('?' * len(LIVE))})",
                [(ENDED, now, run_id, *LIVE) for run_id in dead],
            )
        )
        return len(dead)

    def export_json(self, owner: str | None = None, everyone: bool = True) -> str:
        """Runs in full, as reads show them, for `import_json` on another machine: every run, or `owner`'s only."""
        if everyone:
            rows = self._db.rows("SELECT * FROM runs ORDER BY started_at")
        else:
            rows = self._db.rows("SELECT * FROM runs WHERE owner IS ? ORDER BY started_at", (owner,))
        return json.dumps({"schema": len(MIGRATIONS), "runs": [as_read(row) for row in rows]}, indent=1)

    def delete(self, run_ids: list[str], owner: str | None = None, everyone: bool = True) -> int:
        """Delete these runs (only `owner`'s unless `everyone`); a run still going is kept. Returns how many."""
        marks = ", ".join("?" * len(run_ids))
        live = ", ".join("?" * len(LIVE))
        mine = "" if everyone else " AND owner IS ?"
        sql = f"DELETE FROM runs WHERE id IN ({marks}) AND status NOT IN ({live}){mine}"
        args = [*run_ids, *LIVE] + ([] if everyone else [owner])
        return self._write(lambda db: db.execute(sql, args).rowcount) if run_ids else 0

    def import_json(self, text: str) -> int:
        """Add (or refresh) the runs of an export, all in one transaction; returns how many.

        Raises ValueError naming the first bad row, before anything is written.
        """
        rows = checked_export(text)
        if rows:
            self._write(lambda db: db.executemany(upsert_sql(rows[0]), rows))
        return len(rows)
