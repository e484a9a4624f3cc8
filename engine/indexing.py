"""Indexing attached documents is spending, like a chat turn: estimated before anything is sent, asked about first
when it is large, held against the person's monthly budget (a reservation, as for a turn), paced to the per-minute
token limit, recorded in the usage ledger as soon as it is done (also when it fails or is stopped half-way: Azure
charged for what was embedded), and audited as one record per document.

The turn engine calls this between reading the files and the guard's check of the message (engine/turn.py).
"""
from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from decimal import Decimal

from callbacks.audit import AuditContext, AuditLog
from config.settings import AppSettings
from documents.embeddings import Embedder, EmbeddingFailed
from documents.reader import DocumentNotIndexed, DocumentPlan, DocumentProgress
from engine.events import Blocked, Event
from memory.documents import AttachedDocument
from store.usage import OverBudget, RateLimited, Reservation, UsageLedger, to_nano, to_usd

log = logging.getLogger("chat.engine")
TOKENIZER_MARGIN = 1.1  # o200k (chat) and cl100k (text-embedding-3) counts of the same text differ by a few per cent


def _names(documents: Sequence[AttachedDocument]) -> str:
    names = [d.name for d in documents]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def wait_for_minute(clock: Callable[[], datetime], until: datetime, news: object) -> Iterator[object]:
    """Wait until `until` (by the ledger's clock), yielding `news` about once a second: the page shows it, and a Stop
    in between closes the generator."""
    while (left := (until - clock()).total_seconds()) > 0:
        yield news
        time.sleep(min(1.0, left))


class Indexing:
    """One person's indexing for one turn."""

    def __init__(self, app: AppSettings, usage: UsageLedger | None, audit: AuditLog, context: AuditContext, *,
                 oid: str, tenant: str, budget_nanousd: int | None) -> None:
        self.app, self.usage, self.audit, self.context = app, usage, audit, context
        self.oid, self.tenant, self.budget = oid, tenant, budget_nanousd

    def estimate(self, plan: DocumentPlan, embedder: Embedder) -> tuple[int, Decimal]:
        """Tokens and cost to index `plan`: the passages' token counts for the chat model, plus a margin for the
        embedding model's own tokenizer (what is held against the budget must not fall short of what Azure bills)."""
        tokens = self.estimate_tokens(plan)
        return tokens, embedder.deployment.cost(tokens)

    def estimate_tokens(self, plan: DocumentPlan) -> int:
        return math.ceil(plan.index_tokens * TOKENIZER_MARGIN)

    def needs_consent(self, plan: DocumentPlan, approved: frozenset[str]) -> bool:
        """More than APP_INDEX_CONFIRM_TOKENS to embed, and not every such document agreed to already."""
        return (self.estimate_tokens(plan) > self.app.index_confirm_tokens
                and not all(d.ref in approved for d in plan.to_index))

    def ask(self, plan: DocumentPlan, embedder: Embedder, draft: str) -> Blocked:
        """The question put to the person before a large indexing; their files and text are kept for the answer."""
        tokens, cost = self.estimate(plan, embedder)
        documents = plan.to_index
        limit = self.app.rate_limit_tokens_per_minute
        pace = (f", about {math.ceil(tokens / limit)} minutes at your limit of {limit:,} tokens per minute"
                if limit and tokens > limit else "")
        self.audit.event("indexing_confirm_asked", self.context, outcome="not_sent", embedding_tokens_estimate=tokens,
                         estimate_usd=str(cost), documents=len(documents))
        one = len(documents) == 1
        return Blocked("confirm_indexing",
                       f"{_names(documents)} {'is' if one else 'are'} long: to search {'it' if one else 'them'}, "
                       f"{'it' if one else 'they'} must be indexed first — about {tokens:,} embedding tokens "
                       f"(~${cost:.2f}{pace}), on your budget, before the answer. Nothing has been sent yet.",
                       draft, approve=tuple(d.ref for d in documents))

    def over_budget(self, plan: DocumentPlan, embedder: Embedder, draft: str) -> Blocked | None:
        """Refused before asking when the estimate is more than what is left of the month's budget."""
        if self.usage is None or self.budget is None:
            return None
        _, cost = self.estimate(plan, embedder)
        state = self.usage.state(self.oid, self.tenant, self.budget)
        if to_nano(cost) <= (state.left_nanousd or 0):
            return None
        return self._refused(OverBudget(state, to_nano(cost)), plan, draft)

    def _refused(self, refusal: OverBudget, plan: DocumentPlan, draft: str) -> Blocked:
        state = refusal.state
        left = to_usd(max(state.left_nanousd or 0, 0))
        self.audit.event("budget_refused", self.context, outcome="not_sent", purpose="embedding",
                         estimate_usd=str(to_usd(refusal.estimate_nanousd)), left_usd=str(left),
                         budget_usd=str(to_usd(state.budget_nanousd or 0)))
        return Blocked("over_budget", f"Indexing {_names(plan.to_index)} would cost about "
                       f"${to_usd(refusal.estimate_nanousd):.4f}, more than what is left of your monthly budget "
                       f"(${left:.4f} of ${to_usd(state.budget_nanousd or 0):.2f}), so nothing was sent. The budget "
                       f"resets on {state.resets_at:%d %B %Y} (UTC).", draft)

    def run(self, plan: DocumentPlan, embedder: Embedder, turn_records: list[dict],
            draft: str) -> Iterator[Event | DocumentProgress]:
        """Embed every document of `plan.to_index`, reporting progress. Returns False after yielding `Blocked` (the
        estimate no longer fits the budget), True otherwise; a document that fails is moved to `plan.refused`."""
        _, cost = self.estimate(plan, embedder)
        reservation: Reservation | None = None
        if self.usage is not None:
            try:
                reservation = self.usage.reserve(self.oid, self.tenant, to_nano(cost), self.budget)
            except OverBudget as refusal:
                yield self._refused(refusal, plan, draft)
                return False
        spent: list[dict] = []
        embedder.records = spent  # settled here, not with the turn (which may not happen)
        try:
            for document in list(plan.to_index):
                try:
                    yield from self._index(document, embedder)
                except EmbeddingFailed as exc:
                    plan.documents.remove(document)
                    plan.refused.append(DocumentNotIndexed(document.name, "it could not be indexed: "
                                                           + exc.failure.message.replace(" and send again",
                                                                                         " and attach it again")))
        finally:
            self._settle(spent, reservation)
            turn_records.extend({**record, "recorded": True} for record in spent)  # shown with the turn's usage
        return True

    def _index(self, document: AttachedDocument, embedder: Embedder) -> Iterator[DocumentProgress]:
        document.mode, document.embedding_deployment = "retrieved", embedder.deployment.name
        passages = document.passages
        total = len(passages)
        yield DocumentProgress(document.name, 0, total)

        def pace(start: int, end: int) -> Iterator[DocumentProgress]:
            yield from self._within_minute(document.name, start, total, sum(p.tokens for p in passages[start:end]))

        for batch in embedder.batches([p.text for p in passages], purpose_of="document", document=document.name,
                                      pace=pace):
            if isinstance(batch, DocumentProgress):
                yield batch
                continue
            for offset, vector in enumerate(batch.vectors):
                passages[batch.start + offset].vector = vector
            document.embedding_tokens += batch.tokens
            document.embedding_cost += batch.cost
            yield DocumentProgress(document.name, batch.start + len(batch.vectors), total)

    def _within_minute(self, name: str, done: int, total: int, tokens: int) -> Iterator[DocumentProgress]:
        """Count the next request's tokens against the person's per-minute limit (shared with their chat turns); when
        the minute is full, wait for the next one, saying so every second (Stop works while it waits)."""
        limit = self.app.rate_limit_tokens_per_minute or None
        if self.usage is None or limit is None:
            return
        tokens = min(tokens, limit)  # one request larger than a whole minute's allowance still goes, alone
        said = False
        while True:
            try:
                self.usage.count_request(self.oid, self.tenant, tokens, None, limit, requests=0)
                return
            except RateLimited as limited:
                if not said:
                    self.audit.event("indexing_paused", self.context, limit="tokens",
                                     resumes_at=limited.retry_at.isoformat())
                    said = True
                yield from wait_for_minute(self.usage.clock, limited.retry_at,
                                           DocumentProgress(name, done, total, "paused", until=limited.retry_at))

    def _settle(self, spent: list[dict], reservation: Reservation | None) -> None:
        """What was embedded is spent, whatever happens to the turn: recorded now, the reservation released."""
        if self.usage is None:
            return
        try:
            self.usage.record_now(self.oid, self.tenant, spent, reservation)
        except Exception as exc:  # noqa: BLE001 - the ledger is down: the audit still has every call
            log.error("could not record indexing usage: %s", type(exc).__name__)
