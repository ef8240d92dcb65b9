"""The run store: written while runs go, survives restarts and a crowd of processes, shows dead runs as
interrupted, migrates, exports and imports all or nothing, says when recording stops, keeps its files private."""

import json
import os
import sqlite3
import stat
import subprocess
import sys
import threading
import time
from types import SimpleNamespace

import pytest

from engine.core.config import RunConfig
from engine.execution.runner import Runner
from engine.store import MIGRATIONS, RunStore, StoreError
from tests.conftest import ROOT, finish, run_cli

GONE_PID = 2**22 + 1  # above Linux's largest possible PID: no process has it


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


def recorded(run_id: str, status: str = "finished", **fields) -> SimpleNamespace:
    """An object of the shape the store reads from a Run."""
    run = SimpleNamespace(id=run_id, submitted_at=100.0, status=status, config=RunConfig(), summary=None, error=None,
                          origin="cli", owner=None, timeseries=lambda: [])  # fmt: skip
    vars(run).update(fields)
    return run


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.subprocess
def test_forty_processes_importing_into_one_fresh_store_keep_every_run(tmp_path):
    exports = []
    for i in range(40):
        source = RunStore(str(tmp_path / f"source{i}.sqlite"))
        source.save(recorded(f"run{i:02d}", submitted_at=100.0 + i))
        exports.append(tmp_path / f"export{i}.json")
        exports[-1].write_text(source.export_json())
    new = tmp_path / "fresh" / "runs.sqlite"
    started = time.monotonic()
    command = [sys.executable, "-m", "engine", "history", "--db", str(new), "--import"]
    quiet = {"cwd": ROOT, "stdout": subprocess.DEVNULL, "stderr": subprocess.PIPE, "text": True}
    procs = [subprocess.Popen([*command, str(path)], **quiet) for path in exports]
    errors = [p.communicate(timeout=120)[1] for p in procs]
    failures = [(p.returncode, err) for p, err in zip(procs, errors, strict=True) if p.returncode]
    assert failures == [], failures[:3]
    assert {r["id"] for r in RunStore(str(new)).history()} == {f"run{i:02d}" for i in range(40)}
    assert mode(new) == 0o600 and mode(new.parent) == 0o700
    assert time.monotonic() - started < 60


def test_a_schema_that_another_process_is_creating_is_not_created_twice(tmp_path):
    path = str(tmp_path / "runs.sqlite")
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("PRAGMA journal_mode=WAL")
    other.execute("BEGIN IMMEDIATE")
    for step, sql in enumerate(MIGRATIONS, start=1):
        other.execute(sql)
        other.execute(f"PRAGMA user_version = {step}")
    threading.Timer(0.3, other.execute, ["COMMIT"]).start()  # while this process opens the store
    store = RunStore(path)
    store.save(recorded("r1"))
    assert [r["id"] for r in store.history()] == ["r1"]


def test_a_reused_pid_does_not_keep_a_run_alive(tmp_path):
    store = RunStore(str(tmp_path / "runs.sqlite"))
    store.save(recorded("mine", status="running"))  # this process's PID and start time
    export = json.loads(store.export_json())
    (row,) = export["runs"]
    assert row["pid"] == os.getpid()
    row.update(id="reused", pid_started_at=row["pid_started_at"] - 1000)  # the same PID, an earlier process
    store.import_json(json.dumps(export))
    shown = {r["id"]: (r["status"], r["error"]) for r in store.history()}
    assert shown == {"mine": ("running", None), "reused": ("interrupted", "the process running it ended")}
    assert store.get("mine")["status"] == "running" and store.get("reused")["status"] == "interrupted"


def test_a_start_time_nudged_by_the_clock_is_still_the_same_process(monkeypatch):
    """The system's boot time is whole seconds of a slewed wall clock: the start time read again moves."""
    import time

    import psutil

    from engine.store import liveness

    now, read = time.time(), {}
    monkeypatch.setattr(psutil.Process, "create_time", lambda self: read["created"])
    for saved, created, ended in [
        (now - 5, now - 5 + 1.0000002, False),  # the boot time flipped a second since it was saved
        (now - 86_400, now - 86_400 + 20, False),  # a day of slewing moved it 20 s
        (now - 5, now - 5 + 30, True),  # a process 30 s younger has the PID: the saver ended
        (now - 86_400, now - 86_400 - 3_600, True),
    ]:
        read["created"] = created
        assert liveness.ended(os.getpid(), saved) is ended, (now - saved, created - saved)


def test_a_run_whose_process_ended_reads_interrupted_before_it_is_marked(tmp_path, capsys):
    db = str(tmp_path / "runs.sqlite")
    store = RunStore(db)
    store.save(recorded("gone", status="running"))
    export = json.loads(store.export_json())
    export["runs"][0].update(pid=GONE_PID)
    store.import_json(json.dumps(export))
    (row,) = store.history()
    assert row["status"] == "interrupted" and row["error"] == "the process running it ended"
    assert store.get("gone")["status"] == "interrupted"
    assert sqlite3.connect(db).execute("SELECT status FROM runs").fetchone() == ("running",)  # reads write nothing
    assert run_cli("history", "--db", db) == 0
    assert "gone  interrupted" in capsys.readouterr().out
    assert store.mark_interrupted() == 1 and store.mark_interrupted() == 0
    assert sqlite3.connect(db).execute("SELECT status FROM runs").fetchone() == ("interrupted",)


def test_an_import_with_one_bad_row_writes_nothing_and_names_that_row(tmp_path, capsys):
    source = RunStore(str(tmp_path / "source.sqlite"))
    source.save(recorded("good"))
    source.save(recorded("bad", submitted_at=101.0))
    target_db = str(tmp_path / "target.sqlite")
    target = RunStore(target_db)
    cases = [
        ("status", "exploded", "status must be one of"),
        ("started_at", "yesterday", "started_at must be a number"),
        ("config", '{"colour": "red"}', "config is not a run config: unknown config field(s): colour"),
        ("config", "[1]", "config must be a JSON object in a string"),
        ("summary", "{not json", "summary must be a JSON object in a string or null"),
        ("timeseries", "{}", "timeseries must be a JSON list in a string"),
        ("model", None, "model is missing"),
    ]
    for field, value, said in cases:
        export = json.loads(source.export_json())
        bad = export["runs"][1]
        bad.pop(field) if value is None else bad.update({field: value})
        with pytest.raises(ValueError) as refused:
            target.import_json(json.dumps(export))
        assert str(refused.value).startswith("run 1 (id 'bad'): ") and said in str(refused.value)
        assert "\n" not in str(refused.value)
    assert target.history() == []
    bad_file = tmp_path / "bad.json"
    bad_file.write_text(json.dumps(export))
    assert run_cli("history", "--db", target_db, "--import", str(bad_file)) == 2
    stderr = capsys.readouterr().err
    assert stderr.startswith("error: history: run 1 (id 'bad'): model is missing") and stderr.count("\n") == 1
    assert target.history() == []


def test_an_export_from_before_owner_and_origin_imports(tmp_path):
    source = RunStore(str(tmp_path / "source.sqlite"))
    source.save(recorded("old", owner="ada", origin="sweep"))
    export = json.loads(source.export_json())
    for key in ("owner", "origin", "pid_started_at"):
        del export["runs"][0][key]
    target = RunStore(str(tmp_path / "target.sqlite"))
    assert target.import_json(json.dumps(export)) == 1
    (row,) = target.history()
    assert row["id"] == "old" and row["owner"] is None and row["origin"] is None


def test_owner_and_origin_are_recorded_and_read_back(tmp_path):
    store = RunStore(str(tmp_path / "runs.sqlite"))
    store.save(recorded("r1", owner="ada", origin="sweep"))
    store.save(SimpleNamespace(**{k: v for k, v in vars(recorded("r2")).items() if k not in ("owner", "origin")}))
    rows = {r["id"]: r for r in store.history()}
    assert set(rows["r1"]) == {"id", "started_at", "status", "pipeline", "model", "images_per_sec", "error", "owner",
                               "origin"}  # fmt: skip
    assert (rows["r1"]["owner"], rows["r1"]["origin"]) == ("ada", "sweep")
    assert (rows["r2"]["owner"], rows["r2"]["origin"]) == (None, None)
    assert (store.get("r1")["owner"], store.get("r1")["origin"]) == ("ada", "sweep")


class FullDisk:
    """A connection whose inserts fail as they do on a full disk."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def execute(self, sql: str, *args):
        if sql.startswith("INSERT"):
            raise sqlite3.OperationalError("database or disk is full")
        return self.conn.execute(sql, *args)

    def __getattr__(self, name: str):
        return getattr(self.conn, name)


def test_a_full_disk_says_recording_stopped_until_a_write_succeeds(tmp_path, monkeypatch):
    store = RunStore(str(tmp_path / "runs.sqlite"))
    assert store.recording_error is None
    conn = store._db._conn
    monkeypatch.setattr(store._db, "_conn", FullDisk(conn))
    with pytest.raises(sqlite3.OperationalError):
        store.save(recorded("r1"))
    assert store.recording_error == "recording stopped: database or disk is full"
    monkeypatch.setattr(store._db, "_conn", conn)
    assert store.history() == []
    store.save(recorded("r1"))
    assert store.recording_error is None and [r["id"] for r in store.history()] == ["r1"]


def test_a_store_that_cannot_be_opened_raises_one_line(tmp_path):
    a_file = tmp_path / "a_file"
    a_file.write_text("")
    not_a_db = tmp_path / "not_a_db.sqlite"
    not_a_db.write_bytes(b"this is no database " * 100)
    for path, reason in ((a_file / "runs.sqlite", "Not a directory"), (not_a_db, "file is not a database")):
        with pytest.raises(StoreError) as refused:
            RunStore(str(path))
        assert str(refused.value) == f"the run store cannot be opened at {path}: {reason}"


@pytest.mark.skipif(os.geteuid() == 0, reason="root opens any folder")
def test_a_store_in_a_folder_without_permission_raises_one_line(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    with pytest.raises(StoreError) as refused:
        RunStore(str(locked / "runs.sqlite"))
    assert str(refused.value) == f"the run store cannot be opened at {locked}/runs.sqlite: Permission denied"


def test_the_store_files_and_the_folder_it_makes_are_its_owners_alone(tmp_path):
    umask = os.umask(0o022)  # the usual umask, which would leave them readable by everyone
    try:
        path = tmp_path / "new" / "runs.sqlite"
        store = RunStore(str(path))
        store.save(recorded("r1"))
        older = tmp_path / "older.sqlite"
        sqlite3.connect(older).close()
        older.chmod(0o644)
        RunStore(str(older))
    finally:
        os.umask(umask)
    assert mode(path.parent) == 0o700
    assert [mode(f"{path}{suffix}") for suffix in ("", "-wal", "-shm")] == [0o600] * 3
    assert mode(older) == 0o600


def test_credentials_are_masked_in_what_the_store_keeps(tmp_path):
    secret_data = "s3://AKIAXXXX:secretkey@bucket/imgs"
    store = RunStore(str(tmp_path / "runs.sqlite"))
    store.save(recorded("r1", status="failed", config=RunConfig(data=secret_data), summary={"data": secret_data},
                        error="could not read https://user:pw@host/images?sig=abc"))  # fmt: skip
    full = store.get("r1")
    assert full["config"]["data"] == full["summary"]["data"] == "s3://***@bucket/imgs"
    assert full["error"] == store.history()[0]["error"] == "could not read https://***@host/images?sig=***"
    export = json.loads(store.export_json())
    export["runs"][0].update(config=json.dumps({"data": secret_data}), error=f"reading {secret_data}")
    other = RunStore(str(tmp_path / "other.sqlite"))
    other.import_json(json.dumps(export))
    assert other.get("r1")["config"]["data"] == "s3://***@bucket/imgs"
    kept = b"".join(p.read_bytes() for p in tmp_path.glob("*.sqlite*"))
    assert b"secretkey" not in kept and b"AKIAXXXX" not in kept and b":pw@" not in kept
