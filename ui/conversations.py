"""The person's saved conversations in the sidebar: new, the most recent ones, a search for older ones, resume,
rename, delete. Only a bounded number of rows is read on a rerun, however many conversations there are."""
from __future__ import annotations

import streamlit as st

from memory.conversation import Conversation
from memory.store import ConversationStore, Owner
from ui.services import conversation_store  # noqa: F401 - the page's store, also used by tests

RECENT = 20  # conversations listed without searching


def current_conversation() -> Conversation:
    return st.session_state.setdefault("conversation", Conversation())


def _open(store: ConversationStore, owner: Owner, conversation_id: str) -> None:
    loaded = store.load(owner, conversation_id)
    if loaded is None:  # someone else's id, or deleted in another tab: behave as if it never existed
        st.session_state["conversation_notice"] = "That conversation does not exist (any more)."
        return
    st.session_state["conversation"] = loaded
    # Restore the choices the conversation was held with.
    for key in ("deployment", "chain", "max_output_tokens", "temperature"):
        if loaded.settings.get(key) is not None:
            st.session_state[key] = loaded.settings[key]


def _new() -> None:
    st.session_state["conversation"] = Conversation()


def conversation_list(store: ConversationStore, owner: Owner) -> None:
    current = current_conversation()
    st.subheader("Conversations")
    st.button("New conversation", icon=":material/add_comment:", key="new_conversation", on_click=_new)
    if notice := st.session_state.pop("conversation_notice", None):
        st.warning(notice)
    search = st.session_state.get("conversation_search", "")
    listed = store.list(owner, limit=RECENT + 1, search=search)
    if len(listed) > RECENT or search:
        st.text_input("Search conversations", key="conversation_search", placeholder="Words in the title",
                      help=f"The {RECENT} most recent conversations are listed; search finds older ones.")
    for saved in listed[:RECENT]:
        label = saved.title if len(saved.title) <= 40 else saved.title[:39] + "…"
        st.button(label, key=f"open-{saved.id}", on_click=_open, args=(store, owner, saved.id),
                  type="primary" if saved.id == current.id else "secondary", use_container_width=True)
    if search and not listed:
        st.caption("No conversation title contains that.")
    elif len(listed) > RECENT:
        st.caption(f"Showing the {RECENT} most recent{' matches' if search else ''}.")
    if current.persisted:
        _rename_or_delete(store, owner, current)


def _rename_or_delete(store: ConversationStore, owner: Owner, current: Conversation) -> None:
    with st.expander("Rename or delete this conversation"):
        title = st.text_input("Title", value=current.title, key=f"title-{current.id}", max_chars=200)
        if st.button("Rename", key=f"rename-{current.id}") and title.strip():
            if store.rename(owner, current.id, title):
                current.title = " ".join(title.split())
                st.rerun()
        if st.checkbox("Yes, delete it for good", key=f"confirm-{current.id}"):
            if st.button("Delete", type="primary", key=f"delete-{current.id}", icon=":material/delete:"):
                store.delete(owner, current.id)
                st.session_state["conversation"] = Conversation()
                st.rerun()
