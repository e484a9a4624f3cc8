"""The person's saved conversations in the sidebar: new, the most recent ones, a search through titles and messages,
resume, rename, delete. Only a bounded number of rows is read on a rerun, however many conversations there are.

A search lists the best-matching conversations first (the database's full-text search, store/search.py) with the
words around the match, then titles that merely contain the text (a part of a word, "100%"). Opening a hit opens the
conversation at its matching message: enough earlier messages are shown to include it, and its id is left in
st.session_state["focus_message"] for the chat to mark it (search_match_marker)."""
from __future__ import annotations

import re

import streamlit as st

from memory.conversation import Conversation, Turn
from memory.store import ConversationStore, Owner
from store.search import SearchHit, snippet_parts
from ui.choice_state import WANTED_EFFORT, WANTED_LIMIT
from ui.services import conversation_store  # noqa: F401 - the page's store, also used by tests
from ui.turn_view import SHOWN_MESSAGES

RECENT = 20  # conversations listed without searching
SEARCH_HITS = 20  # conversations listed for a search
FOCUS = "focus_message"


URL_KEY = "c"  # ?c=<conversation id>: the open conversation, in the address


def current_conversation() -> Conversation:
    return st.session_state.setdefault("conversation", Conversation())


def conversation_from_url(store: ConversationStore, owner: Owner) -> None:
    """A page opened at ?c=<id> (a reload, a bookmark, or a page that reconnected to another replica after its own
    died) opens that conversation, if it is this person's."""
    wanted = st.query_params.get(URL_KEY)
    if "conversation" not in st.session_state and wanted:
        _open(store, owner, wanted)


def keep_in_url(conversation: Conversation) -> None:
    """The open conversation's id in the address once it is stored; none for a new one."""
    if conversation.persisted:
        if st.query_params.get(URL_KEY) != conversation.id:
            st.query_params[URL_KEY] = conversation.id
    elif URL_KEY in st.query_params:
        del st.query_params[URL_KEY]


def _open(store: ConversationStore, owner: Owner, conversation_id: str, message_id: str | None = None) -> None:
    loaded = store.load(owner, conversation_id)
    st.session_state.pop(FOCUS, None)
    if loaded is None:  # someone else's id, or deleted in another tab: behave as if it never existed
        st.session_state["conversation_notice"] = "That conversation does not exist (any more)."
        return
    st.session_state["conversation"] = loaded
    if message_id:
        _focus(loaded, message_id)
    # Restore the choices the conversation was held with.
    for key in ("deployment", "chain", "temperature"):
        if loaded.settings.get(key) is not None:
            st.session_state[key] = loaded.settings[key]
    if loaded.settings.get("max_output_tokens"):
        st.session_state[WANTED_LIMIT] = loaded.settings["max_output_tokens"]
    if loaded.settings.get("reasoning_effort"):
        st.session_state[WANTED_EFFORT] = loaded.settings["reasoning_effort"]


def _focus(conversation: Conversation, message_id: str) -> None:
    """Show the conversation from (at least) the matching message on, and mark it for the chat."""
    index = next((n for n, turn in enumerate(conversation.turns) if turn.id == message_id), None)
    if index is None:
        return
    from_end = len(conversation.turns) - index
    key = f"shown-{conversation.id}"  # ui/turn_view.visible_turns: how many of the newest messages are drawn
    if from_end > st.session_state.get(key, SHOWN_MESSAGES):
        st.session_state[key] = -(-from_end // SHOWN_MESSAGES) * SHOWN_MESSAGES  # in the page's steps of 50
    st.session_state[FOCUS] = message_id


def _new() -> None:
    st.session_state["conversation"] = Conversation()
    st.session_state.pop(FOCUS, None)


def search_match_marker(turn: Turn) -> None:
    """A small mark on the message a search opened the conversation at (for whoever draws the turns)."""
    if turn.id and turn.id == st.session_state.get(FOCUS):
        st.caption(":material/search: Search match")


def conversation_list(store: ConversationStore, owner: Owner) -> None:
    current = current_conversation()
    st.subheader("Conversations")
    st.button("New conversation", icon=":material/add_comment:", key="new_conversation", on_click=_new)
    if notice := st.session_state.pop("conversation_notice", None):
        st.warning(notice)
    _focus_caption(current)
    search = st.session_state.get("conversation_search", "").strip()
    listed = [] if search else store.list(owner, limit=RECENT + 1)
    if listed or search:
        st.text_input("Search conversations", key="conversation_search", placeholder="Words in titles and messages",
                      help=f"The {RECENT} most recent conversations are listed; search finds any by the words in "
                           "their titles and messages (other forms of a word count: \"migrating\" finds "
                           "\"migration\"; \"quoted words\" must stand together). Opening one shows the matching "
                           "message.")
    if search:
        _search_results(store, owner, search, current)
    else:
        for saved in listed[:RECENT]:
            _open_button(store, owner, saved.id, saved.title, current)
        if len(listed) > RECENT:
            st.caption(f"Showing the {RECENT} most recent.")
    if current.persisted:
        _rename_or_delete(store, owner, current)


def _open_button(store: ConversationStore, owner: Owner, conversation_id: str, title: str, current: Conversation,
                 message_id: str | None = None) -> None:
    label = title if len(title) <= 40 else title[:39] + "…"
    st.button(label, key=f"open-{conversation_id}", on_click=_open, args=(store, owner, conversation_id, message_id),
              type="primary" if conversation_id == current.id else "secondary", use_container_width=True)


def _search_results(store: ConversationStore, owner: Owner, search: str, current: Conversation) -> None:
    hits = store.search(owner, search, limit=SEARCH_HITS)
    found = {hit.conversation_id for hit in hits}
    # Then titles that merely contain the text (a part of a word, symbols the full-text search ignores).
    titled = [c for c in store.list(owner, limit=SEARCH_HITS, search=search) if c.id not in found]
    for hit in hits:
        _open_button(store, owner, hit.conversation_id, hit.title, current, hit.message_id)
        if hit.snippet.strip():
            st.caption(snippet_markdown(hit))
    for saved in titled[:SEARCH_HITS - len(hits)]:
        _open_button(store, owner, saved.id, saved.title, current)
    if not hits and not titled:
        st.caption("No conversation matches that.")
    elif len(hits) + len(titled) >= SEARCH_HITS:
        st.caption(f"Showing the {SEARCH_HITS} best matches.")


def _focus_caption(current: Conversation) -> None:
    focus = st.session_state.get(FOCUS)
    index = next((n for n, turn in enumerate(current.turns) if turn.id == focus), None) if focus else None
    if index is not None:
        st.caption(f":material/search: Opened at the search match: message {index + 1} of {len(current.turns)}.")


_MARKDOWN_SPECIAL = set("\\`*_{}[]()#+-.!|>~<$:=")


def _escape(text: str) -> str:
    """Stored text shown as written: none of it may become markdown (links, emphasis, icons, maths, HTML)."""
    return "".join(f"\\{c}" if c in _MARKDOWN_SPECIAL else c for c in re.sub(r"\s+", " ", text))


def snippet_markdown(hit: SearchHit) -> str:
    """The words around the match, escaped, with the matched words in bold."""
    return "".join(f"**{_escape(piece)}**" if matched else _escape(piece)
                   for piece, matched in snippet_parts(hit.snippet) if piece.strip() or not matched)


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
