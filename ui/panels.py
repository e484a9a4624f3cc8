"""What sits between the conversation and the input: a turn that was not sent (and its fixes), the kept draft,
"what the model remembers" and the next message's estimate."""
from __future__ import annotations

import streamlit as st
from langchain_core.messages import SystemMessage

from auth.services import AuthServices
from auth.sessions import AuthSession
from chains.multimodal import estimate_prompt_tokens
from engine import Asker, Blocked, Choices, TurnEngine
from memory.conversation import Conversation
from memory.summary import summary_text, verbatim_ids
from ui import unsent
from ui.choice_state import want_answer_limit
from ui.session import link

BLOCK_ICONS = {"context_too_long": ":material/data_usage:", "images_not_accepted": ":material/hide_image:",
               "too_many_images": ":material/hide_image:", "too_many_files": ":material/attach_file:",
               "nothing_to_send": ":material/draft:", "over_budget": ":material/savings:",
               "rate_limited": ":material/speed:", "sign_in_unavailable": ":material/cloud_off:",
               "file_too_large": ":material/attach_file:"}


def not_sent(blocked: Blocked, services: AuthServices | None, session: AuthSession, engine: TurnEngine, who: Asker,
             conversation: Conversation, choices: Choices) -> None:
    """Nothing reached the model: say why, keep the person's text, and offer the fixes that apply."""
    if blocked.reason == "sign_in_expired":
        services.sessions.keep_draft(session.id, blocked.draft)  # on the server: it survives the sign-in round trip
        unsent.accepted()  # the text waits on the server; files are attached again after signing in
        st.warning(blocked.message, icon=":material/lock_clock:")
        link("Sign in again", "/signin?resume=1")
        return
    unsent.keep(blocked.draft, blocked.approve, leave_out=blocked.too_large)  # its text and files, if any
    kept = " Your message is kept below." if unsent.kept() else ""
    if blocked.reason == "confirm_indexing":
        st.info(blocked.message + " Your message and files are kept below: index and send, or discard.",
                icon=":material/database:")
        return
    st.error(blocked.message + kept, icon=BLOCK_ICONS.get(blocked.reason, ":material/error:"))
    if blocked.reason not in ("context_too_long", "too_many_images"):
        return
    shorter = choices.max_output_tokens - blocked.check.over_by if blocked.check else 0
    if blocked.check and shorter >= min(100, choices.deployment.max_output_tokens):
        st.button(f"Shorten the answer limit to {shorter} tokens", key="fix_shorten",
                  on_click=want_answer_limit, args=(shorter,))
    if len(conversation.memory) >= 2:
        st.button("Summarise the conversation now", key="fix_summarise", on_click=_summarise_now,
                  args=(engine, who, conversation, choices))
    st.button("Start a new conversation", key="fix_new",
              on_click=lambda: st.session_state.update(conversation=Conversation()))


def _summarise_now(engine: TurnEngine, who: Asker, conversation: Conversation, choices: Choices) -> None:
    failure = engine.summarise_now(who, conversation, choices)
    if failure:
        st.session_state["conversation_notice"] = f"Could not summarise: {failure.message}"


def kept_draft(services: AuthServices | None, session: AuthSession) -> None:
    """A message kept across a sign-in or a send that did not fit, offered once to send."""
    if "kept_draft" not in st.session_state:
        st.session_state["kept_draft"] = services.sessions.take_draft(session.id, session.identity) if services else None
    held = unsent.kept()
    if held is not None:
        _kept_message(held)
        return
    draft = st.session_state.get("kept_draft")
    if not draft:
        return
    with st.container(border=True):
        st.caption("Your unsent message:")
        st.text(draft)
        send, drop = st.columns(2)
        send.button("Send it", icon=":material/send:", key="send_kept", on_click=_send_kept, args=(draft,))
        drop.button("Discard", key="drop_kept", on_click=lambda: st.session_state.update(kept_draft=None))


def _kept_message(held: unsent.Unsent) -> None:
    """A message with its files that was not sent, offered to send as it is (indexing agreed to, if it asked)."""
    with st.container(border=True):
        st.caption(held.why or "Your unsent message:")
        if held.text:
            st.text(held.text)
        if held.files:
            st.caption(":material/attach_file: " + ", ".join(f.name for f in held.files))
        send, drop = st.columns(2)
        label = "Index and send" if held.approve else "Send it"
        send.button(label, icon=":material/send:", key="send_kept", on_click=unsent.send_kept,
                    args=(bool(held.approve),))
        drop.button("Discard", key="drop_kept", on_click=unsent.discard_kept)


def _send_kept(draft: str) -> None:
    st.session_state.update(kept_draft=None, send_now=draft)


def take_kept_to_send() -> str | None:
    """The kept draft the person chose to send in this run (see `kept_draft`)."""
    return st.session_state.pop("send_now", None)


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
        if conversation.documents:
            st.markdown("**Documents** (never summarised: each question gets their passages afresh):\n"
                        + "\n".join(f"- {d.describe()}" for d in conversation.documents))
        st.caption("The page always shows the whole conversation; summarising only changes what the model sees.")


def next_message_estimate(engine: TurnEngine, conversation: Conversation, choices: Choices) -> None:
    """Before sending: what the conversation so far will cost as prompt, estimated with tiktoken like Azure counts."""
    spec, deployment = choices.chain, choices.deployment
    tokens = estimate_prompt_tokens([SystemMessage(spec.system_prompt), *conversation.memory], deployment.model, deployment.image_rule)
    documents = engine.documents.sources_tokens(conversation.documents)
    calls = spec.model_calls_per_turn
    cost = deployment.cost((tokens + documents) * calls, 0)
    with_documents = f" (≈{documents} of them from documents)" if documents else ""
    st.caption(f"Next message: ≈{tokens + documents} tokens of context before your text{with_documents}, "
               f"≈${cost:.6f} as prompt{f' × {calls} calls' if calls > 1 else ''} on {deployment.name} (estimated "
               "with tiktoken).")
