"""Shared fixtures (one small local Ray for the whole session, on the CPU) and the test tiers.

Tiers: a test that starts Ray (it uses `ray_local`), a subprocess, the app (AppTest) or a browser
carries a marker saying so (`ray`, `subprocess`, `app`, `e2e`; `slow`, `gpu` as well); every other
test is `quick`, and `./dev test -m quick` runs those alone. A quick test that starts a subprocess,
Ray or the app fails, naming the marker it lacks.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
os.environ.setdefault("PLAYGROUND_OBJECT_STORE_MB", "300")
os.environ.setdefault("PLAYGROUND_CACHE", os.path.join(ROOT, ".cache-test"))
# The suite's runs go to a store of its own, never into the history of the developer's own app.
os.environ.setdefault("PLAYGROUND_DB", os.path.join(tempfile.mkdtemp(prefix="playground-tests-"), "runs.sqlite"))
os.environ.setdefault("RAY_DEDUP_LOGS", "0")

from engine import RunConfig  # noqa: E402

TINY = RunConfig(model="resnet18", images=24, image_size=32, batch_size=8, concurrency=1, block_size_mb=1)


HEAVY = ("ray", "subprocess", "app", "e2e", "slow", "gpu")


def pytest_collection_modifyitems(config, items) -> None:
    for item in items:
        if "ray_local" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.ray)
        if not any(item.get_closest_marker(name) for name in HEAVY):
            item.add_marker(pytest.mark.quick)


@pytest.fixture(autouse=True)
def quick_stays_quick(request, monkeypatch):
    """In a quick test, starting a subprocess, Ray or the app is an error that names the missing marker."""
    if request.node.get_closest_marker("quick") is None:
        yield
        return
    import subprocess

    from engine.execution import connection

    def refuse(what: str, marker: str):
        def refused(*args, **kwargs):
            raise AssertionError(f"a quick test started {what}: mark it @pytest.mark.{marker}")

        return refused

    monkeypatch.setattr(subprocess.Popen, "__init__", refuse("a subprocess", "subprocess"))
    monkeypatch.setattr(connection, "_init", refuse("Ray", "ray"))
    try:
        from streamlit.testing.v1 import AppTest

        monkeypatch.setattr(AppTest, "run", refuse("the app", "app"))
    except ImportError:
        pass
    yield


@pytest.fixture(scope="session")
def ray_local():
    """Start (once) the embedded Ray the engine uses, torch-ready workers as in the app, and hand back the runner."""
    from engine import runner
    from engine.execution import connection

    connection.connect(None, warm=True)
    yield runner()
    # Ray shuts down as pytest exits: a warm-up or top-up still going would then log to a closed stream.
    deadline = time.time() + 120
    while runner().warming and time.time() < deadline:
        time.sleep(0.2)
    runner().wait_idle(max(0.0, deadline - time.time()))


@pytest.fixture
def tiny() -> RunConfig:
    """A run small enough for a 2-core CI machine: 24 images of 32x32."""
    return TINY


def run_cli(*args: str) -> int:
    """`python -m engine ARGS` in this process (no interpreter to start); returns its exit code."""
    from engine import cli

    try:
        return cli.main(list(args))
    except SystemExit as exit_:  # argparse refuses before main returns
        return exit_.code


def finish(run, timeout: float = 180):
    """Wait for a run and return its summary, failing the test on a hang."""
    assert run.wait(timeout), f"run {run.id} still {run.status} after {timeout}s"
    return run.summary


def why_it_failed(result) -> str:
    """A child process's failure, readable: how it ended, the results it printed, its stderr less Ray's INFO."""
    import signal

    ended = f"killed by {signal.Signals(-result.returncode).name}" if result.returncode < 0 else "exit"
    if result.returncode > 128:  # a shell or `timeout` in between reports a signal as 128 + its number
        ended = f"exit (128 + {signal.Signals(result.returncode - 128).name})"
    results = [line for line in result.stdout.splitlines() if line.startswith("{")]
    meaningful = [line for line in result.stderr.splitlines() if " INFO " not in line]
    return "\n".join([f"rc {result.returncode} ({ended}); results so far:", *results, "stderr:", *meaningful[-60:]])
