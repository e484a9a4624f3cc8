"""File names as people see them: a name comes from the uploader's machine and is shown to the person, in captions,
exports and cited sources, so it must not be able to disguise itself."""
from __future__ import annotations

import re
import unicodedata

# Bidirectional controls (U+202A-U+202E, U+2066-U+2069, U+200E/F, U+061C): "invoice\u202etxt.exe" reads as
# "invoiceexe.txt". Other invisible format and control characters go too.
_HIDDEN = re.compile("[\u200e\u200f\u061c\u202a-\u202e\u2066-\u2069]")
MAX_NAME = 80


def shown_name(name: str, limit: int = MAX_NAME) -> str:
    """`name` without bidi or other control/format characters, shortened in the middle to `limit` characters while
    keeping its extension whole ("a-very-long…name.pdf")."""
    cleaned = "".join(ch for ch in _HIDDEN.sub("", name or "")
                      if unicodedata.category(ch) not in ("Cc", "Cf")).strip() or "unnamed file"
    if len(cleaned) <= limit:
        return cleaned
    stem, dot, extension = cleaned.rpartition(".")
    if not dot or len(extension) > 10 or not stem:
        stem, extension = cleaned, ""
    suffix = f".{extension}" if extension else ""
    room = max(limit - len(suffix) - 1, 2)
    head, tail = stem[: (room + 1) // 2], stem[len(stem) - room // 2:] if room // 2 else ""
    return f"{head}…{tail}{suffix}"
