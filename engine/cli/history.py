"""`python -m engine history`: every recorded run, and moving them between machines."""

from __future__ import annotations

import argparse
import sqlite3
import sys

from engine.cli.output import write_json
from engine.cli.parser import EXIT_OK, EXIT_USAGE
from engine.store import RunStore, StoreError

JSON_KEYS = ("id", "started_at", "status", "pipeline", "model", "images_per_sec", "error")  # a `--json` row, as tested


def history_command(args: argparse.Namespace) -> int:
    try:
        return _history(args)
    except (OSError, ValueError, sqlite3.Error, StoreError) as exc:  # missing file, bad export, unusable db
        print(f"error: history: {exc}".splitlines()[0], file=sys.stderr)
        return EXIT_USAGE


def _history(args: argparse.Namespace) -> int:
    text = None
    if args.import_path:
        with open(args.import_path) as f:  # read first: a missing file leaves no store behind
            text = f.read()
    store = RunStore(args.db)
    if text is not None:
        print(f"imported {store.import_json(text)} run(s)")
    if args.export:
        with open(args.export, "w") as f:
            f.write(store.export_json())
    runs = store.history()
    for r in runs:
        rate = f"{r['images_per_sec']:.1f} img/s" if r["images_per_sec"] else "-"
        who = f"{r['origin'] or '-'}{' by ' + r['owner'] if r['owner'] else ''}"
        print(f"{r['id']}  {r['status']:<11} {r['pipeline']:<5} {r['model']:<18} {rate}  {who}  {r['error'] or ''}")
    write_json(args.json_path, {"runs": [{k: r[k] for k in JSON_KEYS} for r in runs]})
    return EXIT_OK
