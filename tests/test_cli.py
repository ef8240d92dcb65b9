"""`python -m engine` as a user types it: exit codes, progress, JSON, Ctrl-C."""

import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import pytest
import ray

from engine import ray_compat
from tests.conftest import run_cli

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SECRET = "s3cr3t-9f8e7d6c5b4a"
TINY = ["--images", "24", "--image-size", "32", "--block-size-mb", "1"]


def cli(*args, **kwargs):
    return subprocess.run(
        [sys.executable, "-m", "engine", *args], cwd=ROOT, capture_output=True, text=True, timeout=300, **kwargs
    )


def main_here(capsys, *args) -> tuple[int, str]:
    """`python -m engine ARGS` in this process: its exit code and stderr."""
    return run_cli(*args), capsys.readouterr().err


@pytest.mark.parametrize(
    "args",
    [
        ["run", "--batch-size", "0"],
        ["run", "--batch-size", "-5"],
        ["run", "--concurrency", "abc"],
        ["run", "--pipeline", "turbo"],
        ["run", "--model", "nope"],
        ["run", "--num-gpus", "1.5"],
        ["run", "--data", "/does/not/exist"],
        ["run", "--unknown-flag"],
        ["fly"],
    ],
)
def test_bad_arguments_exit_2_with_one_line(args, capsys):
    code, stderr = main_here(capsys, *args)
    assert code == 2
    assert stderr.count("\n") == 1 and stderr.startswith("error:")
    assert "Traceback" not in stderr


@pytest.mark.subprocess
def test_python_m_engine_exits_2_with_one_line_for_bad_input():
    """The same refusal through the real entry point (the cases above call its main in this process)."""
    result = cli("run", "--batch-size", "0")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error:")


def test_compare_joins_a_cluster_by_address_and_prints_the_speedup(ray_local, tmp_path, capsys):
    """In this process, joined to the suite's own Ray by its address: which Ray keeps, not restarted."""
    out = tmp_path / "compare.json"
    address, node = ray.get_runtime_context().gcs_address, ray.get_runtime_context().get_node_id()
    assert run_cli("compare", *TINY, "--address", address, "--json", str(out)) == 0, capsys.readouterr().err
    printed = capsys.readouterr().out
    assert "finished: naive resnet18" in printed and "finished: actor resnet18" in printed
    assert "speedup (actor vs naive, images/sec)" in printed
    assert ray.get_runtime_context().get_node_id() == node  # the same Ray: it was not shut down to be joined
    payload = json.loads(out.read_text())
    naive, actor = payload["runs"]
    assert naive["model_loads"] == 24 // 4 and actor["model_loads"] == 1
    assert payload["speedup"] > 0 and payload["command"].startswith("python -m engine compare")
    for key in ("status", "pipeline", "model", "weights", "images", "seconds", "images_per_sec",
                "first_result_s", "model_loads", "plan", "timeseries", "startup"):  # fmt: skip
        assert key in actor


@pytest.mark.subprocess
def idle_workers_of_no_job() -> set[int]:
    """PIDs of this node's idle workers that no job has taken yet: the ones a prestart leaves for any job."""
    from engine.ray_compat.cluster_state import _node_stats

    node = ray_compat.list_nodes(3.0)[0]
    stats = _node_stats(node.address, node.manager_port).core_workers_stats
    return {w.pid for w in stats if w.job_id == ray.JobID.nil().binary() and not w.num_executed_tasks}


def test_run_with_no_address_joins_the_ray_running_here_with_this_machines_token(ray_local, tmp_path):
    """The suite's Ray stands for the app's: token auth on, found by its GCS process. Ray itself sends this
    machine's token only to a Ray that `ray.init("auto")` found, so the CLI must, or it waits and starts its own.
    Its actors start in the warm workers an earlier run left for any job, and it leaves such workers behind."""
    where = tempfile.mkdtemp(prefix="rj", dir="/tmp")  # no `ray start` file here; short: Ray's socket paths
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_AUTH_MODE")}
    env.update(RAY_TMPDIR=where, PLAYGROUND_DB=str(tmp_path / "runs.sqlite"))
    out = tmp_path / "run.json"
    node = ray_compat.list_nodes(3.0)[0]
    others = idle_workers_of_no_job()  # Ray's own for its first driver: no runtime env, no job of ours takes them
    ray_compat.prestart(node.address, node.manager_port, 2, 120, any_job=True)  # as a CLI run leaves them
    deadline = time.time() + 60
    while len(warm := idle_workers_of_no_job() - others) < 2 and time.time() < deadline:
        time.sleep(0.5)
    try:
        done = cli("run", "--pipeline", "actor", *TINY, "--json", str(out), "--quiet", env=env)
    finally:
        shutil.rmtree(where, ignore_errors=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Failed to get cluster ID" not in done.stderr and "no Ray on this machine answers" not in done.stderr
    summary = json.loads(out.read_text())
    assert summary["status"] == "finished" and summary["rows"] == 24
    assert summary["config"]["address"] == ray.get_runtime_context().gcs_address  # the running Ray, joined
    mine = ray.get_runtime_context().get_job_id()
    pool = [a["Pid"] for a in ray._private.state.actors().values()
            if a["ActorClassName"].startswith("MapWorker(") and a["JobID"] != mine]  # fmt: skip
    assert pool and set(pool) <= warm, (pool, warm)
    deadline = time.time() + 60
    while not idle_workers_of_no_job() - warm - others and time.time() < deadline:
        time.sleep(0.5)
    assert idle_workers_of_no_job() - warm - others  # what the CLI left for the next run


def _ctrl_c_as_at_a_terminal() -> None:
    """Give the CLI Ctrl-C's default action. A suite started in the background by a shell without job
    control has SIGINT ignored, and a child inherits that: its Ctrl-C would then do nothing at all."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def rows_done(db: str) -> int:
    """How many images the run the CLI is recording in `db` has done so far (0 before it is recorded)."""
    from engine.store import RunStore

    if not os.path.exists(db):
        return 0
    store = RunStore(db)
    runs = store.history()
    series = runs and store.get(runs[0]["id"])["timeseries"]
    return series[-1]["rows"] if series else 0


@pytest.mark.slow
def test_ctrl_c_on_a_fresh_local_ray_records_the_run_as_stopped_and_no_trace_of_the_ray_auth_token():
    """A run on a fresh local Ray, stopped with Ctrl-C mid-run, is recorded `stopped` with its summary; the
    token of that Ray (RAY_AUTH_TOKEN) is not in our output, our store, or Ray's own logs."""
    where = tempfile.mkdtemp(prefix="rs", dir="/tmp")  # short: Ray's socket paths live under it
    db = f"{where}/runs.sqlite"
    proc = subprocess.Popen(
        [sys.executable, "-m", "engine", "run", "--pipeline", "naive", "--images", "50000", "--image-size", "32",
         "--block-size-mb", "1", "--json", f"{where}/run.json"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=_ctrl_c_as_at_a_terminal,
        env={**os.environ, "RAY_ADDRESS": "local", "RAY_AUTH_TOKEN": SECRET, "RAY_TMPDIR": where, "PLAYGROUND_DB": db},
    )  # fmt: skip
    try:
        deadline = time.time() + 180
        while not rows_done(db) and proc.poll() is None and time.time() < deadline:
            time.sleep(0.5)  # Ctrl-C must be recorded at any point; once images flow is the common case
        assert rows_done(db), "no image was ever done"
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=120)
        assert proc.returncode == 130, stderr[-2000:]
        assert "stopping..." in stderr and "images" in stderr  # what it said, and the progress bar
        summary = json.loads(open(f"{where}/run.json").read())
        assert summary["status"] == "stopped" and 0 < summary["rows"] < 50000
        assert summary["pipeline"] == "naive" and summary["timeseries"] and summary["model_loads"] >= 1
        assert SECRET not in stdout + stderr
        written = [p for p in glob.glob(f"{where}/**", recursive=True) if os.path.isfile(p)]
        assert any("/logs/" in p for p in written)  # Ray's session logs are among what is searched
        assert [p for p in written if SECRET.encode() in open(p, "rb").read()] == []
    finally:
        proc.kill()  # never leave a 50,000-image run holding the suite's CPUs
        shutil.rmtree(where, ignore_errors=True)


def test_history_lists_recorded_runs_newest_first_and_exports(tmp_path, capsys):
    from engine.core.config import RunConfig
    from engine.store import RunStore

    db = str(tmp_path / "runs.sqlite")
    store = RunStore(db)
    for i, status in enumerate(("finished", "failed")):

        class Recorded:  # the shape the store reads from a Run
            id, submitted_at, config, summary, error = f"run{i}", 100.0 + i, RunConfig(), None, "boom" if i else None

            def timeseries(self):
                return []

        Recorded.status = status
        store.save(Recorded())
    out, export = tmp_path / "history.json", tmp_path / "export.json"
    code, stderr = main_here(capsys, "history", "--db", db, "--json", str(out), "--export", str(export))
    assert code == 0, stderr
    runs = json.loads(out.read_text())["runs"]
    assert [r["id"] for r in runs] == ["run1", "run0"]
    assert set(runs[0]) == {"id", "started_at", "status", "pipeline", "model", "images_per_sec", "error"}
    assert runs[0]["error"] == "boom"
    assert main_here(capsys, "history", "--db", str(tmp_path / "other.sqlite"), "--import", str(export))[0] == 0
    assert len(RunStore(str(tmp_path / "other.sqlite")).history()) == 2


def test_history_refuses_a_bad_import_in_one_line(tmp_path, capsys):
    db = str(tmp_path / "runs.sqlite")
    bad = tmp_path / "bad.json"
    bad.write_text("not json")
    for path in (str(bad), str(tmp_path / "missing.json")):
        code, stderr = main_here(capsys, "history", "--db", db, "--import", path)
        assert code == 2
        assert stderr.count("\n") == 1 and stderr.startswith("error: history:")
