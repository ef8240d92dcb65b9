"""Real-time inference: the batcher, the arithmetic, real runs on the suite's Ray, the CLI and the page."""

import asyncio
import json
import os
import time

import numpy as np
import pytest

from engine.core.config import ConfigError
from engine.realtime import stats
from engine.realtime.batcher import DynamicBatcher, take_now
from engine.realtime.config import RealtimeConfig
from engine.realtime.load import arrival_times
from engine.realtime.search import find_max_rate, next_rate
from engine.realtime.server import warm_up_sizes
from engine.realtime.snippet import serve_code
from tests.conftest import run_cli

TINY = RealtimeConfig(model="resnet18", rate=10.0, max_batch=8, max_wait_ms=20.0, seconds=3.0, image_size=32)
JSON_KEYS = ("id", "requests", "answered", "unanswered", "latency_p50_ms", "latency_p95_ms", "latency_p99_ms",
             "throughput", "batch_size_mean", "overloaded", "status", "queueing_p50_ms", "compute_p50_ms", "rate",
             "max_batch", "max_wait_ms", "seconds", "model", "command")  # fmt: skip


# --- quick: the arithmetic ---------------------------------------------------------------------------------------


def test_percentiles_of_known_timings():
    assert stats.percentile(list(range(1, 101)), 50) == pytest.approx(50.5)
    assert stats.percentile(list(range(1, 101)), 99) == pytest.approx(99.01)
    assert stats.percentile([0.2], 95) == 0.2 and stats.percentile([], 50) is None
    assert stats.percentiles_ms([0.010, 0.020, 0.030, 0.040, 1.0]) == {
        "latency_p50_ms": 30.0,
        "latency_p95_ms": pytest.approx(808.0),
        "latency_p99_ms": pytest.approx(961.6),
    }
    assert stats.percentiles_ms([], "queueing") == dict.fromkeys(
        ("queueing_p50_ms", "queueing_p95_ms", "queueing_p99_ms"))  # fmt: skip


def test_mean_batch_size_is_over_the_batches_formed_not_the_requests():
    answered = [stats.Request(i, 0.0, batch=(0, 0)) for i in range(6)] + [stats.Request(6, 0.0, batch=(0, 1))]
    assert stats.batch_size_mean(answered) == 3.5  # batches of 6 and 1
    assert stats.batch_size_mean([]) is None


def test_arrivals_are_a_seeded_poisson_stream_within_the_run():
    times = arrival_times(200.0, 10.0, seed=3)
    assert np.array_equal(times, arrival_times(200.0, 10.0, seed=3))
    assert not np.array_equal(times, arrival_times(200.0, 10.0, seed=4))
    assert 0 <= times.min() and times.max() < 10.0 and (times[1:] >= times[:-1]).all()
    assert abs(len(times) - 2000) < 6 * 2000**0.5
    gaps = times[1:] - times[:-1]
    assert gaps.std() == pytest.approx(gaps.mean(), rel=0.15)  # exponential gaps: spread as wide as their mean


def series(depths: list[int], arrived_per_step: int, step_s: float = 0.5) -> list[dict]:
    """Samples every `step_s` with these queue depths, `arrived_per_step` arrivals between samples."""
    points = []
    for i, depth in enumerate(depths):
        arrived = (i + 1) * arrived_per_step
        points.append({"t": (i + 1) * step_s, "arrived": arrived, "answered": arrived - depth, "queue_depth": depth})
    return points


def test_overload_is_a_queue_that_keeps_growing_while_answers_fall_behind():
    assert stats.is_overloaded(series([40, 90, 140, 190, 240, 290], 100), 3.0, 8)
    assert not stats.is_overloaded(series([3, 1, 4, 2, 0, 3], 100), 3.0, 8)  # below capacity: a batch or so waits
    assert not stats.is_overloaded(series([0, 0, 0, 150, 80, 5], 100), 3.0, 8)  # one burst, drained in time
    assert not stats.is_overloaded(series([0, 1, 0, 2, 3, 6], 4), 3.0, 8)  # a few requests behind: within two batches
    late = series([1, 2, 1, 2, 1, 2], 100) + [{"t": 3.5, "arrived": 600, "answered": 100, "queue_depth": 500}]
    assert not stats.is_overloaded(late, 3.0, 8)  # what happens after the sending time is the drain's
    assert not stats.is_overloaded(series([5], 10), 3.0, 8)


# --- quick: the dynamic batcher ------------------------------------------------------------------------------------


def test_a_batch_starts_when_full_or_when_its_oldest_request_waited_max_wait():
    assert take_now(0, 0.0, 5.0, max_batch=4, max_wait_s=0.01) == 0
    assert take_now(3, 1.000, 1.005, max_batch=4, max_wait_s=0.01) == 0  # 5 ms of 10: keep waiting for company
    assert take_now(3, 1.000, 1.010, max_batch=4, max_wait_s=0.01) == 3  # waited max_wait: go with what is there
    assert take_now(4, 1.000, 1.000, max_batch=4, max_wait_s=0.01) == 4  # full: go at once
    assert take_now(9, 1.000, 1.000, max_batch=4, max_wait_s=0.01) == 4  # never more than max_batch
    assert take_now(1, 1.000, 1.000, max_batch=4, max_wait_s=0.0) == 1  # no wait: every request goes at once


def serve_all(items: list, max_batch: int, max_wait_s: float, forward=None) -> tuple[list, list[int]]:
    """Submit `items` at once to a batcher; (what each got back, the batch sizes the forward saw)."""
    sizes: list[int] = []

    def record(batch: list) -> list:
        sizes.append(len(batch))
        time.sleep(0.01)  # a forward pass takes time: what arrives meanwhile waits
        return [x * 10 for x in batch]

    async def main():
        batcher = DynamicBatcher(forward or record, max_batch, max_wait_s)
        return await asyncio.gather(*(batcher.submit(x) for x in items), return_exceptions=True)

    return asyncio.run(main()), sizes


def test_the_batcher_never_exceeds_max_batch_and_answers_each_request_in_order():
    served, sizes = serve_all(list(range(10)), max_batch=4, max_wait_s=0.05)
    assert sizes == [4, 4, 2]
    assert [s.result for s in served] == [x * 10 for x in range(10)]
    assert [s.batch_size for s in served] == [4] * 8 + [2] * 2 and [s.batch for s in served] == [0] * 4 + [1] * 4 + [
        2
    ] * 2
    assert served[9].queue_s >= 0.045  # the last two waited for company up to max_wait
    assert all(s.compute_s >= 0.009 for s in served)


def test_a_lone_request_waits_max_wait_for_company_then_goes_alone():
    (served,), sizes = serve_all([7], max_batch=8, max_wait_s=0.06)
    assert sizes == [1] and served.result == 70
    assert 0.055 <= served.queue_s < 0.5


def test_with_no_wait_a_request_goes_at_once_with_whatever_waits_already():
    served, sizes = serve_all(list(range(5)), max_batch=8, max_wait_s=0.0)
    assert sizes == [5] and all(s.queue_s < 0.2 for s in served)  # all five were waiting: one batch, no wait

    async def apart() -> list:
        batcher = DynamicBatcher(lambda batch: batch, max_batch=8, max_wait_s=0.0)
        first = asyncio.ensure_future(batcher.submit(1))
        await asyncio.sleep(0.05)
        return [await first, await batcher.submit(2)]

    assert [s.batch_size for s in asyncio.run(apart())] == [1, 1]  # alone, never held back for company


def test_a_failed_forward_fails_its_own_batch_and_the_batcher_goes_on():
    def forward(batch: list) -> list:
        if 0 in batch:
            raise ValueError("bad image")
        return batch

    served, _ = serve_all([0, 1, 2, 3, 4], max_batch=2, max_wait_s=0.0, forward=forward)
    assert isinstance(served[0], ValueError)
    assert [s.result for s in served[2:]] == [2, 3, 4]


# --- quick: config, search, snippet ------------------------------------------------------------------------------


def test_a_gpu_server_warms_every_batch_size_it_can_form_and_a_cpu_server_the_two_ends():
    assert warm_up_sizes(8, "cuda") == [1, 2, 3, 4, 5, 6, 7, 8]
    assert warm_up_sizes(8, "cpu") == [1, 8] and warm_up_sizes(1, "cpu") == [1]


@pytest.mark.parametrize(
    "change, field",
    [({"rate": 0.0}, "rate"), ({"rate": float("nan")}, "rate"), ({"max_batch": 0}, "max_batch"),
     ({"max_batch": 2.5}, "max_batch"), ({"max_wait_ms": -1.0}, "max_wait_ms"), ({"seconds": 0.5}, "seconds"),
     ({"model": "resnet9000"}, "model"), ({"precision": "fp8"}, "precision"), ({"num_gpus": 0.5}, "num_gpus"),
     ({"image_size": 8}, "image_size"), ({"address": " "}, "address"), ({"rate": 20_000.0, "seconds": 600.0}, "rate")],
)  # fmt: skip
def test_a_bad_setting_is_refused_in_one_line_naming_it(change, field):
    with pytest.raises(ConfigError) as refused:
        TINY.replace(**change).validate()
    assert str(refused.value).startswith(f"{field} ") and "\n" not in str(refused.value)


def test_the_config_is_stored_with_its_pipeline_and_a_masked_address():
    stored = TINY.replace(address="ray://user:s3cret@head:10001").to_dict()
    assert stored["pipeline"] == "realtime" and stored["rate"] == 10.0 and "s3cret" not in stored["address"]
    assert TINY.validate() is TINY and TINY.servers == 1 and TINY.replace(num_gpus=2).servers == 2


def test_the_search_doubles_then_bisects_to_the_largest_rate_within_the_target():
    def measure(rate: float) -> dict:  # a server that keeps p99 within 50 ms up to 300 requests/s
        p99 = 20.0 if rate <= 300 else 400.0
        return {"status": "finished", "rate": rate, "throughput": min(rate, 320.0), "latency_p99_ms": p99,
                "overloaded": rate > 320, "answered": 10, "unanswered": 0}  # fmt: skip

    found = find_max_rate(measure, 50.0, start=10.0)
    rates = [p["rate"] for p in found["points"]]
    assert rates[:6] == [10, 20, 40, 80, 160, 320]
    assert 300 / 1.1 <= found["best"]["rate"] <= 300 and len(rates) <= 10
    assert next_rate(None, 1.0) == 0.5 and next_rate(100.0, 105.0) is None and next_rate(20_000.0, None) is None


def test_a_rate_sweep_queues_one_run_per_rate_on_its_own_thread():
    from engine.realtime.search import RateSweep

    class FakeRun:  # what the sweep needs of a run: it is waited for and read
        def __init__(self, config: RealtimeConfig) -> None:
            self.config, self.status = config, "finished"
            p99 = 10.0 if config.rate <= 40 else 90.0
            self.summary = {"status": "finished", "rate": config.rate, "throughput": config.rate, "answered": 5,
                            "unanswered": 0, "latency_p99_ms": p99, "overloaded": False}  # fmt: skip

        def wait(self, timeout=None) -> bool:
            return True

    sweep = RateSweep(FakeRun, TINY, 50.0).start()
    deadline = time.time() + 5
    while not sweep.done:
        assert time.time() < deadline
        time.sleep(0.01)
    assert [r.config.rate for r in sweep.runs][:3] == [10, 20, 40] and sweep.result["best"]["rate"] >= 40
    assert all(r.config.seconds == TINY.seconds and r.config.max_batch == 8 for r in sweep.runs)


@pytest.mark.parametrize("summary", [{"status": "stopped"}, {"status": "finished", "answered": 0, "requests": 0}])
def test_a_search_ends_at_a_run_that_did_not_finish_or_answered_nothing(summary):
    found = find_max_rate(lambda rate: summary, 50.0, start=10.0)
    assert found == {"best": None, "points": [summary]}


def test_the_ray_serve_snippet_carries_the_settings_and_is_python():
    code = serve_code(TINY.replace(max_batch=16, max_wait_ms=5.0, num_gpus=2, model="resnet50", precision="bf16"))
    assert "@serve.batch(max_batch_size=16, batch_wait_timeout_s=0.005)" in code
    assert "num_replicas=2" in code and '"num_gpus": 1' in code and 'get_model("resnet50"' in code
    assert "torch.bfloat16" in code and "max_ongoing_requests=64" in code
    compile(code, "serve.py", "exec")
    assert '"num_gpus": 0' in serve_code(TINY) and "batch_wait_timeout_s=0.02)" in serve_code(TINY)


class FakeStore:
    """Rows, configs and summaries as the run store returns them, newest first."""

    def __init__(self, runs: list[tuple[dict, dict, dict]]) -> None:
        self.runs = runs

    def history(self, limit: int = 500) -> list[dict]:
        return [row for row, _, _ in self.runs][:limit]

    def configs(self, ids: list[str]) -> dict[str, dict]:
        return {row["id"]: config for row, config, _ in self.runs if row["id"] in ids}

    def get(self, run_id: str) -> dict:
        return next({"summary": summary} for row, _, summary in self.runs if row["id"] == run_id)


def test_the_comparison_reads_the_newest_batch_run_and_the_best_real_time_run_within_the_target():
    from engine.realtime.reference import batch_reference, minutes_for, realtime_best

    def row(run_id, pipeline, status="finished", model="resnet18"):
        return {"id": run_id, "pipeline": pipeline, "model": model, "status": status, "images_per_sec": 90.0}

    def rt(p99, throughput, overloaded=False):
        return {"status": "finished", "latency_p99_ms": p99, "throughput": throughput, "overloaded": overloaded,
                "unanswered": 0, "latency_p50_ms": 5.0, "max_batch": 8}  # fmt: skip

    store = FakeStore([
        (row("b0", "actor", status="failed"), {"image_size": 224}, {}),
        (row("b1", "actor"), {"image_size": 64, "precision": "fp32"}, {"steady_images_per_sec": 500.0}),
        (row("b2", "actor"), {"image_size": 224, "precision": "fp32"}, {"steady_images_per_sec": 120.0,
                                                                        "first_result_s": 4.0}),
        (row("b3", "actor", model="resnet50"), {"image_size": 224}, {"steady_images_per_sec": 40.0}),
        (row("n1", "naive"), {"image_size": 224}, {"steady_images_per_sec": 3.0}),
        (row("r1", "realtime"), {"image_size": 224}, rt(30.0, 80.0)),
        (row("r2", "realtime"), {"image_size": 224}, rt(70.0, 100.0)),
        (row("r3", "realtime"), {"image_size": 224}, rt(20.0, 95.0, overloaded=True)),
        (row("r4", "realtime"), {"image_size": 224}, rt(40.0, 60.0)),
    ])  # fmt: skip
    batch = batch_reference(store, "resnet18", 224)
    assert batch["id"] == "b2" and batch["images_per_sec"] == 120.0 and batch["first_result_s"] == 4.0
    assert realtime_best(store, "resnet18", 224, 50.0)["id"] == "r1"
    assert realtime_best(store, "resnet18", 224, 10.0) is None and batch_reference(store, "vit_b_16", 224) is None
    assert minutes_for(1_000_000, 120.0) == pytest.approx(138.9, abs=0.1)


def test_gpu_utilisation_is_read_for_the_servers_gpus_only(monkeypatch):
    from engine.observe import nvml
    from engine.realtime.run import _gpu_util

    readings = [nvml.GpuReading(0, "H100", 40.0, 1, 2), nvml.GpuReading(1, "H100", None, None, None),
                nvml.GpuReading(2, "H100", 80.0, 1, 2)]  # fmt: skip
    monkeypatch.setattr(nvml, "read_gpus", lambda: readings)
    assert _gpu_util([0, 2]) == 60.0 and _gpu_util([0, 1]) == 40.0
    assert _gpu_util([1]) is None and _gpu_util([]) is None  # unreadable, or a server on the CPU: not a 0


def test_the_one_line_summary_says_when_the_rate_exceeded_capacity():
    from engine.cli.realtime import human

    summary = {"status": "finished", "model": "resnet18", "rate": 2000.0, "max_batch": 8, "max_wait_ms": 20.0,
               "requests": 6000, "answered": 700, "latency_p50_ms": 1200.0, "latency_p95_ms": 2400.0,
               "latency_p99_ms": 2600.0, "throughput": 240.0, "batch_size_mean": 8.0, "overloaded": True}  # fmt: skip
    assert human(summary) == (
        "finished: realtime resnet18 at 2000 req/s (max batch 8, max wait 20 ms): 700/6000 answered, p50 1200.0 ms, "
        "p95 2400.0 ms, p99 2600.0 ms, 240.0 req/s, mean batch 8.0, OVERLOADED: the rate exceeded what the servers "
        "answer"
    )


# --- quick: the command line's refusals ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [["--rate", "0"], ["--rate", "abc"], ["--max-batch", "0"], ["--max-wait-ms", "-5"], ["--seconds", "0"],
     ["--model", "nope"], ["--precision", "fp8"], ["--num-gpus", "0.5"], ["--image-size", "4"], ["--bogus"]],
)  # fmt: skip
def test_bad_realtime_arguments_exit_2_with_one_line(args, capsys):
    assert run_cli("realtime", *args) == 2
    stderr = capsys.readouterr().err
    assert stderr.count("\n") == 1 and stderr.startswith("error:") and "Traceback" not in stderr


def test_the_benchmarks_low_rates_send_long_enough_for_a_p99():
    from bench.realtime import sending_seconds

    assert sending_seconds(50.0, 5.0, 120) == 5.0  # 250 requests already
    assert sending_seconds(6.0, 5.0, 120) == 20.0
    assert sending_seconds(6.0, 5.0, 0) == 5.0


def test_the_benchmark_refuses_bad_flags_before_ray_starts(capsys, monkeypatch):
    from bench import realtime as bench
    from engine.execution import connection

    monkeypatch.setattr(connection, "connect", lambda *a, **k: pytest.fail("Ray started for bad flags"))
    assert bench.main(["--max-batch", "0"]) == 2
    assert "max_batch must be from 1 to 1024" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        bench.main(["--runs", "0"])
    assert exit_.value.code == 2 and "--runs must be at least 1" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        bench.main(["--min-requests", "-1"])
    assert exit_.value.code == 2 and "--min-requests must be 0 or more" in capsys.readouterr().err


# --- with Ray: real runs on the CPU --------------------------------------------------------------------------------


def test_well_above_capacity_the_run_says_overloaded_and_ends_in_its_time(ray_local):
    from engine.realtime.load import DRAIN_S
    from engine.realtime.run import RealtimeRun

    run = ray_local.enqueue(RealtimeRun(TINY.replace(rate=2000.0)))
    assert run.wait(120), run.phase
    s = run.summary
    assert s["status"] == "finished" and s["overloaded"] is True
    assert s["unanswered"] > 0 and s["throughput"] < 0.9 * s["offered_rate"]
    assert time.time() - run.launched_at - s["startup_s"] < TINY.seconds + DRAIN_S  # no wait for the whole queue
    assert s["latency_p99_ms"] > 500  # requests queued behind the cap: their wait counts
    assert s["batch_size_mean"] > 4  # a busy server forms full batches


def test_below_capacity_every_request_is_answered_and_the_cli_writes_its_summary(ray_local, tmp_path, capsys):
    out = tmp_path / "rt.json"
    tiny = ["--rate", "10", "--seconds", "3", "--image-size", "32"]
    assert run_cli("realtime", *tiny, "--json", str(out), "--quiet") == 0
    printed = capsys.readouterr().out.strip()
    assert printed.startswith("finished: realtime resnet18 at 10 req/s (max batch 8, max wait 20 ms): ")
    assert "p99" in printed and "\n" not in printed
    s = json.loads(out.read_text())
    assert set(JSON_KEYS) <= set(s) and s["command"].startswith("python -m engine realtime --rate 10")
    assert s["answered"] == s["requests"] and abs(s["requests"] - 30) <= 15 and s["overloaded"] is False
    assert s["latency_p99_ms"] > s["latency_p50_ms"] > 0
    assert s["queueing_p50_ms"] > 0 and s["compute_p50_ms"] > 0 and 1 <= s["batch_size_mean"] <= 8
    assert s["latency_p50_ms"] >= s["queueing_p50_ms"]  # a request waits in the server, and more besides
    stored = ray_local.store.get(s["id"])
    assert stored["status"] == "finished" and stored["config"]["pipeline"] == "realtime"
    assert stored["summary"]["latency_p99_ms"] == s["latency_p99_ms"]
    points = stored["timeseries"]
    assert points and {"t", "latency_p99_ms", "throughput", "batch_size_mean", "queue_depth"} <= set(points[-1])
    assert all(p["gpu_util_pct"] is None for p in points) and s["gpu_util_mean_pct"] is None  # no GPU: never a 0


def test_ctrl_c_stops_a_cli_run_promptly_and_it_is_stored_as_stopped(ray_local, tmp_path, monkeypatch):
    import engine.cli.realtime as cli_realtime

    def ctrl_c_once_running(run):  # the progress line is drawn every 0.5 s while the run goes: press Ctrl-C there
        if run.timeseries():
            raise KeyboardInterrupt

    monkeypatch.setattr(cli_realtime, "_progress", ctrl_c_once_running)
    out = tmp_path / "rt.json"
    started = time.time()
    assert run_cli("realtime", "--rate", "20", "--seconds", "120", "--image-size", "32", "--json", str(out)) == 130
    assert time.time() - started < 60  # stopped promptly, far from its 120 s
    payload = json.loads(out.read_text())
    assert payload["status"] == "stopped" and 0 < payload["requests"] < 20 * 60
    assert ray_local.store.get(payload["id"])["status"] == "stopped"


# --- the page ------------------------------------------------------------------------------------------------------


@pytest.mark.app
def test_the_page_launches_a_run_and_shows_its_percentiles(ray_local, monkeypatch):
    from streamlit.testing.v1 import AppTest

    from engine.execution.runner import Runner

    monkeypatch.setattr(Runner, "warm_up", lambda self, wait=False: None)  # (a run would wait for it: not this test's)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    at = AppTest.from_file(os.path.join(root, "app.py"), default_timeout=120).run()
    at.switch_page(os.path.join(root, "pages", "realtime.py")).run()
    assert not at.exception
    assert {"Model", "Precision"} <= {w.label for w in at.selectbox}
    assert {"Max batch", "Max wait (ms)", "Seconds"} <= {w.label for w in at.slider}
    assert {"Request rate (requests/s)", "Image size (px)"} <= {w.label for w in at.select_slider}
    assert {"Launch", "Stop", "Sweep rates"} <= {b.label for b in at.button}
    assert any("@serve.batch(max_batch_size=8, batch_wait_timeout_s=0.02)" in c.value for c in at.code)
    at.select_slider(key="rt_size").set_value(32)
    at.select_slider(key="rt_rate").set_value(10)
    at.slider(key="rt_seconds").set_value(2).run()
    next(b for b in at.button if b.label == "Launch").click().run()
    deadline = time.time() + 120
    while not any(m.label == "p99 latency" and m.value.endswith(" ms") for m in at.metric) or not any(
        "finished" in m.value for m in at.markdown
    ):
        assert time.time() < deadline, [m.value for m in at.markdown]
        time.sleep(1)
        at.run()
    assert not at.exception and not at.error
    assert any(m.label == "Throughput" and m.value.endswith("req/s") for m in at.metric)
