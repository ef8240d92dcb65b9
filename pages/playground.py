"""Playground: pick a model and settings, launch a real Ray Data run, watch it live."""

import streamlit as st

from engine import ConfigError
from engine.core.errors import one_line
from engine.insight import ceiling
from ui import panels
from ui.controls import run_controls
from ui.session import NO_CLUSTER, connect_or_explain, shared_runner

st.title("Ray Data batch inference playground")
st.caption("Launch the naive or the actor-based pipeline and watch real throughput, GPU and object-store use.")

cluster = connect_or_explain() or NO_CLUSTER
runner = shared_runner()
controls, live = st.columns([1, 3], gap="large")

with controls:
    config = run_controls(gpus=cluster["gpus"], cpus=cluster["cpus"])
    launch, stop = st.columns(2)
    if launch.button("Launch", type="primary", width="stretch"):
        try:
            run = runner.submit(config)
            if run.status == "queued" and runner.active() is not run:
                st.toast(f"Queued behind the run in progress ({runner.active().id}).")
        except ConfigError as exc:
            st.error(str(exc))
    if stop.button("Stop", width="stretch"):
        active = runner.active()
        if active:
            active.stop()
        else:
            st.toast("Nothing is running.")
    if ceiling.cached(config) is None and st.button(
        "Measure ceiling",
        disabled=runner.active() is not None,
        help="Time the bare model on images already on the device (about 10 s); cached per model, precision, batch.",
    ):
        with st.spinner("Timing the bare model…"):
            try:
                ceiling.measure(config.validate())
            except Exception as exc:  # a one-line cause, never a traceback
                st.error(f"Could not measure the ceiling: {one_line(exc)}")


def ceiling_for(run):
    return ceiling.cached(run.config) if run else None


def current():
    """The run this page is about: the one in progress, else the latest, else None."""
    run = runner.active() or runner.latest()
    return run, ((run.id, run.done) if run else None)


latest, st.session_state["shown"] = current()


@st.fragment(run_every=1.0)
def live_panel() -> None:
    """Redrawn every second for every browser: the run in progress, or a prompt."""
    run, shown = current()
    if st.session_state.get("shown") != shown:
        st.rerun()  # a run started or ended (maybe from another browser): redraw the page once
    if run is None:
        st.info("Set the controls and press **Launch**. The first run also starts Ray's workers.")
        return
    panels.status_line(run)
    waiting = [r.id for r in runner.queued() if r is not run]
    if waiting:  # launched from this or another browser: each waits its turn, in order
        st.warning(f"Queued: {len(waiting)} more run(s) wait for this one ({', '.join(waiting)}).")
    panels.kpis(run)
    if not run.done:
        panels.live_charts(run.timeseries(), panels.gpu_note(), ceiling_for(run))


with live:
    live_panel()
    if latest is not None and latest.done:
        panels.live_charts(latest.timeseries(), panels.gpu_note(), ceiling_for(latest))
        panels.finished(latest, ceiling_for(latest))
