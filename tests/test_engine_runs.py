"""Real Ray Data runs on a small local Ray: both pipelines, metrics, stop, failure, queue.

Tests of what both pipelines share (the queue, outputs, data sources) run the naive one: its tasks reuse
Ray's idle workers, where each actor run starts a fresh worker that imports torch.
"""

import os
import threading
import time

import numpy as np
import pytest
import ray

from engine import start
from engine.execution.runner import WARM_WORKERS
from engine.insight.summary import PHASES
from engine.observe.cluster import live_pool_actors
from tests.conftest import TINY, finish

POINT_FIELDS = {
    "t",
    "rows",
    "images_per_sec",
    "gpu_util_pct",
    "gpu_mem_used_bytes",
    "object_store_used_bytes",
    "object_store_capacity_bytes",
    "cpu_pct",
    "ram_used_bytes",
}


@pytest.fixture(scope="module")
def actor_run(ray_local) -> dict:
    """One finished tiny actor run, whose summary several tests read: each actor run starts a fresh
    worker that imports torch (about 6 s of a CI core), so tests that only read a summary share one."""
    return finish(start(TINY.replace(images=48)))


def test_actor_pipeline_predicts_every_image_with_one_model_load(actor_run):
    summary = actor_run
    assert summary["status"] == "finished", summary["error"]
    assert summary["rows"] == 48
    assert summary["model_loads"] == TINY.concurrency == 1
    assert summary["weights"] == "random"
    (node,) = summary["nodes"]  # one local node did all the work
    assert node["rows"] == 48 and node["model_loads"] == 1 and node["address"]
    first = summary["predictions"][0]
    assert 0 <= first["label_index"] < 1000 and isinstance(first["label"], str) and 0 < first["confidence"] <= 1
    assert "ActorPoolMapOperator" in summary["plan"] and "->" in summary["plan"]
    assert "MapBatches(Predictor)" in summary["stats"]


def test_naive_pipeline_loads_the_model_once_per_batch(ray_local, tiny):
    config = tiny.replace(pipeline="naive", batch_size=4, concurrency=2)
    summary = finish(start(config))
    assert summary["status"] == "finished", summary["error"]
    assert summary["rows"] == config.images
    assert summary["model_loads"] == config.images // config.batch_size
    assert "TaskPoolMapOperator" in summary["plan"]


def test_timeseries_has_every_field_and_no_fake_gpu_zeros(actor_run):
    points = actor_run["timeseries"]
    assert points and all(POINT_FIELDS <= set(p) for p in points)
    assert points[-1]["rows"] == 48
    assert [p["t"] for p in points] == sorted(p["t"] for p in points)
    if not points[-1]["gpus"]:  # a CPU machine: GPU figures are unavailable, not zero
        assert all(p["gpu_util_pct"] is None and p["gpu_mem_used_bytes"] is None for p in points)
    assert all(p["object_store_capacity_bytes"] > 0 for p in points)


def test_startup_phases_are_ordered_and_add_up_to_first_result(actor_run):
    phases = actor_run["startup"]
    assert list(phases) == list(PHASES)
    assert all(v >= 0 for v in phases.values())
    assert sum(phases.values()) <= actor_run["first_result_s"] + 0.01


def test_reports_that_overtake_the_first_reset_count_and_a_runs_late_reports_count_for_nothing():
    """A run does not wait for the reporter's reset before its workers start (a CLI's first run starts
    the reporter's actor with them), so a fresh reporter counts the first run it hears of, and that
    run's reset keeps the count; once the next run is reset, the last run's late reports are dropped."""
    from engine.execution.reporter import Reporter

    reporter = Reporter.__ray_actor_class__()  # the actor's own class, in this process
    reporter.worker_started("first", "node:host:1", 1.0)
    reporter.batch_done("first", "node:host:1", 8, 1.0, 2.0)
    reporter.reset("first")
    reporter.batch_done("first", "node:host:1", 8, 2.0, 3.0)
    seen = reporter.snapshot()
    assert (seen["rows"], seen["batches"], seen["workers"], seen["first_batch_in"]) == (16, 2, 1, 1.0)
    reporter.reset("second")
    reporter.batch_done("first", "node:host:1", 8, 3.0, 4.0)
    reporter.model_loaded("first", "node:host:1", 3.0, 4.0)
    assert reporter.snapshot()["rows"] == reporter.snapshot()["model_loads"] == 0
    reporter.batch_done("second", "node:host:2", 4, 5.0, 6.0)
    assert reporter.snapshot()["rows"] == 4


def test_stop_in_the_middle_ends_the_run_and_frees_its_actors(ray_local, tiny):
    run = start(tiny.replace(images=20000, batch_size=4, block_size_mb=1))
    deadline = time.time() + 120
    while time.time() < deadline and not (run.timeseries() and run.timeseries()[-1]["rows"] > 0):
        time.sleep(0.2)
    assert run.status == "running"
    run.stop()
    assert run.wait(60), "the run never stopped"  # how fast is for the benchmark, not a unit test
    assert run.status == "stopped" and run.summary["rows"] < 20000
    deadline = time.time() + 10
    while live_pool_actors() and time.time() < deadline:
        time.sleep(0.2)
    assert live_pool_actors() == 0


def test_a_failing_udf_fails_the_run_with_its_cause_and_the_next_run_works(ray_local, tiny, tmp_path):
    broken = tmp_path / "broken.pth"
    broken.write_bytes(b"this is not a state dict")
    summary = finish(start(tiny.replace(weights_file=str(broken))))
    assert summary["status"] == "failed"
    assert summary["error"] and "\n" not in summary["error"]
    assert "Traceback" not in summary["error"]
    assert finish(start(tiny))["status"] == "finished"


def test_second_start_is_queued_behind_the_first(ray_local, tiny):
    first = start(tiny.replace(images=96, pipeline="naive"))
    second = start(tiny.replace(pipeline="naive"))
    assert second.status == "queued"
    finish(first)
    assert finish(second)["status"] == "finished"
    assert second.summary["started_at"] >= first.launched_at


def test_stop_a_queued_run_never_starts_it(ray_local, tiny):
    first = start(tiny.replace(pipeline="naive"))
    second = start(tiny)
    second.stop()
    assert second.status == "stopped" and second.wait(1)
    finish(first)


def test_output_folder_gets_parquet_predictions(ray_local, tiny, tmp_path):
    import pyarrow.parquet as pq

    out = tmp_path / "preds"
    summary = finish(start(tiny.replace(output=str(out), pipeline="naive")))
    assert summary["status"] == "finished", summary["error"]
    table = pq.read_table(out)
    assert table.num_rows == tiny.images
    assert {"key", "label_index", "label", "confidence"} <= set(table.column_names)
    assert summary["predictions"]


def test_jpeg_files_are_written_once_and_decoded(ray_local, tiny):
    summary = finish(start(tiny.replace(data="jpeg", pipeline="naive")))
    assert summary["status"] == "finished", summary["error"]
    assert summary["rows"] == tiny.images
    assert summary["predictions"][0]["key"].endswith(".jpg")


def test_a_folder_of_images(ray_local, tiny, tmp_path):
    from PIL import Image

    for i in range(5):
        Image.fromarray(np.full((40, 50, 3), i * 40, np.uint8)).save(tmp_path / f"{i}.png")
    summary = finish(start(tiny.replace(data=str(tmp_path), pipeline="naive")))
    assert summary["status"] == "finished", summary["error"]
    assert summary["rows"] == 5


def test_object_store_reading_matches_an_independent_one(ray_local):
    from ray._private.internal_api import memory_summary

    from engine.observe.samplers import read_object_store

    before = sum(r.used_bytes for r in read_object_store())
    ref = ray.put(np.zeros(48 * 2**20, np.uint8))
    after = sum(r.used_bytes for r in read_object_store())
    assert after - before >= 48 * 2**20
    # A second reading through a different raylet RPC (what `ray memory --stats-only` prints).
    text = memory_summary(ray.get_runtime_context().gcs_address, stats_only=True)
    mib = int(text.split("Plasma memory usage ")[1].split(" MiB")[0])
    assert abs(mib * 2**20 - after) <= 2**20 + 0.02 * after
    del ref


def test_a_dead_block_leaves_the_object_store_at_once(ray_local):
    """Blocks made, read and dropped one after another, as a pipeline does, do not pile up in the store.

    With Ray's default (freed in batches of 100) 30 blocks of 4 MB held up to 32 MB here; on a GPU,
    whose blocks are far bigger, the same lag can hold more than the pipeline's object-store limit.
    """
    from engine.observe.samplers import read_object_store

    def used() -> int:
        return sum(r.used_bytes for r in read_object_store())

    make = ray.remote(lambda i: np.full(4 * 2**20, i, np.uint8))
    first = ray.remote(lambda block: int(block[0]))
    before, peak = used(), 0
    for i in range(30):
        assert ray.get(first.remote(make.remote(i))) == i
        time.sleep(0.1)
        peak = max(peak, used() - before)
    assert peak <= 3 * 4 * 2**20, f"{peak / 2**20:.0f} MB of dead blocks still in the object store"


def test_asking_for_missing_gpus_fails_at_once(ray_local, tiny):
    if ray.cluster_resources().get("GPU"):
        pytest.skip("this machine has GPUs")
    summary = finish(start(tiny.replace(num_gpus=1)), timeout=60)  # fails at once instead of waiting forever
    assert summary["status"] == "failed" and "GPU" in summary["error"]
    assert summary["rows"] == 0 and summary["model_loads"] == 0


@pytest.mark.subprocess
def test_engine_never_imports_streamlit():
    import subprocess
    import sys

    code = "import engine.cli, engine.execution.runner, engine.execution.steps, sys\n"
    code += "assert 'streamlit' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=os.path.dirname(os.path.dirname(__file__)))


def alive_actor_pids(class_prefix: str) -> list[int]:
    """The processes of this Ray's live actors whose class name starts with `class_prefix`."""
    import ray._private.state as state

    return [a.get("Pid") for a in state.actors().values()
            if a.get("State") == "ALIVE" and str(a.get("ActorClassName", "")).startswith(class_prefix)]  # fmt: skip


def test_a_worker_killed_mid_run_is_survived_or_recorded(ray_local, tiny):
    import psutil

    run = start(tiny.replace(images=1000, batch_size=8, block_size_mb=1))  # the kill comes at its first rows
    deadline = time.time() + 120
    while time.time() < deadline and not (run.timeseries() and run.timeseries()[-1]["rows"] > 0):
        time.sleep(0.2)
    pids = alive_actor_pids("MapWorker")
    assert pids and all(pids)
    for pid in pids:
        psutil.Process(pid).kill()  # the actor's process dies, as on a lost node or an OOM kill
    summary = finish(run, timeout=300)
    print("after the kill:", summary["status"], summary["rows"], summary["model_loads"], summary["error"])
    assert summary["status"] in ("finished", "failed")
    if summary["status"] == "failed":
        assert summary["error"] and "\n" not in summary["error"]
    else:
        assert summary["rows"] >= 1000 and summary["model_loads"] >= 2  # Ray restarted the actor
    assert finish(start(tiny))["status"] == "finished"


def test_calls_per_actor_run_the_udf_on_several_threads_at_once(ray_local, tiny):
    """Ray Data runs an actor's UDF on one thread unless told otherwise; the engine's pool tells it."""
    from engine.core.pipeline import actor_pool

    class MeetInPairs:  # defined here so Ray pickles it by value: the workers cannot import tests/
        """Each call returns only once two calls run at the same time in this actor."""

        def __init__(self) -> None:
            import threading

            self.barrier = threading.Barrier(2, timeout=60)

        def __call__(self, batch):
            self.barrier.wait()  # on one thread, never passed: the run fails
            return batch

    ds = ray.data.range(4, override_num_blocks=4).map_batches(
        MeetInPairs, batch_size=1, compute=actor_pool(tiny.replace(calls_per_actor=2)), num_cpus=0.5
    )
    assert sorted(row["id"] for row in ds.take_all()) == [0, 1, 2, 3]
    assert not actor_pool(tiny).enable_true_multi_threading  # one call at a time needs no threads


def test_an_actor_running_two_batches_at_once_predicts_every_image_once(ray_local, tiny):
    summary = finish(start(tiny.replace(images=64, calls_per_actor=2)))
    assert summary["status"] == "finished", summary["error"]
    assert summary["rows"] == 64 and summary["model_loads"] == 1


def test_warm_up_fills_task_workers_before_it_prestarts_the_actors_workers(ray_local, monkeypatch):
    """Filling after the prestart would hand the actors' fresh workers to the fill's tasks (measured: 12 s late)."""
    from engine.execution import warm

    calls, here = [], threading.current_thread()  # (the runner may be refilling workers in its own thread)
    real_fill, real_prestart = warm.fill_task_workers, warm.prestart

    def fill():
        if threading.current_thread() is not here:
            return real_fill()
        calls.append(("fill", real_fill()))

    def prestart(count):
        if threading.current_thread() is not here:
            return real_prestart(count)
        calls.append(("prestart", count))
        return count

    monkeypatch.setattr(warm, "fill_task_workers", fill)
    monkeypatch.setattr(warm, "prestart", prestart)
    assert warm.keep_warm(2) == 2
    (first, used), second = calls
    assert first == "fill" and second == ("prestart", 2)
    assert 1 <= used <= int(ray.cluster_resources()["CPU"])  # the fill ran, one task per CPU at most


def test_warmed_workers_import_torch_as_they_start(ray_local):
    """A Ray started to be warmed (the app's, the suite's) runs the set-up hook in each worker."""
    import sys

    def torch_imported_before_the_task() -> bool:
        return "torch" in sys.modules

    from engine.execution.connection import SETUP_HOOK

    assert ray.get_runtime_context().runtime_env.get("worker_process_setup_hook") == SETUP_HOOK
    assert ray.get(ray.remote(num_cpus=0)(torch_imported_before_the_task).remote(), timeout=120)


def test_bookkeeping_actors_get_bare_workers_only_where_workers_import_torch(monkeypatch):
    """Elsewhere (the CLI) a runtime env of their own would only cost them a worker start."""
    from engine.execution import connection, warm

    for torch_ready, env in ((True, warm.TORCHLESS), (False, None)):
        monkeypatch.setattr(connection, "torch_ready_workers", lambda ready=torch_ready: ready)
        assert warm.bookkeeping_env() == env


def test_workers_import_torch_as_they_start_except_the_bookkeeping_ones(ray_local, tiny):
    """The engine's reporter and Ray Data's own actors (stats, actor locations, autoscaling) run no torch."""
    from engine.execution.reporter import get_reporter
    from engine.execution.warm import TORCHLESS

    def holds_torch() -> bool:  # defined here so Ray pickles it by value: the workers cannot import tests/
        import sys

        return "torch" in sys.modules

    task = ray.remote(num_cpus=0)(holds_torch)
    assert ray.get(task.remote(), timeout=120) is True  # the suite's Ray is warmed, as the app's is
    assert ray.get(task.options(runtime_env=TORCHLESS).remote(), timeout=120) is False
    import psutil

    ray.get(get_reporter().snapshot.remote(), timeout=120)
    assert finish(ray_local.submit(tiny))["status"] == "finished"  # Ray Data's actors are the ones it uses
    for name in ("Reporter", "_StatsActor", "ActorLocationTracker", "_AutoscalingCoordinatorActor"):
        (pid,) = alive_actor_pids(name)
        assert not any("libtorch" in m.path for m in psutil.Process(pid).memory_maps()), name


@pytest.mark.subprocess
def test_warm_is_said_once_the_workers_it_started_are_idle():
    """A worker busy importing (here: 3 s of CPU under Ray's worker title) is waited for, and no longer."""
    import subprocess
    import sys

    from engine.execution import warm

    since = time.time()
    busy_then_idle = "import time; t = time.time()\nwhile time.time() - t < 3: pass\ntime.sleep(60)"
    worker = subprocess.Popen(["bash", "-c", f'exec -a "ray::IDLE" {sys.executable} -c "{busy_then_idle}"'])
    try:
        waited = warm.wait_until_imported(since, limit_s=30)
        assert 3 <= waited < 10 and worker.poll() is None  # it outlasted the busy part, and the worker lives on
    finally:
        worker.kill()


def test_after_every_run_each_node_is_topped_back_up_to_its_fresh_workers_and_no_further(ray_local, tiny):
    """Whatever took fresh workers (an actor, a task), the refill after a run puts back just that many."""
    from engine.execution import warm
    from engine.observe import cluster

    def fresh_and_all(kept: int) -> tuple[int, int]:
        """Fresh workers on every node once `kept` are back (or after a minute), and this machine's worker processes."""
        deadline = time.time() + 60  # a refill's workers register with the raylet once started
        while time.time() < deadline:
            fresh = sum(warm.fresh_workers(node) for node in cluster.nodes() if node.alive)
            if fresh >= kept:
                break
            time.sleep(0.5)
        return fresh, len(warm.worker_processes_since(0))

    ray_local.warm_up(wait=True)
    kept = ray_local.warm_workers
    assert kept == min(WARM_WORKERS, int(ray.cluster_resources()["CPU"]))
    after = [fresh_and_all(kept)]
    for pipeline in ("actor", "naive"):
        assert finish(ray_local.submit(tiny.replace(pipeline=pipeline)))["status"] == "finished"
        after.append(fresh_and_all(kept))
    assert [fresh for fresh, _ in after] == [kept] * 3, after
    assert max(procs for _, procs in after) <= after[0][1] + kept, after  # a refill replaces, never piles up


def test_a_run_launched_during_the_warm_up_waits_for_it_and_can_be_stopped_meanwhile(
    ray_local, tiny, tmp_path, monkeypatch
):
    from engine.execution import runner as engine_run
    from engine.store import RunStore

    release = threading.Event()
    monkeypatch.setattr(engine_run, "keep_warm", lambda count, wait=True: release.wait(60) and 0)
    runner = engine_run.Runner(RunStore(str(tmp_path / "runs.sqlite")))
    runner.warm_up()
    stopped, waiting = runner.submit(tiny.replace(pipeline="naive")), runner.submit(tiny.replace(pipeline="naive"))
    deadline = time.time() + 10
    while "warm-up" not in stopped.phase and time.time() < deadline:
        time.sleep(0.05)
    assert runner.warming and stopped.status == "queued" and "waiting for the warm-up" in stopped.phase
    stopped.stop()
    assert stopped.wait(5) and stopped.status == "stopped"
    assert waiting.status == "queued" and not waiting.done  # still behind the warm-up
    release.set()
    assert finish(waiting)["status"] == "finished" and not runner.warming
