"""Sweep: a grid of real runs, one cell at a time, ending in the fastest setting that fits in memory."""

import json

import streamlit as st

from engine import ConfigError
from engine.core import policy
from engine.insight.sweep import MEASURES, Sweep
from ui import charts, notices
from ui.access import through_app
from ui.controls import sweep_controls
from ui.session import Submitter, can_act_on, machine_now, server_policy, shared_runner, sweeps, who
from ui.text import plain

through_app(__file__)

MAX_CELLS = 36

st.title("Sweep")
notices.page_top()
st.caption(
    "Every combination of batch size, concurrency and block size, run for real one after another. "
    "A cell that runs out of memory or fails is marked and the sweep goes on."
)

machine = machine_now()
base, batches, concurrencies, blocks = sweep_controls(machine)
cells = len(batches) * len(concurrencies) * len(blocks)
st.caption(f"{cells} cell(s), each a run of {base.images:,} images.")


if st.button("Run sweep", type="primary"):
    if not cells:
        st.error("Pick at least one batch size, one concurrency and one block size.")
    elif cells > MAX_CELLS:
        st.error(f"{cells} cells is more than {MAX_CELLS}: narrow the grid.")
    else:
        try:
            sweep = Sweep(base, batches, concurrencies, blocks, owner=who())
            for cell in sweep.cells:
                policy.check_run(server_policy(), sweep.config_for(cell))
            sweeps().append(sweep.start(Submitter("sweep")))
        except (ConfigError, policy.PolicyError) as exc:
            st.error(plain(str(exc).splitlines()[0]))


@st.fragment(run_every=1.0)
def live_sweep() -> None:
    """The latest sweep, redrawn every second: progress, heatmaps, recommendation."""
    if not sweeps():
        st.info("Pick the grid and press **Run sweep**.")
        return
    sweep = sweeps()[-1]
    finished = sweep.done  # read once: the sweep may end while this draws, and the verdict must match the buttons
    done, total = sweep.progress()
    run = sweep.current
    if run is not None:
        points = run.timeseries()
        rows = points[-1]["rows"] if points else 0
        cfg = run.config
        st.markdown(
            f"**Cell {done + 1} of {total}**: batch {cfg.batch_size}, concurrency {cfg.concurrency}, "
            f"block {cfg.block_size_mb} MB · {rows:,}/{cfg.images:,} images · {plain(run.phase)}"
        )
        if st.button("Stop sweep") and can_act_on(sweep):
            sweep.stop()
    else:
        st.markdown(f"**Sweep {sweep.status}**: {done} of {total} cells ran.")
    st.progress(done / total if total else 1.0)
    measure = sweep.measure()
    rows = sweep.rows()
    label = "Steady images/sec" if measure == "steady_images_per_sec" else "Whole-run images/sec"
    for block in sorted({c["block_size_mb"] for c in rows}):
        part = [c for c in rows if c["block_size_mb"] == block]
        left, right = st.columns(2)
        left.plotly_chart(charts.sweep_heatmap(part, "rate", f"{label} · block {block} MB"), key=f"sw_rate_{block}")
        if machine.gpus:
            right.plotly_chart(
                charts.sweep_heatmap(part, "peak_gpu_mem_bytes", f"Peak GPU memory · block {block} MB", 2**30, " GiB"),
                key=f"sw_gpu_{block}",
            )
        else:
            right.plotly_chart(
                charts.sweep_heatmap(
                    part, "peak_object_store_bytes", f"Peak object store · block {block} MB", 2**20, " MiB"
                ),
                key=f"sw_store_{block}",
            )
            right.caption("No NVIDIA GPU: the GPU-memory heatmap is hidden; peak object store shown instead.")
    best = sweep.recommended()
    if best:
        verdict = "Recommended" if finished else "Best so far"
        st.success(
            f"**{verdict}:** batch {best.batch_size}, concurrency {best.concurrency}, block {best.block_size_mb} MB "
            f"= {sweep.rate(best):,.1f} images/sec, the fastest cell that ran without running out of memory, "
            f"ranked by {MEASURES[measure]}."
        )
    elif finished:
        st.warning("No cell finished, so there is nothing to recommend: see each cell's error below.")
    shown = [k for k in rows[0] if any(r[k] is not None for r in rows)]  # no all-empty columns (e.g. GPU on a CPU)
    st.dataframe([{("ranked by" if k == "rate" else k): r[k] for k in shown} for r in rows], hide_index=True)
    if finished:
        left, right = st.columns(2)
        left.download_button("Download CSV", sweep.to_csv(), "sweep.csv", "text/csv")
        right.download_button(
            "Download JSON", json.dumps(sweep.to_dict(), indent=1, default=str), "sweep.json", "application/json"
        )


live_sweep()
shared_runner()
