"""Serving the real app and opening it in Debian's headless Chromium (never a downloaded browser)."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ARTIFACTS = os.path.join(ROOT, "artifacts")
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
REAP_S = 15.0  # after SIGTERM, how long the app's processes (its Ray's) may take to end
# The Playground's throughput chart as the page drew it: [its number of points, its latest images/sec]
THROUGHPUT = """() => {
  const plots = [...document.querySelectorAll('.js-plotly-plot')];
  const plot = plots.find(p => (p.layout?.title?.text || '').includes('Throughput'));
  if (!plot) return [-1, 0];
  const ys = plot.data[0].y;
  return [ys.length, ys.length ? ys[ys.length - 1] : 0];
}"""
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def descendants(pid: int) -> list:
    """Every process started under `pid` (psutil), Ray's included."""
    import psutil

    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return []


@contextlib.contextmanager
def serve_app(name: str, **env: str):
    """`streamlit run app.py` on a free port, as in Streamlit's own e2e suite; yields its URL.

    On the way out the app gets SIGTERM, as from a terminal's Ctrl-C or a process manager, and every
    process it started (its local Ray's included) must be gone within REAP_S.
    """
    if not os.path.exists(CHROMIUM):
        pytest.skip("Debian chromium is not installed (./dev test installs it)")
    port = free_port()
    os.makedirs(ARTIFACTS, exist_ok=True)
    log = open(os.path.join(ARTIFACTS, f"{name}-streamlit.log"), "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port), "--server.headless", "true"],
        cwd=ROOT,
        env={**os.environ, "PLAYGROUND_OBJECT_STORE_MB": "300", **env},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 90
        while time.time() < deadline:
            try:
                if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                    break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail("streamlit never became healthy")
        yield url
    finally:
        started = descendants(proc.pid)
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
    deadline = time.time() + REAP_S
    while time.time() < deadline and any(p.is_running() and p.status() != "zombie" for p in started):
        time.sleep(0.5)
    left = [" ".join(p.cmdline()[:2]) for p in started if p.is_running() and p.status() != "zombie"]
    assert not left, f"processes the app started outlived it: {left}"


@contextlib.contextmanager
def chromium():
    """Debian's headless Chromium, driven by Playwright."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@contextlib.contextmanager
def browser_page(url: str, width: int = 1500, height: int = 2400):
    """A Chromium page on `url`, tall enough by default to show the whole playground; yields it once loading."""
    with chromium() as browser:
        page = browser.new_page(viewport={"width": width, "height": height})
        page.goto(url)
        yield page
