"""Faults injected for real, each ending in one line: a lost node or cluster, a full or read-only disk,
GPU out of memory, a run failing inside its actors, Stop before the pipeline starts and while models load."""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import pytest
import ray

from engine import RunConfig, start
from engine.observe import nvml
from tests.conftest import finish, why_it_failed

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.slow
def test_losing_a_node_then_the_whole_cluster_fails_runs_in_one_line_and_the_next_run_works(tmp_path):
    # A Ray temp dir of its own (short: Ray's socket paths live under it): the killed head's address file
    # stays there, not where every later `engine run` on this machine would find it.
    ray_tmp = tempfile.mkdtemp(prefix="lc", dir="/tmp")
    try:
        driver = subprocess.run(
            [sys.executable, "-m", "tests.lost_cluster", str(tmp_path / "runs.sqlite")],
            cwd=ROOT, capture_output=True, text=True, timeout=900,
            env={**os.environ, "PLAYGROUND_OBJECT_STORE_MB": "300", "RAY_TMPDIR": ray_tmp},
        )  # fmt: skip
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)
    assert driver.returncode == 0, why_it_failed(driver)  # the app's process outlived its cluster
    outcomes = [json.loads(line) for line in driver.stdout.splitlines() if line.startswith("{")]
    print(outcomes)
    node_left, cluster_gone, fresh = outcomes
    assert node_left["flowing"] and cluster_gone["flowing"]  # the faults came mid-run
    assert node_left["ended"] and node_left["status"] == "failed" and "left the cluster mid-run" in node_left["error"]
    assert cluster_gone["ended"] and cluster_gone["status"] == "failed" and "went away mid-run" in cluster_gone["error"]
    for lost in (node_left, cluster_gone):
        assert "\n" not in lost["error"] and lost["recorded"] == ["failed", lost["error"]]  # the store has it too
    assert fresh["status"] == "finished" and fresh["recorded"] == ["finished", None]


def test_the_address_a_killed_ray_left_behind_is_refused_in_one_line_and_a_local_ray_is_started(monkeypatch):
    from engine.execution import connection

    said = []
    monkeypatch.setattr(connection.ray_compat, "running_cluster_addresses", lambda: ["127.0.0.1:1"])  # nothing there
    monkeypatch.setattr(connection.log, "warning", lambda msg, *args: said.append(msg % args))
    started = time.time()
    assert connection._running_local_ray() is None  # the CLI then starts a Ray of its own
    assert time.time() - started < connection.PROBE_TIMEOUT_S + 1  # never Ray's minutes of retrying
    assert len(said) == 1 and said[0].startswith("no Ray on this machine answers (could not join Ray at 127.0.0.1:1")
    monkeypatch.setattr(connection.ray_compat, "running_cluster_addresses", lambda: [])
    assert connection._running_local_ray() is None and len(said) == 1  # none recorded: nothing to say


def test_an_address_switch_waits_for_brief_holders_and_never_for_a_run(ray_local):
    import threading

    from engine.execution import connection
    from engine.observe.cluster import ClusterError

    with connection.using(None, "a run") as label:
        assert connection.connect(None) == label == "local embedded Ray"  # the same address is fine
        started = time.time()
        with pytest.raises(
            ClusterError,
            match="^local embedded Ray is busy with (warming workers and )?a run: .* once it ends$",
        ):
            connection.connect("127.0.0.1:1", wait_s=30)
        assert time.time() - started < 5 and ray.is_initialized()  # refused at once, Ray untouched

    def warm_briefly():
        with connection.held("warming workers") as connected:
            assert connected
            time.sleep(1.0)

    warming = threading.Thread(target=warm_briefly)
    warming.start()
    time.sleep(0.2)
    started = time.time()
    with pytest.raises(ClusterError, match="busy with warming workers"):
        connection.connect("127.0.0.1:1", wait_s=0.3)  # waits for it (too briefly here: the session's Ray stays)
    assert time.time() - started >= 0.3
    warming.join()


def test_stop_after_the_cluster_went_away_makes_no_ray_call(ray_local, tiny, monkeypatch):
    import engine.execution.reporter
    from engine.execution.run import Run

    run = Run(tiny)
    run.status, run.lost.gone = "running", True  # as after the GCS stopped answering, while the run drops it
    fail = lambda: pytest.fail("a Ray call while Ray may be shutting down")  # noqa: E731
    monkeypatch.setattr(engine.execution.reporter, "get_reporter", fail)
    run.stop()
    assert run.stopping


def test_stop_while_connecting_ends_the_run_before_it_asks_ray_for_anything(ray_local, tiny, monkeypatch):
    """On a busy machine connecting takes long; a Stop pressed then ends the run as soon as it is connected."""
    import contextlib

    from engine.execution import steps
    from engine.execution.run import Run

    run = Run(tiny)
    connect = steps.connection.using

    @contextlib.contextmanager
    def stop_pressed_while_connecting(*args, **kwargs):
        with connect(*args, **kwargs) as label:
            run._stop.set()  # what Stop does first
            yield label

    monkeypatch.setattr(steps.connection, "using", stop_pressed_while_connecting)
    asked: list[str] = []
    monkeypatch.setattr(steps, "get_reporter", lambda: asked.append("reporter") or pytest.fail("went on"))
    run.execute()  # (it never raises: a failure in it would only show as a status)
    assert asked == [] and run.status == "stopped" and run.summary["status"] == "stopped" and run.dataset is None


def test_a_sampler_stopped_for_a_gone_cluster_makes_no_further_ray_call(ray_local):
    """A Ray call made while Ray shuts down ends the whole process (it once took CI's lost-cluster run down)."""
    from engine.observe.samplers import MetricsSampler

    calls = []
    reading = {"rows": 0, "model_loads": 0}
    sampler = MetricsSampler(time.time(), lambda: calls.append(1) or reading, interval=0.05).start()
    while len(calls) < 3:
        time.sleep(0.05)
    sampler.stop(final=False)
    made = len(calls)
    time.sleep(0.3)
    sampler.stop()  # the run's own wrap-up stops it again: nothing more either
    assert len(calls) == made == len(sampler.points)


def test_aborting_for_a_gone_cluster_ends_ray_datas_loop_and_its_consumer(ray_local):
    from engine.execution import executor_control

    def slow(batch):
        time.sleep(0.05)
        return batch

    executor_control.install()
    batches = iter(ray.data.range(2000, override_num_blocks=200).map_batches(slow).iter_batches(batch_size=None))
    next(batches)
    loop = executor_control._current["executor"]
    assert executor_control.abort_current(RuntimeError("cluster gone"), stop_loop=True)
    with pytest.raises(RuntimeError, match="cluster gone"):
        for _ in batches:
            pass
    executor_control.join_stopped(timeout=10)
    assert not loop.is_alive()  # nothing of Ray Data's calls Ray any more: it may be shut down


def test_only_an_execution_started_by_the_run_is_the_one_stop_shuts_down():
    """A Launch during the app's warm-up: the warm-up's dataset starts on its own thread and is not the run's."""
    import threading
    from unittest import mock

    from engine.execution import executor_control

    executor_control.install()  # on this thread, as a run does before it plans its pipeline
    warm_ups, runs = mock.Mock(), mock.Mock()
    other = threading.Thread(target=executor_control._started, args=(warm_ups,))
    other.start()
    other.join()
    assert not executor_control.shutdown_current()
    executor_control._started(runs)
    assert executor_control.shutdown_current()
    runs.shutdown.assert_called_once_with(force=True)
    warm_ups.shutdown.assert_not_called()


def test_ray_datas_actor_lookup_leaves_ray_once_the_cluster_is_given_up(ray_local):
    """Ray Data's loop asks where its actors are without a timeout; once given up, it must not stay in that call.

    (That Ray Data really calls the bounded lookup during a run is test_ray_compat's.)
    """
    import threading

    from engine.execution import executor_control
    from engine.execution.warm import _hold

    never = ray.remote(num_cpus=0)(_hold).remote(60)  # its answer never comes, as when the GCS is gone
    threading.Timer(0.5, executor_control._given_up.set).start()  # what abort_current(stop_loop=True) does
    started = time.time()
    try:
        with pytest.raises(RuntimeError, match="the cluster went away"):
            executor_control._locations(never)
        assert time.time() - started < 5
    finally:
        executor_control._given_up.clear()
        ray.cancel(never, force=True)


def test_cuda_out_of_memory_raised_in_ray_becomes_the_batch_size_advice(ray_local):
    import torch

    from engine.core.errors import one_line

    message = "CUDA out of memory. Tried to allocate 48.00 GiB. GPU 0 has a total capacity of 79.19 GiB"

    @ray.remote
    def forward():
        raise torch.cuda.OutOfMemoryError(message)

    def predictor(batch):
        raise torch.cuda.OutOfMemoryError(message)

    raised = []
    for action in (lambda: ray.get(forward.remote()), lambda: ray.data.range(4).map_batches(predictor).take_all()):
        with pytest.raises(Exception) as wrapped:  # Ray's wrapper around the worker's exception
            action()
        raised.append(wrapped.value)
    assert isinstance(raised[0], ray.exceptions.RayTaskError)
    for exc in raised:
        advice = one_line(exc, RunConfig(batch_size=4096))
        assert advice == "GPU out of memory at batch size 4096: try a smaller batch size or fewer GPUs per actor"


def pool_actors_end() -> None:
    """A run's pool actors (and the GPU memory they hold) end with it, within a bounded wait."""
    from engine.observe.cluster import live_pool_actors

    deadline = time.time() + 20
    while live_pool_actors() and time.time() < deadline:
        time.sleep(0.2)
    assert live_pool_actors() == 0


def stopped_in_bounded_time(run) -> dict:
    assert run.wait(60), f"run still {run.status} a minute after Stop"
    pool_actors_end()
    return run.summary


def test_stop_before_the_pipeline_starts_ends_the_run_and_the_next_one_goes(ray_local, tiny):
    run = start(tiny.replace(images=2000))
    while run.status == "queued":
        time.sleep(0.001)
    assert run.status == "starting"
    run.stop()  # connecting or planning: no pipeline to shut down yet
    summary = stopped_in_bounded_time(run)
    assert run.status == "stopped" and summary["rows"] == 0 and summary["model_loads"] == 0
    assert finish(start(tiny))["status"] == "finished"


def test_stop_while_the_model_loads_ends_the_run_before_any_batch(ray_local, tiny, tmp_path):
    import torch

    from engine.core.models import build_model
    from engine.execution.reporter import get_reporter

    weights = tmp_path / "vit.pth"  # a big model from a file: loading takes a while, as in real use
    torch.save(build_model("vit_b_16")[0].state_dict(), weights)
    run = start(tiny.replace(model="vit_b_16", image_size=224, images=64, weights_file=str(weights)))
    deadline = time.time() + 120
    while time.time() < deadline:
        seen = ray.get(get_reporter().snapshot.remote())
        if seen["workers"] and not seen["model_loads"] and run.status == "running":
            break  # a worker is building the model: no batch can have run
        time.sleep(0.01)
    else:
        pytest.fail("never saw a worker loading its model")
    run.stop()
    summary = stopped_in_bounded_time(run)
    assert run.status == "stopped" and summary["rows"] == 0 and not summary["error"]
    assert finish(start(tiny))["status"] == "finished"


def in_namespace(script: str, **env: str) -> subprocess.CompletedProcess:
    """Run `script` as root of its own user and mount namespace, where it may mount a tmpfs of its own:
    a real full or read-only disk, unseen by the rest of the machine. Skips where that is not allowed."""
    if not shutil.which("unshare") or subprocess.run(["unshare", "-rm", "true"], capture_output=True).returncode:
        pytest.skip("needs unprivileged user namespaces (unshare -rm) to mount a small tmpfs")
    return subprocess.run(
        ["unshare", "-rm", "sh", "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300,
        env={**os.environ, "PY": sys.executable, "PLAYGROUND_OBJECT_STORE_MB": "300", **env},
    )  # fmt: skip


@pytest.mark.subprocess
def test_an_unwritable_output_folder_is_refused_in_one_line(tmp_path):
    (tmp_path / "ro").mkdir()
    script = 'mount -t tmpfs -o ro tmpfs "$RO" && exec "$PY" -m engine run --output "$RO/preds" --images 16'
    result = in_namespace(script, RO=str(tmp_path / "ro"))
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stderr.startswith("error: output must be a writable folder") and result.stderr.count("\n") == 1


@pytest.mark.slow
def test_a_full_disk_fails_the_run_in_one_line_and_a_full_store_disk_fails_no_run(tmp_path):
    (tmp_path / "full").mkdir()
    script = 'mount -t tmpfs -o size=1m tmpfs "$FULL" && exec "$PY" -m tests.full_disk "$FULL" "$DB"'
    result = in_namespace(script, FULL=str(tmp_path / "full"), DB=str(tmp_path / "runs.sqlite"))
    assert result.returncode == 0, why_it_failed(result)
    cases = {case.pop("case"): case for case in map(json.loads, result.stdout.splitlines()) if "case" in case}
    print(cases)
    output, store, unopenable = cases["output"], cases["store"], cases["unopenable_store"]
    assert output["ended"] and output["status"] == "failed"
    assert output["error"].startswith("No space left on device writing to ") and "\n" not in output["error"]
    assert output["recorded"] == ["failed", output["error"]]  # the store, on another disk, has the failed run
    assert store["status"] == unopenable["status"] == "finished"  # the store's disk failing fails no run
    assert "could not record run" in result.stderr and "runs are not being recorded" in result.stderr


def fail_then_run(failing: RunConfig, following: RunConfig, **env: str) -> tuple[dict, dict]:
    """`failing`, then `following`, through one Runner in a process of its own (tests/failed_run.py)."""
    result = subprocess.run(
        [sys.executable, "-m", "tests.failed_run", json.dumps(failing.to_dict()), json.dumps(following.to_dict())],
        cwd=ROOT, capture_output=True, text=True, timeout=600, env={**os.environ, **env},
    )  # fmt: skip
    assert result.returncode == 0, why_it_failed(result)
    failed, then = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    print(failed, then)
    return failed, then


def test_a_run_failing_in_its_actors_gives_them_back_and_the_next_run_goes(ray_local, tiny):
    joined = tiny.replace(address=ray.get_runtime_context().gcs_address)  # the suite's Ray: no second one to start
    failed, then = fail_then_run(joined.replace(model="vit_b_16", image_size=64), joined)  # ViT takes 224 px only
    assert failed["status"] == "failed"
    assert failed["error"] == "AssertionError: Wrong image height! Expected 224 but got 64!"
    assert failed["actors"] == 0  # they stayed until Python's next cycle collection before the fix
    assert then["status"] == "finished"


@pytest.mark.gpu
@pytest.mark.skipif(not nvml.read_gpus(), reason="no NVIDIA GPU on this machine")
def test_an_absurd_batch_runs_out_of_gpu_memory_in_one_line_and_gives_it_back(tiny):
    # 2048 images of 1024 px in one batch: the first convolution's output alone is 137 GB in fp32.
    # Ray's default object store: the tests' 300 MB one could not hold the batch on its way to the GPU.
    absurd = tiny.replace(model="resnet50", image_size=1024, batch_size=2048, images=2048, num_gpus=1)
    failed, then = fail_then_run(absurd, tiny.replace(num_gpus=1), PLAYGROUND_OBJECT_STORE_MB="")
    assert failed["status"] == "failed"
    assert failed["error"] == "GPU out of memory at batch size 2048: try a smaller batch size or fewer GPUs per actor"
    assert failed["actors"] == 0 and failed["gpu_mem_after"] <= failed["gpu_mem_before"] + 2**30  # given back
    assert then["status"] == "finished"  # the runner takes the next run, on the same GPU


# The SystemExit that ends the thread is what Python's own threads ignore; pytest reports any thread's exception.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_thread_told_to_end_ends_as_its_blocking_call_returns_and_runs_nothing_after():
    import threading

    from engine.execution.lost_cluster import end_at_next_step

    went_on = threading.Event()

    def blocked() -> None:
        time.sleep(1.0)  # a call in C, as a call to a dead GCS is
        went_on.set()

    thread = threading.Thread(target=blocked)
    thread.start()
    time.sleep(0.2)
    end_at_next_step(thread)
    thread.join(5)
    assert not thread.is_alive() and not went_on.is_set()
