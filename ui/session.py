"""Long-lived objects shared by every browser: the engine's runner and the Ray connection."""

from __future__ import annotations

import os

import streamlit as st

from engine import runner
from engine.execution import connection
from engine.observe import cluster
from engine.observe.cluster import ClusterError


@st.cache_resource(show_spinner=False)
def shared_runner():
    """One run queue per app server: every browser sees the same runs."""
    return runner()


BRIEF_WAIT_S = 60.0  # a new address waits this long for warm-up or a ceiling to let go of Ray (never for a run)


@st.cache_resource(show_spinner="Starting Ray…")
def ray_connection(address: str | None) -> dict:
    """Start (or join) Ray once per address; return what the cluster has."""
    label = connection.connect(address, wait_s=BRIEF_WAIT_S, warm=True)
    shared_runner().warm_up()
    alive = [n for n in cluster.nodes() if n.alive]
    return {
        "label": label,
        "nodes": len(alive),
        "cpus": sum(n.cpus for n in alive),
        "gpus": sum(n.gpus for n in alive),
        "object_store_gib": sum(n.object_store_bytes for n in alive) / 2**30,
        "node_table": [
            {
                "node": cluster.node_label(n.address, n.node_id),
                "CPUs": n.cpus,
                "GPUs": n.gpus,
                "object store GiB": round(n.object_store_bytes / 2**30, 1),
            }
            for n in alive
        ],  # fmt: skip
    }


NO_CLUSTER = {"gpus": 0, "cpus": 1}  # what controls assume after a failed connection: a one-CPU machine


def connect_or_explain() -> dict | None:
    """The Ray connection for this app, or None after showing a one-line error."""
    address = st.session_state.get("ray_address") or os.environ.get("RAY_ADDRESS") or None
    try:
        return ray_connection(address)
    except ClusterError as exc:
        st.error(str(exc).splitlines()[0])
        return None


@st.cache_resource(show_spinner=False)
def comparisons() -> list[dict]:
    """Naive-vs-actor pairs launched from the Compare page, shared by every browser."""
    return []


@st.cache_resource(show_spinner=False)
def verifications() -> dict[str, dict]:
    """What the Advisor predicted for each Verify run, by run id, shared by every browser."""
    return {}


@st.cache_resource(show_spinner=False)
def sweeps() -> list:
    """Sweeps launched from the Sweep page, newest last, shared by every browser."""
    return []
