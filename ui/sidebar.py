"""The sidebar every page shares: which Ray, how its start-up goes, and anything the user must know."""

from __future__ import annotations

import time

import streamlit as st

from engine.core import policy
from ui.session import chosen_address, ray_startup, server_policy, shared_runner
from ui.text import plain


def ray_address() -> None:
    """The address field: a cluster the operator named, or (where allowed) any address."""
    found = server_policy()
    names = ", ".join(found.clusters)
    st.text_input(
        "Ray address",
        key="ray_address",
        placeholder="empty = local embedded Ray",
        help=f"This server's clusters: {names}." + (" Or HOST:PORT of any Ray cluster." if found.any_address else ""),
    )
    try:
        policy.resolve_address(found, st.session_state.get("ray_address"))
    except policy.PolicyError as exc:
        st.error(plain(exc))


def ray_status() -> None:
    """Ray's start-up as it goes, then the cluster; the whole page redraws once, when Ray comes up."""
    st.session_state["ray_state"] = _state()  # what this drawing of the page is for
    _ray_status()


def _state() -> str:
    startup = ray_startup(chosen_address())
    return "starting" if startup.starting else ("failed" if startup.error else "up")


@st.fragment(run_every=1.0)
def _ray_status() -> None:
    if st.session_state.get("ray_state") != _state():
        st.rerun()  # the controls are drawn anew for what Ray reports
    startup = ray_startup(chosen_address())
    runner = shared_runner()
    if startup.starting:
        waited = time.time() - startup.started
        st.caption(f":material/hourglass_top: Starting Ray… {waited:.0f} s (Launch works already)")
        return
    if startup.error:
        st.caption(":material/error: Ray is not connected (see the page)")
        return
    info = startup.info
    st.caption(
        f"**{plain(info['label'])}** · {info['nodes']} node(s) · {info['cpus']:g} CPUs · "
        f"{info['gpus']:g} GPUs · object store {info['object_store_gib']:.1f} GiB"
    )
    if info["nodes"] > 1:
        with st.expander("Nodes"):
            st.dataframe(info["node_table"], hide_index=True)
    if runner.warming:
        st.caption("warming workers: importing torch in Ray's idle workers…")
    else:
        st.caption(f"warm workers: {runner.warm_workers} (torch imported, idle in Ray's pool)")
