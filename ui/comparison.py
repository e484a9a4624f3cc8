"""Side by side on the page: the sidebar switch and what to compare with, two columns streaming blind as A and B,
the vote, and then the names. The pair and the vote live in the engine (engine/comparison.py); this draws them.

A side that failed shows, in its column and still blind, that it failed and why (the failure's message, with the names
of the chains and deployments taken out), as soon as it ends. Its answer can never be kept: with one failed side the
engine keeps the other answer at once and no vote is offered (there is nothing to choose between; the page says which
answer is kept and offers to show the names); with both failed there is no vote either, the page says so and offers to
send the message (kept in the conversation) again.
"""
from __future__ import annotations

import random
import re
import time
from collections.abc import Iterator

import streamlit as st

from chains.errors import Failure
from chains.registry import REGISTRY, get_chain
from config import Deployment, Settings
from engine import (
    Accepted,
    Blocked,
    BudgetNotice,
    Choices,
    Compared,
    Event,
    Outcome,
    SideBySide,
    Sided,
    Status,
    TextDelta,
)
from engine.comparison import side_failure
from engine.turn import Asker
from memory.conversation import Conversation, Turn
from store.files import FileStore
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


def run_comparison(events: Iterator[Event | Sided | Compared], files: FileStore | None,
                   side_by_side: SideBySide, who: Asker, conversation: Conversation,
                   choices: Choices) -> Blocked | Compared | None:
    """Render both answers as they stream; then offer the vote. Closing the events on Stop stores both partial
    answers (the engine does)."""
    try:
        columns, slots, texts, shown, status = None, {}, {"A": "", "B": ""}, {"A": 0.0, "B": 0.0}, None
        for event in events:
            if isinstance(event, Sided):
                if isinstance(event.event, Outcome) and slots:  # one side has ended: a failure shows at once
                    failure = side_failure(event.event)
                    if failure is not None:
                        show_failed(slots[event.side], event.event.answer, failure,
                                    _names([event.event.answer], side_by_side))
                        shown[event.side] = float("inf")  # nothing more is drawn over it
                    continue
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
                names = _names(event.answers.values(), side_by_side)
                for side, answer in event.answers.items():
                    if side in event.failed:
                        show_failed(slots[side], answer, event.failed[side], names)
                    else:
                        slots[side].markdown(answer.content or "")
                if event.votable:
                    remember(event)
                    vote_buttons(event.comparison_id, side_by_side, who, conversation, choices)
                else:
                    no_vote(event, side_by_side, who)
                return event
        return None
    finally:
        events.close()


def show_failed(slot, answer: Turn, failure: Failure, names: list[tuple[str, str]]) -> None:
    """A failed side's column: what arrived (if anything) and, clearly marked, why it failed, without the names."""
    with slot.container():
        if answer.content:
            st.markdown(answer.content)
        st.error(f"**This answer failed.** {_blind(answer.notice or failure.message, names)}", icon=":material/error:")


def no_vote(compared: Compared, side_by_side: SideBySide, who: Asker) -> None:
    """No vote when a side failed: say which answer is kept (one failed) or that none is (both failed: send again)."""
    if len(compared.failed) == 2:
        st.warning("Both answers failed, so there is nothing to vote on. Your message is kept in the conversation: "
                   "send it again.", icon=":material/error:")
        if not compared.user.excluded:  # a message the content filter blocked is rephrased, not resent
            st.button("Send again", icon=":material/send:", key=f"resend-{compared.comparison_id}",
                      on_click=_send_again, args=(compared.user.content,))
    else:
        failed = next(iter(compared.failed))
        st.info(f"{failed} failed, so {compared.kept}'s answer is kept in the conversation. There is nothing to vote "
                "on: a failed answer is never kept, and no vote is counted.", icon=":material/check_circle:")
    st.button("Show which was which", key=f"reveal-{compared.comparison_id}", on_click=_reveal,
              args=(side_by_side, who, compared.comparison_id))


def _send_again(text: str) -> None:
    st.session_state["send_now"] = text  # the chat input's next message (ui.panels.take_kept_to_send)


def _reveal(side_by_side: SideBySide, who: Asker, comparison_id: str) -> None:
    comparison = side_by_side.engine.store.comparison(who.owner, comparison_id)
    if comparison is None:
        return
    failed = comparison.failed

    def said(side: str) -> str:
        return f" (failed: {failed[side]})" if side in failed else ""

    st.session_state["comparison_revealed"] = (
        f"A was `{comparison.chain_a}` on {comparison.deployment_a}{said('a')}; B was `{comparison.chain_b}` on "
        f"{comparison.deployment_b}{said('b')}. No vote was counted.")


def _names(answers, side_by_side: SideBySide) -> list[tuple[str, str]]:
    """What would give a side away in a failure's text (its chain label, deployment, model and display names), each
    with the words said instead; longest first, so "gpt-4o-mini" goes before "gpt-4o"."""
    catalog = side_by_side.engine.settings.catalog
    names = {}
    for answer in answers:
        if answer.chain:
            names[answer.chain] = "this chain"
        if answer.deployment:
            names[answer.deployment] = "this deployment"
            try:
                deployment = catalog.get(answer.deployment)
            except KeyError:
                continue
            names.update({n: "this deployment" for n in (deployment.model, deployment.display_name) if n})
    return sorted(names.items(), key=lambda item: len(item[0]), reverse=True)


def _blind(text: str, names: list[tuple[str, str]]) -> str:
    for name, instead in names:
        text = re.sub(rf"(?<![\w.-]){re.escape(name)}(?![\w-])", instead, text)
    return text


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
    if not any(a.get("status") in ("failed", "filtered") or not a.get("content")
               for a in waiting["answers"].values()):  # a failed answer is never voted for (the engine refuses too)
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
        st.session_state["comparison_revealed"] = (
            "A failed answer cannot be voted for; the other answer is kept." if comparison and comparison.failed
            else "This comparison has a vote already.")
        return
    st.session_state["comparison_revealed"] = (
        f"You voted: {VOTE_LABELS[vote].lower()}. A was `{comparison.chain_a}` on {comparison.deployment_a}; "
        f"B was `{comparison.chain_b}` on {comparison.deployment_b}. {KEPT[vote]}'s answer is kept in the "
        "conversation.")


def show_revealed() -> None:
    revealed = st.session_state.pop("comparison_revealed", None)
    if revealed:
        st.info(revealed, icon=":material/visibility:")
