"""Documents in a turn: read the attached files, decide for each whether it goes to the model whole or by retrieval,
index the long ones (embeddings, with progress), and pick the sources for the question.

Whole: a document goes whole when its text fits the context budget — the guard's arithmetic: window − system prompt −
memory − the new message − answer limit − a margin − what other documents already take — and is at most
APP_DOCUMENT_WHOLE_MAX_TOKENS (sending a long document with every question costs every time). Otherwise its passages
are embedded once and each question gets the APP_RETRIEVED_PASSAGES closest ones.
"""
from __future__ import annotations

import threading
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

import numpy as np
from langchain_core.messages import BaseMessage, SystemMessage

from chains.multimodal import estimate_prompt_tokens
from chains.tokens import encoding_for
from config.catalog import Deployment
from config.settings import AppSettings
from documents.embeddings import Embedder
from documents.extract import DocumentRejected, ExtractedDocument, is_document
from documents.passages import split_sections
from documents.retrieval import best_passages
from documents.sources import Source, number
from documents.worker import ReadProgress, read_in_worker
from memory.documents import AttachedDocument, Passage

MARGIN_TOKENS = 1000  # the guard's estimate is close, not exact: never plan to fill the window to the last token
SOURCE_OVERHEAD_TOKENS = 20  # the <source n= file= where=> wrapper around each passage
DEFAULT_QUESTION = "Summarise the attached document."


@dataclass(frozen=True)
class DocumentProgress:
    """Work on one attached file, for the page: `phase` reading (page `done` of `total`), waiting (for a free reading
    worker), indexing (`done` of `total` passages embedded) or paused (the per-minute token limit: it resumes at
    `until`)."""

    name: str
    done: int
    total: int
    phase: Literal["reading", "waiting", "indexing", "paused"] = "indexing"
    until: datetime | None = None


@dataclass(frozen=True)
class DocumentIndexed:
    """A new document is ready: how the model will read it and what indexing cost."""

    document: AttachedDocument


@dataclass
class DocumentPlan:
    """A turn's new documents before anything is sent: which go whole and which must be indexed, and what indexing
    them is estimated to cost (the chat model's token count of their passages: close to the embedding model's)."""

    documents: list[AttachedDocument]  # in upload order; the indexed ones still without vectors
    refused: list[DocumentRejected]  # too long to send whole, and nothing to index them with

    @property
    def to_index(self) -> list[AttachedDocument]:
        return [d for d in self.documents if d.mode == "retrieved"]

    @property
    def index_tokens(self) -> int:
        return sum(p.tokens for d in self.to_index for p in d.passages)


class DocumentNotIndexed(DocumentRejected):
    """Embedding failed (after retries): the document is left out, the chat goes on."""


@dataclass
class SourceBook:
    """The turn's sources, numbered in the order the model is given them (up front, then by any search tool), so
    the [n] in the answer always points at one passage. Tools may run in parallel threads: numbering is locked."""

    sources: list[Source] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, pairs: Sequence[tuple[AttachedDocument, object]]) -> list[Source]:
        with self._lock:
            added = number(pairs, first=len(self.sources) + 1)
            self.sources.extend(added)
        return added


def distinct(passages: list[Passage]) -> list[Passage]:
    """Each passage text once (the first place it occurs): a repeated header, footer or boilerplate block is embedded,
    stored and searched once, not on every page."""
    seen: set[str] = set()
    kept = []
    for passage in passages:
        if passage.text not in seen:
            seen.add(passage.text)
            kept.append(Passage(len(kept), passage.label, passage.text, passage.tokens))
    return kept


def _reported(work: Generator[ReadProgress, None, ExtractedDocument]) -> Generator[DocumentProgress, None,
                                                                                    ExtractedDocument]:
    """The worker's progress as the page's events; the document it read is the return value. Closing this closes
    the worker (which kills its process)."""
    try:
        while True:
            try:
                progress = next(work)
            except StopIteration as done:
                return done.value
            yield DocumentProgress(progress.name, progress.page, progress.pages,
                                   "waiting" if progress.waiting else "reading")
    finally:
        work.close()


def split_uploads(names: Sequence[str], image_types: Sequence[str]) -> tuple[list[int], list[int]]:
    """Indexes of the uploads that are images, and of all others (documents, and anything else to be refused)."""
    images = [i for i, name in enumerate(names) if name.rsplit(".", 1)[-1].lower() in image_types]
    return images, [i for i in range(len(names)) if i not in images]


class DocumentDesk:
    def __init__(self, app: AppSettings) -> None:
        self.app = app

    def read(self, uploads: Sequence[tuple[str, bytes]]) -> Generator[DocumentProgress, None,
                                                                          tuple[list[ExtractedDocument],
                                                                                list[DocumentRejected]]]:
        """Text out of each file, each read in a worker process with a deadline and a memory limit (documents/
        worker.py), reporting its pages as it goes; a bad file is named with its reason and the others go on.
        Closing this generator (Stop, the page closed) kills the worker."""
        app = self.app
        read, refused = [], []
        for name, data in uploads:
            try:
                if not is_document(name):
                    raise DocumentRejected(name, "unsupported file type; attach PDF, Word (.docx), text (.txt), "
                                                 "Markdown (.md), CSV or HTML files, or images where the deployment "
                                                 "accepts them")
                work = read_in_worker(name, data, max_bytes=app.max_document_bytes, max_pages=app.max_document_pages,
                                      max_rows=app.document_max_rows, seconds=app.document_read_seconds,
                                      memory_mb=app.document_read_memory_mb, workers=app.document_workers)
                read.append((yield from _reported(work)))
            except DocumentRejected as exc:
                refused.append(exc)
        return read, refused

    def budget(self, deployment: Deployment, system_prompt: str, memory: Sequence[BaseMessage],
               new_message: BaseMessage, max_output_tokens: int, attached: Sequence[AttachedDocument]) -> int:
        """Tokens left for documents sent whole after everything else this turn sends."""
        used = estimate_prompt_tokens([SystemMessage(system_prompt), *memory, new_message], deployment.model, deployment.image_rule)
        used += self.sources_tokens(attached)
        return deployment.context_window - used - max_output_tokens - MARGIN_TOKENS

    def sources_tokens(self, attached: Sequence[AttachedDocument]) -> int:
        """About what the conversation's documents add to each question's prompt: whole ones entirely, indexed ones
        their retrieved passages at most."""
        tokens = sum(d.tokens + SOURCE_OVERHEAD_TOKENS * d.passage_count for d in attached if d.mode == "whole")
        if any(d.mode == "retrieved" for d in attached):
            tokens += self.app.retrieved_passages * (self.app.passage_tokens + SOURCE_OVERHEAD_TOKENS)
        return tokens

    def plan(self, extracted: Sequence[ExtractedDocument], refs: Sequence[str], deployment: Deployment,
             budget: int, can_index: bool) -> DocumentPlan:
        """Whole or indexed, for each new document: whole while it fits `budget` (see `budget`) and
        APP_DOCUMENT_WHOLE_MAX_TOKENS; otherwise indexed, if `can_index` (an embeddings deployment exists)."""
        documents, refused = [], []
        for document, ref in zip(extracted, refs):
            passages = distinct(split_sections(document.sections, deployment.model, self.app.passage_tokens))
            tokens = sum(p.tokens for p in passages)
            whole_cost = tokens + SOURCE_OVERHEAD_TOKENS * len(passages)
            attached = AttachedDocument(name=document.name, kind=document.kind, ref=ref, mode="whole", tokens=tokens,
                                        pages=document.pages, passage_count=len(passages), passages=passages)
            if whole_cost <= min(budget, self.app.document_whole_max_tokens):
                budget -= whole_cost
            elif can_index:
                attached.mode = "retrieved"
            else:
                refused.append(DocumentNotIndexed(document.name, (
                    f"it is too long to send whole ({tokens:,} tokens) and no embeddings deployment is "
                    "configured to search it; ask an administrator to add one to the deployment catalog")))
                continue
            documents.append(attached)
        return DocumentPlan(documents, refused)

    def whole_sources(self, documents: Sequence[AttachedDocument], book: SourceBook) -> list[Source]:
        return book.add([(d, p) for d in documents if d.mode == "whole" for p in d.passages])

    def search(self, question: str, documents: Sequence[AttachedDocument], embedder: Embedder, book: SourceBook,
               k: int | None = None) -> list[Source]:
        """The passages of the indexed documents closest to `question`, numbered into the turn's book."""
        indexed = [d for d in documents if d.mode == "retrieved"]
        if not indexed or not question.strip():
            return []
        encoding = encoding_for(embedder.deployment.model)
        tokens = encoding.encode(question, disallowed_special=())
        if len(tokens) > embedder.deployment.max_input_tokens:  # a very long message: its start says enough
            question = encoding.decode(tokens[:embedder.deployment.max_input_tokens])
        vector, _ = embedder.embed_one(question, purpose_of="question")
        found = best_passages(np.asarray(vector, dtype=np.float32), indexed, k or self.app.retrieved_passages,
                              query=question)
        return book.add([(d, p) for d, p, _ in found])


__all__ = ["DEFAULT_QUESTION", "DocumentDesk", "DocumentIndexed", "DocumentNotIndexed", "DocumentPlan",
           "DocumentProgress", "SourceBook", "distinct", "split_uploads"]
