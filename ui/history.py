"""The history table: every run the store recorded, from any browser or earlier app session, kept up to date."""

from __future__ import annotations

import time

import pandas as pd
import streamlit as st

from ui import charts
from ui.session import server_policy, shared_runner, who
from ui.text import plain

COLUMNS = ["id", "started_at", "status", "origin", "owner", "pipeline", "model", "images_per_sec", "error"]


def history_frame(rows: list[dict]) -> pd.DataFrame:
    """One row per recorded run (from the run store), newest first."""
    frame = pd.DataFrame(rows, columns=COLUMNS)
    frame["started_at"] = pd.to_datetime(frame["started_at"], unit="s").dt.strftime("%Y-%m-%d %H:%M:%S")
    return frame.rename(columns={"started_at": "started", "images_per_sec": "images/s", "origin": "from"})


def with_settings(frame: pd.DataFrame, store) -> pd.DataFrame:
    """Add each run's main settings, read from its stored config."""
    by_id = store.configs(list(frame["id"]))
    configs = [by_id.get(run_id, {}) for run_id in frame["id"]]
    for key, column in (("batch_size", "batch"), ("concurrency", "concurrency"), ("num_gpus", "GPUs/actor"),
                        ("block_size_mb", "block MB"), ("precision", "precision"), ("data", "data")):  # fmt: skip
        frame.insert(len(frame.columns) - 1, column, [c.get(key) for c in configs])
    return frame


@st.fragment(run_every=2.0)
def table() -> None:
    """The history, redrawn as runs change (a row reaches its final status by itself); overlay, delete."""
    store = shared_runner().store
    rows = store.history()
    if not rows:
        st.caption("No runs yet: runs launched from any browser, and earlier app sessions, appear here.")
        return
    frame = with_settings(history_frame(rows), store)
    picked = st.dataframe(frame, hide_index=True, on_select="rerun", selection_mode="multi-row", key="history")
    chosen = [rows[i]["id"] for i in picked.selection.rows]
    if chosen:
        runs = [store.get(run_id) for run_id in chosen]
        overlaid = [(f"{r['id']} {r['config']['pipeline']}", r["timeseries"]) for r in runs if r]
        st.plotly_chart(charts.overlay(overlaid), key="history_overlay")
    else:
        st.caption("Select rows to overlay their throughput.")
    everyone, scope = _scope()
    if chosen and st.button(f"Delete {len(chosen)} selected", help="Only finished runs, and only " + scope):
        gone = store.delete(chosen, owner=who(), everyone=everyone)
        st.toast(plain(f"Deleted {gone} of {len(chosen)} run(s)" + ("" if gone == len(chosen) else f": {scope} only")))


def downloads() -> None:
    """Your runs (an operator: all runs) as CSV and JSON, built when asked (every run in full is megabytes) and then
    held by this page until its next full redraw. A file built at click time instead (a callable `data`) is freed as
    soon as any session's redraw ends, which on a busy server can come before the browser has fetched it."""
    owner = who()
    everyone, scope = _scope()
    # Built in the click's callback, which Streamlit calls once as it applies the click, before any run's body:
    # nothing depends on the page's body catching the one run in which the button reads True.
    st.button(f"Prepare CSV and JSON ({scope})", help="Exports the history as it is now", on_click=_prepare,
              args=(owner, everyone))  # fmt: skip
    export = st.session_state.get("history_export")
    if not export or export[0] != owner:  # shown only to whom it was built for (a sign-out may come between)
        return
    _, built, csv, json_text = export
    left, right = st.columns(2)
    left.download_button(f"Download CSV ({scope})", csv, "runs.csv", "text/csv", on_click="ignore")
    right.download_button(f"Download JSON ({scope})", json_text, "runs.json", "application/json", on_click="ignore")
    st.caption(f"Prepared at {built}; prepare again for runs since.")


def _prepare(owner: str | None, everyone: bool) -> None:
    store = shared_runner().store
    st.session_state["history_export"] = (owner, time.strftime("%H:%M:%S"), _csv(store, owner, everyone),
                                          store.export_json(owner=owner, everyone=everyone))  # fmt: skip


def _csv(store, owner: str | None, everyone: bool) -> str:
    frame = with_settings(history_frame(store.history()), store)
    return (frame if everyone else frame[frame["owner"] == owner]).to_csv(index=False)


def _scope() -> tuple[bool, str]:
    """Whether this person acts on everyone's runs (an operator), and those runs' name on the buttons."""
    everyone = server_policy().is_operator(who())
    return everyone, "all runs" if everyone else "your runs"
