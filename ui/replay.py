"""Picking what the Playground shows besides its own runs: another page's run, or a replay of a recorded one."""

from __future__ import annotations

import os
from datetime import datetime

import streamlit as st

from engine import ConfigError
from engine.insight.replay import Replay, records_from_export
from ui.session import shared_runner
from ui.text import plain

DEMO_FILE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "demo", "naive-vs-actor.json")
OWN = "This page's runs"


def picker() -> None:
    """An expander: follow another run, replay one from the history, a file, or the bundled demo."""
    with st.expander("Other runs and replays"):
        runs = [r for r in list(shared_runner().runs) if r.origin != "playground"][-20:]
        labels = {OWN: None} | {f"{r.id} · from {r.origin} · {r.config.pipeline} · {r.status}": r.id for r in runs}
        choice = st.selectbox("Follow", list(labels), key="pg_follow_label")
        if labels[choice] and st.session_state.get("pg_follow") != labels[choice]:
            st.session_state["pg_follow"] = labels[choice]
        elif not labels[choice] and isinstance(st.session_state.get("pg_follow"), str):
            st.session_state["pg_follow"] = None
        st.caption("A replay plays a recorded run back at its real speed: no Ray, no GPU, no network.")
        records = recorded_runs()
        if records:
            picked = st.selectbox("Recorded run", list(records), key="pg_replay_pick")
            if st.button("Replay it"):
                start_replay(_fetch([records[picked]]))
        upload = st.file_uploader("…or an export file (JSON)", type="json", key="pg_replay_file")
        if upload is not None and st.button("Replay the file's runs"):
            start_replay(_read(upload.getvalue().decode("utf-8", "replace")))
        if os.path.exists(DEMO_FILE) and st.button("Replay the demo: naive, then actor, on a GPU"):
            with open(DEMO_FILE) as f:
                start_replay(_read(f.read()))


def recorded_runs(limit: int = 30) -> dict[str, str]:
    """Ended runs in this server's history, newest first: their ids by label (a record is read once picked)."""
    found = {}
    for row in shared_runner().store.history(limit=limit):
        if row["status"] in ("finished", "stopped", "failed"):
            when = datetime.fromtimestamp(row["started_at"]).strftime("%Y-%m-%d %H:%M")
            found[f"{when} · {row['pipeline']} · {row['model']} · {row['status']} · {row['id']}"] = row["id"]
    return found


def _fetch(run_ids: list[str]) -> list[dict]:
    """The stored records of these runs (one that vanished meanwhile is left out)."""
    store = shared_runner().store
    return [record for record in map(store.get, run_ids) if record is not None]


def start_replay(records: list[dict]) -> None:
    """Play the records one after another in the Playground: the last one, with the one before drawn faintly."""
    try:
        previous = None
        for record in records:
            previous = Replay(record, previous=previous)
    except (ConfigError, KeyError, TypeError) as exc:
        st.error(plain(f"cannot replay: {exc}".splitlines()[0]))
        return
    if previous is not None:
        st.session_state["pg_follow"] = previous
        st.rerun()


def _read(text: str) -> list[dict]:
    try:
        return records_from_export(text)
    except ConfigError as exc:
        st.error(plain(exc))
        return []


def pair_picker() -> None:
    """Line up a recorded naive run and actor run, replayed side by side on the Compare page."""
    with st.popover("Replay a recorded pair"):
        records = recorded_runs(limit=60)
        naive = {k: v for k, v in records.items() if " · naive · " in k}
        actor = {k: v for k, v in records.items() if " · actor · " in k}
        picked_naive = st.selectbox("Naive run", list(naive), key="cmp_replay_naive") if naive else None
        picked_actor = st.selectbox("Actor run", list(actor), key="cmp_replay_actor") if actor else None
        if picked_naive and picked_actor and st.button("Replay this pair"):
            _line_up(_fetch([naive[picked_naive], actor[picked_actor]]))
        if os.path.exists(DEMO_FILE) and st.button("Replay the demo pair (a GPU run)"):
            with open(DEMO_FILE) as f:
                _line_up(_read(f.read()))
        if st.session_state.get("cmp_replay") and st.button("Back to live runs"):
            st.session_state.pop("cmp_replay")
            st.rerun()


def _line_up(records: list[dict]) -> None:
    by_pipeline = {r["config"]["pipeline"]: r for r in records}
    if set(by_pipeline) != {"naive", "actor"}:
        st.error("A pair needs one naive and one actor run.")
        return
    try:
        st.session_state["cmp_replay"] = {p: Replay(by_pipeline[p]) for p in ("naive", "actor")}
    except (ConfigError, KeyError, TypeError) as exc:
        st.error(plain(f"cannot replay: {exc}".splitlines()[0]))
        return
    st.rerun()
