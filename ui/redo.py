"""Under the last answer: regenerate it, edit the question and send it again, and move between the versions (‹ 1/2 ›).

A click only records what the person asked for (`st.session_state`); the next run of the page draws the conversation
without the last exchange and runs the redone turn through the engine (engine/redo.py), so it streams like any answer.
"""
from __future__ import annotations

import streamlit as st

from engine import Asker, Choices, Redo
from memory.conversation import Conversation, Turn
from ui.choice_state import want_answer_limit

REDO = "redo"  # {"answer": id of the answer to replace, "edited": the edited question or None}
CONTINUE = "Please continue your previous answer exactly where it stopped."
EDITING = "editing"  # id of the answer whose question is being edited


def wanted_redo(conversation: Conversation) -> dict | None:
    """What the person asked for in the last run, if it still applies to this conversation's last answer (a click
    on a page drawn before another message was sent does nothing)."""
    wanted = st.session_state.pop(REDO, None)
    if wanted and conversation.turns and conversation.turns[-1].id == wanted["answer"]:
        return wanted
    return None


def is_last_answer(conversation: Conversation, turn: Turn) -> bool:
    return turn.role == "assistant" and bool(conversation.turns) and conversation.turns[-1] is turn


def edit_form(conversation: Conversation, user: Turn) -> bool:
    """The last question as an editable text, with Send and Cancel, when the person chose to edit it; True if drawn
    (in place of the question)."""
    answer = conversation.turns[-1]
    if st.session_state.get(EDITING) != answer.id or len(conversation.turns) < 2 or conversation.turns[-2] is not user:
        return False
    with st.chat_message("user"):
        with st.form(f"edit-{answer.id}", border=False):
            key = f"edit-text-{answer.id}"
            text = st.text_area("Edit your message", key=key,
                                **({} if key in st.session_state else {"value": user.content}))
            send, cancel = st.columns([1, 1])
            sent = send.form_submit_button("Send edited message", icon=":material/send:", type="primary")
            cancelled = cancel.form_submit_button("Cancel", icon=":material/close:")
        if sent:
            st.session_state.pop(EDITING, None)
            st.session_state[REDO] = {"answer": answer.id, "edited": text}
            st.rerun()
        if cancelled:
            st.session_state.pop(EDITING, None)
            st.rerun()
    return True


def reopen_edit(conversation: Conversation, edited: str) -> None:
    """An edited question that could not be sent goes back into its edit box (next run), nothing lost."""
    if edited and conversation.turns:
        answer = conversation.turns[-1]
        st.session_state[EDITING] = answer.id
        st.session_state[f"edit-text-{answer.id}"] = edited


def exchange_controls(redo: Redo, who: Asker, conversation: Conversation, answer: Turn, choices: Choices) -> None:
    """Regenerate, Edit question, and the versions of the last exchange; for an answer cut off at its limit, one click
    to retry with a higher limit (or to continue it, when it has text)."""
    if answer.status == "cut_off":
        cut_off_controls(answer, choices)
    columns = st.columns([1, 1, 2], vertical_alignment="center")
    columns[0].button("Regenerate", key=f"regenerate-{answer.id}", icon=":material/refresh:",
                      help=f"Ask again with {choices.chain.label} on {choices.deployment.display_name} (change them "
                           "in the sidebar first to compare); this answer stays available as a version.",
                      on_click=lambda: st.session_state.update({REDO: {"answer": answer.id, "edited": None}}))
    columns[1].button("Edit question", key=f"edit-{answer.id}", icon=":material/edit:",
                      help="Change your last message and send it again; this answer stays available as a version.",
                      on_click=lambda: st.session_state.update({EDITING: answer.id}))
    if answer.versions:
        with columns[2]:
            _versions(redo, who, conversation, answer, choices)


def _versions(redo: Redo, who: Asker, conversation: Conversation, answer: Turn, choices: Choices) -> None:
    total = len(answer.versions)
    current = answer.version_in_use or total
    back, label, forward = st.columns([2, 1, 2], vertical_alignment="center", gap="small")
    back.button("Previous", key=f"version-back-{answer.id}", icon=":material/chevron_left:", disabled=current <= 1,
                help=f"Previous version ({current - 1} of {total})" if current > 1 else "This is the first version",
                on_click=_use, args=(redo, who, conversation, current - 1, choices))
    label.markdown(f"<span aria-label='Version {current} of {total}'>{current} / {total}</span>",
                   unsafe_allow_html=True)
    forward.button("Next", key=f"version-next-{answer.id}", icon=":material/chevron_right:", disabled=current >= total,
                   help=f"Next version ({current + 1} of {total})" if current < total else "This is the newest version",
                   on_click=_use, args=(redo, who, conversation, current + 1, choices))


def _use(redo: Redo, who: Asker, conversation: Conversation, n: int, choices: Choices) -> None:
    try:
        redo.use(who, conversation, n, choices)
    except Exception:  # noqa: BLE001 - the page says so; the conversation as shown stays as it was stored
        st.session_state["conversation_notice"] = ("That version could not be put back in use (the conversation "
                                                   "could not be saved). Try again in a moment.")


def higher_limit(choices: Choices) -> int:
    """The limit a retry of a cut-off answer gets: four times this one (reasoning needs room), within the deployment's."""
    return min(max(choices.max_output_tokens * 4, 2000), choices.deployment.max_output_tokens)


def cut_off_controls(answer: Turn, choices: Choices) -> None:
    limit = higher_limit(choices)
    columns = st.columns([1, 1], vertical_alignment="center")
    if limit > choices.max_output_tokens:
        def retry() -> None:
            # The sidebar's slider shows the new limit, and this answer is asked again with it (a version is kept).
            want_answer_limit(limit)
            st.session_state[REDO] = {"answer": answer.id, "edited": None}
        columns[0].button(f"Retry with {limit:,} tokens", key=f"retry-higher-{answer.id}", icon=":material/replay:",
                          type="primary", on_click=retry,
                          help=f"Ask again with an answer limit of {limit:,} tokens instead of "
                               f"{choices.max_output_tokens:,}; this answer stays available as a version.")
    if answer.content:
        columns[1].button("Continue the answer", key=f"continue-{answer.id}", icon=":material/play_arrow:",
                          on_click=lambda: st.session_state.update({"send_now": CONTINUE}),
                          help="Sends a message asking the model to go on from where the answer stopped.")
