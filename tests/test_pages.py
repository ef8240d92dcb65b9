"""The pages through Streamlit's AppTest: labels, a real tiny run, errors, and the no-GPU path."""

import json
import os
import time

import pytest
from streamlit.testing.v1 import AppTest

import ui.session
from engine.core.defaults import Machine

APP = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "app.py")
LABELS = {
    "selectbox": {"Model", "Precision"},
    "radio": {"Pipeline", "Data"},
    "slider": {"Batch size", "Concurrency", "Block size (MB)", "Images"},
    "button": {"Launch", "Stop"},
}


def labels(at: AppTest, kind: str) -> set[str]:
    return {w.label for w in getattr(at, kind)}


@pytest.fixture
def app(ray_local):
    return AppTest.from_file(APP, default_timeout=120).run()


def tiny_settings(at: AppTest) -> None:
    at.slider(key="images").set_value(16)
    at.slider(key="batch").set_value(8)
    at.slider(key="block").set_value(1)


def run_until(at: AppTest, done, timeout: float = 180) -> AppTest:
    """Rerun the page (as the live fragment does) until `done(at)` or time runs out."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        at.run()
        if done(at):
            return at
        time.sleep(1)
    raise AssertionError("page never reached the expected state")


@pytest.mark.app
def test_every_control_and_launch_are_drawn_while_ray_still_starts(monkeypatch):
    """The first paint never waits for Ray (the browser test times it): with Ray's start-up still going,
    the page is whole and the sidebar says how long it has been."""
    import ui.notices
    import ui.sidebar

    class Starting:
        info = error = None
        starting = True
        started = time.time() - 4

    for module in (ui.session, ui.sidebar, ui.notices):
        monkeypatch.setattr(module, "ray_startup", lambda address: Starting)
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.exception
    for kind, expected in LABELS.items():
        assert expected <= labels(at, kind), kind
    assert any("Starting Ray… 4 s (Launch works already)" in c.value for c in at.caption)


def test_playground_has_every_labelled_control(app):
    assert not app.exception
    weights = [c.value for c in app.caption if "M parameters" in c.value]
    assert weights and weights[0].endswith(("random weights: same speed, meaningless labels", "pretrained weights"))
    for kind, expected in LABELS.items():
        assert expected <= labels(app, kind), kind
    assert [o for o in app.radio(key="pipeline").options] == ["Naive", "Actor-based"]
    assert "GPUs per actor" not in labels(app, "number_input")  # no GPU in CI
    assert "Batches at once per actor" not in labels(app, "slider")


def test_switching_to_naive_loads_its_defaults(app):
    app.radio(key="pipeline").set_value("Naive").run()
    assert app.slider(key="batch").value == 4 and app.slider(key="concurrency").value == 2


def test_a_link_opens_the_playground_with_its_settings_and_the_address_follows_the_controls(ray_local):
    at = AppTest.from_file(APP, default_timeout=120)
    at.query_params.update(pipeline="naive", model="resnet50", images="64", batch="2", precision="fp64", colour="red")
    at.run()
    assert not at.exception
    assert at.radio(key="pipeline").value == "Naive" and at.selectbox(key="model").value == "resnet50"
    assert at.slider(key="images").value == 64 and at.slider(key="batch").value == 2  # the link beats the defaults
    assert at.slider(key="concurrency").value == 2  # what the link leaves out: the naive pipeline's default
    assert at.selectbox(key="precision").value == "fp32"
    assert [w.value for w in at.warning] == [
        "link setting precision='fp64' ignored: must be one of fp32, bf16, fp16",
        "link setting 'colour' ignored: links carry model, pipeline, precision, batch, concurrency, block, images",
    ]
    at.slider(key="block").set_value(4).run()
    assert at.query_params == {
        "model": "resnet50", "pipeline": "naive", "precision": "fp32",
        "batch": "2", "concurrency": "2", "block": "4", "images": "64",
    }  # fmt: skip


def test_launching_a_tiny_cpu_run_ends_in_a_finished_summary(app):
    tiny_settings(app)
    [b for b in app.button if b.label == "Launch"][0].click().run()
    run_until(app, lambda at: any(s.value == "Summary" for s in at.subheader))
    assert not app.exception
    assert any("finished" in m.value for m in app.markdown)
    assert any(m.label == "Steady images/sec" for m in app.metric)
    assert any(s.value == "Sample predictions" for s in app.subheader)
    assert any("GPU charts hidden" in i.value for i in app.info)  # the no-GPU path
    code = [c.value for c in app.code]
    assert any("ActorPoolStrategy(size=1)" in c and "batch_size=8" in c for c in code)
    assert any("ActorPoolMapOperator" in c for c in code)


def test_bad_input_is_one_line_and_nothing_starts(app, tmp_path):
    before = len(ui.session.shared_runner().runs)
    app.radio(key="data").set_value("Folder or URI").run()
    app.text_input(key="data_path").input(str(tmp_path / "missing")).run()
    [b for b in app.button if b.label == "Launch"][0].click().run()
    errors = [e.value for e in app.error]
    assert errors and errors[0].startswith("data ") and "\n" not in errors[0]
    assert len(ui.session.shared_runner().runs) == before


@pytest.mark.parametrize("warming", [True, False])
def test_the_sidebar_says_whether_rays_workers_are_warm(ray_local, monkeypatch, warming):
    """(That the caption refreshes itself once the warm-up ends is the browser test's to see.)"""
    from engine.execution.runner import Runner

    monkeypatch.setattr(Runner, "warming", property(lambda self: warming))
    at = AppTest.from_file(APP, default_timeout=120).run()
    said = [c.value for c in at.sidebar.caption if c.value.startswith("warm")]
    if warming:
        assert said == ["warming workers: importing torch in Ray's idle workers…"]
    else:
        assert said == [f"warm workers: {ray_local.warm_workers} (torch imported, idle in Ray's pool)"]


def test_a_failed_run_shows_its_cause_and_the_page_keeps_working(app, tmp_path):
    (tmp_path / "notes.txt").write_text("not an image")
    tiny_settings(app)
    app.radio(key="data").set_value("Folder or URI").run()
    app.text_input(key="data_path").input(str(tmp_path)).run()
    [b for b in app.button if b.label == "Launch"][0].click().run()
    run_until(app, lambda at: any("Run failed" in e.value for e in at.error))
    message = [e.value for e in app.error if "Run failed" in e.value][0]
    assert "\n" not in message and "Traceback" not in message
    app.radio(key="data").set_value("Synthetic (generated in the pipeline)").run()
    [b for b in app.button if b.label == "Launch"][0].click().run()
    run_until(app, lambda at: any(s.value == "Summary" for s in at.subheader) and not at.error)


def test_gpu_control_appears_when_the_cluster_has_gpus(ray_local, monkeypatch):
    monkeypatch.setattr(ui.session, "machine_now", lambda: Machine(1, 16, "NVIDIA H100 80GB HBM3", 79.6))
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert "GPUs per actor" in labels(at, "number_input")
    # the tuned GPU layout (engine.core.defaults): 4 actors sharing the GPU, batch 256, bf16, 3 batches each
    assert at.number_input(key="gpus").value == 0.25 and at.slider(key="concurrency").value == 4
    assert at.slider(key="batch").value == 256 and at.selectbox(key="precision").value == "bf16"
    assert at.slider(key="calls").value == 3
    at.radio(key="pipeline").set_value("Naive").run()
    assert "Batches at once per actor" not in labels(at, "slider")  # tasks, not actors: nothing to set


def test_batches_at_once_per_actor_drive_a_real_run(ray_local, monkeypatch):
    """With GPUs the control shows; set to 2 on a CPU share (0 GPUs per actor), a real run uses two threads."""
    monkeypatch.setattr(ui.session, "machine_now", lambda: Machine(1, 16, "NVIDIA H100 80GB HBM3", 79.6))
    at = AppTest.from_file(APP, default_timeout=120).run()
    tiny_settings(at)
    at.number_input(key="gpus").set_value(0.0)
    at.selectbox(key="precision").set_value("fp32")
    at.slider(key="calls").set_value(2).run()
    [b for b in at.button if b.label == "Launch"][0].click().run()
    run_until(at, lambda page: any(s.value == "Summary" for s in page.subheader))
    assert not at.exception and any("finished" in m.value for m in at.markdown)
    assert any("max_concurrent_calls_per_actor=2" in c.value for c in at.code)


def test_compare_page_races_both_pipelines_and_lists_history(ray_local):
    at = AppTest.from_file(APP, default_timeout=120).run()
    at.switch_page(os.path.join(os.path.dirname(APP), "pages", "compare.py")).run()
    assert not at.exception
    at.slider(key="cmp_images").set_value(16)
    next(b for b in at.button if b.label == "Run naive vs actor-based").click().run()

    def both_done(page):
        return any(m.label == "Speedup" and m.value.endswith("×") for m in page.metric)

    run_until(at, both_done, timeout=240)
    assert not at.get("download_button")  # the exports are built when asked
    next(b for b in at.button if b.label.startswith("Prepare CSV and JSON")).click().run()
    assert sorted(d.label.split(" (")[0] for d in at.get("download_button")) == ["Download CSV", "Download JSON"]
    assert at.dataframe and len(at.dataframe[0].value) >= 2


def test_a_new_ray_address_during_a_run_is_refused_at_once_in_one_line_and_ray_stays(ray_local):
    from engine.execution import connection

    with connection.using(None, "a run"):  # as a run holds it (a switch under it would end the app's process)
        at = AppTest.from_file(APP, default_timeout=120)
        at.session_state["ray_address"] = "127.0.0.1:1"
        started = time.time()
        run_until(at.run(), lambda page: page.error, timeout=30)
        assert time.time() - started < 30  # refused at once, not after the wait granted to warm-up
        (error,) = at.error
        assert error.value.startswith("local embedded Ray is busy with ") and "a run" in error.value
        assert error.value.endswith(": Ray cluster at 127.0.0.1:1 can be used once it ends")
    assert connection.connected_address() is None and ray_local.active() is None
    at.session_state["ray_address"] = ""
    assert not at.run().error  # the local Ray is still there, and said to be


def test_a_link_number_out_of_its_slider_range_is_named_and_ignored():
    from ui import link

    settings, problems = link.read({"batch": "5000", "images": "-16", "block": "8"}, {}, {
        "batch": (1, 1024), "images": (16, 20_000), "block": (1, 256)})  # fmt: skip
    assert settings == {"block": 8}
    assert problems == [
        "link setting batch='5000' ignored: must be a whole number from 1 to 1024",
        "link setting images='-16' ignored: must be a whole number from 16 to 20000",
    ]


def test_a_run_from_the_history_replays_on_the_playground_once_picked(ray_local):
    from engine.insight.replay import Replay
    from ui.replay import DEMO_FILE
    from ui.session import shared_runner

    store = shared_runner().store
    with open(DEMO_FILE) as f:
        recorded = json.load(f)
    for run in recorded["runs"]:
        run["started_at"] = time.time()  # the newest in the history, whatever ran before
    store.import_json(json.dumps(recorded))
    try:
        at = AppTest.from_file(APP, default_timeout=120).run()
        label = next(o for o in at.selectbox(key="pg_replay_pick").options if o.endswith(" · 9074a0b0f892"))
        at.selectbox(key="pg_replay_pick").set_value(label).run()
        next(b for b in at.button if b.label == "Replay it").click().run()
        assert not at.exception and not at.error
        replay = at.session_state["pg_follow"]
        assert isinstance(replay, Replay) and replay.config.pipeline == "actor" and "× NVIDIA" in replay.label
    finally:
        store.delete(["9074a0b0f892", "5bb376eb59a4"])


@pytest.fixture
def team_server(monkeypatch):
    """A server whose operator set a passcode: people sign in (its policy is read anew, and forgotten after)."""
    monkeypatch.setenv("PLAYGROUND_PASSCODE", "s3same")
    ui.session.server_policy.clear()  # read once per server: this test's server has a passcode
    yield
    ui.session.server_policy.clear()


def test_a_prepared_history_export_is_shown_only_to_whom_it_was_built_for(ray_local, team_server):
    at = AppTest.from_file(APP, default_timeout=120)
    at.session_state["who"] = "bob"
    at.run()
    at.switch_page(os.path.join(os.path.dirname(APP), "pages", "compare.py")).run()
    next(b for b in at.button if b.label == "Prepare CSV and JSON (your runs)").click().run()
    assert [d.label for d in at.get("download_button")] == ["Download CSV (your runs)", "Download JSON (your runs)"]
    at.session_state["who"] = "ada"  # bob signed out, ada signed in, in the same browser
    at.run()
    assert not at.get("download_button")
