"""What the pages draw for a run: KPI tiles, live charts, and the finished account."""

from __future__ import annotations

import time

import streamlit as st

from engine.core.data import load_image
from engine.insight.snippet import code_for
from engine.observe import nvml
from ui import charts

STATUS_ICON = {
    "queued": ":material/hourglass_top:",
    "starting": ":material/rocket_launch:",
    "running": ":material/play_circle:",
    "finished": ":material/check_circle:",
    "failed": ":material/error:",
    "stopped": ":material/stop_circle:",
}


def status_line(run) -> None:
    text = (
        f"{STATUS_ICON.get(run.status, '')} **{run.status}** · run `{run.id}` · {run.config.pipeline} · "
        f"{run.config.model} · {run.phase}"
    )
    if run.status == "failed":
        st.error(f"Run failed: {run.error}")
    elif run.status == "queued":
        st.warning(f"Queued: waits for the run in progress. {text}")
    else:
        st.markdown(text)


def kpis(run) -> None:
    """Images done with a progress bar, images/sec, model loads, elapsed time and ETA."""
    points = run.timeseries()
    last = points[-1] if points else {}
    rows, total = last.get("rows", 0), run.config.images
    summary = run.summary or {}
    elapsed = summary.get("seconds") or (time.time() - run.launched_at)
    rate = last.get("images_per_sec", 0.0)
    recent = [p["images_per_sec"] for p in points[-4:]]
    smooth = sum(recent) / len(recent) if recent else 0.0
    eta = "done" if run.done else (f"{(total - rows) / smooth:.0f} s" if smooth > 0 else "—")
    cols = st.columns(5)
    cols[0].metric("Images done", f"{rows:,} / {total:,}")
    cols[1].metric("Images/sec", f"{rate:,.1f}", help="over the last sampling interval")
    cols[2].metric("Model loads", last.get("model_loads", summary.get("model_loads", 0)))
    cols[3].metric("Elapsed", f"{elapsed:.1f} s")
    cols[4].metric("ETA", eta)
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


def live_charts(points: list[dict], gpu_note: str | None, ceiling: dict | None = None) -> None:
    if not points:
        st.caption("Waiting for the first sample…")
        return
    node = node_choice(points)
    left, right = st.columns(2)
    line = ceiling["images_per_sec"] if ceiling else None
    left.plotly_chart(charts.throughput(points, ceiling=line), key="chart_throughput")
    right.plotly_chart(charts.object_store(points, node), key="chart_store")
    if gpu_note and not any(p.get("gpus") for p in points):
        st.info(f"{gpu_note}: GPU charts hidden")
    else:
        left, right = st.columns(2)
        left.plotly_chart(charts.gpu_util(points, node), key="chart_gpu_util")
        right.plotly_chart(charts.gpu_memory(points, node), key="chart_gpu_mem")
    st.plotly_chart(charts.host(points), key="chart_host")


def gpu_note() -> str | None:
    """None when this machine's GPUs can be read, else why not."""
    return nvml.unavailable_reason()


def finished(run, ceiling: dict | None = None) -> None:
    """Everything a finished (or failed/stopped) run leaves behind."""
    summary = run.summary or {}
    ceiling_sentence(run, ceiling)
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
        f"{summary.get('seconds', 0):.1f} s · data: {summary.get('data')}"
    )
    if summary.get("skipped_files"):
        names = ", ".join(n.rsplit("/", 1)[-1] for n in summary.get("skipped_names") or [])
        st.warning(f"Skipped {summary['skipped_files']} file(s) that are not readable images: {names}")
    if summary.get("startup") or summary.get("loads"):
        st.plotly_chart(
            charts.startup_timeline(summary.get("startup"), summary.get("loads") or []), key="chart_startup"
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
        col.caption(f"**{row['label']}** · {row['confidence']:.1%}")
