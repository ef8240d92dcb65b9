"""Playground: pick a model and settings, launch a real Ray Data run, watch it live."""

import streamlit as st

from ui import notices, panels, replay
from ui.access import through_app
from ui.controls import run_controls
from ui.present import presenting, projector_style
from ui.session import machine_now, shared_runner
from ui.watch import launch_bar, playground_run, previous_run

through_app(__file__)

present = presenting()
projector_style(present)
st.title("Ray Data batch inference playground")
notices.page_top()
if not present:
    st.caption("Launch the naive or the actor-based pipeline and watch real throughput, GPU and object-store use.")

top = st.container()  # Launch, Stop and the live figures, above the controls
controls, live = st.columns([1, 3], gap="large")
with controls:
    st.session_state["pg_config"] = run_controls(machine_now(), teach=not present)
    replay.picker()
with top:
    launch_bar(present)

run = playground_run()
with live:
    panels.live_panel(present)
    if run is not None and run.done:
        panels.live_charts(run, previous_run(run), present)
        panels.finished(run, present)
shared_runner()  # (the queue exists before the first Launch, for every browser)
