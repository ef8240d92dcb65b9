"""The `runs` table: its schema, and what a row must hold to be written there.

An imported export is checked row by row before anything is written, so a hand-edited or truncated
file is refused in one line naming the bad row, never half-imported. Credentials are masked in every
string a row carries before it is stored.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable
from typing import Any

from engine.core.config import RunConfig
from engine.core.errors import redact

LIVE = ("queued", "starting", "running")
STATUSES = (*LIVE, "finished", "failed", "stopped", "interrupted")
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
    "ALTER TABLE runs ADD COLUMN owner TEXT",  # who launched it; NULL on a one-user playground
    "ALTER TABLE runs ADD COLUMN origin TEXT",  # what started it: a page, "cli" or "api"
    "ALTER TABLE runs ADD COLUMN pid_started_at REAL",  # with pid: the process, even once its PID is reused
]
LISTED = ("id", "started_at", "status", "pipeline", "model", "images_per_sec", "error", "owner", "origin")
REQUIRED = ("id", "started_at", "status", "pipeline", "model", "config")


def upsert_sql(names: Iterable[str]) -> str:
    """Insert a row, or refresh every given column of the row with its id."""
    names = list(names)
    updates = ", ".join(f"{k} = excluded.{k}" for k in names if k != "id")
    return (
        f"INSERT INTO runs ({', '.join(names)}) VALUES ({', '.join(f':{k}' for k in names)})"
        f" ON CONFLICT(id) DO UPDATE SET {updates}"
    )


def masked_json(value: Any) -> str:
    """`value` as JSON with credentials masked in every string in it, keys included.

    Masking the structure, not the JSON text, keeps the text valid whatever a secret's characters are.
    """
    return json.dumps(_masked(json.loads(json.dumps(value, default=str))))


def _masked(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {redact(k): _masked(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_masked(v) for v in value]
    return value


def checked_export(text: str) -> list[dict[str, Any]]:
    """Every row of an export, complete and masked; ValueError names the first bad row and field."""
    try:
        export = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not a run export: {exc}") from None
    runs = export.get("runs") if isinstance(export, dict) else None
    if not isinstance(runs, list):
        raise ValueError('not a run export: it has no "runs" list')
    return [_checked(index, row) for index, row in enumerate(runs)]


def _checked(index: int, row: Any) -> dict[str, Any]:
    if not isinstance(row, dict):
        raise ValueError(f"run {index}: not a JSON object")
    where = f"run {index} (id {_short(row['id'])})" if "id" in row else f"run {index}"
    for name, check in _CHECKS.items():
        if name not in row:
            if name in REQUIRED:
                raise ValueError(f"{where}: {name} is missing")
        elif problem := check(row[name]):
            raise ValueError(f"{where}: {name} {problem} (got {_short(row[name])})")
    complete = {**_defaults(row), **{name: row[name] for name in _CHECKS if name in row}}
    complete["config"] = masked_json(json.loads(complete["config"]))
    complete["summary"] = complete["summary"] and masked_json(json.loads(complete["summary"]))
    complete["error"] = complete["error"] and redact(complete["error"])
    return complete


def _defaults(row: dict[str, Any]) -> dict[str, Any]:
    """What an export from an older schema, or a hand-made row, leaves out. Pid 0 names no process: a live
    status without one reads `interrupted`."""
    return {"updated_at": row["started_at"], "images_per_sec": None, "error": None, "pid": 0, "summary": None,
            "timeseries": "[]", "owner": None, "origin": None, "pid_started_at": None}  # fmt: skip


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:39] + "…"


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _json_of(kind: type) -> Callable[[Any], bool]:
    def holds(value: Any) -> bool:
        try:
            return isinstance(value, str) and isinstance(json.loads(value), kind)
        except json.JSONDecodeError:
            return False

    return holds


def _rule(test: Callable[[Any], bool], what: str, nullable: bool = False) -> Callable[[Any], str | None]:
    """A check that returns what is wrong with a value, or None."""
    what = f"{what} or null" if nullable else what
    return lambda value: None if (nullable and value is None) or test(value) else f"must be {what}"


def _config(value: Any) -> str | None:
    if not _json_of(dict)(value):
        return "must be a JSON object in a string"
    try:
        RunConfig.from_dict(json.loads(value))
    except (ValueError, TypeError) as exc:
        return f"is not a run config: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
    return None


_CHECKS: dict[str, Callable[[Any], str | None]] = {
    "id": _rule(lambda v: isinstance(v, str) and v != "", "a non-empty string"),
    "started_at": _rule(_number, "a number"),
    "status": _rule(lambda v: isinstance(v, str) and v in STATUSES, f"one of {', '.join(STATUSES)}"),
    "pipeline": _rule(lambda v: isinstance(v, str), "a string"),
    "model": _rule(lambda v: isinstance(v, str), "a string"),
    "config": _config,
    "summary": _rule(_json_of(dict), "a JSON object in a string", nullable=True),
    "timeseries": _rule(_json_of(list), "a JSON list in a string"),
    "updated_at": _rule(_number, "a number"),
    "images_per_sec": _rule(_number, "a number", nullable=True),
    "error": _rule(lambda v: isinstance(v, str), "a string", nullable=True),
    "pid": _rule(lambda v: isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 2**63, "a whole number"),
    "pid_started_at": _rule(_number, "a number", nullable=True),
    "owner": _rule(lambda v: isinstance(v, str), "a string", nullable=True),
    "origin": _rule(lambda v: isinstance(v, str), "a string", nullable=True),
}
