"""The real app in headless Chromium (Debian's, never a downloaded one): launch, watch, finish."""

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
THROUGHPUT = """() => {
  const plots = [...document.querySelectorAll('.js-plotly-plot')];
  const plot = plots.find(p => (p.layout?.title?.text || '').includes('Throughput'));
  if (!plot) return [-1, 0];
  const ys = plot.data[0].y;
  return [ys.length, ys.length ? ys[ys.length - 1] : 0];
}"""

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def app_url():
    """`streamlit run app.py` on a free port, as in Streamlit's own e2e suite."""
    if not os.path.exists(CHROMIUM):
        pytest.skip("Debian chromium is not installed (./dev test installs it)")
    port = free_port()
    env = {**os.environ, "PLAYGROUND_OBJECT_STORE_MB": "300"}
    os.makedirs(ARTIFACTS, exist_ok=True)
    log = open(os.path.join(ARTIFACTS, "e2e-streamlit.log"), "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port), "--server.headless", "true"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 90
    while time.time() < deadline:
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                break
        except OSError:
            time.sleep(0.5)
    else:
        proc.kill()
        pytest.fail("streamlit never became healthy")
    yield url
    proc.terminate()
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


def test_launch_watch_live_and_see_the_summary(app_url):
    from playwright.sync_api import sync_playwright

    os.makedirs(ARTIFACTS, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1500, "height": 2400})
        page.goto(app_url)
        launch = page.get_by_role("button", name="Launch")
        launch.wait_for(timeout=120_000)
        launch.click()

        counts: list[int] = []
        flowing = 0
        deadline = time.time() + 240
        while time.time() < deadline and page.get_by_text("Sample predictions").count() == 0:
            n, latest_rate = page.evaluate(THROUGHPUT)
            if n > 0 and (not counts or n != counts[-1]):
                counts.append(n)
                flowing += bool(latest_rate and latest_rate > 0)
                if flowing == 6:  # a few seconds of images flowing: the picture for the README
                    page.screenshot(path=os.path.join(ARTIFACTS, "e2e-mid-run.png"))
            time.sleep(0.5)
        assert len(counts) >= 3, f"the images/sec chart changed only {len(counts) - 1} times: {counts}"

        page.get_by_text("Sample predictions").wait_for(timeout=60_000)
        page.get_by_text("Steady images/sec").wait_for()
        page.screenshot(path=os.path.join(ARTIFACTS, "e2e-finished.png"))
        assert page.get_by_text("GPU charts hidden").count() >= 1 or page.get_by_text("GPU utilisation").count() >= 1
        browser.close()
