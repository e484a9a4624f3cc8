"""A message on its way, kept for the person until the model has it: its text and its files stay in this page's
session (bound to the signed-in person like the rest of it) from the moment it is sent until the engine accepts it.
If the turn is blocked (too large a file, indexing to agree to, the budget) or the person presses Stop before the
answer starts, the page offers the same text and files again, to send as they are or discard."""
from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

from engine import NewMessage, Upload

SENDING, KEPT, SEND_NOW = "unsent_sending", "unsent_kept", "unsent_send_now"


@dataclass(frozen=True)
class Unsent:
    text: str
    files: tuple[Upload, ...] = ()
    approve: frozenset[str] = frozenset()  # documents the person is asked to agree to index
    why: str = ""  # a short line above it: why it is here

    def message(self, approved: bool = False) -> NewMessage:
        return NewMessage(self.text, list(self.files), self.approve if approved else frozenset())


def sending(message: NewMessage) -> None:
    """The message goes to the engine now: held until it is accepted."""
    st.session_state[SENDING] = Unsent(message.text, tuple(message.uploads))


def accepted() -> None:
    """The engine has the message (it is part of the conversation): nothing to keep."""
    st.session_state.pop(SENDING, None)


def keep(text: str, approve: tuple[str, ...] = (), why: str = "", leave_out: tuple[str, ...] = ()) -> None:
    """The message was not sent: keep its text and files (minus the ones named in `leave_out`, which would be refused
    again) for the person to send again."""
    held: Unsent | None = st.session_state.pop(SENDING, None)
    files = tuple(f for f in (held.files if held else ()) if f.name not in leave_out)
    if text or files:
        st.session_state[KEPT] = Unsent(text, files, frozenset(approve), why)


def stopped_before_sending() -> None:
    """At the start of a run: a message still marked as on its way means the last run was stopped (Stop, a closed
    tab) before the engine accepted it; keep it."""
    held: Unsent | None = st.session_state.pop(SENDING, None)
    if held is not None and (held.text.strip() or held.files):
        st.session_state[KEPT] = Unsent(held.text, held.files, why="Stopped before it was sent:")


def kept() -> Unsent | None:
    return st.session_state.get(KEPT)


def send_kept(approved: bool) -> None:
    """A button's callback: send the kept message (with the indexing agreed to, if `approved`) in this run."""
    held: Unsent | None = st.session_state.pop(KEPT, None)
    if held is not None:
        st.session_state[SEND_NOW] = held.message(approved)


def discard_kept() -> None:
    st.session_state.pop(KEPT, None)


def take_to_send() -> NewMessage | None:
    return st.session_state.pop(SEND_NOW, None)
