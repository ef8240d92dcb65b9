"""The Playground's run: which one it follows, and the bar that launches, stops and measures it.

The page follows its own runs (those launched from the Playground, by anyone on this server), or
the run or replay its user picked; a run started from another page never takes it over.
"""

from __future__ import annotations

import streamlit as st

from engine import ConfigError
from engine.core.policy import PolicyError
from engine.insight.eta import queue_wait
from engine.insight.replay import Replay
from ui import panels
from ui.session import can_act_on, shared_runner, submit, who
from ui.text import plain

ORIGIN = "playground"


def playground_run():
    """The run or replay this browser's Playground shows: the one picked, else the one this browser launched until
    it ends, else the page's run in progress, else the page's latest."""
    followed = st.session_state.get("pg_follow")
    if isinstance(followed, Replay):
        return followed
    runner = shared_runner()
    if followed and (picked := runner.get(followed)):
        return picked
    mine = runner.get(st.session_state.get("pg_mine", ""))
    if mine is not None and not mine.done:
        return mine
    own = [r for r in list(runner.runs) if r.origin == ORIGIN]
    going = [r for r in own if not r.done]
    return going[0] if going else (own[-1] if own else None)


def previous_run(run):
    """The Playground's run before `run`, drawn faintly beside it so naive and actor compare on one chart."""
    if isinstance(run, Replay):
        return run.previous
    own = [r for r in list(shared_runner().runs) if r.origin == ORIGIN and r.status == "finished"]
    earlier = [r for r in own if r is not run and r.submitted_at < run.submitted_at]
    return earlier[-1] if earlier else None


def launch_bar(present: bool) -> None:
    """Launch and Stop beside the live figures, with any error right under Launch; redrawn every second."""
    st.session_state["pg_shown"] = _shown()  # what this drawing of the page is for
    _launch_bar(present)


def _shown() -> tuple | None:
    run = playground_run()
    return (run.id, run.done) if run is not None else None


@st.fragment(run_every=1.0)
def _launch_bar(present: bool) -> None:
    if st.session_state.get("pg_shown") != _shown():
        st.rerun()  # a run started or ended (maybe from another browser): redraw the page once
    run = playground_run()
    buttons, figures = st.columns([1, 5], vertical_alignment="center")
    with buttons:
        if st.button("Launch", type="primary", width="stretch"):
            _launch()
        if st.button("Stop", width="stretch"):
            _stop(run)
    with figures:
        panels.kpis(run, present)
    if st.session_state.get("pg_error"):
        st.error(plain(st.session_state["pg_error"]))
    if run is not None:
        panels.status_line(run)
        _queue_line(run)


def _launch() -> None:
    try:
        run = submit(st.session_state["pg_config"], ORIGIN)
    except (ConfigError, PolicyError) as exc:
        st.session_state["pg_error"] = str(exc).splitlines()[0]
        return
    st.session_state.pop("pg_error", None)
    st.session_state.update(pg_follow=None, pg_mine=run.id)
    going = shared_runner().active()
    if run.status == "queued" and going is not run:
        st.toast(f"Queued behind the run in progress ({going.id}).")
    st.rerun()


def _stop(run) -> None:
    if run is None or run.done:
        st.toast("Nothing is running.")
    elif not can_act_on(run):
        st.toast(f"That run is {plain(run.owner)}'s: only they (or an operator) can stop it.")
    else:
        run.stop()


def _queue_line(run) -> None:
    """Everyone sees the queue: the runs ahead of a waiting run (and about how long they take), or behind this one."""
    if isinstance(run, Replay):
        return
    runner = shared_runner()
    if run.status == "queued":
        ahead, seconds = queue_wait(runner, run)
        whose = "yours" if run.id == st.session_state.get("pg_mine") and run.owner == who() else "this one"
        when = f", about {seconds:.0f} s" if seconds is not None else ""
        st.info(f"{ahead} run(s) ahead of {whose}{when}. Stop cancels it while it waits.")
    elif not run.done and (waiting := [r.id for r in runner.queued()]):
        st.warning(f"Queued: {len(waiting)} more run(s) wait for this one ({', '.join(waiting)}).")
