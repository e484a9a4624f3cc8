"""A document's sections cut into passages small enough to cite and to embed, never across a page or section, so
every passage keeps the label it is cited by."""
from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

from langchain_text_splitters import RecursiveCharacterTextSplitter

from chains.tokens import count_text, encoding_for
from memory.documents import Passage

OVERLAP_SHARE = 0.15  # a fact cut in two by a passage boundary is still whole in one of them


@lru_cache(maxsize=16)
def _splitter(encoding: str, passage_tokens: int) -> RecursiveCharacterTextSplitter:
    return RecursiveCharacterTextSplitter.from_tiktoken_encoder(
        encoding_name=encoding, chunk_size=passage_tokens, chunk_overlap=int(passage_tokens * OVERLAP_SHARE))


def split_sections(sections: Sequence, model: str, passage_tokens: int = 300) -> list[Passage]:
    """`sections`: objects with `label` and `text` (documents/extract.py). Tokens are counted for `model`, the chat
    model the passages are sent to."""
    splitter = _splitter(encoding_for(model).name, passage_tokens)
    passages: list[Passage] = []
    for section in sections:
        for piece in splitter.split_text(section.text):
            piece = piece.strip()
            if piece:
                passages.append(Passage(len(passages), section.label, piece, count_text(piece, model)))
    return passages
