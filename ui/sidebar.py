"""The sidebar: at the top the person's choices for the next turn, at the bottom (drawn after the turn, so current
in the same run) the conversation's totals, the saved conversations and the chain comparison."""
from __future__ import annotations

import streamlit as st

from auth.sessions import AuthSession
from callbacks.chain_stats import ChainStatistics
from chains.registry import REGISTRY, ChainSpec, get_chain
from config import Deployment, Settings
from engine import Choices
from memory.conversation import Conversation
from memory.store import ConversationStore, Owner
from ui.announce import answer_announcer
from ui.choice_state import SHOWN, WANTED_EFFORT, WANTED_LIMIT
from ui.conversations import conversation_list
from ui.data_rights import data_rights
from ui.session import link
from ui.styles import accessible_styles

IDENTITY_LABELS = {"app": "the app's identity", "on_behalf_of": "your own identity (on-behalf-of)"}
EFFORT_HELP = {"none": "no reasoning: fastest, cheapest", "minimal": "a few reasoning tokens", "low": "brief reasoning",
               "medium": "balanced", "high": "thorough: slower, more reasoning tokens (billed as output)",
               "xhigh": "the most thorough"}



def choices_sidebar(settings: Settings, session: AuthSession, deployments: list[Deployment]) -> Choices:
    """Deployment, whose identity calls it (fixed per deployment in the catalog, or the person's choice), chain,
    answer limit, reasoning effort or temperature (whichever the deployment takes) and image detail."""
    catalog = settings.catalog
    names = [d.name for d in deployments]
    if st.session_state.get("deployment") not in names:  # a resumed conversation's deployment may be gone
        st.session_state.pop("deployment", None)
    if st.session_state.get("chain") not in REGISTRY:
        st.session_state.pop("chain", None)
    with st.sidebar:
        st.header(settings.app.name)
        answer_announcer()  # the live region exists before any answer ends (ui/announce.py)
        accessible_styles()
        # The account as code: markdown would make the address a mailto link, and links in captions fail contrast.
        st.caption(f"Signed in as **{session.identity.display_name}** (`{session.identity.username}`)")
        if not settings.app.auth_disabled:
            link("Sign out", "/signout")
        name = st.selectbox("Deployment", names, index=names.index(catalog.default) if catalog.default in names else 0,
                            format_func=lambda n: catalog.get(n).display_name, key="deployment")
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
        max_output, temperature, effort = _response_controls(settings, deployment, spec)
        detail = settings.app.image_detail
        if deployment.accepts_images:
            st.session_state.setdefault("image_detail", settings.app.image_detail)
            detail = st.radio("Image detail", ["auto", "low", "high"], key="image_detail", horizontal=True,
                              help=_detail_help(deployment))
    return Choices(deployment, spec, max_output, temperature, mode, detail, effort,
                   show_thinking=bool(st.session_state.get("show_thinking", True)))


def _detail_help(deployment: Deployment) -> str:
    rule = deployment.image_rule
    if rule is None:
        return ""
    if rule.kind == "tile":
        return (f"low: {rule.base_tokens} tokens per image at {rule.low_side} px; high: {rule.short_side} px tiles, "
                f"{rule.tile_tokens} tokens each (+{rule.base_tokens}); auto: low for small images, else high")
    return (f"{deployment.display_name} counts 32-px patches (up to {rule.patch_budget:,} per image at "
            f"{rule.max_side} px), × {rule.multiplier} tokens each; auto picks the cheaper detail that keeps the "
            "image's pixels")


def _response_controls(settings: Settings, deployment: Deployment,
                       spec: ChainSpec) -> tuple[int, float | None, str | None]:
    """Answer length up to the deployment's own maximum (the person's choice kept across deployments, clamped; before
    any choice the deployment's default, which leaves reasoning models room to answer), then the reasoning effort on
    a reasoning deployment (only the levels it accepts) or the temperature where the chain and the model take one."""
    cap = deployment.max_output_tokens
    wanted = st.session_state.get(WANTED_LIMIT) or deployment.answer_limit(settings.app.default_max_output_tokens)
    st.session_state["max_output_tokens"] = st.session_state[SHOWN + "max_output_tokens"] = max(min(wanted, cap),
                                                                                                min(100, cap))
    max_output = st.slider("Maximum answer length (tokens)", min_value=min(100, cap), max_value=cap, step=1,
                           key="max_output_tokens", on_change=_remember, args=(deployment.name, WANTED_LIMIT,
                                                                                  "max_output_tokens"),
                           help="Reasoning tokens count toward this limit: a reasoning model that uses it all "
                                "before answering returns no text." if deployment.reasoning else None)
    temperature = effort = None
    if deployment.reasoning_efforts:
        wanted_effort = st.session_state.get(WANTED_EFFORT)
        st.session_state["reasoning_effort"] = st.session_state[SHOWN + "reasoning_effort"] = \
            deployment.effort(wanted_effort)
        effort = st.select_slider("Reasoning effort", options=list(deployment.reasoning_efforts), key="reasoning_effort",
                                  format_func=str.capitalize, on_change=_remember,
                                  args=(deployment.name, WANTED_EFFORT, "reasoning_effort"),
                                  help="; ".join(f"{e}: {EFFORT_HELP[e]}" for e in deployment.reasoning_efforts))
    if deployment.api == "responses" and deployment.reasoning_summaries:
        st.session_state.setdefault("show_thinking", True)
        st.toggle("Show the model's thinking", key="show_thinking",
                  help="A summary of the model's reasoning (never the reasoning itself), streamed above the answer "
                       "and kept with it. Summaries are not sent back to the model.")
    if not deployment.accepts_sampling:
        st.caption(f"{deployment.display_name} is a reasoning model: it takes no temperature"
                   + ("; the effort above sets how much it thinks." if effort else "."))
    elif spec.temperature is not None:
        st.caption(f"Temperature {spec.temperature} is fixed by the {spec.title.lower()} chain.")
    else:
        st.session_state.setdefault("temperature", settings.app.default_temperature)
        temperature = st.slider("Temperature", min_value=0.0, max_value=2.0, step=0.1, key="temperature")
    return max_output, temperature, effort


def _remember(deployment: str, wanted: str, widget: str) -> None:
    """The person moved the control: keep the choice. Not when the deployment changed in the same run, and not when
    the widget only reports back the value this page clamped it to (the browser may send that a run later, after
    the switch): a move to the value already shown is no move."""
    if st.session_state.get("deployment") != deployment:
        return
    if st.session_state.get(widget) == st.session_state.get(SHOWN + widget):
        return
    st.session_state[wanted] = st.session_state[widget]


def sidebar_footer(conversation: Conversation, store: ConversationStore, owner: Owner,
                   statistics: ChainStatistics) -> None:
    with st.sidebar:
        totals = conversation.totals()
        if totals.model_calls:
            about = "≈" if totals.estimated else ""
            # Reasoning tokens are some of the completion tokens (billed as output): said, never added again.
            hidden = f", {totals.reasoning_tokens} of them reasoning" if totals.reasoning_tokens else ""
            st.caption(f"This conversation: {totals.model_calls} model calls · {about}"
                       f"{totals.prompt_tokens + totals.completion_tokens} tokens{hidden} · ${totals.cost_usd:.6f}")
        conversation_list(store, owner)
        with st.expander("Compare chains", icon=":material/science:"):
            chain_comparison(statistics)
        data_rights(conversation, store, owner)


def chain_comparison(statistics: ChainStatistics) -> None:
    # A few rows kept up to date as calls end (callbacks/chain_stats.py): cheap on every rerun, whatever the audit size.
    stats = statistics.all()
    if not stats:
        st.caption("No model calls recorded yet.")
        return
    st.dataframe([{
        "chain": s.chain, "calls": s.calls, "answers": s.answers, "mean prompt tok": round(s.mean_prompt_tokens),
        "mean completion tok": round(s.mean_completion_tokens),
        "of them reasoning": round(s.mean_reasoning_tokens), "cost $": f"{s.total_cost_usd:.6f}",
        "mean latency ms": round(s.mean_latency_ms), "mean TTFT ms": round(s.mean_ttft_ms) if s.mean_ttft_ms else None,
        "failures": s.failures,
        "👍 ratio": f"{s.thumbs_up_ratio:.0%} of {s.thumbs_up + s.thumbs_down}" if s.thumbs_up_ratio is not None else "–",
    } for s in stats], hide_index=True)
    st.caption("Over every recorded model call (all people), kept in the database as calls end.")
