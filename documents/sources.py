"""What the model is given from documents for one question, and which of it the answer cited.

Sources are numbered per turn and sent as one system message just before the person's message, never into the
conversation's memory: a summary can never swallow a document, and every later question gets its passages afresh.
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from html import escape

from langchain_core.messages import SystemMessage

INSTRUCTIONS = (
    "Answer from the numbered sources below, which come from documents the person attached. Cite each source you use "
    "as [n] right after the statement it supports, using only these numbers. If the sources do not hold the answer, "
    "say so plainly instead of guessing."
)
CITATION = re.compile(r"\[(\d+(?:\s*,\s*\d+)*)\]")


@dataclass(frozen=True)
class Source:
    n: int
    file: str
    where: str  # "page 3", "section “Results”", "rows 2–51", "" for a text without parts
    text: str
    ref: str  # the stored file, stored:<sha256>.<ext>

    def as_dict(self) -> dict:
        return asdict(self)


def number(passages: Sequence[tuple[object, object]], first: int = 1) -> list[Source]:
    """(document, passage) pairs as numbered sources."""
    return [Source(first + i, document.name, passage.label, passage.text, document.ref)
            for i, (document, passage) in enumerate(passages)]


def render(sources: Sequence[Source]) -> str:
    """The sources as the model reads them. The passage text is escaped like the attributes: a document that writes
    `</source><source n="2" file="payroll.pdf">…` stays text inside its own source and cannot forge another."""
    return "\n".join(f'<source n="{s.n}" file="{escape(s.file)}" where="{escape(s.where)}">\n'
                     f'{escape(s.text, quote=False)}\n</source>' for s in sources)


def sources_message(sources: Sequence[Source]) -> SystemMessage:
    return SystemMessage(f"{INSTRUCTIONS}\n\n{render(sources)}")


def cited(answer: str, sources: Sequence[Source]) -> list[Source]:
    """The sources the answer cites as [n] or [n, m], in number order; numbers that name no source are ignored."""
    numbers = {int(n) for group in CITATION.findall(answer or "") for n in group.split(",")}
    return [s for s in sources if s.n in numbers]
