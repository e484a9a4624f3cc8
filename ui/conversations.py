"""The person's saved conversations in the sidebar (new, resume, rename, delete) and "what the model remembers"."""
from __future__ import annotations

import streamlit as st

from config.database import database_engine
from config.settings import Settings
from memory.conversation import Conversation
from memory.images import ImageFiles
from memory.store import ConversationStore, Owner
from memory.summary import summary_text, verbatim_ids


@st.cache_resource(show_spinner=False)
def _store(database_url: str | None, data_dir: str) -> ConversationStore:
    from pathlib import Path

    return ConversationStore(database_engine(database_url, Path(data_dir), "conversations.db"),
                             ImageFiles(Path(data_dir) / "images"))


def conversation_store(settings: Settings) -> ConversationStore:
    url = settings.app.database_url.get_secret_value() if settings.app.database_url else None
    return _store(url, str(settings.app.data_dir.resolve()))


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


def conversation_sidebar(store: ConversationStore, owner: Owner) -> None:
    current = current_conversation()
    st.subheader("Conversations")
    if st.button("New conversation", icon=":material/add_comment:", key="new_conversation"):
        st.session_state["conversation"] = Conversation()
        current = st.session_state["conversation"]
    if notice := st.session_state.pop("conversation_notice", None):
        st.warning(notice)
    for saved in store.list(owner):
        label = saved.title if len(saved.title) <= 40 else saved.title[:39] + "…"
        st.button(label, key=f"open-{saved.id}", on_click=_open, args=(store, owner, saved.id),
                  type="primary" if saved.id == current.id else "secondary", use_container_width=True)
    if current.persisted:
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


def memory_panel(conversation: Conversation) -> None:
    """What the model will see of this conversation: the running summary and the messages kept word for word."""
    if not conversation.turns:
        return
    with st.expander("What the model remembers", icon=":material/psychology:"):
        summary = summary_text(conversation.memory)
        if summary:
            st.markdown("**Summary of earlier messages** (written by the model):")
            st.info(summary)
        else:
            st.caption("Nothing is summarised yet: the model sees the whole conversation.")
        kept = verbatim_ids(conversation.memory)
        lines = [f"- {'You' if t.role == 'user' else 'Assistant'}: {t.content[:80]}{'…' if len(t.content) > 80 else ''}"
                 for t in conversation.turns if t.id in kept]
        st.markdown("**Kept word for word:**\n" + ("\n".join(lines) if lines else "- (none)"))
        st.caption("The page always shows the whole conversation; summarising only changes what the model sees.")
