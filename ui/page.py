"""The chat page: deployment picker, the conversation, and one streamed answer per message."""
from __future__ import annotations

import hashlib
import logging

import streamlit as st
from langchain_core.messages import AIMessageChunk

from auth.credentials import TokenProvider, app_token_provider, on_behalf_of_token_provider
from auth.security_context import SecurityContext, client_ip
from auth.services import AuthServices, auth_services
from auth.sessions import AuthSession
from auth.signin import SignInExpired
from callbacks.usage import UsageRecorder
from chains.assistant import build_assistant
from chains.model_factory import build_chat_model
from config import ConfigError, Deployment, Settings, load_settings
from memory.conversation import Conversation, Turn, Usage
from ui.errors import describe_error
from ui.session import LOCAL_EXPERIMENT, access_denied_screen, current_session, link, sign_in_screen

IDENTITY_LABELS = {"app": "the app's identity", "on_behalf_of": "your own identity (on-behalf-of)"}

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


def _sidebar(settings: Settings, session: AuthSession, deployments: list[Deployment]) -> tuple[Deployment, str]:
    """The deployment, and whose identity calls it: fixed per deployment in the catalog, or the person's choice."""
    catalog = settings.catalog
    names = [d.name for d in deployments]
    with st.sidebar:
        st.header(settings.app.name)
        st.caption(f"Signed in as **{session.identity.display_name}** ({session.identity.username})")
        if not settings.app.auth_disabled:
            link("Sign out", "/signout")
        name = st.selectbox(
            "Deployment",
            names,
            index=names.index(catalog.default) if catalog.default in names else 0,
            format_func=lambda n: catalog.get(n).display_name,
            key="deployment",
        )
        deployment = catalog.get(name)
        if settings.app.auth_disabled:
            mode = "app"
        elif deployment.identity == "either":
            mode = "on_behalf_of" if st.toggle("Call Azure OpenAI with my own identity (on-behalf-of)", key="obo") else "app"
        else:
            mode = deployment.identity
        st.caption(f"Azure OpenAI is called with {IDENTITY_LABELS[mode]}; every call carries your user security context.")
        if st.button("New conversation", icon=":material/add_comment:"):
            st.session_state["conversation"] = Conversation()
    return deployment, mode


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


def _security_context(settings: Settings, session: AuthSession) -> SecurityContext:
    trusted = frozenset(settings.app.trusted_proxies)
    ip = client_ip(st.context.ip_address, st.context.headers.get("x-forwarded-for"), trusted)
    return SecurityContext(application_name=settings.app.name, end_user_id=session.identity.oid,
                           end_user_tenant_id=session.identity.tenant_id, source_ip=ip)


def _token_provider(settings: Settings, services: AuthServices | None, session: AuthSession, mode: str) -> TokenProvider:
    """Check the sign-in is still good (silent refresh when needed), then pick the identity for Azure OpenAI."""
    if settings.app.auth_disabled:
        return _app_token_provider(settings)
    user_token, changed_cache = services.signin.user_access_token(session.token_cache)
    if changed_cache:
        services.sessions.save_token_cache(session.id, changed_cache)
        session.token_cache = changed_cache
    if mode == "app":
        return _app_token_provider(settings)
    # Per person and per browser session only (st.session_state), rebuilt when the person's token changes.
    key = hashlib.sha256(user_token.encode()).hexdigest()
    cached = st.session_state.get("_obo_provider")
    if not cached or cached[0] != key:
        cached = (key, on_behalf_of_token_provider(settings.entra, user_token))
        st.session_state["_obo_provider"] = cached
    return cached[1]


def _answer(settings: Settings, deployment: Deployment, conversation: Conversation, provider: TokenProvider,
            session: AuthSession) -> None:
    """Stream one answer for the conversation's last user message; failures keep the conversation and say why."""
    recorder = UsageRecorder()
    model = build_chat_model(
        settings, deployment, provider,
        user_security_context=_security_context(settings, session).as_payload(),
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


def _expired(services: AuthServices, session: AuthSession, draft: str) -> None:
    """The sign-in can no longer get tokens: keep the draft on the server and send the person to sign in again."""
    services.sessions.keep_draft(session.id, draft)
    log.info("sign-in expired for oid=%s; draft kept", session.identity.oid)
    st.warning("Your sign-in has expired, so the message was not sent. It is kept: sign in again and it will be "
               "waiting for you.", icon=":material/lock_clock:")
    link("Sign in again", "/signin?resume=1")


def _kept_draft(services: AuthServices, session: AuthSession) -> str | None:
    """A message kept across a sign-in, offered once to send."""
    if "kept_draft" not in st.session_state:
        st.session_state["kept_draft"] = services.sessions.take_draft(session.id)
    draft = st.session_state.get("kept_draft")
    if not draft:
        return None
    with st.container(border=True):
        st.caption("Your unsent message from before you signed in again:")
        st.text(draft)
        send, drop = st.columns(2)
        if send.button("Send it", icon=":material/send:", key="send_kept"):
            st.session_state["kept_draft"] = None
            return draft
        if drop.button("Discard", key="drop_kept"):
            st.session_state["kept_draft"] = None
            st.rerun()
    return None


def main() -> None:
    st.set_page_config(page_title="Entra Chat", page_icon=":material/forum:")
    try:
        settings = load_settings()  # cheap, and a changed setting applies on the next rerun
    except ConfigError as exc:
        st.error(str(exc), icon=":material/settings_alert:")
        st.stop()
    if settings.app.banner:
        st.warning(settings.app.banner, icon=":material/info:")
    if settings.app.auth_disabled:
        st.warning("Sign-in is disabled (APP_AUTH_DISABLED, for local experiments only): everyone here is the same "
                   "local person, and Azure OpenAI is called with the app's identity.", icon=":material/lock_open:")
        services, session = None, LOCAL_EXPERIMENT
    else:
        services = auth_services(settings)
        session = current_session(services)
        if session is None:
            sign_in_screen(settings.app.name)
            st.stop()
    who = session.identity.display_name
    required = settings.entra.required_role
    if required and not settings.app.auth_disabled and required not in session.identity.roles:
        access_denied_screen(settings.app.name, who, f"it requires the '{required}' role. Ask an administrator.")
        st.stop()
    deployments = settings.catalog.available_to(session.identity.roles)
    if not deployments:
        access_denied_screen(settings.app.name, who, "none of the deployments is open to your roles. Ask an administrator.")
        st.stop()
    deployment, mode = _sidebar(settings, session, deployments)
    conversation = _conversation()
    for turn in conversation.turns:
        _render(turn, settings)
    kept = _kept_draft(services, session) if services else None
    prompt = st.chat_input("Ask anything", key="draft") or kept
    if prompt and prompt.strip():
        try:
            provider = _token_provider(settings, services, session, mode)
        except SignInExpired:
            _expired(services, session, prompt.strip())
            return
        user_turn = conversation.add(Turn(role="user", content=prompt.strip()))
        _render(user_turn, settings)
        _answer(settings, deployment, conversation, provider, session)


main()
