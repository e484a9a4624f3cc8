"""One chat turn, start to end, with no page: guard, summary-buffer memory, the chain's stream, the store commit and the
audit all happen here, and what happens is yielded as events (engine/events.py).

Stop is `close()` on the iterator: the model's HTTP stream is closed, the partial answer is stored marked "stopped",
and the call is still audited and costed. Collaborators (store, audit log, model factory) come in as arguments, so
tests drive the engine with fake models.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langchain_core.utils.function_calling import convert_to_openai_tool

from auth.credentials import TokenProvider
from auth.security_context import SecurityContext
from auth.signin import SignInExpired
from callbacks.audit import AuditContext, AuditHandler, AuditLog
from callbacks.steps import StepEvents
from chains.errors import Failure, classify
from chains.guard import check_context, from_azure_error
from chains.images import UPLOAD_TYPES, ImageRejected, PreparedImage, prepare_image
from chains.model_factory import build_chat_model
from chains.multimodal import ImagesNotAccepted, check_deployment_accepts, human_message, image_blocks
from chains.request_rules import lightest_effort
from chains.spec import ChainSpec
from chains.tools.graph import GraphClient
from chains.tools.registry import available, langchain_tools
from chains.tools.spec import ToolContext, ToolFailed
from chains.turn import AnswerStream, ThinkingText
from config.catalog import Deployment
from config.settings import Settings
from documents.embeddings import Embedder, EmbeddingFailed, build_client
from documents.extract import readable_size
from documents.names import shown_name
from documents.reader import DEFAULT_QUESTION, DocumentDesk, DocumentIndexed, SourceBook, split_uploads
from documents.sources import Source, cited, render, sources_message
from engine.events import Accepted, Blocked, BudgetNotice, Event, Outcome, Status, TextDelta, ThinkingDelta, UsageUpdate
from engine.indexing import Indexing, wait_for_minute
from memory.conversation import Conversation, Turn, Usage
from memory.documents import AttachedDocument
from memory.store import ConversationStore, Owner
from memory.summary import SummaryBufferMemory
from store.comparisons import Comparison
from store.usage import OverBudget, RateLimited, Reservation, UsageLedger, budget_for, to_nano, to_usd

log = logging.getLogger("chat.engine")

BUDGET_WARNING_SHARE = 0.8  # the page warns from this share of the monthly budget on
EXPIRED = ("Your sign-in has expired, so the message was not sent. It is kept: sign in again and it will be waiting "
           "for you.")


UNAVAILABLE = ("Microsoft Entra ID could not be reached to check your sign-in, so the message was not sent. It is "
               "kept: send it again in a moment.")
TURN_OUTCOMES = {"complete": "ok", "stopped": "stopped", "filtered": "filtered", "failed": "failed",
                 "cut_off": "length"}  # by answer status
# What the model remembers of an exchange that has no answer text (cut off, failed, stopped at once): the question and
# this note, so user and assistant messages keep alternating and a later retry still has the question (and images).
NO_ANSWER = "(No answer was given to this message.)"


@dataclass(frozen=True)
class Asker:
    """Who is asking and from where. `token_provider()` gives the identity Azure OpenAI is called with for this
    turn; it raises SignInExpired when only a new sign-in can help."""

    owner: Owner
    security_context: SecurityContext
    session_ref: str  # a hash of the session id: the id itself is a credential
    token_provider: Callable[[], TokenProvider]
    roles: frozenset[str] = frozenset()  # app roles: which tools may be offered
    # The person's delegated Microsoft Graph token (on-behalf-of) for agent tools; None: nobody is signed in.
    graph_token_provider: Callable[[], TokenProvider] | None = None
    timezone: str = "UTC"  # the person's, for calendars and times
    origin: str = "chat"  # chat, or evaluation for the offline experiment runner (its answers are audited as such)


@dataclass(frozen=True)
class Upload:
    name: str
    data: bytes

    def __post_init__(self) -> None:
        # The name is shown back (captions, exports, sources): no bidi tricks, no endless names (documents/names.py).
        object.__setattr__(self, "name", shown_name(self.name))


@dataclass(frozen=True)
class NewMessage:
    text: str
    uploads: Sequence[Upload] = ()
    index_approved: frozenset[str] = frozenset()  # documents the person agreed to have indexed at their estimate


@dataclass(frozen=True)
class Choices:
    """What the person picked for this turn."""

    deployment: Deployment
    chain: ChainSpec
    max_output_tokens: int
    temperature: float | None = None  # ignored where the chain fixes it or the model takes none
    identity_mode: str = "app"  # app | on_behalf_of
    image_detail: str = "auto"
    reasoning_effort: str | None = None  # where the deployment offers efforts; else its default (None: none sent)
    show_thinking: bool = True  # ask for the reasoning summary where the deployment's API streams one

    @property
    def effective_effort(self) -> str | None:
        return self.deployment.effort(self.reasoning_effort)

    @property
    def effective_temperature(self) -> float | None:
        if self.chain.temperature is not None:
            return self.chain.temperature
        return self.temperature if self.deployment.accepts_temperature else None


ModelFactory = Callable[..., object]
EmbeddingsClientFactory = Callable[[Settings, TokenProvider], object]


@dataclass
class _Documents:
    """This turn's documents: the conversation's and the new ones, the numbered sources sent up front, and the
    embedder (made once, when first needed)."""

    attached: list[AttachedDocument]
    added: list[AttachedDocument]
    book: SourceBook
    make_embedder: Callable[[], Embedder | None]
    sources: list[Source] | None = None
    notice: str | None = None
    _embedder: Embedder | None = None
    _made: bool = False

    def embedder(self) -> Embedder | None:
        if not self._made:
            self._embedder, self._made = self.make_embedder(), True
        return self._embedder


@dataclass
class Admitted:
    """A turn that passed every check (the admission phase): the person's message is in the conversation; the answer
    comes next (`TurnEngine.answer`)."""

    user: Turn
    new_message: HumanMessage
    provider: TokenProvider
    audit: AuditHandler
    tools: list  # per choice (the first is the turn's own): the tools offered, or None for a chain without tools
    up_front: list[BaseMessage]
    documents: _Documents
    reservation: Reservation | None = None  # this turn's estimated cost, held against the month's budget


@dataclass(frozen=True)
class Allowed:
    """The rate limits and the budget let the turn go; its estimated cost is held (None: no ledger)."""

    reservation: Reservation | None


@dataclass
class Settlement:
    """Where an answer settled without being stored is put (also after Stop): its outcome and the messages the model
    was sent. A comparison stores its pair from two of these, a redone answer its new version."""

    outcome: Outcome | None = None
    sent: list[BaseMessage] | None = None


class TurnEngine:
    def __init__(self, settings: Settings, store: ConversationStore, audit: AuditLog, *,
                 model_factory: ModelFactory = build_chat_model, memory: SummaryBufferMemory | None = None,
                 embeddings_client: EmbeddingsClientFactory = build_client, usage: UsageLedger | None = None) -> None:
        """`usage`: the ledger that enforces budgets and rate limits and keeps usage records; None for none."""
        self.settings, self.store, self.audit, self.model_factory = settings, store, audit, model_factory
        self.usage = usage
        self.memory = memory or SummaryBufferMemory(settings.app.memory_trigger_messages,
                                                    settings.app.memory_keep_messages)
        self.embeddings_client = embeddings_client
        self.documents = DocumentDesk(settings.app)

    # -- the turn ----------------------------------------------------------------------------------------------------
    def run(self, who: Asker, conversation: Conversation, message: NewMessage, choices: Choices) -> Iterator[Event]:
        begun = yield from self.begin(who, conversation, message, choices)
        if begun is not None:
            yield from self.answer(who, conversation, choices, begun, tools=begun.tools[0])

    def begin(self, who: Asker, conversation: Conversation, message: NewMessage, choices: Choices,
              also: Sequence[Choices] = ()) -> Iterator[Event]:
        """Everything before the answer: files read, documents indexed and searched, the sign-in checked, the guard
        (for `choices` and each of `also`, which a side-by-side comparison answers too); yields the events up to
        `Accepted` and returns a `Admitted`, or yields `Blocked` and returns None."""
        context = self.audit_context(who, conversation, choices)
        audit = AuditHandler(context, choices.deployment, sink=self.audit)
        text = message.text.strip()
        most = self.settings.app.max_files_per_message
        if len(message.uploads) > most:  # the upload route refuses more too (web/session_boundary.py)
            self.audit.event("message_not_sent", context, outcome="not_sent", reason="too_many_files",
                             files=len(message.uploads))
            yield Blocked("too_many_files", f"A message may carry at most {most} files, and {len(message.uploads)} "
                          "are attached. Send them over several messages.", text)
            return None
        image_at, others_at = split_uploads([u.name for u in message.uploads], UPLOAD_TYPES)
        too_large = self._too_large(message.uploads, image_at)
        if too_large:  # named, and the message waits: it is not sent without the file
            self.audit.event("message_not_sent", context, outcome="not_sent", reason="file_too_large",
                             files=len(too_large))
            yield Blocked("file_too_large", " ".join(too_large.values()) + " Attach a smaller file, or send the "
                          "message without it: your message and the other files are kept.", text,
                          too_large=tuple(too_large))
            return None
        images, rejected = self._prepare([message.uploads[i] for i in image_at], choices)
        extracted, refused = yield from self.documents.read([(message.uploads[i].name, message.uploads[i].data)
                                                             for i in others_at])
        if rejected:  # the reasons, never the file names or contents
            self.audit.event("images_rejected", context, reasons=[r.reason for r in rejected], accepted=len(images))
        if refused:
            self.audit.event("documents_rejected", context, reasons=[r.reason for r in refused],
                             accepted=len(extracted))
        if not text and not images and not extracted:
            reasons = "; ".join(str(r) for r in [*rejected, *refused]) or "the message is empty"
            self.audit.event("message_not_sent", context, outcome="not_sent", reason="nothing_to_send")
            yield Blocked("nothing_to_send", f"Nothing was sent: {reasons}.", text)
            return None
        try:
            alternatives = self.settings.catalog.deployments
            for each in (choices, *also):
                check_deployment_accepts(each.deployment, images, alternatives)
        except ImagesNotAccepted as exc:
            self.audit.event("message_not_sent", context, outcome="not_sent", reason="images_not_accepted")
            yield Blocked("images_not_accepted", str(exc), text)
            return None
        provider = yield from self.signed_in(who, context, text)
        if provider is None:
            return None
        draft = text
        text = text or (DEFAULT_QUESTION if extracted else "")
        new_message = human_message(text, images)
        documents = self.conversation_documents(who, conversation, context, audit, provider)
        if extracted:
            budget = self.documents.budget(choices.deployment, choices.chain.system_prompt, conversation.memory,
                                           new_message, choices.max_output_tokens, conversation.documents)
            refs = [f"stored:{d.sha256}.{d.extension}" for d in extracted]
            plan = self.documents.plan(extracted, refs, choices.deployment, budget,
                                       can_index=self.settings.catalog.embedding is not None)
            if plan.to_index:
                indexing = Indexing(self.settings.app, self.usage, self.audit, context, oid=who.owner.oid,
                                    tenant=who.owner.tenant_id, budget_nanousd=self.budget(who))
                embedder = self._embedder(who, context, audit, provider)  # its own: it settles its own usage
                refusal = indexing.over_budget(plan, embedder, draft)
                if refusal is None and indexing.needs_consent(plan, message.index_approved):
                    refusal = indexing.ask(plan, embedder, draft)
                if refusal is not None:
                    yield refusal
                    return None
                if not (yield from indexing.run(plan, embedder, audit.records, draft)):
                    return None
            for document in plan.documents:
                documents.added.append(document)
                yield DocumentIndexed(document)
            if plan.refused:
                refused += plan.refused
                self.audit.event("documents_rejected", context, reasons=[r.reason for r in plan.refused],
                                 accepted=len(documents.added))
            documents.attached += documents.added
        # A turn that has just indexed waits for its minute rather than be refused: a refusal would throw the
        # index (paid for) away.
        prepared = yield from self.prepare(who, conversation, (choices, *also), text, conversation.memory, new_message,
                                           documents, context, draft,
                                           wait=any(d.mode == "retrieved" for d in documents.added))
        if prepared is None:
            return None
        tools, up_front, allowed = prepared
        reservation = allowed.reservation
        attachments = [{"ref": self.store.files.save(i.sha256, i.extension, i.data), "name": i.name,
                        "width": i.width, "height": i.height, "detail": i.detail, "tokens": i.tokens} for i in images]
        by_ref = {f"stored:{d.sha256}.{d.extension}": d for d in extracted}
        for document in documents.added:
            read = by_ref[document.ref]
            self.store.files.save(read.sha256, read.extension, read.data)
            attachments.append({"ref": document.ref, "name": document.name, "kind": "document",
                                "summary": document.describe()})
        problems = [str(r) for r in [*rejected, *refused]]
        notice = " ".join(filter(None, ["Not sent: " + "; ".join(problems) + "." if problems else None,
                                        documents.notice]))
        user = conversation.add(Turn(role="user", content=text, attachments=attachments, notice=notice or None))
        new_message.id = user.id
        for document in documents.added:
            document.message_id = user.id
            self.audit.event("document_attached", context, message_id=user.id, kind=document.kind,
                             mode=document.mode, pages=document.pages, tokens=document.tokens,
                             passages=document.passage_count, embedding_tokens=document.embedding_tokens,
                             embedding_cost_usd=str(document.embedding_cost),
                             **({"document": document.name} if context.include_text else {}))
        yield from self.accepted(user, reservation)
        return Admitted(user, new_message, provider, audit, tools, up_front, documents, reservation)

    def prepare(self, who: Asker, conversation: Conversation, every: Sequence[Choices], question: str,
                memory: Sequence[BaseMessage], new_message: HumanMessage, documents: "_Documents",
                context: AuditContext, draft: str, wait: bool = False) -> Iterator[Event]:
        """The checks before anything is sent, for each of `every` (a comparison answers twice): the tools offered,
        the sources for `question`, the guard over `memory` + sources + `new_message`, then `admit`. Returns
        `(tools per choice, the sources message(s), Allowed)`, or yields `Blocked` and returns None."""
        tools = [self.tools_for(who, c.deployment, documents) if c.chain.uses_tools else None for c in every]
        sources = self.sources_for(conversation, question, documents, search_up_front=any(t is None for t in tools))
        up_front = [sources_message(sources)] if sources else []
        checks = []
        for each, offered in zip(every, tools):
            check = yield from self.fits(who, conversation, each, [*memory, *up_front, new_message], offered, draft)
            if check is None:
                return None
            checks.append(check)
        allowed = yield from self.admit(who, every, checks, context, draft, wait=wait)
        if allowed is None:
            return None
        return tools, up_front, allowed

    def accepted(self, user: Turn, reservation: Reservation | None) -> Iterator[Event]:
        """Yields `Accepted`; a Stop right then (nothing sent yet) releases the turn's budget reservation."""
        try:
            yield Accepted(user)
        except GeneratorExit:
            if reservation is not None:
                self.usage.release(reservation)
            raise

    def conversation_documents(self, who: Asker, conversation: Conversation, context: AuditContext,
                               audit: AuditHandler, provider: TokenProvider) -> "_Documents":
        """The conversation's documents for one turn, with an embedder made (and audited) only if a search needs it."""
        return _Documents(list(conversation.documents), [], SourceBook(),
                          lambda: self._embedder(who, context, audit, provider))

    # -- the checks before anything is sent ----------------------------------------------------------------------------
    def signed_in(self, who: Asker, context: AuditContext, draft: str) -> Iterator[Event]:
        """The token provider for this turn; or yields `Blocked` (sign-in expired or not checkable) and returns None."""
        try:
            return who.token_provider()
        except SignInExpired:
            self.audit.event("sign_in_expired", context, outcome="not_sent", draft_kept=True)
            yield Blocked("sign_in_expired", EXPIRED, draft)
        except Exception as exc:  # noqa: BLE001 - Entra ID unreachable while checking the sign-in: nothing was sent
            log.warning("could not check the sign-in: %s", type(exc).__name__)
            self.audit.event("message_not_sent", context, outcome="not_sent", reason="sign_in_unavailable",
                             error=type(exc).__name__)
            yield Blocked("sign_in_unavailable", UNAVAILABLE, draft)
        return None

    def fits(self, who: Asker, conversation: Conversation, choices: Choices, messages: list[BaseMessage],
             tools: list | None, draft: str) -> Iterator[Event]:
        """The guard's check of what would be sent; or yields `Blocked` (too long, or more images in one request than
        the deployment takes: Azure counts the remembered messages' images too) and returns None."""
        pictures = sum(len(image_blocks(m)) for m in messages)
        if pictures > choices.deployment.max_images:
            self.audit.event("message_not_sent", self.audit_context(who, conversation, choices), outcome="not_sent",
                             reason="too_many_images", images=pictures)
            yield Blocked("too_many_images", f"{choices.deployment.display_name} accepts at most "
                          f"{choices.deployment.max_images} images per request, and this message with the conversation's "
                          f"remembered messages holds {pictures}. Start a new conversation, or summarise this one "
                          "(summaries keep no images), and send again.", draft)
            return None
        check = check_context(choices.chain.system_prompt, messages, choices.deployment, choices.max_output_tokens,
                              [convert_to_openai_tool(t) for t in tools or ()])
        if check.fits:
            return check
        self.audit.event("context_guard", self.audit_context(who, conversation, choices), outcome="not_sent",
                         prompt_tokens=check.prompt_tokens, over_by=check.over_by, context_window=check.context_window)
        yield Blocked("context_too_long", check.message(choices.deployment.name), draft, check)
        return None

    def admit(self, who: Asker, every: Sequence[Choices], checks: list, context: AuditContext,
              draft: str, wait: bool = False) -> Iterator[Event]:
        """Rate limits and budget: returns `Allowed` and yields the budget warning if any; or yields `Blocked` and
        returns None. `wait`: at the per-minute token limit, wait (up to two minutes, saying so) instead."""
        waits = 2 if wait else 0
        while True:
            try:
                reservation, notice = self._allow_spend(who, every, checks, context)
                break
            except RateLimited as refusal:
                if not waits or refusal.what != "tokens":
                    yield self._refused(refusal, context, draft)
                    return None
                waits -= 1
                yield from wait_for_minute(self.usage.clock, refusal.retry_at, Status(
                    "waiting", f"Waiting for your per-minute token limit: the answer starts at "
                    f"{refusal.retry_at:%H:%M:%S} UTC…"))
            except OverBudget as refusal:
                yield self._refused(refusal, context, draft)
                return None
        if notice:
            yield notice
        return Allowed(reservation)

    # -- budgets and rate limits -------------------------------------------------------------------------------------
    def budget(self, who: Asker) -> int | None:
        """This person's monthly budget in nano-dollars (None: no limit)."""
        app = self.settings.app
        override = self.usage.override(who.owner.oid, who.owner.tenant_id) if self.usage else None
        return budget_for(app.monthly_budget_usd, app.role_budgets, who.roles, override)

    def _allow_spend(self, who: Asker, every: Sequence[Choices], checks: list,
                     context: AuditContext) -> tuple[Reservation | None, BudgetNotice | None]:
        """Before anything is sent: the per-minute limits, then this turn's estimated cost (the guard's prompt
        estimate and the answer limit at the deployment's prices, times the chain's model calls, for every side)
        held against what is left of the month's budget."""
        if self.usage is None:
            return None, None
        app, owner = self.settings.app, who.owner
        tokens = sum((c.prompt_tokens + each.max_output_tokens) * each.chain.model_calls_per_turn
                     for each, c in zip(every, checks))
        estimate = sum(to_nano(each.deployment.cost(c.prompt_tokens, each.max_output_tokens))
                       * each.chain.model_calls_per_turn for each, c in zip(every, checks))
        self.usage.count_request(owner.oid, owner.tenant_id, tokens, app.rate_limit_requests_per_minute or None,
                                 app.rate_limit_tokens_per_minute or None)
        budget = self.budget(who)
        reservation = self.usage.reserve(owner.oid, owner.tenant_id, estimate, budget)
        state = self.usage.state(owner.oid, owner.tenant_id, budget)
        notice = None
        if budget and state.used_share >= BUDGET_WARNING_SHARE:
            notice = BudgetNotice(f"You have used {min(state.used_share, 1):.0%} of your monthly budget "
                                  f"(${to_usd(state.spent_nanousd + state.reserved_nanousd):.2f} of "
                                  f"${to_usd(budget):.2f}, this message included). It resets on "
                                  f"{state.resets_at:%d %B %Y} (UTC).")
            self.audit.event("budget_warning", context, used_share=round(state.used_share, 4))
        return reservation, notice

    def _refused(self, refusal: RateLimited | OverBudget, context: AuditContext, draft: str) -> Blocked:
        if isinstance(refusal, RateLimited):
            limit = (f"{self.settings.app.rate_limit_requests_per_minute} messages" if refusal.what == "requests"
                     else f"{self.settings.app.rate_limit_tokens_per_minute:,} tokens")
            self.audit.event("rate_limited", context, outcome="not_sent", limit=refusal.what,
                             retry_at=refusal.retry_at.isoformat())
            return Blocked("rate_limited", f"You have reached the limit of {limit} per minute, so this message was not "
                           f"sent. Try again at {refusal.retry_at:%H:%M:%S} UTC.", draft)
        state, estimate = refusal.state, refusal.estimate_nanousd
        self.audit.event("budget_refused", context, outcome="not_sent", estimate_usd=str(to_usd(estimate)),
                         left_usd=str(to_usd(max(state.left_nanousd or 0, 0))),
                         budget_usd=str(to_usd(state.budget_nanousd or 0)))
        return Blocked("over_budget", f"This message was not sent: its estimated cost (${to_usd(estimate):.4f}) is "
                       f"more than what is left of your monthly budget (${to_usd(max(state.left_nanousd or 0, 0)):.4f} "
                       f"of ${to_usd(state.budget_nanousd or 0):.2f}). The budget resets on "
                       f"{state.resets_at:%d %B %Y} (UTC).", draft)

    def sources_for(self, conversation: Conversation, question: str, documents: _Documents,
                    search_up_front: bool) -> list[Source]:
        """The sources sent with the question: every passage of whole documents, and (unless an agent searches for
        itself) the passages of indexed ones closest to the question. A failed search is said, not fatal."""
        if not documents.attached:
            return []
        self.store.load_passages(conversation, conversation.documents)
        self.documents.whole_sources(documents.attached, documents.book)
        if search_up_front and any(d.mode == "retrieved" for d in documents.attached):
            embedder = documents.embedder()
            try:
                if embedder is None:
                    raise EmbeddingFailed(Failure("not_configured", "no embeddings deployment is configured."))
                self.documents.search(question, documents.attached, embedder, documents.book)
            except EmbeddingFailed as exc:
                documents.notice = ("The attached documents could not be searched for this question, so the answer "
                                    f"does not use them: {exc.failure.message}")
        return list(documents.book.sources)

    def _too_large(self, uploads: Sequence[Upload], image_at: Sequence[int]) -> dict[str, str]:
        """A sentence for each upload over its size limit (images and documents have their own), by file name."""
        app, sentences = self.settings.app, {}
        for index, upload in enumerate(uploads):
            limit = app.max_image_bytes if index in image_at else app.max_document_bytes
            if len(upload.data) > limit:
                sentences[upload.name] = (f"{upload.name} is {readable_size(len(upload.data), like=limit)}; the "
                                          f"limit is {readable_size(limit)}.")
        return sentences

    def _embedder(self, who: Asker, context: AuditContext, audit: AuditHandler,
                  provider: TokenProvider) -> Embedder | None:
        deployment = self.settings.catalog.embedding
        if deployment is None:
            return None
        return Embedder(self.embeddings_client(self.settings, provider), deployment, audit=self.audit,
                        context=context, security_context=who.security_context.as_payload(), records=audit.records,
                        batch_size=self.settings.app.embedding_batch_size)

    def answer(self, who: Asker, conversation: Conversation, choices: Choices, admitted: Admitted, *,
               tools: list | None, audit: AuditHandler | None = None, sent: list[BaseMessage] | None = None,
               settle: Settlement | None = None, answer_id: str | None = None) -> Iterator[Event]:
        """The answer phase, streamed, for a turn `admitted` answers with `choices` and `tools` (`audit`: its own
        handler, default the admitted turn's). `sent`: the memory already prepared (a comparison summarises once for
        both sides). The commit policy: without `settle` the turn is stored with the memory that follows it; with it,
        the answer settles without being stored or touching the memory, into `settle` (the caller stores it).
        `answer_id`: the id of the answer this one replaces (a regenerated answer)."""
        user, new_message, provider = admitted.user, admitted.new_message, admitted.provider
        up_front, documents, reservation = admitted.up_front, admitted.documents, admitted.reservation
        audit = audit or admitted.audit
        commit = settle is None
        deployment, spec = choices.deployment, choices.chain
        steps = StepEvents()
        payload = who.security_context.as_payload()
        model = self.model_factory(self.settings, deployment, provider, user_security_context=payload,
                                   temperature=None if spec.temperature is not None else choices.effective_temperature,
                                   max_output_tokens=choices.max_output_tokens,
                                   reasoning_effort=choices.effective_effort, thinking=choices.show_thinking)
        summarizer = self.summarizer(who, choices, provider, audit, steps)
        config = {"callbacks": [audit, steps], "metadata": {"conversation_id": conversation.id, "chain": spec.label},
                  "run_name": spec.name}
        runnable = spec.build(model, tools or []) if spec.uses_tools else spec.build(model)
        answer = Turn(role="assistant", content="", deployment=deployment.name, chain=spec.label,
                      **({"id": answer_id} if answer_id else {}))
        if commit:
            conversation.add(answer)
        state = _TurnState(sent=sent, reservation=reservation)
        reported = 0
        try:
            if state.sent is None and len(conversation.memory) + 1 >= self.memory.trigger_messages:
                yield Status("summarising", "Summarising earlier messages…")
            try:
                if state.sent is None:
                    state.sent = self.memory.prepare(conversation.memory, new_message, summarizer)
            except Exception as exc:  # noqa: BLE001 - the summary call failed: nothing else was sent
                state.summary_failure = classify(exc)
            yield from steps.drain()
            if state.summary_failure is None:
                # The sources go just before the person's message, for this call only: memory never holds them.
                sent = [*state.sent[:-1], *up_front, state.sent[-1]]
                state.stream = AnswerStream(runnable, {"messages": sent}, config)
                # Chains with steps inside the answer (tools, drafts) stream from a worker thread so those steps show
                # while they run; a one-call chain reads its stream directly (no thread hop per token).
                pieces = state.stream.text_chunks()
                if spec.uses_tools or spec.model_calls_per_turn > 1:
                    state.pump = _Pump(state.stream)
                    pieces = state.pump.pieces()
                for piece in pieces:
                    yield from steps.drain()
                    if len(audit.records) != reported:
                        reported = len(audit.records)
                        yield UsageUpdate(usage_of(audit.records))
                    if isinstance(piece, ThinkingText):
                        state.thinking_started = state.thinking_started or time.monotonic()
                        yield ThinkingDelta(piece.text)
                    elif piece:
                        if state.thinking_started and not state.thinking_ended:
                            state.thinking_ended = time.monotonic()
                        yield TextDelta(piece)
                # The answer has ended: report its step and usage before the commit, so the page shows it at once.
                yield from steps.drain()
                if len(audit.records) != reported:
                    reported = len(audit.records)
                    yield UsageUpdate(usage_of(audit.records))
        finally:
            # Also on close() (Stop) and on errors in the consumer: end the model call, keep what came, store the turn.
            if state.pump is not None:
                state.pump.close()
            answer.steps = thinking_step(state) + steps.finished()
            answer.sources = [s.as_dict() for s in cited(answer.content if state.stream is None
                                                         else state.stream.text, documents.book.sources)]
            outcome = self._finish(who, conversation, user, answer, choices, audit, state, documents.added, commit)
            if settle is not None:
                settle.outcome, settle.sent = outcome, state.sent
        yield from steps.drain()
        if audit.records and len(audit.records) != reported:
            yield UsageUpdate(usage_of(audit.records))
        yield outcome

    def _finish(self, who: Asker, conversation: Conversation, user: Turn, answer: Turn, choices: Choices,
                audit: AuditHandler, state: "_TurnState", documents: list[AttachedDocument],
                commit: bool = True) -> Outcome:
        """Decide how the turn ended and commit it in one transaction. No yields here: it runs during close()."""
        failure, keep_draft = state.summary_failure, None
        if failure is not None:
            answer.status, answer.notice = "failed", failure.message
        elif state.stream is None:  # stopped before the answer began
            answer.status, answer.notice = "stopped", "Stopped before the answer began."
        else:
            if state.pump is None or state.pump.done:
                state.stream.close()
            result = state.stream.outcome()
            answer.content, answer.status, failure = result.text, result.status, result.failure
            if result.status == "complete" and result.finish_reason == "length":
                answer.status, answer.notice = "cut_off", cut_off_notice(audit.records, choices.max_output_tokens,
                                                                         bool(answer.content))
            if failure:
                answer.notice = failure.message
                if failure.kind == "context_too_long":  # the same words as the guard's, from Azure's numbers
                    check = from_azure_error(str(state.stream.error), choices.deployment, choices.max_output_tokens)
                    answer.notice = check.message(choices.deployment.name) if check else answer.notice
                    keep_draft = user.content
                if failure.kind == "prompt_filtered":
                    user.excluded = True  # never resend a blocked message
            elif result.status == "stopped":
                answer.notice = "Stopped: the answer above is partial."
        answer.usage = usage_of(audit.records)
        if failure:
            log.warning("chat turn failed: %s", failure.kind)
        if not commit:  # the caller stores it (a comparison's pair, a redone answer's version)
            self._turn_ended(audit, answer, failure, saved=None)
            return Outcome(user, answer, False, failure, keep_draft)
        if user.excluded or state.sent is None:
            pass  # the model's memory stays as it was: a blocked message, or nothing reached the model
        else:
            conversation.memory = [*state.sent, remembered_answer(answer)]
        saved = self.commit(who.owner, conversation, user, answer, choices, documents,
                             spend=(audit.records, state.reservation))
        conversation.documents += documents  # attached from now on, also when storing failed (this page keeps them)
        self._turn_ended(audit, answer, failure, saved=saved)
        return Outcome(user, answer, saved, failure, keep_draft)

    def _turn_ended(self, audit: AuditHandler, answer: Turn, failure: Failure | None, *, saved: bool | None) -> None:
        """One record per answer as the person got it (a turn may make several model calls, or none): how it ended,
        the failure's kind, whether it was stored (None: its caller stores it). The metrics count turns from it."""
        self.audit.event("turn_ended", audit.context, outcome=TURN_OUTCOMES.get(answer.status, answer.status),
                         failure=failure.kind if failure else None, message_id=answer.id, saved=saved)

    def commit(self, owner: Owner, conversation: Conversation, user: Turn, answer: Turn, choices: Choices,
                documents: list[AttachedDocument], comparison: Comparison | None = None,
                spend: tuple[list[dict], Reservation | None] = ((), None)) -> bool:
        """One transaction per finished turn, its usage records and budget included. If storing fails the turn is
        still shown, and says it is not saved; its usage is still recorded."""
        records, reservation = spend
        usage = (self.usage, records, reservation) if self.usage else None
        try:
            conversation.settings.update(deployment=choices.deployment.name, chain=choices.chain.name,
                                         max_output_tokens=choices.max_output_tokens,
                                         temperature=choices.temperature,
                                         reasoning_effort=choices.effective_effort,
                                         show_thinking=choices.show_thinking)
            self.store.commit_turn(owner, conversation, user, answer, documents, comparison, usage=usage)
            return True
        except Exception as exc:  # noqa: BLE001 - said to the person, logged without content
            log.error("could not store turn of conversation %s: %s", conversation.id, type(exc).__name__)
            self.not_saved(owner, answer, "This exchange could not be saved.", records, reservation)
            return False

    def not_saved(self, owner: Owner, answer: Turn, notice: str, records: list[dict],
                  reservation: Reservation | None) -> None:
        """Storing failed: the answer says so, and its calls still count against the budget."""
        answer.notice = (answer.notice + " " if answer.notice else "") + notice
        self._record_spend(owner, records, reservation)

    def _record_spend(self, owner: Owner, records: list[dict], reservation: Reservation | None = None) -> None:
        """Usage of calls whose turn was not stored: still counted against the budget."""
        if self.usage is None:
            return
        try:
            self.usage.record_now(owner.oid, owner.tenant_id, records, reservation)
        except Exception as exc:  # noqa: BLE001 - the audit log has the calls; the ledger missed them
            log.error("could not record usage: %s", type(exc).__name__)

    # -- other actions on a conversation -----------------------------------------------------------------------------
    def summarise_now(self, who: Asker, conversation: Conversation, choices: Choices) -> Failure | None:
        """Fold everything but the last message into the summary now (one audited call) and store the new memory;
        the guard offers this when a message does not fit."""
        if len(conversation.memory) < 2:
            return None
        try:
            provider = who.token_provider()
        except SignInExpired:
            return Failure("auth_failed", EXPIRED.replace(", so the message was not sent. It is kept:", ":"))
        audit = AuditHandler(self.audit_context(who, conversation, choices), choices.deployment, sink=self.audit)
        summarizer = self.summarizer(who, choices, provider, audit)
        *older, last = conversation.memory
        try:
            conversation.memory = SummaryBufferMemory(trigger_messages=2, keep_messages=1).prepare(older, last,
                                                                                                  summarizer)
        except Exception as exc:  # noqa: BLE001 - the memory stays as it was
            return classify(exc)
        finally:
            self._record_spend(who.owner, audit.records)
        if conversation.persisted:
            self.store.save_memory(who.owner, conversation)
        return None

    def record_feedback(self, who: Asker, conversation: Conversation, turn: Turn, score: int, choices: Choices) -> None:
        """Thumbs on an answer: kept with the message, audited with the chain that wrote it (a changed vote moves
        the chain statistics rather than counting twice)."""
        previous, turn.feedback = turn.feedback, score
        if conversation.persisted:
            self.store.set_feedback(who.owner, conversation.id, turn.id, score)
        context = self.audit_context(who, conversation, choices)
        deployment = turn.deployment or context.deployment
        self.audit.event("feedback", replace(context, chain=turn.chain or context.chain, deployment=deployment),
                         message_id=turn.id, score=score, previous_score=previous)

    def summarizer(self, who: Asker, choices: Choices, provider: TokenProvider, audit: AuditHandler,
                   *more_callbacks) -> object:
        """The model that writes summaries: the same identity, security context and audit as the turn, never streamed
        to the page; on APP_SUMMARY_DEPLOYMENT when set (a cheaper one), else the turn's deployment, at its lightest
        reasoning effort and temperature 0 where the deployment takes them (chains/request_rules.py drops the rest).
        Its calls are costed at its own deployment's prices, in the turn's records."""
        name = self.settings.app.summary_deployment
        deployment = self.settings.catalog.get(name) if name else choices.deployment
        handler = audit
        if deployment.name != choices.deployment.name:
            handler = AuditHandler(replace(audit.context, deployment=deployment.name), deployment, sink=self.audit)
            handler.records = audit.records  # one turn, one list of records: the totals include the summary
        return self.model_factory(self.settings, deployment, provider, temperature=0,
                                  reasoning_effort=lightest_effort(deployment), callbacks=[handler, *more_callbacks],
                                  user_security_context=who.security_context.as_payload())

    def tools_for(self, who: Asker, deployment: Deployment, documents: _Documents | None = None) -> list:
        """The tools this person may use on this deployment, acting with their own Graph token where needed, and a
        search over the conversation's indexed documents when it has any."""
        searchable = documents is not None and any(d.mode == "retrieved" for d in documents.attached)
        specs = available(deployment, who.roles, person=who.graph_token_provider is not None, documents=searchable)
        graph = None
        if any(spec.acts_as_person for spec in specs):
            try:  # resolved here, in the caller's thread: tools may run in worker threads
                graph = GraphClient(self.settings.graph.endpoint, who.graph_token_provider(),
                                    timeout=self.settings.graph.timeout_seconds,
                                    max_retries=self.settings.graph.max_retries)
            except Exception as exc:  # noqa: BLE001 - no delegated token now: offer only tools that need none
                log.warning("Graph tools not offered: %s", type(exc).__name__)
                specs = [spec for spec in specs if not spec.acts_as_person]
        search = self._document_search(documents) if searchable else None
        return langchain_tools(specs, ToolContext(graph, who.timezone, search_documents=search))

    def _document_search(self, documents: _Documents) -> Callable[[str], str]:
        def search(query: str) -> str:
            embedder = documents.embedder()
            if embedder is None:
                raise ToolFailed("not_configured", "No embeddings deployment is configured to search documents.")
            try:
                found = self.documents.search(query, documents.attached, embedder, documents.book)
            except EmbeddingFailed as exc:
                raise ToolFailed(exc.failure.kind, f"The documents could not be searched: {exc.failure.message}")
            if not found:
                return "No passage of the attached documents matches that search."
            return f"{render(found)}\nCite the passages you use as [n]."
        return search

    def audit_context(self, who: Asker, conversation: Conversation, choices: Choices) -> AuditContext:
        return AuditContext(
            user_oid=who.owner.oid, tenant_id=who.owner.tenant_id, source_ip=who.security_context.source_ip,
            session=who.session_ref, conversation_id=conversation.id, chain=choices.chain.label,
            deployment=choices.deployment.name, identity_mode=choices.identity_mode,
            include_text=self.settings.app.audit_include_text, max_output_tokens=choices.max_output_tokens,
            temperature=choices.effective_temperature, origin=who.origin,
        )

    def _prepare(self, uploads: Sequence[Upload], choices: Choices) -> tuple[list[PreparedImage], list[ImageRejected]]:
        """Each upload checked and scaled like Azure does; bad ones are named with their reason, the rest go on."""
        images, rejected = [], []
        for upload in uploads:
            try:
                images.append(prepare_image(upload.name, upload.data, choices.image_detail,
                                            self.settings.app.max_image_bytes, rule=choices.deployment.image_rule))
            except ImageRejected as exc:
                rejected.append(exc)
        return images, rejected


class _Pump:
    """Runs the chain's stream in a worker thread and hands its text over through a queue, waking the engine every
    `TICK` seconds meanwhile: step events (a tool call starting, a draft ending) then reach the page while they
    happen, not only when the next piece of text arrives. Stop is a flag the worker checks after every chunk; it then
    closes the model's stream itself (a generator can only be closed by the thread running it)."""

    TICK = 0.05
    DONE = object()

    def __init__(self, stream: AnswerStream) -> None:
        # One piece in the queue at most: the worker stays at most a chunk ahead of what the page has shown, so a
        # Stop keeps about what the person saw.
        self.stream, self._queue, self._stop = stream, queue.Queue(maxsize=1), threading.Event()
        self._thread = threading.Thread(target=self._run, name="chat-turn-stream", daemon=True)

    def _run(self) -> None:
        try:
            for piece in self.stream.text_chunks():
                self._queue.put(piece)
                if self._stop.is_set():
                    self.stream.stopped = True
                    self.stream.close()
                    break
        finally:
            self._queue.put(self.DONE)

    def pieces(self) -> Iterator[str | None]:
        """Text as it arrives, and None on every tick without text."""
        self._thread.start()
        while True:
            try:
                item = self._queue.get(timeout=self.TICK)
            except queue.Empty:
                yield None
                continue
            if item is self.DONE:
                return
            yield item

    def close(self, timeout: float = 120.0) -> None:
        """Stop (if still streaming) and wait for the worker: the model stream ends at its next chunk."""
        self._stop.set()
        deadline = time.monotonic() + timeout
        while self._thread.is_alive() and time.monotonic() < deadline:
            try:  # unblock a worker waiting to hand over a piece nobody will read now
                self._queue.get_nowait()
            except queue.Empty:
                pass
            self._thread.join(self.TICK)

    @property
    def done(self) -> bool:
        return not self._thread.is_alive()


@dataclass
class _TurnState:
    thinking_started: float | None = None  # when the reasoning summary began, and when the answer's text did
    thinking_ended: float | None = None
    sent: list[BaseMessage] | None = None
    reservation: Reservation | None = None
    stream: AnswerStream | None = None
    pump: _Pump | None = None
    summary_failure: Failure | None = None


def thinking_step(state: "_TurnState") -> list[dict]:
    """The reasoning summary as the answer's first step (stored with it, shown collapsed when the conversation is
    reopened, in exports); never part of the answer's text or of the memory."""
    thinking = state.stream.thinking if state.stream is not None else ""
    if not thinking:
        return []
    ended = state.thinking_ended or time.monotonic()
    return [{"kind": "thinking", "name": "Thinking", "input": None, "output": thinking,
             "duration_ms": round((ended - state.thinking_started) * 1000) if state.thinking_started else None}]


def remembered_answer(answer: Turn) -> AIMessage:
    """What the model remembers of an answer: its text, or a short note when it has none."""
    return AIMessage(answer.content or NO_ANSWER, id=answer.id)


def cut_off_notice(records: list[dict], limit: int, has_text: bool) -> str:
    """What the person reads when the answer reached its limit: how much of it was hidden reasoning, and what helps."""
    answers = [r for r in records if r.get("event") == "model_call" and r.get("purpose") in ("answer", "evaluation")]
    last = answers[-1] if answers else {}
    reasoning = int(last.get("reasoning_tokens") or 0)
    spent = f"{int(last.get('completion_tokens') or limit):,} tokens"
    if reasoning:
        spent += f", {reasoning:,} of them reasoning"
    if has_text:
        return (f"The answer reached its limit of {limit:,} tokens ({spent}) and is incomplete. Continue it, or retry "
                "with a higher limit.")
    return (f"No answer: the model used its whole limit of {limit:,} tokens ({spent}) before writing any text. "
            "Retry with a higher limit, or choose a lower reasoning effort.")


def usage_of(records: list[dict]) -> Usage | None:
    """A turn's usage, summed over every model call it made (drafts and summaries included), from its audit records:
    the page and the audit log cannot disagree."""
    return Usage.total(Usage.of_call(r) for r in records if r.get("event") == "model_call")