"""What the Batch vs real-time page draws: its controls, a run's live latency, the curve, and the quiz's answers."""

from __future__ import annotations

import plotly.graph_objects as go
import streamlit as st

from engine import RunConfig
from engine.core import policy
from engine.core.defaults import Machine, pick_layout
from engine.core.models import MODEL_NAMES
from engine.observe import nvml
from engine.realtime.config import RealtimeConfig
from engine.realtime.load import WINDOW_S
from engine.realtime.reference import batch_reference, minutes_for, realtime_best
from engine.realtime.run import RealtimeRun
from engine.realtime.search import RateSweep
from ui.charts import _figure, legend_at_foot
from ui.session import can_act_on, chosen_address, server_policy, who

RATES = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000)  # requests/s
IMAGE_SIZES = (32, 64, 128, 224)
SWEEP_SECONDS = 4.0  # each point of the curve: a short real run
NIGHTLY_IMAGES = 1_000_000
PERCENTILE_COLOURS = {"latency_p50_ms": "#636efa", "latency_p95_ms": "#00cc96", "latency_p99_ms": "#ef553b"}


@st.cache_resource(show_spinner=False)
def rate_sweeps() -> list[RateSweep]:
    """Rate sweeps launched from this page, newest last, shared by every browser."""
    return []


def controls(gpus: float) -> RealtimeConfig:
    """Draw the controls and return the (unvalidated) config they describe, on the local Ray."""
    model = st.selectbox("Model", MODEL_NAMES, key="rt_model")
    size = st.select_slider("Image size (px)", IMAGE_SIZES, 224, key="rt_size")
    # a first run well within one server's reach: overload is for the slider to show, not the default
    rate = st.select_slider("Request rate (requests/s)", RATES, 100 if gpus > 0 else 5, key="rt_rate")
    st.caption("Requests arrive at random (Poisson) at this mean rate, whether or not the server keeps up.")
    max_batch = st.slider("Max batch", 1, 256, 8, key="rt_batch")
    st.caption("The most requests in one forward pass. Bigger batches serve more per second, if requests wait.")
    max_wait = st.slider("Max wait (ms)", 0, 200, 20, key="rt_wait")
    st.caption("How long the oldest request waits for company before its batch starts anyway.")
    seconds = st.slider("Seconds", 1, 60, 10, key="rt_seconds")
    num_gpus = 0
    if gpus > 0:
        num_gpus = int(st.number_input("GPUs (one model server each)", 0, int(gpus), 1, key="rt_gpus"))
    precision = st.selectbox("Precision", ["fp32", "bf16", "fp16"], index=1 if num_gpus else 0, key="rt_precision")
    return RealtimeConfig(
        model=model, rate=float(rate), max_batch=max_batch, max_wait_ms=float(max_wait), seconds=float(seconds),
        image_size=size, num_gpus=num_gpus, precision=precision,
    )  # fmt: skip


def launch(runner, config: RealtimeConfig) -> RealtimeRun:
    """Queue a run for this browser's person, on the Ray the sidebar names; ConfigError/PolicyError otherwise."""
    config = config.replace(address=chosen_address()).validate()
    policy.check_queue(server_policy(), who(), runner.queued())
    return runner.enqueue(RealtimeRun(config, origin="realtime", owner=who()))


def start_sweep(runner, config: RealtimeConfig, p99_ms: float) -> None:
    """Start a rate sweep of short runs with these settings; ConfigError/PolicyError for one not allowed."""
    base = config.replace(seconds=SWEEP_SECONDS, address=chosen_address()).validate()
    policy.check_queue(server_policy(), who(), runner.queued())
    owner = who()  # (the sweep queues its runs from its own thread, where no browser is)

    def submit(config: RealtimeConfig) -> RealtimeRun:
        return runner.enqueue(RealtimeRun(config, origin="realtime", owner=owner))

    rate_sweeps().append(RateSweep(submit, base, p99_ms).start())


def sweeping() -> bool:
    """A rate sweep is going (one at a time: its runs would queue behind each other's)."""
    return bool(rate_sweeps()) and not rate_sweeps()[-1].done


def stop(runner) -> bool:
    """Stop this person's sweep and real-time run in progress; False when there was none."""
    stopped = False
    for sweep in rate_sweeps():
        if not sweep.done and sweep.runs and can_act_on(sweep.runs[-1]):
            sweep.stop()
            stopped = True
    run = latest_run(runner)
    if run is not None and not run.done and can_act_on(run):
        run.stop()
        stopped = True
    return stopped


def latest_run(runner):
    """The newest real-time run of this app (from any browser), or None."""
    return next((r for r in reversed(runner.runs) if r.config.pipeline == "realtime"), None)


def kpis(run) -> None:
    """Latency percentiles, throughput, batch size and queue: the last window while it runs, the whole run after."""
    figures = run.summary if run.done and run.summary else (run.timeseries() or [{}])[-1]
    cols = st.columns(6)
    for col, q in zip(cols, (50, 95, 99), strict=False):
        value = figures.get(f"latency_p{q}_ms")
        col.metric(f"p{q} latency", "—" if value is None else f"{value:,.1f} ms", help="from arrival to answer")
    rate = figures.get("throughput")
    cols[3].metric("Throughput", "—" if rate is None else f"{rate:,.1f} req/s", help="answers per second")
    batch = figures.get("batch_size_mean")
    cols[4].metric("Mean batch", "—" if batch is None else f"{batch:.1f}", help="requests per batch formed")
    depth = figures.get("queue_depth", figures.get("unanswered"))
    cols[5].metric("Queue" if not run.done else "Unanswered", "—" if depth is None else f"{depth:,}")
    if run.done and run.summary and run.summary.get("overloaded"):
        offered = run.summary.get("offered_rate") or run.config.rate
        st.warning(
            f"Overloaded: {offered:,.1f} requests/s arrived, {run.summary['throughput']:,.1f}/s were answered. "
            "The queue kept growing and every request waited longer: this rate exceeds what the servers serve."
        )


def live_charts(points: list[dict], key: str = "rt_chart") -> None:
    """Latency percentiles, and answers/s with the queue, over time; GPU use where there is a GPU."""
    if not points:
        st.caption("Waiting for the first sample (the model server loads the model first)…")
        return
    xs = [p["t"] for p in points]
    latency = _timeline(f"Latency (answers of the last {WINDOW_S:g} s)", "ms")
    for name, colour in PERCENTILE_COLOURS.items():
        latency.add_scatter(x=xs, y=[p[name] for p in points], name=name.split("_")[1], line={"color": colour})
    load = _timeline("Answers and queue", "requests / s")
    load.add_scatter(x=xs, y=[p["throughput"] for p in points], name="answered / s")
    load.add_scatter(x=xs, y=[p["queue_depth"] for p in points], name="queue (arrived, not answered)", yaxis="y2")
    load.update_layout(yaxis2={"title": "requests", "overlaying": "y", "side": "right", "rangemode": "tozero"})
    left, right = st.columns(2)
    left.plotly_chart(latency, key=f"{key}_latency")
    right.plotly_chart(load, key=f"{key}_load")
    batch = _timeline("Batch size formed", "requests / batch")
    batch.add_scatter(x=xs, y=[p["batch_size_mean"] for p in points], name="mean batch")
    left, right = st.columns(2)
    left.plotly_chart(batch, key=f"{key}_batch")
    if any(p.get("gpu_util_pct") is not None for p in points):
        util = _timeline("GPU utilisation (the servers' GPUs)", "%", [0, 105])
        util.add_scatter(x=xs, y=[p["gpu_util_pct"] for p in points], name="GPU %")
        right.plotly_chart(util, key=f"{key}_gpu")
    else:
        right.info(f"{nvml.unavailable_reason() or 'the servers run on the CPU'}: no GPU utilisation to show")


def _timeline(title: str, unit: str, y_range=None) -> go.Figure:
    fig = _figure(title, unit, y_range)
    fig.update_layout(xaxis_title_text="time since the first request (s)")
    fig.update_yaxes(rangemode="tozero")
    return fig


def finished(run) -> None:
    """Where a request's time went, and the counts behind the figures."""
    summary = run.summary or {}
    parts = summary.get("breakdown_mean_ms")
    if parts:
        fig = _figure("Where the mean request's time went", "")
        for name, ms in parts.items():
            fig.add_bar(y=["request"], x=[ms], name=name, orientation="h")
        fig.update_layout(barmode="stack", xaxis_title_text="milliseconds", hovermode="y unified")
        legend_at_foot(fig, 60)
        st.plotly_chart(fig, key="rt_breakdown")
    if summary.get("requests"):
        st.caption(
            f"{summary['requests']:,} requests arrived, {summary['answered']:,} answered, "
            f"{summary['unanswered']:,} unanswered when the run ended · device {summary.get('device')} · "
            f"{summary.get('weights')} weights · servers up {summary.get('startup_s'):.1f} s after Launch"
        )
    elif run.status != "failed":
        st.caption(f"The run {run.status} before its first request.")
    with st.expander("Summary JSON"):
        st.json({k: v for k, v in summary.items() if k != "timeseries"}, expanded=False)


def curve(sweep: RateSweep, batch: dict | None) -> go.Figure:
    """p50 and p99 latency against the throughput each rate achieved; the batch pipeline's rate as a line."""
    points = sorted((r.summary for r in sweep.runs if r.summary and r.summary.get("answered")),
                    key=lambda s: s["throughput"])  # fmt: skip
    fig = _figure("Latency against throughput (one short run per rate)", "latency (ms)")
    fig.update_layout(xaxis_title="throughput (requests / s answered)", hovermode="closest")
    xs = [s["throughput"] for s in points]
    for key in ("latency_p50_ms", "latency_p99_ms"):
        symbols = ["x" if s.get("overloaded") else "circle" for s in points]
        text = [f"{s['rate']:g} req/s offered" + (", overloaded" if s.get("overloaded") else "") for s in points]
        fig.add_scatter(x=xs, y=[s[key] for s in points], name=key.split("_")[1], mode="lines+markers", text=text,
                        marker={"symbol": symbols, "size": 9}, line={"color": PERCENTILE_COLOURS[key]})  # fmt: skip
    fig.add_hline(y=sweep.p99_ms, line_dash="dot", line_color="gray", annotation_text=f"p99 target {sweep.p99_ms:g} ms")
    if batch:
        fig.add_vline(x=batch["images_per_sec"], line_dash="dash", line_color="gray",
                      annotation_text=f"batch pipeline: {batch['images_per_sec']:,.0f} img/s")  # fmt: skip
    fig.update_yaxes(type="log")
    fig.update_xaxes(rangemode="tozero")
    return fig


def batch_run_config(config: RealtimeConfig, machine: Machine) -> RunConfig:
    """A batch run of the same model and image size, in the engine's starting actor layout for this machine."""
    layout = pick_layout("actor", machine)
    return RunConfig(model=config.model, image_size=config.image_size, defaults=layout.describe(), **layout.settings())


def quiz(store, config: RealtimeConfig, p99_ms: float) -> bool:
    """The two questions, answered with runs made here; True when a batch run of this model is still missing."""
    where = f"{config.model} at {config.image_size} px"
    batch = batch_reference(store, config.model, config.image_size)
    st.markdown(f"**{NIGHTLY_IMAGES:,} transactions nightly → batch or real-time?**")
    if batch:
        first = batch.get("first_result_s")
        st.markdown(
            f"Batch. At {NIGHTLY_IMAGES:,} images a night, the batch pipeline needs "
            f"**{minutes_for(NIGHTLY_IMAGES, batch['images_per_sec']):,.1f} minutes** here "
            f"({batch['images_per_sec']:,.1f} img/s, {where}, {batch['precision']}, run `{batch['id']}`)"
            + (f"; its first answer came {first:.1f} s after Launch." if first is not None else ".")
        )
    else:
        st.markdown(f"No batch run of {where} yet: run one to answer with this machine's numbers.")
    best = realtime_best(store, config.model, config.image_size, p99_ms)
    st.markdown("**A fraud check before approving a payment → ?**")
    if best:
        st.markdown(
            f"Real-time: the payment waits for one answer. At p99 ≤ {p99_ms:g} ms the real-time mode served at most "
            f"**{best['throughput']:,.1f} requests/s** here (p50 {best['latency_p50_ms']:.1f} ms, p99 "
            f"{best['latency_p99_ms']:.1f} ms, max batch {best['max_batch']}, run `{best['id']}`)"
            + (f", {best['throughput'] / batch['images_per_sec']:.0%} of the batch pipeline's rate." if batch else ".")
        )
    else:
        st.markdown(f"Real-time. No real-time run of {where} met p99 ≤ {p99_ms:g} ms yet: sweep the rates above.")
    return batch is None
