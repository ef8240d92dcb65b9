"""The real app in headless Chromium (Debian's, never a downloaded one): launch, watch, finish."""

import os
import time

import pytest

from tests.browser import ARTIFACTS, browser_page, serve_app, wait_for_warm_workers

THROUGHPUT = """() => {
  const plots = [...document.querySelectorAll('.js-plotly-plot')];
  const plot = plots.find(p => (p.layout?.title?.text || '').includes('Throughput'));
  if (!plot) return [-1, 0];
  const ys = plot.data[0].y;
  return [ys.length, ys.length ? ys[ys.length - 1] : 0];
}"""

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture(scope="module")
def app_url():
    with serve_app("e2e") as url:
        yield url


def test_launch_watch_live_and_see_the_summary(app_url):
    with browser_page(f"{app_url}/?images=192") as page:  # a link with settings: a shorter run for CI
        launch = page.get_by_role("button", name="Launch")
        launch.wait_for(timeout=120_000)
        wait_for_warm_workers(page)
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
        assert "images=192" in page.url and "pipeline=actor" in page.url  # the address is a link to these settings
