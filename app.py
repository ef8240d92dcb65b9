"""Ray Data batch-inference playground: the router and the frame around every page."""

import streamlit as st

st.set_page_config(page_title="Ray Data batch inference playground", page_icon="⚡", layout="wide")

from ui.session import connect_or_explain, shared_runner  # noqa: E402


def warm_status() -> None:
    """Whether Ray's idle workers have imported torch yet, as the next Launch will find them."""
    runner = shared_runner()
    if runner.warming:
        st.caption("warming workers: importing torch in Ray's idle workers…")
    else:
        st.caption(f"warm workers: {runner.warm_workers} (torch imported, idle in Ray's pool)")


pages = st.navigation(
    [
        st.Page("pages/playground.py", title="Playground", icon=":material/bolt:", default=True),
        st.Page("pages/compare.py", title="Compare", icon=":material/balance:"),
        st.Page("pages/sweep.py", title="Sweep", icon=":material/grid_on:"),
        st.Page("pages/advisor.py", title="Advisor", icon=":material/calculate:"),
        st.Page("pages/anatomy.py", title="Anatomy", icon=":material/account_tree:"),
    ]
)

with st.sidebar:
    st.text_input(
        "Ray address",
        key="ray_address",
        placeholder="empty = local embedded Ray",
        help="HOST:PORT of an existing Ray cluster; empty starts Ray inside this app.",
    )
    cluster = connect_or_explain()
    if cluster:
        st.caption(
            f"**{cluster['label']}** · {cluster['nodes']} node(s) · {cluster['cpus']:g} CPUs · "
            f"{cluster['gpus']:g} GPUs · object store {cluster['object_store_gib']:.1f} GiB"
        )
        if cluster["nodes"] > 1:
            with st.expander("Nodes"):
                st.dataframe(cluster["node_table"], hide_index=True)
        # While warming, this caption refreshes itself: a page that only refreshes its run would still say "warming".
        st.fragment(run_every=2.0 if shared_runner().warming else None)(warm_status)()

pages.run()
