"""Links and images in an answer's markdown, made honest before the page renders it.

An answer can carry text a document or a tool result put there ("see [the policy](https://evil.example/…)", or an
image whose URL carries the conversation to a stranger's server the moment the page loads it). So, on the page:
- a link shows its target next to its text whenever they differ: `[the policy](https://x.example/a)` reads
  "the policy (https://x.example/a)" and stays clickable, so the target is never hidden behind words;
- an image from the web is never fetched: it becomes its description and its address, as text;
- code (fenced blocks and inline spans) is left exactly as written.
The copy button and exports keep the answer's own markdown; only what the page draws changes.
"""
from __future__ import annotations

import re

_FENCE = re.compile(r"^( {0,3})(`{3,}|~{3,})", re.MULTILINE)
_INLINE_CODE = re.compile(r"(`+)(?:.|\n)*?\1")
_IMAGE = re.compile(r"!\[([^\]\n]*)\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"\n]*\")?\s*\)")
_LINK = re.compile(r"(?<!!)\[([^\]\n]+)\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"\n]*\")?\s*\)")
_REFERENCE_IMAGE = re.compile(r"!\[([^\]\n]*)\]\[[^\]\n]*\]")


def honest_links(markdown: str) -> str:
    """`markdown` with every link's target shown and no remote image loaded; code untouched."""
    if "](" not in markdown and "![" not in markdown:
        return markdown
    return "".join(piece if code else _prose(piece) for piece, code in _pieces(markdown))


def _pieces(markdown: str):
    """(text, is_code) in order: fenced blocks and inline code spans are code."""
    position, fence = 0, None
    out = []
    for match in _FENCE.finditer(markdown):
        if fence is None:
            out.append((markdown[position:match.start()], False))
            position, fence = match.start(), match.group(2)
        elif match.group(2)[0] == fence[0] and len(match.group(2)) >= len(fence):
            end = markdown.find("\n", match.end())
            end = len(markdown) if end < 0 else end
            out.append((markdown[position:end], True))
            position, fence = end, None
    out.append((markdown[position:], fence is not None))
    for text, code in out:
        if code:
            yield text, True
            continue
        start = 0
        for span in _INLINE_CODE.finditer(text):
            yield text[start:span.start()], False
            yield span.group(0), True
            start = span.end()
        yield text[start:], False


def _prose(text: str) -> str:
    text = _IMAGE.sub(lambda m: f"{_describe(m.group(1))} (image not loaded: {_plain(m.group(2))})", text)
    text = _REFERENCE_IMAGE.sub(lambda m: _describe(m.group(1)), text)
    return _LINK.sub(_link, text)


def _link(match: re.Match) -> str:
    label, target = match.group(1), match.group(2)
    if _same(label, target):
        return match.group(0)
    return f"{match.group(0)} ({_plain(target)})"


def _same(label: str, target: str) -> bool:
    return _bare(label) == _bare(target)


def _bare(address: str) -> str:
    return address.strip().strip("<>`").removeprefix("mailto:").rstrip("/").lower()


def _describe(alt: str) -> str:
    return alt.strip() or "image"


def _plain(target: str) -> str:
    """An address as text that does not turn into a link (an inline code span)."""
    return "`" + target.replace("`", "%60") + "`"
