"""The README stays a newcomer's page: short, with the two commands, the screenshot and the run-flow diagram."""

import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_the_readme_is_short_and_has_what_a_newcomer_needs():
    text = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    assert len(text.splitlines()) <= 160, "README over 160 lines: move history to bench/HISTORY.md"
    assert "./dev app" in text and "./dev test" in text
    assert "## How a run flows" in text and "─► Ray Data plan" in text
    shot = "docs/screenshot.png"
    assert f"]({shot})" in text and os.path.exists(os.path.join(ROOT, shot))
