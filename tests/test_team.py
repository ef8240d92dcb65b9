"""A team session in the real app: one server with a passcode, two people in two browsers (Debian's Chromium).

Each signs in and launches; the second sees the shared queue, cancels their own waiting run, and cannot
stop the other's; a typed Ray address that is not one of the server's clusters reaches nothing (a TCP
listener on it receives no connection); a folder outside the data roots (/etc) is refused and starts
nothing; every run records who launched it. A link straight to a page, as the server's first visit, meets the
sign-in first and then opens that page.
"""

import json
import socket
import threading
import time

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
PASSCODE = "team-passcode-42"


@pytest.fixture
def listener():
    """A TCP port that records every connection made to it."""
    server = socket.create_server(("127.0.0.1", 0))
    accepted: list = []

    def accept() -> None:
        while True:
            try:
                accepted.append(server.accept())
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    yield server.getsockname()[1], accepted
    server.close()


def sign_in(page, name: str) -> None:
    page.get_by_label("Your name").fill(name)
    page.get_by_label("Team passcode").fill(PASSCODE)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("button", name="Launch").wait_for(timeout=30_000)


def test_two_people_share_one_server_safely(tmp_path, listener, ray_local):
    import ray

    from engine.store import RunStore
    from tests.browser import chromium, serve_app

    port, accepted = listener
    images = tmp_path / "images"
    images.mkdir()
    config = tmp_path / "playground.toml"
    config.write_text(f'[playground]\npasscode = "{PASSCODE}"\ndata_roots = ["{images}"]\noperators = ["olga"]\n')
    db = str(tmp_path / "runs.sqlite")
    # The server joins the suite's Ray (as one set up with RAY_ADDRESS would): no second Ray to start.
    suite_ray = ray.get_runtime_context().gcs_address
    with (
        serve_app("team", PLAYGROUND_CONFIG=str(config), PLAYGROUND_DB=db, RAY_ADDRESS=suite_ray) as url,
        chromium() as browser,
    ):
        ada, bob, eve = (browser.new_context(viewport={"width": 1400, "height": 1000}).new_page() for _ in range(3))
        eve.goto(f"{url}/compare")  # the server's first visitor follows a link straight to a page
        eve.get_by_label("Team passcode").wait_for(timeout=60_000)  # and meets the sign-in all the same
        assert eve.get_by_text("Naive vs actor-based").count() == 0 and eve.get_by_text("History").count() == 0
        mal = browser.new_context().new_page()  # a second link before anyone signed in: the same
        mal.goto(f"{url}/sweep")
        mal.get_by_label("Team passcode").wait_for(timeout=60_000)
        assert mal.get_by_role("button", name="Run sweep").count() == 0
        mal.context.close()
        eve.get_by_label("Your name").fill("eve")
        eve.get_by_label("Team passcode").fill(PASSCODE)
        eve.get_by_role("button", name="Sign in").click()
        eve.get_by_role("heading", name="Naive vs actor-based").wait_for(timeout=30_000)  # then the linked page
        ada.goto(f"{url}/?images=2000&batch=8")
        sign_in(ada, "ada")
        ada.get_by_role("button", name="Launch").click()
        ada.get_by_text("ada's").first.wait_for(timeout=30_000)  # her run, with her name on it

        bob.goto(f"{url}/?images=16&batch=8")
        sign_in(bob, "bob")
        bob.get_by_role("button", name="Launch").click()
        bob.get_by_text("1 run(s) ahead of yours").wait_for(timeout=30_000)  # the one queue, shown to him
        bob.get_by_role("button", name="Stop").click()  # his own waiting run: cancelled
        bob.get_by_text("ada's").first.wait_for(timeout=30_000)  # the page now follows the run that goes: hers
        bob.get_by_role("button", name="Stop").click()
        bob.get_by_text("That run is ada's: only they (or an operator) can stop it.").wait_for(timeout=10_000)

        bob.get_by_role("textbox", name="Ray address").fill(f"127.0.0.1:{port}")
        bob.get_by_role("textbox", name="Ray address").press("Enter")
        bob.get_by_text("is not one of this server's clusters").first.wait_for(timeout=30_000)
        bob.get_by_text("Folder or URI", exact=True).click()
        bob.get_by_role("textbox", name="Folder or URI of images").fill("/etc")
        bob.get_by_role("textbox", name="Folder or URI of images").press("Enter")
        bob.get_by_role("button", name="Launch").click()
        bob.get_by_text("is outside this server's data folders").first.wait_for(timeout=30_000)

        store = RunStore(db)
        runs = {r["owner"]: r for r in store.history()}
        assert set(runs) == {"ada", "bob"} and runs["bob"]["status"] == "stopped"  # /etc started nothing
        assert runs["ada"]["status"] in ("queued", "starting", "running")  # bob's Stop did not touch it
        ada.get_by_role("button", name="Stop").click()
        deadline = time.time() + 60
        while store.get(runs["ada"]["id"])["status"] not in ("stopped", "finished") and time.time() < deadline:
            time.sleep(0.5)
        assert store.get(runs["ada"]["id"])["status"] == "stopped"

        bob.get_by_role("link", name="Compare").click()  # the history's JSON export: his runs only
        bob.get_by_role("button", name="Prepare CSV and JSON (your runs)").click()
        with bob.expect_download(timeout=30_000) as download:
            bob.get_by_role("button", name="Download JSON (your runs)").click()
        exported = json.loads(open(download.value.path()).read())
        assert [r["owner"] for r in exported["runs"]] == ["bob"]
    assert accepted == []  # the typed address never got a connection
