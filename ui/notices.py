"""The one-line notices every page starts with: Ray could not start, what degrades on this Ray, runs not recorded."""

from __future__ import annotations

import streamlit as st

from engine import ray_compat
from ui.session import chosen_address, ray_startup, shared_runner
from ui.text import plain


def page_top() -> None:
    """Draw whatever the person must know before using the page (nothing when all is well)."""
    startup = ray_startup(chosen_address())
    if startup.error:
        st.error(plain(startup.error))
    degraded = ray_compat.notice()
    if degraded:
        st.warning(plain(degraded))
    runner = shared_runner()
    problem = runner.store_error or runner.store.recording_error
    if problem:
        st.warning(plain(problem))
