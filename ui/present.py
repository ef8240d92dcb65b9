"""The projector view (`?present=1`): big numbers and fonts, tall charts, few captions, for the back of a room."""

from __future__ import annotations

import streamlit as st

PROJECTOR_CSS = """
<style>
[data-testid="stMetricValue"] { font-size: 2.6rem; }
[data-testid="stMetricLabel"] p { font-size: 1.15rem; }
</style>
"""


def presenting() -> bool:
    """Whether this browser shows the projector view: the link says so, or the sidebar toggle."""
    if "present" not in st.session_state:
        st.session_state["present"] = st.query_params.get("present") == "1"
    st.sidebar.toggle("Projector view", key="present", help="Bigger numbers and fonts, taller charts, fewer captions.")
    return bool(st.session_state["present"])


def projector_style(present: bool) -> None:
    if present:
        st.markdown(PROJECTOR_CSS, unsafe_allow_html=True)  # static styling, no user text
