"""What a presenter meets: a fresh app, Launch pressed soon after the page paints, seconds until images flow.

    python -m bench.first_launch [--delay-s 0] [--runs 3] [--images 512]

Each run serves the real app afresh on a local embedded Ray (tests/browser.py: Debian's headless Chromium),
waits until Launch is drawn, waits `--delay-s` more, presses Launch, and times the click to the first
point of the throughput chart above 0, as the page shows it. Then it presses Stop and reads the run's
start-up phases from its record. Prints one JSON line per run, then the median.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time

from tests.browser import THROUGHPUT, browser_page, serve_app


def one_run(delay_s: float, images: int) -> dict:
    from engine.store import RunStore

    db = os.path.join(tempfile.mkdtemp(prefix="first-launch-"), "runs.sqlite")
    with (
        serve_app("first-launch", PLAYGROUND_DB=db) as url,
        browser_page(f"{url}/?images={images}", 1440, 1000) as page,
    ):
        page.get_by_role("button", name="Launch").wait_for(timeout=60_000)
        time.sleep(delay_s)
        page.get_by_role("button", name="Launch").click()
        clicked, flowing = time.time(), None
        while flowing is None and time.time() - clicked < 300:
            if (page.evaluate(THROUGHPUT)[1] or 0) > 0:  # null: a sample without a rate
                flowing = round(time.time() - clicked, 2)
            time.sleep(0.25)
        page.get_by_role("button", name="Stop").click()
        time.sleep(3)
    store = RunStore(db)
    summary = store.get(store.history()[0]["id"])["summary"] or {}
    return {"delay_s": delay_s, "click_to_images_flowing_s": flowing, "startup": summary.get("startup")}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--delay-s", type=float, default=0.0, help="after Launch is drawn, before it is pressed")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--images", type=int, default=512)
    args = p.parse_args(argv)
    for name in ("runs", "images"):
        if getattr(args, name) < 1:
            p.error(f"--{name} must be at least 1, not {getattr(args, name)}")
    if args.delay_s < 0:
        p.error(f"--delay-s must be 0 or more, not {args.delay_s}")
    runs = []
    for _ in range(args.runs):
        runs.append(one_run(args.delay_s, args.images))
        print(json.dumps(runs[-1]), flush=True)
    flowing = [r["click_to_images_flowing_s"] for r in runs if r["click_to_images_flowing_s"] is not None]
    print(json.dumps({"median_click_to_images_flowing_s": statistics.median(flowing) if flowing else None}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
