"""Your data, at the bottom of the sidebar: this conversation as Markdown or JSON, all of your data as one ZIP, and
"delete all my data" (confirmed by typing DELETE), which ends every session of yours.

Exports are links (web/files.py): signed for this sign-in session, served only with its cookie and only from the
person's own conversations, built when followed (the ZIP too), read back from the store, so they hold what is kept,
and audited there with counts only (`data_exported`). Nothing goes through Streamlit's media manager or its deferred
downloads, whose URLs any session could ask for. Deleting is audited here (`data_deleted`); the audit log itself is
never deleted.
"""
from __future__ import annotations

import html

import streamlit as st

from auth.services import AuthServices, auth_services
from auth.sessions import AuthSession
from callbacks.audit import AuditContext, AuditLog
from config import current_settings
from config.settings import Settings
from memory.conversation import Conversation
from memory.export import delete_all_my_data
from memory.store import ConversationStore, Owner
from ui.services import asker, audit_log, file_links
from ui.session import LOCAL_EXPERIMENT, current_session, link
from web.files import FileLinks

CONFIRM_WORD = "DELETE"
INCLUDE_IMAGES = "export_include_images"
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
        links = file_links(settings)
        if conversation.persisted:
            _conversation_exports(conversation, links, session, include_images)
        else:
            st.caption("This conversation is not saved yet: nothing to export.")
        st.divider()
        _all_my_data(links, session, include_images)
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
def _conversation_exports(conversation: Conversation, links: FileLinks, session: AuthSession,
                          include_images: bool) -> None:
    download_link("This conversation as Markdown", links.conversation(session.id, conversation.id, "markdown"),
                  key="export_markdown")
    download_link("This conversation as JSON",
                  links.conversation(session.id, conversation.id, "json-images" if include_images else "json"),
                  key="export_json")


# -- all my data -------------------------------------------------------------------------------------------------------
def _all_my_data(links: FileLinks, session: AuthSession, include_images: bool) -> None:
    st.caption("All my data: every conversation (JSON and Markdown), my feedback and votes, my usage (CSV). The ZIP is "
               "collected when you follow the link, which may take a moment.")
    download_link("Download all my data", links.all_my_data(session.id, include_images), key="download_my_data",
                  primary=True)


def download_link(label: str, href: str, *, key: str, primary: bool = False) -> None:
    """A same-tab download link drawn like a button (st.download_button would hand the file to Streamlit's media
    manager). `key` names the element for tests and styling."""
    look = ("display:inline-block;padding:.3rem .8rem;margin:.15rem 0;border-radius:.5rem;font-weight:600;"
            "text-decoration:none;border:1px solid currentColor;" + ("" if not primary else "border-width:2px;"))
    with st.container(key=key):
        st.markdown(f'<a href="{html.escape(href)}" download target="_self" style="{look}">{html.escape(label)}</a>',
                    unsafe_allow_html=True)


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
    st.session_state.clear()  # this browser's copy too: the conversation, drafts, token providers
    st.session_state["conversation"] = Conversation()
    st.success(f"All your data was deleted: {_count(deleted.conversations, 'conversation')} "
               f"({_count(deleted.messages, 'message')}, {_count(deleted.documents, 'document')}, "
               f"{_count(deleted.files, 'file')}) and {_count(deleted.sessions, 'sign-in session')}.",
               icon=":material/check_circle:")
    if not settings.app.auth_disabled:
        st.caption("You are signed out. To finish signing out of Microsoft too:")
        link("Sign out", "/signout")


# -- helpers -----------------------------------------------------------------------------------------------------------
def _count(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"
