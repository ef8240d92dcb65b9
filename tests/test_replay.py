"""Replays play recorded runs back at their real speed with no Ray; rates read smoothly; user text shows as typed."""

import json
import os

import pytest

from engine.insight.replay import Replay, records_from_export
from engine.observe.samplers import RateMeter
from ui.text import plain

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO = os.path.join(ROOT, "demo", "naive-vs-actor.json")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def record(pipeline: str = "actor", seconds: float = 10.0) -> dict:
    points = [{"t": t / 2, "rows": t * 10, "images_per_sec": 20.0, "model_loads": 1,
               "gpus": [{"index": 0, "name": "NVIDIA H100 80GB HBM3", "util_pct": 90.0, "node": "n"}]}
              for t in range(int(seconds * 2) + 1)]  # fmt: skip
    summary = {"seconds": seconds, "started_at": 1_764_979_200.0, "images_per_sec": 20.0, "rows": points[-1]["rows"]}
    return {"id": f"{pipeline}1", "status": "finished", "error": None, "timeseries": points, "summary": summary,
            "config": {"model": "resnet50", "pipeline": pipeline, "images": 200}}  # fmt: skip


def test_a_replay_shows_what_the_run_showed_second_by_second_and_then_its_summary():
    clock = Clock()
    replay = Replay(record(), clock=clock)
    assert replay.status == "running" and not replay.done and replay.summary is None
    assert [p["t"] for p in replay.timeseries()] == [0.0]
    clock.now += 4.2
    assert replay.timeseries()[-1]["t"] == 4.0 and replay.status == "running"
    assert "replay of a run on 1 × NVIDIA H100 80GB HBM3, recorded 2025-12-06" in replay.phase
    clock.now += 10
    assert replay.done and replay.status == "finished" and replay.summary["rows"] == 200
    assert len(replay.timeseries()) == 21


def test_stop_ends_a_replay_where_it_is():
    clock = Clock()
    replay = Replay(record(), clock=clock)
    clock.now += 3
    replay.stop()
    clock.now += 30
    assert replay.status == "stopped" and replay.timeseries()[-1]["t"] == 3.0


def test_an_export_file_is_read_as_the_store_gives_runs():
    text = json.dumps({"schema": 7, "runs": [
        {**record(), "config": json.dumps(record()["config"]), "summary": json.dumps(record()["summary"]),
         "timeseries": json.dumps(record()["timeseries"])}]})  # fmt: skip
    (found,) = records_from_export(text)
    assert found["config"]["pipeline"] == "actor" and len(found["timeseries"]) == 21


def test_the_demo_file_is_a_naive_and_an_actor_run_recorded_on_a_gpu():
    with open(DEMO) as f:
        runs = records_from_export(f.read())
    assert sorted(r["config"]["pipeline"] for r in runs) == ["actor", "naive"]
    for run in runs:
        replay = Replay(run)
        assert run["status"] == "finished" and "× NVIDIA" in replay.label and replay.duration > 1


def test_the_smoothed_rate_never_reads_zero_while_rows_flow():
    meter = RateMeter(0.0)
    rates = [meter.rate(t / 2, 4 * int(t / 2 // 8)) for t in range(1, 81)]  # 4 rows every 8 s
    first_row = next(i for i, r in enumerate(rates) if r > 0)
    assert all(r > 0 for r in rates[first_row:])
    assert abs(rates[-1] - 0.5) < 0.05  # converges on the true rate


def test_user_text_is_shown_as_typed():
    assert plain("/data/*cats*/x_1.png") == "/data/\\*cats\\*/x\\_1.png"
    assert plain(":red[boom] $x$") == "\\:red\\[boom\\] \\$x\\$"
    assert plain("ignored: must be one of fp32") == "ignored: must be one of fp32"
    assert plain("1. first") == "1\\. first" and plain("12.5 s") == "12.5 s"


def _projector_kpis():
    from engine.insight.replay import Replay, records_from_export
    from ui import panels
    from ui.replay import DEMO_FILE

    with open(DEMO_FILE) as f:
        actor = next(r for r in records_from_export(f.read()) if r["config"]["pipeline"] == "actor")
    panels.kpis(Replay(actor), present=True)


@pytest.mark.app
def test_the_projector_view_keeps_every_kpi_label_short_enough_for_its_tile():
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_function(_projector_kpis).run()
    assert not at.exception
    assert [m.label for m in at.metric] == ["Images", "Images/sec", "Model loads", "Elapsed", "ETA"]
    assert at.metric[0].help.startswith("done, of ")


def test_the_startup_timeline_lists_its_steps_in_order_and_names_the_model_loads_apart():
    from ui import charts

    startup = {"connect_ray": 0.1, "start_workers": 0.3, "load_model": 0.5, "first_batch_in": 0.1, "first_result": 2}
    fig = charts.startup_timeline(startup, [{"start_s": 0.4, "end_s": 0.9}, {"start_s": 0.5, "end_s": 1.1}])
    assert [t.name for t in fig.data if t.showlegend is not False] == [
        "connect ray",
        "start workers",
        "load model",
        "first batch in",
        "first result",
        "each model load (its own row)",
    ]
    assert fig.layout.legend.traceorder == "normal" and [t.y[0] for t in fig.data[5:]] == ["load 1", "load 2"]
