"""Anatomy: what Ray Data makes of the settings (plans, fusion, blocks, budget) and where a run spent its time."""

import streamlit as st

from engine import ConfigError
from engine.core.policy import PolicyError
from engine.insight import anatomy
from ui import anatomy as panels
from ui import notices
from ui.access import through_app
from ui.controls import plan_controls
from ui.session import Submitter, cluster_now, machine_now, shared_runner
from ui.text import plain

through_app(__file__)

st.title("Anatomy of a pipeline")
notices.page_top()
st.caption(
    "What Ray Data builds from these settings before anything runs, and where a finished run spent its time. "
    "Synthetic images; everything below comes from Ray itself."
)

runner = shared_runner()
config = plan_controls(machine_now())
try:
    config.validate()
except ConfigError as exc:
    st.error(plain(exc))
    st.stop()
if cluster_now()["starting"]:
    st.info("Ray is starting: the plans, blocks and budget below are read from Ray, and appear once it is up.")
    st.stop()

st.subheader("1 · Plans: what fuses, and why not")
panels.plans(anatomy.explain(config))

st.subheader("2 · Blocks and the object-store budget")
panels.blocks(config, anatomy.block_layout(config), anatomy.store_budget(config))

st.subheader("3 · Where the latest run spent its time")
latest = anatomy.latest_finished(list(runner.runs))
if latest is None:
    st.info("No finished run yet: launch a run on the Playground first (or press **Run both ways** below).")
else:
    panels.stage_times(latest)

st.subheader("4 · Streaming vs materializing")
st.caption(
    "Streaming hands each result to the driver as soon as it exists; `ds.materialize()` runs every stage to its "
    f"end and holds the whole output in the object store first. Same settings, capped at "
    f"{anatomy.BOTH_WAYS_IMAGES} images of {anatomy.BOTH_WAYS_IMAGE_SIZE} px in {anatomy.BOTH_WAYS_BLOCK_MB} MB "
    "blocks (so there is something to stream), one run after the other."
)


def pair() -> list:
    """This browser's streaming and materialized runs, once launched."""
    return [runner.get(i) for i in st.session_state.get("both_ways", [])]


if st.button("Run both ways", type="primary", disabled=not all(r.done for r in pair())):
    try:
        door = Submitter("anatomy")
        st.session_state["both_ways"] = [door.submit(c).id for c in anatomy.both_ways(config)]
        st.session_state["both_ways_done"] = 0
        st.rerun()  # redraw the button disabled while the pair runs
    except (ConfigError, PolicyError) as exc:
        st.error(plain(str(exc).splitlines()[0]))


@st.fragment(run_every=1.0)
def both_ways_panel() -> None:
    """Redrawn every second while the pair runs; as each run ends the whole page redraws (section 3 too)."""
    runs = pair()
    if not runs:
        st.info("Press **Run both ways** to run the same images streaming, then materialized, and compare.")
        return
    done = sum(r.done for r in runs)
    if st.session_state.get("both_ways_done") != done:
        st.session_state["both_ways_done"] = done
        st.rerun()
    panels.both_ways(runs)


both_ways_panel()
