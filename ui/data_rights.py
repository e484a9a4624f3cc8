"""Your data, at the bottom of the sidebar: this conversation as Markdown or JSON, all of your data as one ZIP, and
"delete all my data" (confirmed by typing DELETE), which ends every session of yours.

Exports are built only when asked: the conversation's files when their download button is clicked (Streamlit runs the
builder then), the ZIP when "Prepare" is pressed. Each is read back from the store, so it holds what is kept, and is
audited with counts only (`data_exported`, `data_deleted`); the audit log itself is never deleted.
"""
from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import replace

import streamlit as st

from auth.services import AuthServices, auth_services
from auth.sessions import AuthSession
from callbacks.audit import AuditContext, AuditLog
from config import current_settings
from config.settings import Settings
from memory.conversation import Conversation
from memory.export import conversation_json, conversation_markdown, delete_all_my_data, export_all
from memory.store import ConversationStore, Owner
from ui.services import asker, audit_log, usage_ledger
from ui.session import LOCAL_EXPERIMENT, current_session, link

CONFIRM_WORD = "DELETE"
INCLUDE_IMAGES = "export_include_images"
PREPARED = "my_data_zip"  # (bytes, file name, images embedded)
CONFIRMING = "delete_all_confirming"
TYPED = "delete_all_typed"


def data_rights(conversation: Conversation, store: ConversationStore, owner: Owner,
                settings: Settings | None = None, services: AuthServices | None = None,
                session: AuthSession | None = None) -> None:
    """The "Your data" expander (drawn inside the sidebar). Settings and session are found here when not given."""
    settings = settings or current_settings()
    if session is None:
        services, session = _signed_in(settings)
        if session is None:  # signed out meanwhile: the page shows the sign-in screen on its next run
            return
    audit = audit_log(settings)
    context = audit_context(settings, services, session)
    with st.expander("Your data", icon=":material/privacy_tip:"):
        include_images = st.checkbox("Include images in JSON", key=INCLUDE_IMAGES,
                                     help="Embed each image (base64, with its type) in the JSON; otherwise images are "
                                          "listed by name and stored reference.")
        if conversation.persisted:
            _conversation_exports(conversation, store, owner, include_images, audit, context, services, session)
        else:
            st.caption("This conversation is not saved yet: nothing to export.")
        st.divider()
        _all_my_data(settings, store, owner, include_images, audit, context)
        st.divider()
        _delete_all(settings, store, owner, services, audit, context)


def audit_context(settings: Settings, services: AuthServices | None, session: AuthSession,
                  conversation_id: str = "") -> AuditContext:
    """Who asked, from where, as engine.audit_context says it (no chain or deployment is involved)."""
    who = asker(settings, services, session, "app")
    return AuditContext(user_oid=who.owner.oid, tenant_id=who.owner.tenant_id,
                        source_ip=who.security_context.source_ip, session=who.session_ref,
                        conversation_id=conversation_id, chain="", deployment="", identity_mode="app",
                        include_text=False, origin=who.origin)


def _signed_in(settings: Settings) -> tuple[AuthServices | None, AuthSession | None]:
    if settings.app.auth_disabled:
        return None, LOCAL_EXPERIMENT
    services = auth_services(settings)
    return services, current_session(services)


# -- this conversation -------------------------------------------------------------------------------------------------
def _conversation_exports(conversation: Conversation, store: ConversationStore, owner: Owner, include_images: bool,
                          audit: AuditLog, context: AuditContext, services: AuthServices | None,
                          session: AuthSession) -> None:
    name = _file_name(conversation.title)
    context = replace(context, conversation_id=conversation.id)
    st.download_button("This conversation as Markdown", key="export_markdown", icon=":material/article:",
                       file_name=f"{name}.md", mime="text/markdown", on_click="ignore",
                       data=_builder(store, owner, conversation.id, "markdown", False, audit, context, services,
                                     session))
    st.download_button("This conversation as JSON", key="export_json", icon=":material/data_object:",
                       file_name=f"{name}.json", mime="application/json", on_click="ignore",
                       data=_builder(store, owner, conversation.id, "json", include_images, audit, context, services,
                                     session))


def _builder(store: ConversationStore, owner: Owner, conversation_id: str, kind: str, include_images: bool,
             audit: AuditLog, context: AuditContext, services: AuthServices | None,
             session: AuthSession) -> Callable[[], bytes]:
    """The export, built when the download is clicked (outside the script run: everything it needs is bound here)."""
    def build() -> bytes:
        if services is not None and services.sessions.get(session.id) is None:
            raise PermissionError("signed out")  # the session ended (sign-out, or all data deleted) since drawing
        conversation = store.load(owner, conversation_id)
        if conversation is None:
            raise LookupError("that conversation does not exist (any more)")
        if kind == "markdown":
            data = conversation_markdown(conversation).encode()
        else:
            data = json.dumps(conversation_json(conversation, store.files, include_images), ensure_ascii=False,
                              indent=2).encode()
        audit.event("data_exported", context, scope="conversation", format=kind,
                    images_embedded=include_images and kind == "json", conversations=1,
                    messages=len(conversation.turns), bytes=len(data))
        return data
    return build


# -- all my data -------------------------------------------------------------------------------------------------------
def _all_my_data(settings: Settings, store: ConversationStore, owner: Owner, include_images: bool, audit: AuditLog,
                 context: AuditContext) -> None:
    st.caption("All my data: every conversation (JSON and Markdown), my feedback and votes, my usage (CSV).")
    prepared = st.session_state.get(PREPARED)
    if prepared is not None and prepared[2] != include_images:  # the choice changed: prepare again
        st.session_state.pop(PREPARED, None)
        prepared = None
    if prepared is None:
        if st.button("Prepare all my data", key="prepare_my_data", icon=":material/folder_zip:"):
            with st.spinner("Collecting your data…"):
                export = export_all(store, usage_ledger(settings), owner, store.files, include_images)
            audit.event("data_exported", context, scope="all", format="zip", images_embedded=include_images,
                        bytes=len(export.data), **export.counts)
            prepared = (export.data, "my-data.zip", include_images)
            st.session_state[PREPARED] = prepared
    if prepared is not None:
        st.download_button(f"Download all my data ({_size(len(prepared[0]))})", data=prepared[0],
                           file_name=prepared[1], mime="application/zip", key="download_my_data",
                           icon=":material/download:", type="primary", on_click=_forget_prepared)


def _forget_prepared() -> None:
    st.session_state.pop(PREPARED, None)  # downloaded: the ZIP is not kept in memory any longer


# -- delete all my data ------------------------------------------------------------------------------------------------
def _delete_all(settings: Settings, store: ConversationStore, owner: Owner, services: AuthServices | None,
                audit: AuditLog, context: AuditContext) -> None:
    if not st.session_state.get(CONFIRMING):
        st.button("Delete all my data…", key="delete_all_start", icon=":material/delete_forever:",
                  on_click=lambda: st.session_state.update({CONFIRMING: True}))
        return
    st.warning("Deletes **every conversation** of yours with its messages, images, documents and feedback, and signs "
               "you out everywhere. This cannot be undone.", icon=":material/warning:")
    st.caption("Kept as the organisation's records: the audit log, usage records (tokens and cost per model call, no "
               "text) and side-by-side votes (without the answers).")
    typed = st.text_input(f"Type {CONFIRM_WORD} to confirm", key=TYPED, placeholder=CONFIRM_WORD)
    st.button("Delete everything", key="delete_all_confirm", type="primary", icon=":material/delete_forever:",
              disabled=typed.strip() != CONFIRM_WORD, on_click=_delete_everything,
              args=(settings, store, owner, services, audit, context))
    st.button("Cancel", key="delete_all_cancel", on_click=_cancel)


def _cancel() -> None:
    st.session_state.pop(CONFIRMING, None)
    st.session_state.pop(TYPED, None)


def _delete_everything(settings: Settings, store: ConversationStore, owner: Owner, services: AuthServices | None,
                       audit: AuditLog, context: AuditContext) -> None:
    """Runs before the next script run, so that run already finds no session (the page shows the sign-in screen);
    what is written here appears at the top of that page."""
    if str(st.session_state.get(TYPED, "")).strip() != CONFIRM_WORD:
        return
    deleted = delete_all_my_data(store, services.sessions if services is not None else None, owner)
    audit.event("data_deleted", context, **deleted.as_dict())
    st.session_state.clear()  # this browser's copy too: the conversation, drafts, prepared exports, token providers
    st.session_state["conversation"] = Conversation()
    st.success(f"All your data was deleted: {_count(deleted.conversations, 'conversation')} "
               f"({_count(deleted.messages, 'message')}, {_count(deleted.documents, 'document')}, "
               f"{_count(deleted.files, 'file')}) and {_count(deleted.sessions, 'sign-in session')}.",
               icon=":material/check_circle:")
    if not settings.app.auth_disabled:
        st.caption("You are signed out. To finish signing out of Microsoft too:")
        link("Sign out", "/signout")


# -- helpers -----------------------------------------------------------------------------------------------------------
def _file_name(title: str) -> str:
    name = re.sub(r"[^\w\- ]+", "", title or "", flags=re.UNICODE).strip()
    name = re.sub(r"\s+", "-", name)[:60].strip("-")
    return name or "conversation"


def _count(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _size(length: int) -> str:
    return f"{length / 1_048_576:.1f} MB" if length >= 1_048_576 else f"{max(1, round(length / 1024))} KB"
