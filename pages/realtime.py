"""Batch vs real-time: one request at a time into the same model, its latency measured live."""

import streamlit as st

from engine import ConfigError
from engine.core.policy import PolicyError
from engine.realtime.reference import batch_reference
from engine.realtime.snippet import serve_code
from ui import notices, panels
from ui import realtime as rt
from ui.access import through_app
from ui.session import cluster_now, machine_now, shared_runner, submit
from ui.text import plain

through_app(__file__)

st.title("Batch vs real-time")
notices.page_top()
st.caption(
    "Batch inference answers many images at once, for throughput; real-time inference answers one request "
    "now, for latency. Send real requests, one image each, into the same model: a server batches them dynamically, "
    "up to a max batch or a max wait, as Ray Serve and Triton do."
)

cluster = cluster_now()
runner = shared_runner()
controls, live = st.columns([1, 3], gap="large")

with controls:
    config = rt.controls(gpus=cluster["gpus"])
    if st.button("Launch", type="primary", width="stretch"):
        try:
            rt.launch(runner, config)
        except (ConfigError, PolicyError) as exc:
            st.error(plain(exc))
    if st.button("Stop", width="stretch") and not rt.stop(runner):
        st.toast("No real-time run of yours is going.")


@st.fragment(run_every=1.0)
def live_panel() -> None:
    """Redrawn every second: the newest real-time run, live, then its account."""
    run = rt.latest_run(runner)
    if run is None:
        st.info("Set a rate and press **Launch**: each request is one image, answered by a model server.")
        return
    panels.status_line(run)
    rt.kpis(run)
    if not run.done or run.timeseries():
        rt.live_charts(run.timeseries())
    if run.done:
        rt.finished(run)


with live:
    live_panel()

st.header("Latency–throughput curve")
st.caption(
    f"One {rt.SWEEP_SECONDS:g}-second run per rate with these settings: the rate doubles from the one set "
    "while p99 stays within the target, then narrows down on the largest rate that meets it. Past that rate "
    "requests queue and latency climbs; the batch pipeline's rate is what the offline mode reaches instead."
)
target, go_column = st.columns([3, 1])
p99_ms = target.slider("p99 latency target (ms)", 5, 1000, 50, key="rt_target")
if go_column.button("Sweep rates", disabled=rt.sweeping()):
    try:
        rt.start_sweep(runner, config, float(p99_ms))
    except (ConfigError, PolicyError) as exc:
        st.error(plain(exc))


@st.fragment(run_every=1.0)
def curve_panel() -> None:
    """The newest sweep's points as they come, against the batch pipeline's rate on this machine."""
    batch = batch_reference(runner.store, config.model, config.image_size)
    if not batch:
        st.caption(f"No batch run of {config.model} at {config.image_size} px yet: the batch line is missing.")
    if not rt.rate_sweeps():
        st.info("Press **Sweep rates** to measure where this model sits on the latency–throughput curve.")
        return
    sweep = rt.rate_sweeps()[-1]
    st.caption(f"Sweep: {len(sweep.runs)} run(s)" + (", done." if sweep.done else ", going…"))
    if sweep.done and sweep.result.get("error"):
        st.error(plain(sweep.result["error"]))
    st.plotly_chart(rt.curve(sweep, batch), key="rt_curve")


curve_panel()

st.header("Batch or real-time?")
if rt.quiz(runner.store, config, float(p99_ms)) and st.button(
    "Run a batch run of this model", help="The actor pipeline in its tuned layout for this machine, same image size."
):
    try:
        submit(rt.batch_run_config(config, machine_now()), origin="realtime")
        st.toast("Batch run queued: its rate answers the first question once it finishes.")
    except (ConfigError, PolicyError) as exc:
        st.error(plain(exc))

st.header("The same settings in Ray Serve")
st.caption("The playground serves with its own actors; this deployment serves the same way behind Ray Serve.")
st.code(serve_code(config), language="python")
