"""The run store: written while runs go, survives restarts, marks dead runs, migrates, exports."""

import json
import os
import sqlite3
import subprocess
import sys

import pytest

from engine.execution.runner import Runner
from engine.store import MIGRATIONS, RunStore
from tests.conftest import finish


def test_runs_are_recorded_while_they_go_and_at_the_end(ray_local, tiny, tmp_path):
    store = RunStore(str(tmp_path / "runs.sqlite"))
    runner = Runner(store)
    run = runner.submit(tiny.replace(images=48))
    assert store.history()[0]["status"] in ("queued", "starting", "running")
    summary = finish(run)
    (row,) = store.history()
    assert row["id"] == run.id and row["status"] == "finished" and row["images_per_sec"] > 0
    full = store.get(run.id)
    assert full["config"]["images"] == 48 and full["summary"]["rows"] == 48
    assert len(full["timeseries"]) == len(summary["timeseries"])


@pytest.mark.subprocess
def test_a_run_whose_process_died_is_marked_interrupted(tmp_path):
    path = str(tmp_path / "runs.sqlite")
    code = (
        "import os, sys; sys.path.insert(0, os.getcwd())\n"
        "from engine.store import RunStore\n"
        "from engine.core.config import RunConfig\n"
        "class R: pass\n"
        "r = R(); r.id='dead1'; r.submitted_at=1.0; r.status='running'; r.config=RunConfig(); r.summary=None\n"
        "r.error=None; r.timeseries=lambda: []\n"
        f"RunStore({path!r}).save(r)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=os.path.dirname(os.path.dirname(__file__)))
    store = RunStore(path)
    assert store.mark_interrupted() == 1
    (row,) = store.history()
    assert row["status"] == "interrupted" and "ended" in row["error"]


def test_an_older_schema_migrates_without_losing_rows(tmp_path):
    path = str(tmp_path / "old.sqlite")
    db = sqlite3.connect(path)
    db.execute(MIGRATIONS[0])
    db.execute("PRAGMA user_version = 1")
    db.execute(
        "INSERT INTO runs (id, started_at, updated_at, status, pipeline, model, pid, config)"
        " VALUES ('old', 1, 1, 'finished', 'actor', 'resnet18', 1, '{}')"
    )
    db.commit()
    db.close()
    store = RunStore(path)
    assert [r["id"] for r in store.history()] == ["old"]
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)


def test_export_then_import_round_trips(ray_local, tiny, tmp_path):
    source = RunStore(str(tmp_path / "a.sqlite"))
    run = Runner(source).submit(tiny)
    finish(run)
    exported = source.export_json()
    target = RunStore(str(tmp_path / "b.sqlite"))
    assert target.import_json(exported) == 1
    assert target.get(run.id)["summary"]["rows"] == tiny.images
    assert json.loads(exported)["schema"] == len(MIGRATIONS)
