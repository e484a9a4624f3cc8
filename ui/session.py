"""The signed-in person for this page load, found only through the HttpOnly session cookie."""
from __future__ import annotations

import hashlib
from datetime import datetime, timezone

import streamlit as st

from auth.identity import Identity
from auth.services import AuthServices
from auth.sessions import SESSION_COOKIE, AuthSession
from ui.styles import accessible_styles

# With APP_AUTH_DISABLED (local experiments only) everyone is this one person.
LOCAL_EXPERIMENT = AuthSession(
    id="local-experiment",
    identity=Identity(oid="00000000-0000-0000-0000-000000000000", tenant_id="00000000-0000-0000-0000-000000000000",
                      name="Local experiment", username="not signed in"),
    token_cache="", expires_at=datetime.max.replace(tzinfo=timezone.utc),
)


def session_cookie() -> str | None:
    # HttpOnly cookies arrive with the WebSocket handshake; the browser's script cannot read or forge them.
    value = st.context.cookies.get(SESSION_COOKIE)
    return value if isinstance(value, str) else None  # AppTest has no client, so no cookies


def current_session(services: AuthServices) -> AuthSession | None:
    session = services.sessions.get(session_cookie())
    bind_page_to(session.id if session else None)
    return session


OWNER = "_page_owner"


def bind_page_to(session_id: str | None) -> None:
    """The page's state belongs to the sign-in that first used it: a run under another sign-in, or none, starts from
    an empty state (never the old conversation, drafts or prepared files). The WebSocket boundary already refuses to
    resume another person's Streamlit session (web/session_boundary.py); this holds even if that were bypassed."""
    owner = hashlib.sha256(session_id.encode()).hexdigest() if session_id else None
    bound = st.session_state.get(OWNER)
    if bound is not None and bound != owner:
        st.session_state.clear()
    if owner is not None:
        st.session_state[OWNER] = owner


def access_denied_screen(app_name: str, who: str, reason: str) -> None:
    st.title(app_name)
    accessible_styles()
    st.error(f"{who}, you are signed in but cannot use this app: {reason}", icon=":material/block:")
    link("Sign out", "/signout")


def sign_in_screen(app_name: str, reason: str | None = None) -> None:
    st.title(app_name)
    accessible_styles()
    if reason:
        st.warning(reason, icon=":material/lock_clock:")
    st.write("Sign in with your Microsoft Entra ID work account to start chatting.")
    link("Sign in with Microsoft", "/signin")


def link(label: str, href: str) -> None:
    """A same-tab link (st.link_button opens a new tab, which would split the sign-in from this page)."""
    st.markdown(f'<a href="{href}" target="_self" style="font-weight:600">{label}</a>', unsafe_allow_html=True)
