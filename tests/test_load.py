"""Several browsers on one app: launching at the same moment gives one run and one visibly queued."""

import os

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
    for at in (first, second):  # both press Launch before either page has seen the other's run
        next(b for b in at.button if b.label == "Launch").click()
    first.run()
    second.run()
    going, waiting = runner.runs[-2:]
    assert waiting.status == "queued" and going.status in ("starting", "running")
    assert any(f"Queued behind the run in progress ({going.id})" in t.value for t in second.toast)
    first.run()  # the first browser's next refresh
    try:
        for page in (first, second):  # the run that goes (it may have moved from starting to running meanwhile)
            assert any(going.id in m.value and ("starting" in m.value or "running" in m.value) for m in page.markdown)
            assert any(w.value == f"Queued: 1 more run(s) wait for this one ({waiting.id})." for w in page.warning)
    finally:  # a failed check must not leave a 512-image run in the way of the next tests
        waiting.stop()
        going.stop()
    assert finish(going)["status"] == "stopped" and waiting.status == "stopped"


def test_redraws_do_not_each_run_a_full_garbage_collection():
    """Every watcher's one-second redraw is a script run; a gc.collect() after each cost 71 % of the server."""
    import tomllib

    with open(os.path.join(os.path.dirname(APP), ".streamlit", "config.toml"), "rb") as f:
        assert tomllib.load(f)["runner"]["postScriptGC"] is False
