"""A pairwise LLM judge that corrects for position bias: it is asked twice, the second time with the two answers
swapped, and only a verdict both orders agree on counts.

A judge model often prefers whichever answer it reads first. Asked "1, 2 or tie?" for (A, B) and again for (B, A), a
judge that always says "1" picks A, then B: that is `inconsistent`, never a win. A reply that is not exactly one of
`1`, `2`, `tie` (a sentence, "Answer 1", an empty reply) is `no_verdict`, never a win either.

The judge's calls go through `chains.model_factory.build_chat_model` with the app's token provider and are audited
by an AuditHandler whose context has origin "evaluation" (purpose `evaluation` in the audit log).
"""
from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal

from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage

from callbacks.audit import AuditContext, AuditHandler, AuditLog
from chains.request_rules import lightest_effort
from config.catalog import Deployment
from config.settings import Settings
from experiments.dataset import Item

JUDGE_LABEL = "judge@1"  # what the audit log's `chain` field says for judge calls
JUDGE_MAX_OUTPUT_TOKENS = 16
# A reasoning deployment spends hidden tokens before its one-letter verdict: room for them, at its lightest effort.
JUDGE_REASONING_MAX_OUTPUT_TOKENS = 2000


def judge_limit(deployment: Deployment) -> int:
    return min(JUDGE_REASONING_MAX_OUTPUT_TOKENS if deployment.reasoning else JUDGE_MAX_OUTPUT_TOKENS,
               deployment.max_output_tokens)
VERDICTS = ("1", "2", "tie")
JUDGE_PROMPT = (
    "You are an impartial judge. You compare two answers to the last user message of a conversation and decide "
    "which answer is better: more correct, more helpful and following the user's instructions. When a reference "
    "answer is given, an answer that agrees with it is better. Do not prefer an answer for its position or its "
    "length.\n\nReply with exactly one of: 1 (the first answer is better), 2 (the second answer is better), tie. "
    "Reply with nothing else."
)

Verdict = Literal["win", "tie", "inconsistent", "no_verdict"]
Ask = Callable[[list[BaseMessage]], str]


class JudgeCallFailed(Exception):
    """A judge call failed for good (after any retries); `failure` is chains.errors.Failure."""

    def __init__(self, failure) -> None:
        super().__init__(failure.message)
        self.failure = failure


@dataclass(frozen=True)
class Judgement:
    verdict: Verdict
    winner: str | None  # the winning chain's label when verdict == "win"
    first: str | None  # parsed reply with chain a's answer in position 1 (None: off-format)
    second: str | None  # parsed reply with chain b's answer in position 1
    replies: tuple[str, ...]  # the judge's raw replies, in order asked
    error: str | None = None  # the failure kind of a judge call that failed


def judge_messages(item: Item, answer_1: str, answer_2: str) -> list[BaseMessage]:
    """What the judge reads: the conversation, the reference if any, and the two answers in positions 1 and 2."""
    conversation = "\n".join(f"{m.role}: {m.content}" for m in item.messages)
    parts = [f"<conversation>\n{conversation}\n</conversation>"]
    if item.reference is not None:
        kind = "a regular expression a correct answer matches" if item.scorer == "regex" else "the reference answer"
        parts.append(f"<reference kind=\"{kind}\">\n{item.reference}\n</reference>")
    parts += [f"<answer_1>\n{answer_1}\n</answer_1>", f"<answer_2>\n{answer_2}\n</answer_2>",
              "Which answer is better? Reply with exactly one of: 1, 2, tie."]
    return [SystemMessage(JUDGE_PROMPT), HumanMessage("\n\n".join(parts))]


def parse_verdict(reply: str | None) -> str | None:
    """"1", "2" or "tie" when the reply is exactly that (ignoring case, whitespace, quotes, bold and a full stop);
    None for anything else."""
    cleaned = (reply or "").strip().strip("\"'`*.").strip().lower()
    return cleaned if cleaned in VERDICTS else None


def combine(a: str, b: str, first: str | None, second: str | None) -> tuple[Verdict, str | None]:
    """The verdict from both orders: `first` was asked with a's answer in position 1, `second` with b's."""
    if first is None or second is None:
        return "no_verdict", None
    pick_first = {"1": a, "2": b, "tie": "tie"}[first]
    pick_second = {"1": b, "2": a, "tie": "tie"}[second]
    if pick_first != pick_second:
        return "inconsistent", None
    if pick_first == "tie":
        return "tie", None
    return "win", pick_first


def judge_pair(ask: Ask, item: Item, a: str, answer_a: str, b: str, answer_b: str) -> Judgement:
    """Asks the judge for (a, b), then for (b, a). A failed call (JudgeCallFailed) gives `no_verdict` with its kind;
    anything else `ask` raises (e.g. an interrupted run) propagates."""
    replies: list[str] = []
    try:
        for answer_1, answer_2 in ((answer_a, answer_b), (answer_b, answer_a)):
            replies.append(ask(judge_messages(item, answer_1, answer_2)))
    except JudgeCallFailed as exc:
        return Judgement("no_verdict", None, parse_verdict(replies[0]) if replies else None, None, tuple(replies),
                         error=exc.failure.kind)
    first, second = parse_verdict(replies[0]), parse_verdict(replies[1])
    verdict, winner = combine(a, b, first, second)
    return Judgement(verdict, winner, first, second, tuple(replies))


def judge_audit_handler(audit_log: AuditLog, deployment: Deployment, *, owner_oid: str, tenant_id: str,
                        session: str, include_text: bool = False) -> AuditHandler:
    """The audit handler for one judgement's calls: origin evaluation, chain `judge@1`, temperature 0."""
    context = AuditContext(user_oid=owner_oid, tenant_id=tenant_id, source_ip=None, session=session,
                           conversation_id=str(uuid.uuid4()), chain=JUDGE_LABEL, deployment=deployment.name,
                           identity_mode="app", include_text=include_text, max_output_tokens=judge_limit(deployment),
                           temperature=0.0 if deployment.accepts_temperature else None, origin="evaluation")
    return AuditHandler(context, deployment, sink=audit_log)


def build_judge_model(settings: Settings, deployment: Deployment, token_provider: Callable[[], str],
                      handler: AuditHandler, *, security_context: Mapping[str, str] | None = None,
                      model_factory: Callable[..., object] | None = None):
    """The judge's chat model on its deployment, with the app's token provider and the audit handler."""
    if model_factory is None:
        from chains.model_factory import build_chat_model as model_factory
    return model_factory(settings, deployment, token_provider, user_security_context=security_context,
                         temperature=0.0 if deployment.accepts_temperature else None,
                         max_output_tokens=judge_limit(deployment), callbacks=[handler],
                         reasoning_effort=lightest_effort(deployment))
