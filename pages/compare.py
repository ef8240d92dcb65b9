"""Compare: naive against actor-based on the same data in one click (or a recorded pair, replayed), and the history."""

import streamlit as st

from engine import ConfigError, RunConfig
from engine.core.defaults import pick_layout
from engine.core.models import MODEL_NAMES
from engine.core.policy import PolicyError
from ui import charts, history, notices, replay
from ui.access import through_app
from ui.present import presenting, projector_style
from ui.session import comparisons, machine_now, submit
from ui.text import plain

through_app(__file__)

present = presenting()
projector_style(present)
st.title("Naive vs actor-based")
notices.page_top()
if not present:
    st.caption("The same images through both pipelines, one after the other, with each pipeline's defaults here.")

machine = machine_now()
left, mid, right = st.columns(3)
model = left.selectbox("Model", MODEL_NAMES, key="cmp_model")
naive_images = pick_layout("naive", machine).images
images = mid.slider("Images", 16, 5_000, naive_images, step=16, key="cmp_images")
data = right.selectbox("Data", ["synthetic", "jpeg"], key="cmp_data")
if not present:
    st.caption(f"{images:,} images through each pipeline; naive builds the model for every batch of 4.")
launch, demo = st.columns([1, 3])
if launch.button("Run naive vs actor-based", type="primary"):
    try:
        pair = {}
        for pipeline in ("naive", "actor"):
            layout = pick_layout(pipeline, machine)
            config = RunConfig(model=model, data=data, defaults=layout.describe(), **layout.settings())
            pair[pipeline] = submit(config.replace(images=images), "compare")
        comparisons().append(pair)
    except (ConfigError, PolicyError) as exc:
        st.error(plain(str(exc).splitlines()[0]))
with demo:
    replay.pair_picker()


@st.fragment(run_every=1.0)
def latest_comparison() -> None:
    """The newest pair (run or replayed), side by side and overlaid, with the speedup."""
    pair = st.session_state.get("cmp_replay") or (comparisons()[-1] if comparisons() else None)
    if pair is None:
        st.info("Press **Run naive vs actor-based** to race the two pipelines on the same images, or replay a pair.")
        return
    naive, actor = pair["naive"], pair["actor"]
    if naive.origin == "replay":
        st.caption(plain(naive.label))
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
            col.error(plain(run.error))
    if naive.summary and actor.summary and naive.status == actor.status == "finished":
        speedup = actor.summary["images_per_sec"] / naive.summary["images_per_sec"]
        cols[2].metric("Speedup", f"{speedup:.1f}×", help="actor images/sec ÷ naive images/sec, whole runs")
    else:
        cols[2].metric("Speedup", "…")
    style = charts.PROJECTOR if present else charts.SCREEN
    left, right = st.columns(2)
    left.plotly_chart(charts.throughput(naive.timeseries(), name="naive ", style=style), key="cmp_naive")
    right.plotly_chart(charts.throughput(actor.timeseries(), name="actor ", style=style), key="cmp_actor")
    st.plotly_chart(
        charts.overlay([("naive", naive.timeseries()), ("actor-based", actor.timeseries())]), key="cmp_overlay"
    )


latest_comparison()
st.header("History")
history.table()
history.downloads()
