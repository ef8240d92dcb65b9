"""Compare: naive against actor-based on the same data in one click, and the history of runs."""

import streamlit as st

from engine import ConfigError, RunConfig
from engine.core.config import pipeline_defaults
from engine.core.models import MODEL_NAMES
from ui import charts
from ui.history import history_frame, with_settings
from ui.session import NO_CLUSTER, comparisons, connect_or_explain, shared_runner

st.title("Naive vs actor-based")
st.caption("The same images through both pipelines, one after the other, on this cluster.")

cluster = connect_or_explain() or NO_CLUSTER
runner = shared_runner()

with st.form("compare"):
    left, mid, right = st.columns(3)
    model = left.selectbox("Model", MODEL_NAMES, key="cmp_model")
    images = mid.slider("Images", 16, 5_000, 256, step=16, key="cmp_images")
    data = right.selectbox("Data", ["synthetic", "jpeg"], key="cmp_data")
    go = st.form_submit_button("Run naive vs actor-based", type="primary")
if go:
    gpu = cluster["gpus"] >= 1
    base = RunConfig(model=model, images=images, data=data, precision="bf16" if gpu else "fp32")
    try:
        pair = {p: runner.submit(base.replace(pipeline=p, **pipeline_defaults(p, gpu))) for p in ("naive", "actor")}
        comparisons().append(pair)
    except ConfigError as exc:
        st.error(str(exc))


@st.fragment(run_every=1.0)
def latest_comparison() -> None:
    if not comparisons():
        st.info("Press **Run naive vs actor-based** to race the two pipelines on the same images.")
        return
    pair = comparisons()[-1]
    naive, actor = pair["naive"], pair["actor"]
    cols = st.columns(3)
    for col, (name, run) in zip(cols, [("Naive", naive), ("Actor-based", actor)], strict=False):
        s = run.summary or {}
        rate = s.get("images_per_sec")
        col.metric(
            f"{name} · {run.status}",
            f"{rate:,.1f} img/s" if rate else "—",
            help=f"batch {run.config.batch_size}, concurrency {run.config.concurrency}",
        )
        if s:
            col.caption(f"model loads {s.get('model_loads')} · first result {s.get('first_result_s') or 0:.2f} s")
        if run.error:
            col.error(run.error)
    if naive.summary and actor.summary and naive.status == actor.status == "finished":
        cols[2].metric(
            "Speedup",
            f"{actor.summary['images_per_sec'] / naive.summary['images_per_sec']:.1f}×",
            help="actor images/sec ÷ naive images/sec, whole runs",
        )
    else:
        cols[2].metric("Speedup", "…")
    left, right = st.columns(2)
    left.plotly_chart(charts.throughput(naive.timeseries(), name="naive "), key="cmp_naive")
    right.plotly_chart(charts.throughput(actor.timeseries(), name="actor "), key="cmp_actor")
    st.plotly_chart(
        charts.overlay([("naive", naive.timeseries()), ("actor-based", actor.timeseries())]), key="cmp_overlay"
    )


latest_comparison()

st.header("History")
store = runner.store
rows = store.history()
if not rows:
    st.caption("No runs yet: runs launched from any browser, and earlier app sessions, appear here.")
else:
    table = with_settings(history_frame(rows), store)
    picked = st.dataframe(table, hide_index=True, on_select="rerun", selection_mode="multi-row", key="history")
    chosen = [store.get(rows[i]["id"]) for i in picked.selection.rows]
    if chosen:
        overlaid = [(f"{r['id']} {r['config']['pipeline']}", r["timeseries"]) for r in chosen if r]
        st.plotly_chart(charts.overlay(overlaid), key="history_overlay")
    else:
        st.caption("Select rows to overlay their throughput.")
    left, right = st.columns(2)
    left.download_button("Download CSV", table.to_csv(index=False), "runs.csv", "text/csv")
    right.download_button("Download JSON", store.export_json(), "runs.json", "application/json")
