"""Who may use this server: the operator's sign-in, and refusing to serve a network without one."""

from __future__ import annotations

import hmac
import os
import threading

import streamlit as st

from engine.core import policy
from ui.session import server_policy
from ui.text import plain

_ROUTED = threading.Event()  # app.py has reached st.navigation in this server process


def routed() -> None:
    """app.py calls this after st.navigation, which is what makes Streamlit run every later page through app.py
    (a person who stops at the sign-in never gets there, and pages keep sending links back to app.py)."""
    _ROUTED.set()


def through_app(page_file: str) -> None:
    """First thing on every page (`through_app(__file__)`). Until app.py first reaches st.navigation, Streamlit runs
    a `pages/` file that a link names on its own, with no sign-in: such a run starts over from the app, which then
    opens the page the link named, with its settings, once the sign-in lets it."""
    if not _ROUTED.is_set():
        st.session_state["wanted_page"] = (os.path.relpath(page_file, policy.PROJECT_ROOT), st.query_params.to_dict())
        st.switch_page("app.py")


def open_wanted_page() -> None:
    """app.py, once its pages are known: open the page a link named before app.py had run, if one did."""
    wanted = st.session_state.pop("wanted_page", None)
    if wanted:
        page, settings = wanted
        st.switch_page(page, query_params=settings)


def gate() -> None:
    """Stop the page here until this browser's person is signed in (nothing to do on a one-user playground)."""
    try:
        found = server_policy()
    except policy.PolicyError as exc:
        st.error(plain(exc))
        st.stop()
    refusal = policy.serving_refusal(found, st.get_option("server.address"))
    if refusal:
        st.error(plain(refusal))
        st.stop()
    if found.sign_in == "oidc":
        if not st.user.is_logged_in:
            st.title("Ray Data batch inference playground")
            st.button("Sign in", type="primary", on_click=st.login)
            st.stop()
        st.session_state["who"] = st.user.get("email") or st.user.get("name")
    elif found.sign_in == "passcode" and not st.session_state.get("who"):
        _passcode_form(found)
        st.stop()


def _passcode_form(found: policy.Policy) -> None:
    st.title("Ray Data batch inference playground")
    with st.form("sign_in"):
        name = st.text_input("Your name", max_chars=40)
        passcode = st.text_input("Team passcode", type="password")
        if st.form_submit_button("Sign in", type="primary"):
            if not name.strip():
                st.error("Enter your name: your runs are shown with it.")
            elif not hmac.compare_digest(passcode.encode(), (found.passcode or "").encode()):
                st.error("That passcode is not this server's.")
            else:
                st.session_state["who"] = name.strip()
                st.rerun()


def sign_out() -> None:
    """The sidebar's line: who is signed in, and a way out."""
    found = server_policy()
    if found.sign_in == "none":
        return
    role = " (operator)" if found.is_operator(st.session_state.get("who")) else ""
    st.caption(f"Signed in as **{plain(st.session_state.get('who') or '')}**{role}")
    if st.button("Sign out"):
        if found.sign_in == "oidc":
            st.logout()
        st.session_state.pop("who", None)
        st.rerun()
