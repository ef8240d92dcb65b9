"""Browsers watching one run: the app server's CPU per watcher, and how often each page redraws.

`python -m bench.watchers [--seconds 20] [--watchers 5] [--label L]` serves the real app (tests/browser.py),
launches one long CPU run (the playground's defaults, Images at its maximum) from a first page,
closes it, then measures three windows of that same run: no page open, one page, five pages
(Debian's headless Chromium, one browser context each, as separate people would be). Per window:

- the Streamlit server's CPU, from psutil: the server process plus any children that are not Ray's
  (the run's driver work is in that process too, so the no-page window is the baseline);
- per page, the intervals between redraws of the live panel (a MutationObserver in the page sees
  the "Elapsed" KPI change: it changes on every fragment run), the same for "Images done", and
  the websocket messages the page received per second.

The page's fragment asks for one redraw a second; that is what the intervals are held against.
Writes bench/results/<date>-watchers.json with the command, machine and versions.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shlex
import statistics
import sys
import time
from importlib import metadata

import psutil

from bench.run_bench import environment
from tests.browser import CHROMIUM, CHROMIUM_ARGS, serve_app

# every page redraws as if in front: no background-timer throttling may pass for a slow server
UNTHROTTLED = ["--disable-background-timer-throttling", "--disable-renderer-backgrounding",
               "--disable-backgrounding-occluded-windows"]  # fmt: skip
RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
WATCH = """() => {
  const read = (label) => {
    for (const m of document.querySelectorAll('[data-testid="stMetric"]')) {
      const l = m.querySelector('[data-testid="stMetricLabel"]');
      const value = m.querySelector('[data-testid="stMetricValue"]');
      if (l && l.innerText.trim().startsWith(label)) return value?.innerText ?? null;
    }
    return null;
  };
  const seen = {Elapsed: [], "Images done": []};
  const last = {Elapsed: read("Elapsed"), "Images done": read("Images done")};
  new MutationObserver(() => {
    const now = performance.now();
    for (const label of Object.keys(seen)) {
      const value = read(label);
      if (value !== null && value !== last[label]) { last[label] = value; seen[label].push(now); }
    }
  }).observe(document.body, {subtree: true, childList: true, characterData: true});
  window.__redraws = seen;
}"""
IMAGES_TOTAL = """() => {
  for (const m of document.querySelectorAll('[data-testid="stMetricLabel"]')) {
    const found = m.innerText.match(/Images done \\(of ([\\d,]+)\\)/);
    if (found) return found[1];
  }
  return null;
}"""
IMAGES_DONE = """() => {
  for (const m of document.querySelectorAll('[data-testid="stMetric"]')) {
    if (m.innerText.includes("Images done")) return m.querySelector('[data-testid="stMetricValue"]').innerText;
  }
  return null;
}"""


def server_pid(port: int) -> int:
    """The process listening on the app's port: the Streamlit server."""
    return next(c.pid for c in psutil.net_connections("tcp") if c.laddr.port == port and c.status == "LISTEN")


def server_processes(pid: int) -> list[psutil.Process]:
    """The server and its children that are not Ray's (Ray's workers do the run, not the serving)."""
    server = psutil.Process(pid)
    others = [p for p in server.children(recursive=True) if "ray" not in " ".join(p.cmdline()).lower()]
    return [server, *others]


def cpu_seconds(processes: list[psutil.Process]) -> float:
    total = 0.0
    for p in processes:
        try:
            times = p.cpu_times()
            total += times.user + times.system
        except psutil.NoSuchProcess:
            pass
    return total


def chromium_seconds() -> dict[int, float]:
    """CPU seconds so far of each Chromium process, by pid."""
    return {p.pid: cpu_seconds([p]) for p in psutil.process_iter() if "chrom" in p.name().lower()}


def chromium_spent(before: dict[int, float]) -> float:
    """Chromium's CPU seconds since `before`: processes that exited meanwhile count for nothing, not less."""
    return sum(max(0.0, t - before.get(pid, 0.0)) for pid, t in chromium_seconds().items())


def rows_done(text: str | None) -> int | None:
    """The "Images done" tile as a number; None before the run's first rows (the tile reads "—")."""
    number = (text or "").split("/")[0].replace(",", "").strip()
    return int(number) if number.isdigit() else None


def open_page(browser, url: str) -> dict:
    """A new browser context on the app, with its websocket messages timed from the start."""
    context = browser.new_context(viewport={"width": 1500, "height": 1800})
    page = context.new_page()
    watcher = {"context": context, "page": page, "ws": []}
    page.on("websocket", lambda ws: ws.on("framereceived", lambda _: watcher["ws"].append(time.monotonic())))
    page.goto(url, timeout=120_000)
    page.get_by_text("Images done").first.wait_for(timeout=120_000)
    page.evaluate(WATCH)
    return watcher


def intervals(stamps_ms: list[float]) -> dict:
    gaps = [(b - a) / 1000 for a, b in zip(stamps_ms, stamps_ms[1:], strict=False)]
    if not gaps:
        return {"redraws": len(stamps_ms), "median_s": None, "p95_s": None, "max_s": None}
    ordered = sorted(gaps)
    return {
        "redraws": len(stamps_ms),
        "median_s": round(statistics.median(gaps), 3),
        "p95_s": round(ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))], 3),
        "max_s": round(max(gaps), 3),
    }


def measure(pid: int, watchers: list[dict], seconds: float, sleeper) -> dict:
    """One window: server CPU over `seconds`, and each page's redraws and websocket messages in it."""
    for w in watchers:
        w["page"].evaluate("() => { for (const k in window.__redraws) window.__redraws[k].length = 0; }")
    processes = server_processes(pid)
    rows_before = rows_done(watchers[0]["page"].evaluate(IMAGES_DONE)) if watchers else None
    cpu0, chrome0, start = cpu_seconds(processes), chromium_seconds(), time.monotonic()
    psutil.cpu_percent(None)
    sleeper(seconds)
    wall = time.monotonic() - start
    server = (cpu_seconds(processes) - cpu0) / wall * 100
    window = {
        "watchers": len(watchers),
        "seconds": round(wall, 2),
        "server_cpu_pct": round(server, 1),
        "machine_cpu_pct": psutil.cpu_percent(None),
        "load_average_1m": round(os.getloadavg()[0], 2),  # other work on the machine, if any
        "chromium_cpu_pct": round(chromium_spent(chrome0) / wall * 100, 1),
        "pages": [],
    }
    for w in watchers:
        seen = w["page"].evaluate("() => window.__redraws")
        window["pages"].append({
            "elapsed_kpi": intervals(seen["Elapsed"]),
            "images_done_kpi": intervals(seen["Images done"]),
            "websocket_messages_per_s": round(sum(start <= t <= start + wall for t in w["ws"]) / wall, 2),
            "visibility": w["page"].evaluate("() => document.visibilityState"),
        })  # fmt: skip
    if watchers:
        rows_after = rows_done(watchers[0]["page"].evaluate(IMAGES_DONE))
        window["run_images_per_sec"] = round((rows_after - rows_before) / wall, 1)
    print(json.dumps({k: v for k, v in window.items() if k != "pages"}), flush=True)  # as it goes
    return window


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.watchers", description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=20.0, help="length of each measured window")
    p.add_argument("--watchers", type=int, default=5, help="pages open in the last window")
    p.add_argument("--label", default="", help="added to the results file name, to keep two runs of one day apart")
    args = p.parse_args(argv)
    command = shlex.join(["python", "-m", "bench.watchers", *(sys.argv[1:] if argv is None else argv)])
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import sync_playwright

    _, env = environment(cuda=False)
    with serve_app("watchers") as url, sync_playwright() as pw:
        pid = server_pid(int(url.rsplit(":", 1)[1]))
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS + UNTHROTTLED)
        launcher = browser.new_context(viewport={"width": 1500, "height": 1800}).new_page()
        launcher.goto(url, timeout=120_000)
        launcher.get_by_role("button", name="Launch").wait_for(timeout=120_000)
        images = launcher.locator('[data-testid="stSlider"]').filter(has_text="Images").get_by_role("slider")
        images.focus()
        images.press("End")  # the longest run the page offers
        launcher.wait_for_timeout(2000)
        launcher.get_by_role("button", name="Launch").click()
        deadline = time.time() + 240
        while time.time() < deadline and not (rows_done(launcher.evaluate(IMAGES_DONE)) or 0):
            launcher.wait_for_timeout(500)
        total = launcher.evaluate(IMAGES_TOTAL)
        launcher.context.close()
        windows = [measure(pid, [], args.seconds, time.sleep)]
        watchers = [open_page(browser, url)]
        watchers[0]["page"].wait_for_timeout(3000)
        windows.append(measure(pid, watchers, args.seconds, lambda s: watchers[0]["page"].wait_for_timeout(s * 1000)))
        watchers += [open_page(browser, url) for _ in range(args.watchers - 1)]
        watchers[0]["page"].wait_for_timeout(3000)
        windows.append(measure(pid, watchers, args.seconds, lambda s: watchers[0]["page"].wait_for_timeout(s * 1000)))
        watchers[0]["page"].get_by_role("button", name="Stop").click()
        try:
            watchers[0]["page"].get_by_text("stopped").first.wait_for(timeout=120_000)
            stop_seen = True
        except PlaywrightTimeout:  # a server too busy to show it is a finding, not a reason to lose the windows
            stop_seen = False
        chromium = browser.version
        browser.close()
    baseline = windows[0]["server_cpu_pct"]
    for window in windows[1:]:
        window["server_cpu_pct_per_watcher"] = round((window["server_cpu_pct"] - baseline) / window["watchers"], 1)
    env["versions"].update({name: metadata.version(name) for name in ("streamlit", "playwright")}, chromium=chromium)
    overrides = {k: v for k, v in os.environ.items() if k.startswith("STREAMLIT_")}  # on top of .streamlit/config.toml
    report = {"command": command, **env, "streamlit_env": overrides,
              "run": f"the playground's defaults (CPU), {total} images", "windows": windows,
              "stop_shown_within_120_s": stop_seen}  # fmt: skip
    os.makedirs(RESULTS, exist_ok=True)
    suffix = f"-{args.label}" if args.label else ""
    path = os.path.join(RESULTS, f"{datetime.date.today().isoformat()}-watchers{suffix}.json")
    with open(path, "w") as f:
        json.dump(report, f, indent=2)
    for w in windows:
        pages = w["pages"]
        medians = [pg["elapsed_kpi"]["median_s"] for pg in pages]
        worst = max((pg["elapsed_kpi"]["max_s"] or 0 for pg in pages), default=None)
        print(f"{w['watchers']} watcher(s): server CPU {w['server_cpu_pct']}%  redraw median {medians}  max {worst}")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
