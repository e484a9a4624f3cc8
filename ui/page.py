"""The chat page: deployment picker, the conversation, and one streamed answer per message."""
from __future__ import annotations

import logging

import streamlit as st
from langchain_core.messages import AIMessageChunk

from auth.credentials import app_token_provider
from auth.security_context import SecurityContext, client_ip
from callbacks.usage import UsageRecorder
from chains.assistant import build_assistant
from chains.model_factory import build_chat_model
from config import ConfigError, Deployment, Settings, load_settings
from memory.conversation import Conversation, Turn, Usage
from ui.errors import describe_error

log = logging.getLogger("chat.page")


@st.cache_resource(show_spinner=False)
def _cached_app_token_provider(_entra, identity_key: str):
    # The app's own identity is the same for everyone, so one credential (and its token cache) serves all sessions.
    return app_token_provider(_entra)


def _app_token_provider(settings: Settings):
    entra = settings.entra
    return _cached_app_token_provider(entra, f"{entra.authority}|{entra.client_id}|{entra.credential}")


def _conversation() -> Conversation:
    return st.session_state.setdefault("conversation", Conversation())


def _sidebar(settings: Settings) -> Deployment:
    catalog = settings.catalog
    with st.sidebar:
        st.header(settings.app.name)
        name = st.selectbox(
            "Deployment",
            catalog.names,
            index=catalog.names.index(catalog.default),
            format_func=lambda n: catalog.get(n).display_name,
            key="deployment",
        )
        st.info("Sign-in is not enabled yet: every request uses the app's own identity (Entra client credentials).", icon=":material/badge:")
        if st.button("New conversation", icon=":material/add_comment:"):
            st.session_state["conversation"] = Conversation()
    return catalog.get(name)


def _render(turn: Turn, settings: Settings) -> None:
    with st.chat_message(turn.role):
        if turn.content:
            st.markdown(turn.content)
        if turn.notice:
            st.error(turn.notice, icon=":material/error:")
        if turn.usage:
            st.caption(_usage_caption(turn, settings))


def _usage_caption(turn: Turn, settings: Settings) -> str:
    usage = turn.usage or Usage()
    text = f"{turn.deployment} · {usage.prompt_tokens} prompt + {usage.completion_tokens} completion tokens"
    try:
        cost = settings.catalog.get(turn.deployment or "").cost(usage.prompt_tokens, usage.completion_tokens)
        text += f" · ${cost:.6f}"
    except KeyError:
        pass
    if turn.status == "stopped":
        text += " · stopped"
    return text


def _security_context(settings: Settings) -> SecurityContext:
    ip = client_ip(st.context.ip_address, st.context.headers.get("x-forwarded-for"))
    return SecurityContext(application_name=settings.app.name, source_ip=ip)


def _answer(settings: Settings, deployment: Deployment, conversation: Conversation) -> None:
    """Stream one answer for the conversation's last user message; failures keep the conversation and say why."""
    recorder = UsageRecorder()
    model = build_chat_model(
        settings, deployment, _app_token_provider(settings),
        user_security_context=_security_context(settings).as_payload(),
    )
    chain = build_assistant(model)
    received: list[AIMessageChunk] = []

    def tokens():
        config = {"callbacks": [recorder], "metadata": {"deployment": deployment.name}}
        for chunk in chain.stream({"messages": conversation.model_messages()}, config=config):
            received.append(chunk)
            if chunk.text:
                yield chunk.text

    turn = Turn(role="assistant", content="", deployment=deployment.name)
    with st.chat_message("assistant"):
        try:
            turn.content = st.write_stream(tokens()) or ""
        except Exception as exc:  # shown to the person; the partial answer is kept and marked
            log.warning("chat turn failed: %s", type(exc).__name__)
            turn.content = "".join(chunk.text for chunk in received)
            turn.status, turn.notice = "failed", describe_error(exc)
            st.error(turn.notice, icon=":material/error:")
        final = sum(received[1:], received[0]) if received else None
        if final is not None:
            if final.response_metadata.get("finish_reason") == "content_filter":
                turn.status = "stopped"
                turn.notice = "The answer was cut off by the content filter."
                st.warning(turn.notice, icon=":material/block:")
            if final.usage_metadata:
                turn.usage = Usage(final.usage_metadata["input_tokens"], final.usage_metadata["output_tokens"])
                st.caption(_usage_caption(turn, settings))
    conversation.add(turn)


def main() -> None:
    st.set_page_config(page_title="Entra Chat", page_icon=":material/forum:")
    try:
        settings = load_settings()  # cheap, and a changed setting applies on the next rerun
    except ConfigError as exc:
        st.error(str(exc), icon=":material/settings_alert:")
        st.stop()
    if settings.app.banner:
        st.warning(settings.app.banner, icon=":material/info:")
    deployment = _sidebar(settings)
    conversation = _conversation()
    for turn in conversation.turns:
        _render(turn, settings)
    prompt = st.chat_input("Ask anything", key="draft")
    if prompt and prompt.strip():
        user_turn = conversation.add(Turn(role="user", content=prompt.strip()))
        _render(user_turn, settings)
        _answer(settings, deployment, conversation)


main()
