"""What the Anatomy page draws: plans and fusion, blocks and budget, stage times, streaming vs materialized."""

from __future__ import annotations

import dataclasses

import pandas as pd
import streamlit as st

from engine import RunConfig
from engine.insight import anatomy
from ui import charts
from ui.text import plain

MIB = charts.MIB


def _mib(value: float | None) -> str:
    return "—" if value is None else f"{value / MIB:,.1f} MiB"


def plans(view: anatomy.PlanView) -> None:
    """The logical plan beside the plan that runs, the operators that result, and every fusion decision."""
    left, right = st.columns([2, 3])
    left.markdown("**Logical plan** (what the code asks for)")
    left.code(view.logical, language="text")
    right.markdown("**Physical plan, optimized** (what will run)")
    right.code(view.optimized_physical, language="text")
    chain = " → ".join(f"`{name}`" for name in view.operators)
    st.markdown(f"**Runs as {len(view.operators)} operator(s):** {chain}")
    st.markdown(
        "\n".join(
            f"- {':green[✓ fused]' if f.fused else ':red[✗ not fused]'} `{f.upstream}` → `{f.downstream}`  \n"
            f"  {f.reason.removeprefix('fused: ')}"
            for f in view.fusions
        )
    )
    st.caption(
        "Every pair Ray's fusion rule (FuseOperators, Ray 2.60) looked at, source first. Fused stages run in one "
        "task or actor, so their blocks never travel through the object store."
    )
    with st.expander("All four plans, as Dataset.explain() prints them"):
        st.code(
            f"-------- Logical Plan --------\n{view.logical}\n\n"
            f"-------- Logical Plan (Optimized) --------\n{view.optimized_logical}\n\n"
            f"-------- Physical Plan --------\n{view.physical}\n\n"
            f"-------- Physical Plan (Optimized) --------\n{view.optimized_physical}",
            language="text",
        )


def blocks(config: RunConfig, layout: anatomy.BlockLayout, budget: anatomy.StoreBudget | None) -> None:
    """Blocks against batches, how much of them the object-store budget holds at once, and where files decode."""
    cols = st.columns(4)
    if layout.blocks is None:
        cols[0].metric("Blocks", "—", help="decided by Ray's reader when the run starts")
    else:
        batches = layout.rows_per_block / layout.batch_size
        cols[0].metric("Blocks", f"{layout.blocks:,}")
        cols[1].metric(
            "Rows per block", f"{layout.rows_per_block:,}", help=f"{batches:g} batch(es) of {layout.batch_size}"
        )
        cols[2].metric(
            "Block size", _mib(layout.block_bytes), help=f"target {_mib(layout.target_block_bytes)} (DataContext)"
        )
    if budget is not None:
        cols[3].metric(
            "Object-store budget",
            _mib(budget.budget_bytes),
            help=f"{budget.fraction:.0%} of {_mib(budget.cluster_bytes)} ({budget.fraction_source})",
        )
    notes = []
    if layout.blocks is not None:
        if layout.rows_per_block >= layout.batch_size:
            notes.append(
                f"Each block holds {layout.rows_per_block // layout.batch_size} whole batch(es) of "
                f"{layout.batch_size}, so every forward pass is full-sized."
            )
        else:
            notes.append(
                f"A batch of {layout.batch_size} spans {layout.batch_size // layout.rows_per_block} blocks: "
                "Ray bundles blocks until the batch is full."
            )
        if layout.blocks == 1:
            notes.append("One block: every stage runs as a single task, so nothing overlaps or streams.")
        elif layout.blocks < config.concurrency:
            notes.append(f"Only {layout.blocks} blocks for {config.concurrency} workers: some will sit idle.")
        if config.stages == "cpu_preprocess":
            notes.append("Images are made at twice the size for the resize stage, so its input blocks are 4x bigger.")
    if budget is not None:
        cap = "your object-store limit" if budget.limit_bytes is not None else f"{budget.fraction:.0%} of the store"
        fits = f", about {int(budget.budget_bytes // layout.block_bytes):,} blocks" if layout.block_bytes else ""
        notes.append(
            f"Ray Data holds at most {_mib(budget.budget_bytes)} in the object store ({cap} of "
            f"{_mib(budget.cluster_bytes)}{fits}); past it, it stops launching tasks: the *held back* time below."
        )
    st.caption(" ".join(notes))
    decode_placement(config)


def decode_placement(config: RunConfig) -> None:
    """Where image files are decoded with these settings: it decides whether blocks carry bytes or images."""
    st.markdown(f"**Decoding.** {anatomy.decode_placement(config)}")


def stage_times(run) -> None:
    """The finished run's per-operator times, as a table and a bar chart."""
    mode = "materialized" if run.config.materialize else "streaming"
    c = run.config
    st.markdown(f"From run `{run.id}` · {c.pipeline} · {c.model} · {c.stages} · {c.images:,} images · {mode}")
    times = anatomy.operator_times(run)
    if not times:
        st.info("Ray Data kept no stats for this run.")
        return
    number = st.column_config.NumberColumn
    st.dataframe(
        pd.DataFrame([{**dataclasses.asdict(t), "bytes_out": t.bytes_out and t.bytes_out / MIB} for t in times]),
        hide_index=True,
        width="stretch",
        column_config={
            "operator": st.column_config.TextColumn("operator", width="medium"),
            "tasks": "tasks",
            "wall_s": number("wall s", help=charts.STAGE_TIMES["wall_s"], format="%.2f"),
            "task_wall_s": number("task wall s", help=charts.STAGE_TIMES["task_wall_s"], format="%.2f"),
            "task_cpu_s": number("task CPU s", help=charts.STAGE_TIMES["task_cpu_s"], format="%.2f"),
            "submission_backpressure_s": number(
                "held: no launch s", help=charts.STAGE_TIMES["submission_backpressure_s"], format="%.2f"
            ),
            "output_backpressure_s": number(
                "held: outputs s", help=charts.STAGE_TIMES["output_backpressure_s"], format="%.2f"
            ),
            "rows_out": "rows out",
            "blocks_out": "blocks out",
            "bytes_out": number("MiB out", format="%.2f"),
        },
    )
    st.plotly_chart(charts.stage_times(times), key="chart_stage_times")
    st.caption(
        "Task sums add up every task, so they exceed the operator's wall time when tasks overlap. "
        "*Held back* is Ray Data's backpressure: the executor launched nothing new (budget or concurrency "
        "reached), or stopped reading an operator's outputs because the next one was full."
    )


def both_ways(runs: list) -> None:
    """Each run's status and peak store, the two store curves overlaid, and what the difference means."""
    uses = [anatomy.store_use(r) for r in runs]
    cols = st.columns(len(runs))
    for col, run, use in zip(cols, runs, uses, strict=True):
        name = "Materialized" if use.materialized else "Streaming"
        col.metric(
            f"{name} · {use.status}",
            f"peak {_mib(use.peak_bytes)}" if use.peak_bytes is not None else "—",
            help=f"run {use.run_id}: peak object-store use over the whole run",
        )
        details = [f"run `{use.run_id}`"]
        if use.first_read_s is not None and use.seconds is not None:
            details.append(f"first result read at {use.first_read_s:.1f} s of {use.seconds:.1f} s")
        if use.output_bytes is not None:
            details.append(f"output {use.output_bytes / 1024:,.1f} KB")
        col.caption(" · ".join(details))
        if run.error:
            col.error(f"Run failed: {plain(run.error)}")
    st.plotly_chart(
        charts.store_side_by_side(
            [
                ("materialized" if u.materialized else "streaming", r.timeseries(), u.first_read_s)
                for r, u in zip(runs, uses, strict=True)
            ]
        ),
        key="chart_both_ways",
    )
    streaming, materialized = uses
    if all(u.status == "finished" and u.first_read_s is not None and u.seconds for u in uses):
        st.markdown(
            f"Streaming handed its first result to the driver **{streaming.seconds - streaming.first_read_s:.1f} s "
            f"before its run ended**; materialized, {materialized.seconds - materialized.first_read_s:.1f} s before, "
            f"once every stage had finished. Peak object store: {_mib(streaming.peak_bytes)} streaming, "
            f"{_mib(materialized.peak_bytes)} materialized. Materialize pins the pipeline's output "
            f"({(materialized.output_bytes or 0) / 1024:,.1f} KB of labels here) until it is read; images between "
            "stages are freed as they are consumed either way. Each run pays its own start-up, so compare within a "
            "run, not the two totals."
        )
