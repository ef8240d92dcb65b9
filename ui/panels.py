"""What the pages draw for a run: KPI tiles, live charts, and the finished account."""

from __future__ import annotations

import time

import streamlit as st

from engine.core.data import load_image
from engine.insight import ceiling
from engine.insight.eta import remaining_seconds
from engine.insight.snippet import code_for
from engine.observe import nvml
from ui import charts
from ui.text import plain

PAGES = ("playground", "compare", "sweep", "advisor", "anatomy", "realtime")
STATUS_ICON = {
    "queued": ":material/hourglass_top:",
    "starting": ":material/rocket_launch:",
    "running": ":material/play_circle:",
    "finished": ":material/check_circle:",
    "failed": ":material/error:",
    "stopped": ":material/stop_circle:",
}


def status_line(run) -> None:
    """One line: the run's status, where it came from and who launched it, and what it is doing."""
    source = (
        run.phase
        if run.origin == "replay"
        else f"from the {run.origin.title()} page"
        if run.origin in PAGES
        else f"from {run.origin}"
    )
    who = f" · {plain(run.owner)}'s" if run.owner else ""
    text = (
        f"{STATUS_ICON.get(run.status, '')} **{run.status}** · run `{run.id}`{who} · {source} · "
        f"{run.config.pipeline} · {run.config.model}"
    )
    if run.status == "failed":
        st.error(f"Run failed: {plain(run.error)}")
    elif run.origin != "replay":
        st.markdown(f"{text} · {plain(run.phase)}")
    else:
        st.markdown(text)


def kpis(run, present: bool = False) -> None:
    """Images done, images/sec, model loads, elapsed time and ETA, then a progress bar; a finished run's equal
    its summary."""
    points = run.timeseries() if run is not None else []
    last = points[-1] if points else {}
    summary = (run.summary if run is not None else None) or {}
    total = summary.get("images", getattr(run, "total", run.config.images)) if run is not None else 0
    rows = summary.get("rows", last.get("rows", 0))
    done = run is not None and run.done
    if done:
        rate, rate_help = summary.get("images_per_sec", 0.0), "the whole run, as its summary says"
        elapsed = summary.get("seconds", 0.0)
    else:
        rate, rate_help = last.get("images_per_sec", 0.0), "smoothed over the last few seconds of images"
        elapsed = time.time() - run.launched_at if run is not None and run.status != "queued" else 0.0
    remaining = None if done or run is None else remaining_seconds(run)
    cols = st.columns(5)
    if present:  # the projector's big labels leave no room for the total: the progress bar shows it
        cols[0].metric("Images", f"{rows:,}" if run else "—", help=f"done, of {total:,}" if run else None)
    else:
        cols[0].metric(f"Images done (of {total:,})" if run is not None else "Images done", f"{rows:,}" if run else "—")
    cols[1].metric("Images/sec", f"{rate:,.1f}" if run is not None else "—", help=rate_help)
    cols[2].metric("Model loads", last.get("model_loads", summary.get("model_loads", 0)) if run is not None else "—")
    cols[3].metric("Elapsed", f"{elapsed:.1f} s" if run is not None else "—")
    cols[4].metric("ETA", "done" if done else (f"{remaining:.0f} s" if remaining is not None else "—"))
    st.progress(min(1.0, rows / total) if total else 0.0)


def ceiling_sentence(run, ceiling: dict | None) -> None:
    """How close the run came to the device's own ceiling, when one was measured."""
    steady = (run.summary or {}).get("steady_images_per_sec")
    if ceiling and steady:
        c = run.config
        st.markdown(
            f"**{steady / ceiling['images_per_sec']:.0%} of this device's ceiling** for {c.model} {c.precision} "
            f"at batch {c.batch_size} ({ceiling['images_per_sec']:,.0f} img/s on {ceiling['device']})."
        )


def node_choice(points: list[dict]) -> str | None:
    """On a cluster of several nodes, a choice between the whole cluster and one node."""
    nodes = sorted({n for p in points for n in p.get("object_store_by_node") or {}})
    if len(nodes) < 2:
        return None
    choice = st.selectbox("Show", ["Whole cluster", *nodes], key="node_filter")
    return None if choice == "Whole cluster" else choice


@st.fragment(run_every=1.0)
def live_panel(present: bool) -> None:
    """The followed run's charts while it goes, redrawn every second (a finished run's are drawn by the page)."""
    from ui.watch import playground_run, previous_run

    run = playground_run()
    if run is None:
        st.info("Set the controls and press **Launch**. The first run also starts Ray's workers.")
    elif not run.done:
        live_charts(run, previous_run(run), present)


def live_charts(run, previous=None, present: bool = False) -> None:
    """Throughput (the previous run faint beside it), object store, GPU and host charts of one run."""
    points = run.timeseries()
    if not points:
        st.caption("Waiting for the first sample…")
        return
    node = node_choice(points)
    key = (run.id, len(points), node, present, previous.id if previous is not None else None)
    before = (f"previous: {previous.config.pipeline}", previous.timeseries()) if previous is not None else None
    ceiling_found = ceiling.cached(run.config) if run.origin != "replay" else None
    left, right = st.columns(2)
    left.plotly_chart(
        _figure(key, "throughput", points, ceiling_found and ceiling_found["images_per_sec"], before),
        key="chart_tp",
    )
    right.plotly_chart(_figure(key, "object_store", points), key="chart_store")
    note = gpu_note() if run.origin != "replay" else "no GPU in this recording"
    if not any(p.get("gpus") for p in points):
        st.info(f"{note or 'no GPU reading'}: GPU charts hidden")
    else:
        left, right = st.columns(2)
        left.plotly_chart(_figure(key, "gpu_util", points), key="chart_gpu_util")
        right.plotly_chart(_figure(key, "gpu_memory", points), key="chart_gpu_mem")
    if not present:
        st.plotly_chart(_figure(key, "host", points), key="chart_host")


@st.cache_resource(max_entries=64, show_spinner=False)
def _figure(key: tuple, kind: str, _points: list[dict], _line: float | None = None, _before=None):
    """One chart of one run at one sample, built once for every browser watching it.

    `key` names the sample (run, samples so far, node, view, previous run); the underscored arguments
    are what it stands for, and are not hashed.
    """
    _, _, node, present, _ = key
    style = charts.PROJECTOR if present else charts.SCREEN
    if kind == "throughput":
        return charts.throughput(_points, ceiling=_line, previous=_before, style=style)
    if kind in ("object_store", "gpu_util", "gpu_memory"):
        return getattr(charts, kind)(_points, node, style=style)
    return charts.host(_points, style=style)


def gpu_note() -> str | None:
    """None when this machine's GPUs can be read, else why not."""
    return nvml.unavailable_reason()


def finished(run, present: bool = False) -> None:
    """Everything a finished (or failed/stopped) run leaves behind."""
    summary = run.summary or {}
    if run.origin != "replay":
        ceiling_sentence(run, ceiling.cached(run.config))
    steady = summary.get("steady_images_per_sec")
    first = summary.get("first_result_s")
    st.subheader("Summary")
    cols = st.columns(4)
    cols[0].metric("Images/sec (whole run)", f"{summary.get('images_per_sec', 0):,.1f}")
    cols[1].metric("Steady images/sec", f"{steady:,.1f}" if steady else "—", help="from the first result to the end")
    cols[2].metric("First result", f"{first:.2f} s" if first is not None else "—", help="after Launch")
    cols[3].metric("Model loads", summary.get("model_loads", 0))
    st.caption(
        f"{summary.get('weights', '?')} weights · {summary.get('rows', 0):,} images in "
        f"{summary.get('seconds', 0):.1f} s · data: {plain(summary.get('data'))}"
    )
    if summary.get("skipped_files"):
        names = ", ".join(n.rsplit("/", 1)[-1] for n in summary.get("skipped_names") or [])
        st.warning(f"Skipped {summary['skipped_files']} file(s) that are not readable images: {plain(names)}")
    if summary.get("startup") or summary.get("loads"):
        st.plotly_chart(
            charts.startup_timeline(
                summary.get("startup"),
                summary.get("loads") or [],
                style=charts.PROJECTOR if present else charts.SCREEN,
            ),
            key="chart_startup",
        )
        if run.config.pipeline == "naive":
            st.caption(
                f"The naive pipeline built the model {summary.get('model_loads', 0)} times, "
                f"{summary.get('model_load_seconds', 0):.1f} s in all: the cost actors pay once."
            )
    predictions(run)
    with st.expander("Equivalent Ray Data code", expanded=False):
        st.code(code_for(run.config), language="python")
    with st.expander("Executed plan (what was fused)"):
        st.code(summary.get("plan") or "no plan: the run did not start executing", language="text")
    with st.expander("Ray Data stats"):
        st.code(summary.get("stats") or "no stats", language="text")
    with st.expander("Summary JSON"):
        st.json({k: v for k, v in summary.items() if k not in ("timeseries", "stats", "plan")}, expanded=False)


def predictions(run) -> None:
    rows = (run.summary or {}).get("predictions") or []
    if not rows:
        return
    st.subheader("Sample predictions")
    if (run.summary or {}).get("weights") == "random":
        st.caption("Random weights: labels are real model outputs but meaningless; throughput is the same.")
    cols = st.columns(min(len(rows), 6))
    for col, row in zip(cols, rows[:6], strict=False):
        try:
            image = load_image(run.config, str(row["key"]))
        except Exception:  # remote URIs: show the label without the picture
            image = None
        if image is not None:
            col.image(image, width="stretch")
        col.caption(f"**{plain(row['label'])}** · {row['confidence']:.1%}")
