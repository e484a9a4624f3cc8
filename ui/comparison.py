"""Side by side on the page: the sidebar switch and what to compare with, two columns streaming blind as A and B,
the vote, and then the names. The pair and the vote live in the engine (engine/comparison.py); this draws them."""
from __future__ import annotations

import random
import time
from collections.abc import Iterator

import streamlit as st

from chains.registry import REGISTRY, get_chain
from config import Deployment, Settings
from engine import Accepted, Blocked, BudgetNotice, Choices, Compared, Event, Sided, SideBySide, Status, TextDelta
from engine.turn import Asker
from memory.conversation import Conversation
from memory.images import ImageFiles
from ui.turn_view import REFRESH_SECONDS, show_turn

VOTE_LABELS = {"a": "A is better", "b": "B is better", "tie": "Tie", "both_bad": "Both are bad"}
KEPT = {"a": "A", "b": "B", "tie": "A", "both_bad": "A"}


def compare_with(settings: Settings, deployments: list[Deployment], mine: Choices) -> Choices | None:
    """The sidebar switch, and the chain and deployment the answer is compared with; None when off (or the same)."""
    with st.sidebar:
        if not st.toggle("Side by side (blind A/B)", key="side_by_side",
                         help="Each message is answered twice at once, by your choice and by the one below, shown as "
                              "A and B in random order. Vote for the better one; its answer is kept."):
            return None
        # Both answers are asked for with one identity (the turn's token), so only deployments that take it.
        names = [d.name for d in deployments if settings.app.auth_disabled
                 or d.identity in ("either", mine.identity_mode)]
        if st.session_state.get("deployment_b") not in names:
            st.session_state.pop("deployment_b", None)
        others = [n for n in REGISTRY if n != mine.chain.name] or list(REGISTRY)
        if st.session_state.get("chain_b") not in REGISTRY:
            st.session_state["chain_b"] = others[0]
        chain = get_chain(st.selectbox("Compare with chain", list(REGISTRY), key="chain_b",
                                       format_func=lambda n: REGISTRY[n].title))
        name = st.selectbox("on deployment", names, index=names.index(mine.deployment.name), key="deployment_b",
                            format_func=lambda n: settings.catalog.get(n).display_name)
        deployment = settings.catalog.get(name)
        if chain.name == mine.chain.name and deployment.name == mine.deployment.name:
            st.caption("Pick another chain or deployment to compare with.")
            return None
    return Choices(deployment, chain, min(mine.max_output_tokens, deployment.max_output_tokens),
                   mine.temperature if deployment.accepts_temperature else None, mine.identity_mode, mine.image_detail)


def blind_order(mine: Choices, other: Choices) -> tuple[Choices, Choices]:
    """Which one is shown as A: chance, so position says nothing about which is which."""
    return (mine, other) if random.random() < 0.5 else (other, mine)


def run_comparison(events: Iterator[Event | Sided | Compared], files: ImageFiles | None,
                   side_by_side: SideBySide, who: Asker, conversation: Conversation,
                   choices: Choices) -> Blocked | Compared | None:
    """Render both answers as they stream; then offer the vote. Closing the events on Stop stores both partial
    answers (the engine does)."""
    try:
        columns, slots, texts, shown, status = None, {}, {"A": "", "B": ""}, {"A": 0.0, "B": 0.0}, None
        for event in events:
            if isinstance(event, Sided):
                if isinstance(event.event, TextDelta) and slots:
                    texts[event.side] += event.event.text
                    now = time.monotonic()
                    if now - shown[event.side] >= REFRESH_SECONDS:
                        slots[event.side].markdown(texts[event.side])
                        shown[event.side] = now
                continue  # steps and usage stay hidden until the vote: costs would give the names away
            if isinstance(event, Blocked):
                return event
            if isinstance(event, BudgetNotice):
                st.warning(event.text, icon=":material/savings:")
            elif isinstance(event, Accepted):
                show_turn(event.turn, files)
                status = st.empty()
                columns = dict(zip("AB", st.columns(2)))
                for side, column in columns.items():
                    with column.chat_message("assistant"):
                        st.markdown(f"**{side}**")
                        slots[side] = st.empty()
            elif isinstance(event, Status) and status is not None:
                status.caption(f":material/hourglass_top: {event.text}")
            elif isinstance(event, Compared):
                if status is not None:
                    status.empty()
                for side, answer in event.answers.items():
                    slots[side].markdown(answer.content or "")
                remember(event)
                vote_buttons(event.comparison_id, side_by_side, who, conversation, choices)
                return event
        return None
    finally:
        events.close()


def remember(compared: Compared) -> None:
    st.session_state["pending_comparison"] = {
        "id": compared.comparison_id, "message_id": compared.answers.get("A").id if compared.answers.get("A") else None,
        "answers": {side: {"content": t.content, "notice": t.notice, "status": t.status}
                    for side, t in compared.answers.items()}}


def pending(conversation: Conversation) -> dict | None:
    """The comparison waiting for a vote, if it belongs to this conversation's last answer."""
    waiting = st.session_state.get("pending_comparison")
    if not waiting or not conversation.turns or conversation.turns[-1].id != waiting["message_id"]:
        return None
    return waiting


def show_pending(waiting: dict, side_by_side: SideBySide, who: Asker, conversation: Conversation,
                 choices: Choices) -> None:
    for side, column in zip("AB", st.columns(2)):
        answer = waiting["answers"].get(side) or {"content": "", "notice": None, "status": "failed"}
        with column.chat_message("assistant"):
            st.markdown(f"**{side}**")
            st.markdown(answer["content"])
            if answer["notice"]:
                st.warning(answer["notice"], icon=":material/error:")
    vote_buttons(waiting["id"], side_by_side, who, conversation, choices)


def vote_buttons(comparison_id: str, side_by_side: SideBySide, who: Asker, conversation: Conversation,
                 choices: Choices) -> None:
    st.caption("Which answer is better? The names are shown after you vote.")
    for column, (vote, label) in zip(st.columns(len(VOTE_LABELS)), VOTE_LABELS.items()):
        column.button(label, key=f"vote-{vote}-{comparison_id}", use_container_width=True, on_click=_vote,
                      args=(side_by_side, who, conversation, comparison_id, vote, choices))


def _vote(side_by_side: SideBySide, who: Asker, conversation: Conversation, comparison_id: str, vote: str,
          choices: Choices) -> None:
    kept = side_by_side.vote(who, conversation, comparison_id, vote, choices)
    st.session_state.pop("pending_comparison", None)
    comparison = side_by_side.engine.store.comparison(who.owner, comparison_id)
    if kept is None or comparison is None:
        st.session_state["comparison_revealed"] = "This comparison has a vote already."
        return
    st.session_state["comparison_revealed"] = (
        f"You voted: {VOTE_LABELS[vote].lower()}. A was `{comparison.chain_a}` on {comparison.deployment_a}; "
        f"B was `{comparison.chain_b}` on {comparison.deployment_b}. {KEPT[vote]}'s answer is kept in the "
        "conversation.")


def show_revealed() -> None:
    revealed = st.session_state.pop("comparison_revealed", None)
    if revealed:
        st.info(revealed, icon=":material/visibility:")
