"""Documents: retrieval recall@5 over a 40-page PDF with known facts on known pages, citations landing on the right
page, and prompt tokens per question with retrieval ÷ sending the whole document.

Everything runs through the product's own code against the local emulators over HTTPS: extraction (pypdf), passages
(langchain-text-splitters), the Embedder (openai SDK, Entra token, the emulator's scripted embeddings: feature-hashed
bags of words), cosine retrieval, and a chat call whose scripted answer cites the source it used.
Baseline for the token figure: the same question with every passage of the document sent (what "whole" costs).
Recall is measured for the product's blend (cosine + BM25 keyword scores) and for cosine alone, to show what the
keyword scoring adds.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(ROOT / ".cache" / "tiktoken"))

from bench.result import result

TARGET_RECALL = 0.9


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=40)
    parser.add_argument("--k", type=int, default=5)
    args = parser.parse_args()

    import numpy as np
    from langchain_core.messages import HumanMessage, SystemMessage

    from auth.credentials import app_token_provider
    from callbacks.audit import AuditContext, AuditLog
    from chains.assistant import DEFAULT_SYSTEM_PROMPT, build_assistant
    from chains.model_factory import build_chat_model
    from chains.multimodal import estimate_prompt_tokens
    from config import load_settings
    from documents.embeddings import Embedder, build_client
    from documents.extract import extract_document
    from documents.passages import split_sections
    from documents.retrieval import best_passages
    from documents.sources import cited, number, sources_message
    from localdev.stack import StackConfig, app_environment, start_emulators
    from memory.documents import AttachedDocument
    from tests.document_corpus import facts_pdf

    config = StackConfig(entra_port=0, aoai_port=0, graph_port=0, data_dir=Path(tempfile.mkdtemp(prefix="bench-")))
    emulators = start_emulators(config)
    try:
        os.environ.update(app_environment(config, emulators))
        settings = load_settings(env_file=None)
        deployment = settings.catalog.get("gpt-4o")
        provider = app_token_provider(settings.entra)
        quiet = logging.getLogger("bench.documents.audit")
        quiet.propagate = False
        context = AuditContext("bench", "bench", None, "bench", "bench", "assistant@1", deployment.name, "app")
        embedder = Embedder(build_client(settings, provider), settings.catalog.embedding, audit=AuditLog(quiet),
                            context=context, batch_size=settings.app.embedding_batch_size)

        data, facts = facts_pdf(args.pages)
        extracted = extract_document("handbook.pdf", data)
        passages = split_sections(extracted.sections, deployment.model, settings.app.passage_tokens)
        for batch in embedder.batches([p.text for p in passages], purpose_of="document"):
            for offset, vector in enumerate(batch.vectors):
                passages[batch.start + offset].vector = vector
        document = AttachedDocument(name="handbook.pdf", kind="pdf", ref="stored:bench.pdf", mode="retrieved",
                                    tokens=sum(p.tokens for p in passages), pages=extracted.pages, passages=passages)
        index_tokens = sum(r["prompt_tokens"] for r in embedder.records)
        print(f"{args.pages}-page PDF: {len(passages)} passages, {document.tokens} tokens; indexing took "
              f"{len(embedder.records)} embeddings requests, {index_tokens} tokens "
              f"(${settings.catalog.embedding.cost(index_tokens):.6f})")

        def hit(found, fact) -> bool:
            return any(p.label == f"page {fact.page}" and fact.answer in p.text for _, p, *_ in found)

        blend_hits = cosine_hits = cited_right = 0
        retrieval_tokens, whole_tokens = [], []
        whole_sources = sources_message(number([(document, p) for p in passages]))
        model = build_chat_model(settings, deployment, provider)
        chain = build_assistant(model)
        for fact in facts:
            vector, _ = embedder.embed_one(fact.question, purpose_of="question")
            found = best_passages(np.asarray(vector), [document], args.k, query=fact.question)
            blend_hits += hit(found, fact)
            cosine_hits += hit(best_passages(np.asarray(vector), [document], args.k, keyword_weight=0), fact)

            sources = number([(d, p) for d, p, _ in found])
            question = HumanMessage(fact.question)
            message = sources_message(sources)
            retrieval_tokens.append(estimate_prompt_tokens([SystemMessage(DEFAULT_SYSTEM_PROMPT), message, question],
                                                           deployment.model))
            whole_tokens.append(estimate_prompt_tokens([SystemMessage(DEFAULT_SYSTEM_PROMPT), whole_sources,
                                                        question], deployment.model))
            answer = "".join(chunk.text for chunk in chain.stream({"messages": [message, question]}))
            cited_right += any(s.where == f"page {fact.page}" and fact.answer in s.text
                               for s in cited(answer, sources))
    finally:
        emulators.stop()

    n = len(facts)
    recall, cosine = blend_hits / n, cosine_hits / n
    ratio = (sum(retrieval_tokens) / n) / (sum(whole_tokens) / n)
    print(f"recall@{args.k} over {n} facts: cosine + BM25 (the product) {blend_hits}/{n} = {recall:.2f}; cosine alone "
          f"{cosine_hits}/{n} = {cosine:.2f}")
    print(f"answers citing the fact's page: {cited_right}/{n}")
    print(f"prompt tokens per question: retrieval {sum(retrieval_tokens) / n:.0f}, whole document "
          f"{sum(whole_tokens) / n:.0f} (ratio {ratio:.3f})")
    result(f"documents: retrieval recall@{args.k}, {args.pages}-page PDF, {n} facts (emulator embeddings)", recall,
           f"≥ {TARGET_RECALL}", recall >= TARGET_RECALL)
    result(f"documents: retrieval recall@{args.k}, cosine alone (no keyword scoring)", cosine, "stated", None)
    result("documents: answers whose citation is the fact's page", cited_right / n, "stated", None)
    result("documents: prompt tokens per question, retrieval ÷ whole document", ratio, "stated", None)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
