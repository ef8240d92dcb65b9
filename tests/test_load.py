"""Several browsers on one app: launching at the same moment gives one run and one visibly queued."""

import os
import time

from streamlit.testing.v1 import AppTest

import ui.session
from tests.conftest import finish

APP = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "app.py")


def browser(images: int) -> AppTest:
    """A fresh session of the app (what a new browser tab gets), set for a small CPU run."""
    at = AppTest.from_file(APP, default_timeout=120).run()
    at.slider(key="images").set_value(images)
    at.slider(key="batch").set_value(8)
    at.slider(key="block").set_value(1)
    return at.run()


def test_two_browsers_launching_at_once_get_one_run_and_one_visibly_queued(ray_local):
    runner = ui.session.shared_runner()
    first, second = browser(images=512), browser(images=16)
    while runner.warming:  # (the app's first page warms Ray's workers; a run launched meanwhile waits for it)
        time.sleep(0.5)
    for at in (first, second):  # both press Launch before either page has seen the other's run
        next(b for b in at.button if b.label == "Launch").click()
    first.run()
    second.run()
    going, waiting = runner.runs[-2:]
    assert waiting.status == "queued" and going.status in ("starting", "running")
    assert any(f"Queued behind the run in progress ({going.id})" in t.value for t in second.toast)
    first.run()  # the first browser's next refresh
    try:  # each browser follows the run it launched: the one that goes (starting or running by now), the one queued
        assert any(going.id in m.value and ("starting" in m.value or "running" in m.value) for m in first.markdown)
        assert any(w.value == f"Queued: 1 more run(s) wait for this one ({waiting.id})." for w in first.warning)
        assert any(waiting.id in m.value and "queued" in m.value for m in second.markdown)
        assert any(i.value.startswith("1 run(s) ahead of yours") for i in second.info)
    finally:  # a failed check must not leave a 512-image run in the way of the next tests
        waiting.stop()
        going.stop()
    assert finish(going)["status"] == "stopped" and waiting.status == "stopped"


def test_redraws_do_not_each_run_a_full_garbage_collection():
    """Every watcher's one-second redraw is a script run; a gc.collect() after each cost 71 % of the server."""
    import tomllib

    with open(os.path.join(os.path.dirname(APP), ".streamlit", "config.toml"), "rb") as f:
        assert tomllib.load(f)["runner"]["postScriptGC"] is False


def test_five_watchers_of_one_run_share_one_stream_of_charts(ray_local, tiny, monkeypatch):
    """Each chart of a run is built once per sample for everyone watching, not once per browser."""
    from ui import charts

    built = []
    real = charts.throughput
    monkeypatch.setattr(charts, "throughput", lambda points, **kw: built.append(len(points)) or real(points, **kw))
    run = ui.session.shared_runner().submit(tiny.replace(images=20_000, batch_size=4), origin="playground")
    watchers = [AppTest.from_file(APP, default_timeout=120).run() for _ in range(5)]
    try:
        deadline = time.time() + 120
        while time.time() < deadline and not (run.timeseries() and run.timeseries()[-1]["rows"]):
            time.sleep(0.5)
        for _ in range(2):
            for page in watchers:
                page.run()
                assert not page.exception
                assert any(run.id in m.value for m in page.markdown)  # every watcher follows the same run
            time.sleep(1)
    finally:
        run.stop()
    assert built and len(built) == len(set(built))  # one build per sample, whatever the number of watchers
    assert finish(run)["status"] == "stopped"
