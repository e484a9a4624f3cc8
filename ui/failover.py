"""When a replica dies: the page that takes over says what happened and hands the person's message back.

Behind a proxy, a replica that is killed drops its pages' WebSockets; Streamlit's page reconnects (through the proxy,
to another replica) as a new session. The conversation comes back from the URL (`?c=`, ui/conversations.py) with every
stored turn; a turn that was still being answered was never stored. Every turn is registered while it runs
(store/inflight.py), so the new replica finds it once the dead replica's heartbeat has stopped, says so, and puts the
message in the person's kept draft ("Send it").
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import streamlit as st

from memory.store import Owner
from store.inflight import TurnsInFlight

log = logging.getLogger("chat.page")
CHECKED, WATCH, NOTICES = "inflight_checked", "inflight_watch", "inflight_notices"
WATCH_SECONDS = 2  # while another replica runs a turn of this person's, look again this often


@contextmanager
def in_flight(flights: TurnsInFlight, owner: Owner, conversation_id: str, question: str) -> Iterator[None]:
    """Registers the running turn for as long as it runs on this replica (until it is stored, stopped or refused)."""
    try:
        turn_id = flights.begin(owner.oid, owner.tenant_id, conversation_id, question)
    except Exception as exc:  # noqa: BLE001 - failover notices are a courtesy: never block a turn for them
        log.warning("could not register a running turn: %s", type(exc).__name__)
        turn_id = None
    try:
        yield
    finally:
        if turn_id:
            try:
                flights.end(turn_id)
            except Exception as exc:  # noqa: BLE001 - the row is found later and reported as interrupted
                log.warning("could not unregister a finished turn: %s", type(exc).__name__)


def interrupted_turns(flights: TurnsInFlight, owner: Owner, audit: Callable[[str, str], None]) -> None:
    """Checked on a session's first run (a page that reconnected after its replica died is a new session), and again
    every few seconds while a turn of this person's runs elsewhere; what is found is said above the chat for as long as
    its message is offered to send again."""
    if CHECKED not in st.session_state:
        st.session_state[CHECKED] = True
        _check(flights, owner, audit)
    # Each notice stays while its message is still offered to send (until sent or discarded).
    kept = st.session_state.get("kept_draft")
    st.session_state[NOTICES] = [(text, question) for text, question in st.session_state.get(NOTICES, [])
                                 if question == kept]
    for text, _ in st.session_state[NOTICES]:
        st.warning(text, icon=":material/sync_problem:")
    if st.session_state.get(WATCH):
        _watch(flights, owner, audit)


def _check(flights: TurnsInFlight, owner: Owner, audit: Callable[[str, str], None]) -> bool:
    try:
        found, elsewhere = flights.pending(owner.oid, owner.tenant_id)
    except Exception as exc:  # noqa: BLE001 - the database is away: the page says so elsewhere
        log.warning("could not look for interrupted turns: %s", type(exc).__name__)
        return False
    st.session_state[WATCH] = elsewhere
    for turn in found:
        short = turn.question if len(turn.question) <= 80 else turn.question[:79] + "…"
        st.session_state.setdefault(NOTICES, []).append((
            f"The server answering your message “{short}” stopped before the answer was finished. That message and "
            "its partial answer were not saved; the message is kept below, ready to send again.", turn.question))
        st.session_state["kept_draft"] = turn.question
        audit(turn.conversation_id, turn.started_at.isoformat())
    return bool(found)


@st.fragment(run_every=WATCH_SECONDS)
def _watch(flights: TurnsInFlight, owner: Owner, audit: Callable[[str, str], None]) -> None:
    if _check(flights, owner, audit) or not st.session_state.get(WATCH):
        st.rerun(scope="app")  # show the notice and the kept message, or stop watching
