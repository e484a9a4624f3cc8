"""The chat page: it collects the person's choices and renders; the turn itself runs in the engine (engine/)."""
from __future__ import annotations

import os
from dataclasses import replace

import streamlit as st
from langsmith.utils import tracing_is_enabled

from auth.services import AuthServices, auth_services
from auth.sessions import AuthSession
from chains.images import UPLOAD_TYPES
from config import ConfigError, Settings, current_settings
from documents.extract import DOCUMENT_EXTENSIONS
from engine import Blocked, NewMessage, Outcome, Redo, SideBySide, Upload
from memory.conversation import Turn
from ui import unsent
from ui.comparison import blind_order, compare_with, pending, run_comparison, show_pending, show_revealed
from ui.conversations import conversation_from_url, current_conversation, keep_in_url, search_match_marker
from ui.failover import in_flight, interrupted_turns
from ui.leaderboard import leaderboard_button
from ui.panels import kept_draft, memory_panel, next_message_estimate, not_sent, take_kept_to_send
from ui.redo import edit_form, exchange_controls, is_last_answer, reopen_edit, wanted_redo
from ui.services import asker, audit_log, chain_statistics, conversation_store, owner, turn_engine, turns_in_flight
from ui.session import LOCAL_EXPERIMENT, access_denied_screen, current_session, sign_in_screen
from ui.sidebar import choices_sidebar, sidebar_footer
from ui.turn_view import run_turn, show_turn, visible_turns
from ui.usage import usage_button


def signed_in_person(settings: Settings) -> tuple[AuthServices | None, AuthSession]:
    """The person behind this page, or a sign-in / access-denied screen and the end of the run."""
    if settings.app.auth_disabled:
        st.warning("Sign-in is disabled (APP_AUTH_DISABLED, for local experiments only): everyone here is the same "
                   "local person, and Azure OpenAI is called with the app's identity.", icon=":material/lock_open:")
        return None, LOCAL_EXPERIMENT
    services = auth_services(settings)
    session = current_session(services)
    if session is None:
        sign_in_screen(settings.app.name)
        st.stop()
    required = settings.entra.required_role
    if required and required not in session.identity.roles:
        access_denied_screen(settings.app.name, session.identity.display_name,
                             f"it requires the '{required}' role. Ask an administrator.")
        st.stop()
    return services, session


def new_message(settings: Settings, deployment_accepts_images: bool) -> NewMessage | None:
    """The chat input (Stop while an answer streams; documents everywhere, images only where the model sees them),
    or a kept draft the person chose to send."""
    types = [*DOCUMENT_EXTENSIONS, *(UPLOAD_TYPES if deployment_accepts_images else ())]
    largest = settings.app.upload_ceiling_bytes  # over a file's own limit, the engine names it and holds the message
    submitted = st.chat_input("Ask anything (attach " + ("documents or images)" if deployment_accepts_images
                                                         else "documents)"),
                              key="draft", submit_mode="stop", accept_file="multiple", file_type=types,
                              max_upload_size=max(1, -(-largest // 1_048_576)))
    if not submitted:
        again = unsent.take_to_send()  # a kept message (with its files) the person chose to send
        if again is not None:
            return again
    text = (submitted.text if hasattr(submitted, "text") else submitted) or take_kept_to_send() or ""
    files = list(getattr(submitted, "files", None) or [])
    if not text.strip() and not files:
        return None
    return NewMessage(text, [Upload(f.name, f.getvalue()) for f in files])


def chat_page(settings: Settings, services: AuthServices | None, session: AuthSession) -> None:
    """The chat (the default page, at /)."""
    deployments = settings.catalog.available_to(session.identity.roles)
    if not deployments:
        access_denied_screen(settings.app.name, session.identity.display_name,
                             "none of the deployments is open to your roles. Ask an administrator.")
        st.stop()
    audit_log(settings)  # configured before anything can be audited
    store = conversation_store(settings)
    conversation_from_url(store, owner(session))  # before the sidebar: opening restores the sidebar's choices
    choices = choices_sidebar(settings, session, deployments)
    other = compare_with(settings, deployments, choices)
    engine = turn_engine(settings)
    conversation = current_conversation()
    who = asker(settings, services, session, choices.identity_mode)
    flights = turns_in_flight(settings)
    interrupted_turns(flights, who.owner, lambda conversation_id, started_at: engine.audit.event(
        "turn_interrupted", engine.audit_context(who, conversation, choices), outcome="interrupted",
        interrupted_conversation_id=conversation_id, started_at=started_at))

    unsent.stopped_before_sending()  # the last run ended (Stop) before its message was accepted: keep it
    side_by_side, redo = SideBySide(engine), Redo(engine)
    waiting = pending(conversation)  # a side-by-side answer pair not voted on yet: drawn as its two columns
    wanted = None if waiting else wanted_redo(conversation)  # regenerate / edited question: the last exchange is redone

    def feedback(turn: Turn) -> None:
        """Under each answer: thumbs (per version), and under the last one regenerate, edit and the versions."""
        if turn.content:
            score = st.feedback("thumbs", key=f"feedback-{turn.id}-{turn.version_in_use or 1}")
            if score is not None and score != turn.feedback:
                engine.record_feedback(who, conversation, turn, score, choices)
        if not waiting and conversation.persisted and is_last_answer(conversation, turn):
            slot = st.empty()  # emptied if a new message is sent in this run: the answer is not the last then
            with slot.container():
                exchange_controls(redo, who, conversation, turn, choices)
            controls.append(slot)

    controls: list = []

    shown = conversation.turns[:-1] if waiting else conversation.turns[:-2] if wanted else conversation.turns
    for turn in visible_turns(shown, conversation.id):
        search_match_marker(turn)  # the message a search opened this conversation at
        if not edit_form(conversation, turn):
            show_turn(turn, store.files, feedback)
    show_revealed()
    if waiting:
        show_pending(waiting, side_by_side, who, conversation, choices)
    message = new_message(settings, choices.deployment.accepts_images
                          and (other is None or other.deployment.accepts_images))
    if message is not None:
        for slot in controls:
            slot.empty()
    if wanted and message is not None:  # a new message wins: the exchange stays as it was
        for turn in conversation.turns[-2:]:
            show_turn(turn, store.files, feedback)
    if wanted and message is None:
        question = wanted["edited"] or conversation.turns[-2].content
        with in_flight(flights, who.owner, conversation.id, question):
            ended = run_turn(redo.run(who, conversation, choices, wanted["edited"]), store.files, feedback)
        if isinstance(ended, Blocked):
            reopen_edit(conversation, ended.draft)  # an edited question is handed back in its edit box
            for turn in conversation.turns[-2:]:
                if not edit_form(conversation, turn):
                    show_turn(turn, store.files, feedback)
            not_sent(replace(ended, draft=""), services, session, engine, who, conversation, choices)
    elif message is not None and other is not None:
        a, b = blind_order(choices, other)
        with in_flight(flights, who.owner, conversation.id, message.text):
            ended = run_comparison(side_by_side.run(who, conversation, message, a, b), store.files, side_by_side,
                                   who, conversation, choices)
        if isinstance(ended, Blocked):
            not_sent(ended, services, session, engine, who, conversation, choices)
    elif message is not None:
        unsent.sending(message)
        with in_flight(flights, who.owner, conversation.id, message.text):
            ended = run_turn(engine.run(who, conversation, message, choices), store.files, feedback, message)
        if isinstance(ended, Blocked):
            not_sent(ended, services, session, engine, who, conversation, choices)
        elif isinstance(ended, Outcome) and ended.keep_draft:
            st.session_state["kept_draft"] = ended.keep_draft
    keep_in_url(conversation)
    # Below the newest turn, directly above the input: the kept draft, the model's memory, the next estimate.
    kept_draft(services, session)
    memory_panel(conversation)
    next_message_estimate(engine, conversation, choices)
    sidebar_footer(conversation, store, owner(session), chain_statistics(settings))
    leaderboard_button(store, chain_statistics(settings), session.identity.roles, settings.app.experimenter_role)
    usage_button(settings, engine, who)


def main() -> None:
    # An emoji icon becomes a data: URL; a :material/…: one makes the browser fetch it from Google's font servers.
    st.set_page_config(page_title="Entra Chat", page_icon="💬")
    try:
        settings = current_settings()  # read again only when an input changed: a change applies on the next rerun
    except ConfigError as exc:
        st.error(str(exc), icon=":material/settings_alert:")
        st.stop()
    if settings.app.banner:
        st.warning(settings.app.banner, icon=":material/info:")
    if tracing_is_enabled():  # honest about what leaves the machine
        st.warning("Tracing to LangSmith is on (LANGSMITH_TRACING): the messages, document passages, answers and tool "
                   f"results of every chain run are sent to {os.environ.get('LANGSMITH_ENDPOINT') or 'LangSmith'}.",
                   icon=":material/travel_explore:")
    services, session = signed_in_person(settings)

    def chat() -> None:
        st.set_page_config(layout="centered")  # as it was before the (wide) administration page was opened
        chat_page(settings, services, session)

    # Two pages: the chat at / and the administration page at /admin. Everyone can reach /admin by its URL, and the
    # page itself checks the role on every run (ui/admin.py); only administrators see the menu.
    pages = [st.Page(chat, title="Chat", icon=":material/forum:", url_path="chat", default=True),
             st.Page("admin.py", title="Usage administration", icon=":material/admin_panel_settings:",
                     url_path="admin")]
    administrator = settings.app.admin_role in session.identity.roles
    st.navigation(pages, position="sidebar" if administrator else "hidden").run()


main()
