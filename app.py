"""Ray Data batch-inference playground: the router and the frame around every page."""

import streamlit as st

st.set_page_config(page_title="Ray Data batch inference playground", page_icon="⚡", layout="wide")

from ui import access, sidebar  # noqa: E402

access.gate()

with st.sidebar:
    sidebar.ray_address()
    sidebar.ray_status()
    access.sign_out()

pages = st.navigation(
    [
        st.Page("pages/playground.py", title="Playground", icon=":material/bolt:", default=True),
        st.Page("pages/compare.py", title="Compare", icon=":material/balance:"),
        st.Page("pages/sweep.py", title="Sweep", icon=":material/grid_on:"),
        st.Page("pages/advisor.py", title="Advisor", icon=":material/calculate:"),
        st.Page("pages/anatomy.py", title="Anatomy", icon=":material/account_tree:"),
        st.Page("pages/realtime.py", title="Batch vs real-time", icon=":material/speed:"),
    ]
)
access.routed()  # st.navigation has run: from now on Streamlit runs every page through this file
access.open_wanted_page()
pages.run()
