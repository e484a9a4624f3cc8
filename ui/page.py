"""The chat page: deployment picker, the conversation, and one streamed answer per message."""
from __future__ import annotations

import hashlib
import time
from contextlib import nullcontext
from dataclasses import dataclass, replace
import logging
from decimal import Decimal
from pathlib import Path

import streamlit as st
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage

from auth.credentials import TokenProvider, app_token_provider, on_behalf_of_token_provider
from auth.security_context import SecurityContext, client_ip
from auth.services import AuthServices, auth_services
from auth.sessions import AuthSession
from auth.signin import SignInExpired
from callbacks.audit import AuditContext, AuditHandler, audit_event, configure_audit_log, session_reference
from callbacks.experiments import compare_chains, read_audit
from chains.errors import classify
from chains.guard import ContextCheck, check_context, from_azure_error
from chains.images import UPLOAD_TYPES, ImageRejected, PreparedImage, prepare_image
from chains.model_factory import build_chat_model
from chains.multimodal import ImagesNotAccepted, check_deployment_accepts, human_message
from chains.registry import REGISTRY, ChainSpec, get_chain
from chains.tokens import estimate_prompt_tokens
from chains.turn import AnswerStream
from config import ConfigError, Deployment, Settings, load_settings
from memory.conversation import Conversation, Turn, Usage
from memory.store import Owner
from memory.summary import SummaryBufferMemory
from ui.errors import describe_error
from ui.conversations import conversation_sidebar, conversation_store, current_conversation, memory_panel
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


def _sidebar(settings: Settings, session: AuthSession,
             deployments: list[Deployment]) -> tuple[Deployment, str, ChainSpec, object, Controls]:
    """The deployment, and whose identity calls it: fixed per deployment in the catalog, or the person's choice."""
    catalog = settings.catalog
    names = [d.name for d in deployments]
    if st.session_state.get("deployment") not in names:  # a resumed conversation's deployment may be gone
        st.session_state.pop("deployment", None)
    if st.session_state.get("chain") not in REGISTRY:
        st.session_state.pop("chain", None)
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
        chain_name = st.selectbox("Chain", list(REGISTRY), format_func=lambda n: REGISTRY[n].title, key="chain",
                                  help="The LangChain chain behind the chat; each answer records which one wrote it.")
        spec = get_chain(chain_name)
        st.caption(f"{spec.description} (`{spec.label}`)")
        controls = _response_controls(settings, deployment, spec)
        if deployment.accepts_images:
            st.session_state.setdefault("image_detail", settings.app.image_detail)
            st.radio("Image detail", ["auto", "low", "high"], key="image_detail", horizontal=True,
                     help="low: 85 tokens per image at 512 px; high: 768 px tiles, 170 tokens each; auto: low for "
                          "small images, else high")
        totals_slot = st.empty()  # filled after this run's answer
        conversation_sidebar(conversation_store(settings), _owner(session))
        with st.expander("Compare chains", icon=":material/science:"):
            _experiments(settings)
    return deployment, mode, spec, totals_slot, controls


@dataclass(frozen=True)
class Controls:
    max_output_tokens: int
    temperature: float | None  # None: the chain fixes it, or the model takes none


def _response_controls(settings: Settings, deployment: Deployment, spec: ChainSpec) -> Controls:
    """Answer length up to the deployment's own maximum, and temperature where the chain and the model allow it."""
    cap = deployment.max_output_tokens
    st.session_state.setdefault("max_output_tokens", min(settings.app.default_max_output_tokens, cap))
    if st.session_state["max_output_tokens"] > cap:  # a deployment with a smaller maximum was picked
        st.session_state["max_output_tokens"] = cap
    max_output = st.slider("Maximum answer length (tokens)", min_value=min(100, cap), max_value=cap, step=1,
                           key="max_output_tokens")
    temperature = None
    if spec.temperature is not None:
        st.caption(f"Temperature {spec.temperature} is fixed by the {spec.title.lower()} chain.")
    elif not deployment.accepts_temperature:
        st.caption(f"{deployment.display_name} takes no temperature.")
    else:
        st.session_state.setdefault("temperature", settings.app.default_temperature)
        temperature = st.slider("Temperature", min_value=0.0, max_value=2.0, step=0.1, key="temperature")
    return Controls(max_output, temperature)


def _experiments(settings: Settings) -> None:
    stats = compare_chains(read_audit(settings.app.data_dir / "audit" / "audit.jsonl"))
    if not stats:
        st.caption("No model calls recorded yet.")
        return
    st.dataframe([{
        "chain": s.chain, "calls": s.calls, "answers": s.answers, "mean prompt tok": round(s.mean_prompt_tokens),
        "mean completion tok": round(s.mean_completion_tokens), "cost $": f"{s.total_cost_usd:.6f}",
        "mean latency ms": round(s.mean_latency_ms), "mean TTFT ms": round(s.mean_ttft_ms) if s.mean_ttft_ms else None,
        "failures": s.failures,
        "👍 ratio": f"{s.thumbs_up_ratio:.0%} of {s.thumbs_up + s.thumbs_down}" if s.thumbs_up_ratio is not None else "–",
    } for s in stats], hide_index=True)
    st.caption("Over every recorded model call (all people), from the audit log.")


def _show_totals(conversation: Conversation, slot) -> None:
    totals = conversation.totals()
    if totals.model_calls:
        about = "≈" if totals.estimated else ""
        slot.caption(
            f"This conversation: {totals.model_calls} model calls · {about}"
            f"{totals.prompt_tokens + totals.completion_tokens} tokens · ${totals.cost_usd:.6f}")


def _render(turn: Turn, settings: Settings, feedback=None) -> None:
    with st.chat_message(turn.role):
        if turn.content:
            st.markdown(turn.content)
        if turn.attachments:
            files = conversation_store(settings).files
            shown = [(files.load(a["ref"]), a) for a in turn.attachments]
            st.image([data for data, _ in shown if data], width=120,
                     caption=[f"{a['name']} · {a['width']}×{a['height']} · {a['detail']} · {a['tokens']} tokens"
                              for data, a in shown if data])
        if turn.excluded:
            st.caption("Blocked by the content filter: not sent to the model again.")
        if turn.notice:
            (st.warning if turn.status in ("stopped", "filtered") else st.error)(turn.notice, icon=":material/error:")
        if turn.usage:
            st.caption(_usage_caption(turn, settings))
        if feedback and turn.role == "assistant" and turn.content:
            feedback(turn)


def _usage_caption(turn: Turn, settings: Settings) -> str:
    usage = turn.usage or Usage()
    about = "≈" if usage.estimated else ""
    text = (f"{turn.deployment} · {turn.chain or 'assistant'} · {about}{usage.prompt_tokens} prompt + "
            f"{about}{usage.completion_tokens} completion tokens · ${usage.cost_usd:.6f}")
    if usage.model_calls > 1:
        text += f" · {usage.model_calls} model calls"
    if usage.estimated:
        text += " (estimated with tiktoken)"
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
            session: AuthSession, spec: ChainSpec, mode: str, feedback, user_turn: Turn, controls: Controls,
            new_message: HumanMessage) -> None:
    """Summarise if due, stream one answer, then store the whole turn at once; failures keep the conversation and
    say why."""
    security_context = _security_context(settings, session).as_payload()
    audit = AuditHandler(_audit_context(settings, session, conversation, spec, deployment, mode, controls), deployment)
    model = build_chat_model(
        settings, deployment, provider, user_security_context=security_context,
        temperature=controls.temperature, max_output_tokens=controls.max_output_tokens,
    )
    # The summary call goes through the same identity, security context and audit, and never streams to the page.
    summarizer = build_chat_model(settings, deployment, provider, user_security_context=security_context,
                                  temperature=0, callbacks=[audit])
    memory = SummaryBufferMemory(settings.app.memory_trigger_messages, settings.app.memory_keep_messages)
    config = {"callbacks": [audit], "metadata": {"conversation_id": conversation.id, "chain": spec.label},
              "run_name": spec.name}
    turn = conversation.add(Turn(role="assistant", content="", deployment=deployment.name, chain=spec.label))
    with st.chat_message("assistant"):
        try:
            with st.spinner("Summarising earlier messages…") if _will_summarise(conversation, memory) else nullcontext():
                sent = memory.prepare(conversation.memory, new_message, summarizer)
        except Exception as exc:  # noqa: BLE001 - the summary call failed: nothing was sent
            failure = classify(exc)
            turn.status, turn.notice, turn.usage = "failed", failure.message, _usage_from(audit.records)
            st.error(failure.message, icon=":material/error:")
            _save(settings, session, conversation, user_turn, turn, controls)
            return
        stream = AnswerStream(spec.build(model), {"messages": sent}, config)
        try:
            st.write_stream(_coalesced(stream.text_chunks()))
        finally:
            # Also on Stop (Streamlit ends the script at the next st call): close the model stream, keep what came,
            # and store the turn marked as stopped.
            stream.close()
            outcome = stream.outcome()
            turn.content, turn.status = outcome.text, outcome.status
            turn.usage = _usage_from(audit.records)
            if outcome.failure:
                turn.notice = outcome.failure.message
                if outcome.failure.kind == "context_too_long":  # the same words as the guard's, from Azure's numbers
                    check = from_azure_error(str(stream.error), deployment, controls.max_output_tokens)
                    turn.notice = check.message(deployment.name) if check else turn.notice
                    st.session_state["kept_draft"] = user_turn.content
                if outcome.failure.kind == "prompt_filtered":
                    user_turn.excluded = True  # never resend a blocked message
            elif outcome.status == "stopped":
                turn.notice = "Stopped: the answer above is partial."
            if user_turn.excluded:
                pass  # the model's memory stays as it was before the blocked message
            elif turn.content:
                conversation.memory = [*sent, AIMessage(turn.content, id=turn.id)]
            else:
                conversation.memory = sent
            _save(settings, session, conversation, user_turn, turn, controls)
        if outcome.failure:
            log.warning("chat turn failed: %s", outcome.failure.kind)
            show = st.warning if outcome.status == "filtered" else st.error
            show(turn.notice, icon=":material/error:")
            if outcome.failure.kind == "prompt_filtered":
                st.caption("Your message, to copy and rephrase:")
                st.code(user_turn.content, language=None, wrap_lines=True)
        if turn.usage:
            st.caption(_usage_caption(turn, settings))
        if turn.content:
            feedback(turn)


def _will_summarise(conversation: Conversation, memory: SummaryBufferMemory) -> bool:
    return len(conversation.memory) + 1 >= memory.trigger_messages


def _save(settings: Settings, session: AuthSession, conversation: Conversation, user_turn: Turn, answer: Turn,
          controls: Controls) -> None:
    """One transaction per finished turn. If storing fails the page still shows the turn, and says it is not saved.
    No st.* call in here: it also runs while Streamlit is stopping the script (Stop)."""
    try:
        conversation.settings.update(deployment=answer.deployment, chain=(answer.chain or "").split("@")[0],
                                     max_output_tokens=controls.max_output_tokens, temperature=controls.temperature)
        conversation_store(settings).commit_turn(_owner(session), conversation, user_turn, answer)
    except Exception as exc:  # noqa: BLE001 - shown to the person, logged without content
        log.error("could not store turn of conversation %s: %s", conversation.id, type(exc).__name__)
        answer.notice = (answer.notice + " " if answer.notice else "") + "This exchange could not be saved."


def _owner(session: AuthSession) -> Owner:
    return Owner(session.identity.oid, session.identity.tenant_id)


def _coalesced(pieces, interval: float = 0.03):
    """Tokens grouped into at most one page update per `interval` seconds: the page keeps up with fast deployments
    (each update re-renders the whole markdown) while text still appears as it arrives."""
    pending, last = "", 0.0
    for piece in pieces:
        pending += piece
        now = time.monotonic()
        if now - last >= interval:
            yield pending
            pending, last = "", now
    if pending:
        yield pending


def _usage_from(records: list[dict]) -> Usage | None:
    """This turn's usage, summed over every model call it made (drafts included), from the audit records."""
    if not records:
        return None
    return Usage(prompt_tokens=sum(r["prompt_tokens"] for r in records),
                 completion_tokens=sum(r["completion_tokens"] for r in records),
                 cost_usd=sum((Decimal(r["cost_usd"]) for r in records), Decimal(0)),
                 estimated=any(r["usage_estimated"] for r in records), model_calls=len(records))


@st.cache_resource(show_spinner=False)
def _configured_audit_log(data_dir: str, to_stdout: bool) -> bool:
    configure_audit_log(Path(data_dir), to_stdout=to_stdout)
    return True


def _audit_log(settings: Settings) -> None:
    _configured_audit_log(str(settings.app.data_dir.resolve()), settings.app.audit_stdout)


def _context_estimate(conversation: Conversation, deployment: Deployment, spec: ChainSpec) -> str:
    """Before sending: what the conversation so far will cost as prompt, estimated with tiktoken like Azure counts."""
    tokens = estimate_prompt_tokens([SystemMessage(spec.system_prompt), *conversation.memory], deployment.model)
    calls = spec.model_calls_per_turn
    cost = deployment.cost(tokens * calls, 0)
    return (f"Next message: ≈{tokens} tokens of context before your text, ≈${cost:.6f} as prompt"
            f"{f' × {calls} calls' if calls > 1 else ''} on {deployment.name} (estimated with tiktoken).")


def _audit_context(settings: Settings, session: AuthSession, conversation: Conversation, spec: ChainSpec,
                   deployment: Deployment, mode: str, controls: Controls | None = None) -> AuditContext:
    return AuditContext(
        user_oid=session.identity.oid, tenant_id=session.identity.tenant_id,
        source_ip=_security_context(settings, session).source_ip, session=session_reference(session.id),
        conversation_id=conversation.id, chain=spec.label, deployment=deployment.name, identity_mode=mode,
        include_text=settings.app.audit_include_text,
        max_output_tokens=controls.max_output_tokens if controls else None,
        temperature=(spec.temperature if spec.temperature is not None else controls.temperature) if controls else None,
    )


def _prepared_images(files: list, settings: Settings) -> tuple[list[PreparedImage], list[ImageRejected]]:
    """Each upload checked and scaled like Azure does; bad ones are named with their reason, the rest go on."""
    detail = st.session_state.get("image_detail", settings.app.image_detail)
    images, rejected = [], []
    for upload in files:
        try:
            images.append(prepare_image(upload.name, upload.getvalue(), detail, settings.app.max_image_bytes))
        except ImageRejected as exc:
            rejected.append(exc)
    return images, rejected


def _too_long(settings: Settings, session: AuthSession, conversation: Conversation, spec: ChainSpec,
              deployment: Deployment, mode: str, controls: Controls, check: ContextCheck, draft: str,
              provider: TokenProvider) -> None:
    """Nothing is sent: say by how much it is over, keep the draft, and offer the fixes that apply."""
    st.session_state["kept_draft"] = draft
    context = _audit_context(settings, session, conversation, spec, deployment, mode, controls)
    audit_event("context_guard", context, outcome="not_sent", prompt_tokens=check.prompt_tokens,
                over_by=check.over_by, context_window=check.context_window)
    st.error(check.message(deployment.name) + " Your message is kept below.", icon=":material/data_usage:")
    shorter = controls.max_output_tokens - check.over_by
    if shorter >= min(100, deployment.max_output_tokens):
        st.button(f"Shorten the answer limit to {shorter} tokens", key="fix_shorten",
                  on_click=lambda: st.session_state.update(max_output_tokens=shorter))
    if len(conversation.memory) >= 2:
        st.button("Summarise the conversation now", key="fix_summarise", on_click=_summarise_now,
                  args=(settings, session, conversation, spec, deployment, mode, controls, provider))
    st.button("Start a new conversation", key="fix_new",
              on_click=lambda: st.session_state.update(conversation=Conversation()))


def _summarise_now(settings: Settings, session: AuthSession, conversation: Conversation, spec: ChainSpec,
                   deployment: Deployment, mode: str, controls: Controls, provider: TokenProvider) -> None:
    """Fold everything but the last message into the summary now (one audited call), and store the new memory."""
    audit = AuditHandler(_audit_context(settings, session, conversation, spec, deployment, mode, controls), deployment)
    summarizer = build_chat_model(settings, deployment, provider, temperature=0, callbacks=[audit],
                                  user_security_context=_security_context(settings, session).as_payload())
    memory = SummaryBufferMemory(trigger_messages=2, keep_messages=1)
    *older, last = conversation.memory
    conversation.memory = memory.prepare(older, last, summarizer)
    if conversation.persisted:
        conversation_store(settings).save_memory(_owner(session), conversation)


def _expired(services: AuthServices, session: AuthSession, draft: str, context: AuditContext) -> None:
    """The sign-in can no longer get tokens: keep the draft on the server and send the person to sign in again."""
    services.sessions.keep_draft(session.id, draft)
    audit_event("sign_in_expired", context, outcome="not_sent", draft_kept=True)
    st.warning("Your sign-in has expired, so the message was not sent. It is kept: sign in again and it will be "
               "waiting for you.", icon=":material/lock_clock:")
    link("Sign in again", "/signin?resume=1")


def _kept_draft(services: AuthServices | None, session: AuthSession) -> str | None:
    """A message kept across a sign-in or a send that did not fit, offered once to send."""
    if "kept_draft" not in st.session_state:
        st.session_state["kept_draft"] = services.sessions.take_draft(session.id) if services else None
    draft = st.session_state.get("kept_draft")
    if not draft:
        return None
    with st.container(border=True):
        st.caption("Your unsent message:")
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
    _audit_log(settings)
    deployment, mode, spec, totals_slot, controls = _sidebar(settings, session, deployments)
    conversation = current_conversation()
    def feedback(turn: Turn) -> None:
        """Thumbs under each answer: kept with the message and written to the audit log with the answer's chain."""
        score = st.feedback("thumbs", key=f"feedback-{turn.id}")
        if score is not None and score != turn.feedback:
            turn.feedback = score
            if conversation.persisted:
                conversation_store(settings).set_feedback(_owner(session), conversation.id, turn.id, score)
            answered = settings.catalog.get(turn.deployment) if turn.deployment in settings.catalog.names else deployment
            context = _audit_context(settings, session, conversation, get_chain(None), answered, mode)
            audit_event("feedback", replace(context, chain=turn.chain or context.chain), message_id=turn.id, score=score)

    for turn in conversation.turns:
        _render(turn, settings, feedback)
    kept = _kept_draft(services, session)
    memory_panel(conversation)
    st.caption(_context_estimate(conversation, deployment, spec))
    # submit_mode="stop": while an answer streams, the send button becomes Stop. Images only where the model sees.
    upload = {"accept_file": "multiple", "file_type": UPLOAD_TYPES,
              "max_upload_size": max(1, settings.app.max_image_bytes // 1_048_576)} if deployment.accepts_images else {}
    submitted = st.chat_input("Ask anything" + (" (images welcome)" if upload else ""), key="draft",
                              submit_mode="stop", **upload)
    text = (submitted.text if hasattr(submitted, "text") else submitted) or kept or ""
    files = list(getattr(submitted, "files", None) or [])
    if text.strip() or files:
        text = text.strip()
        images, rejected = _prepared_images(files, settings)
        try:
            check_deployment_accepts(deployment, images)
        except ImagesNotAccepted as exc:
            st.session_state["kept_draft"] = text
            st.error(str(exc), icon=":material/hide_image:")
            st.stop()
        if rejected and not text and not images:
            st.error("Nothing was sent: " + "; ".join(str(r) for r in rejected), icon=":material/broken_image:")
            st.stop()
        try:
            provider = _token_provider(settings, services, session, mode)
        except SignInExpired:
            _expired(services, session, text, _audit_context(settings, session, conversation, spec, deployment, mode))
            return
        new_message = human_message(text, images)
        check = check_context(spec.system_prompt, [*conversation.memory, new_message], deployment,
                              controls.max_output_tokens)
        if not check.fits:
            _too_long(settings, session, conversation, spec, deployment, mode, controls, check, text, provider)
        else:
            store = conversation_store(settings)
            attachments = [{"ref": store.files.save(i.sha256, i.extension, i.data), "name": i.name, "width": i.width,
                            "height": i.height, "detail": i.detail, "tokens": i.tokens} for i in images]
            notice = ("Not sent: " + "; ".join(str(r) for r in rejected)) if rejected else None
            user_turn = conversation.add(Turn(role="user", content=text, attachments=attachments, notice=notice))
            _render(user_turn, settings)
            new_message.id = user_turn.id
            _answer(settings, deployment, conversation, provider, session, spec, mode, feedback, user_turn, controls,
                    new_message)
    _show_totals(conversation, totals_slot)


main()
