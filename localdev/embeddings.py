"""Vectors for the Azure OpenAI emulator's embeddings endpoint, and the word tokenisation the scripted engine shares.

The scripted vectors are a deterministic feature-hashing bag of words: every content word (lower-cased letters and
digits, stop words dropped, plurals made singular) is hashed with blake2b to one index of the vector and a sign, the
counts are summed and the vector scaled to unit length. Texts that share words are close (cosine), unrelated texts
near 0, and no model is needed; `dimensions` is the vector length, as text-embedding-3 models shorten on request.
An engine with a real model (the llama.cpp engine) fits its own vectors to the requested length with `fit_dimensions`.
"""
from __future__ import annotations

import array
import base64
import hashlib
import math
import re
import sys
from collections.abc import Sequence

# Vector length each model returns when no `dimensions` is asked for; a model not listed here returns the catalog's.
NATIVE_DIMENSIONS = {"text-embedding-3-small": 1536, "text-embedding-3-large": 3072, "text-embedding-ada-002": 1536}
# Models with one fixed vector length: a request with `dimensions` is refused, as Azure does.
FIXED_DIMENSIONS = ("text-embedding-ada-002",)
WORD = re.compile(r"[^\W_]+")
STOP_WORDS = frozenset(
    "a an and are as at be been but by can could did do does for from had has have how i if in into is it its me my "
    "no not of on or our so than that the their them then there these they this those to us was we were what when "
    "where which who whom why will with would you your".split())
_HASH_PERSON = b"aoai-emb"  # a fixed blake2b personalisation: the same word lands on the same index in every run


def native_dimensions(model: str, fallback: int) -> int:
    """The vector length `model` returns by default (`fallback`, the catalog's, for a model this table does not know)."""
    return NATIVE_DIMENSIONS.get(model, fallback)


def accepts_dimensions(model: str) -> bool:
    """Whether the model shortens vectors on request (text-embedding-3 does, ada-002 does not)."""
    return model not in FIXED_DIMENSIONS


def content_words(text: str) -> list[str]:
    """The text's words as the hashing vectors (and the scripted answers from sources) see them: lower-cased runs of
    letters and digits, stop words dropped, plurals made singular so "reports" meets "report"."""
    words = []
    for word in WORD.findall(text.lower()):
        if word in STOP_WORDS:
            continue
        words.append(_singular(word))
    return words


def _singular(word: str) -> str:
    """A light plural strip: policies -> policy, classes -> class, reports -> report (status, analysis stay)."""
    if len(word) <= 3 or not word.endswith("s") or word.endswith(("ss", "us", "is")):
        return word
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith(("sses", "xes", "ches", "shes", "zes")):
        return word[:-2]
    return word[:-1]


def hashed_vector(text: str, dimensions: int) -> list[float]:
    """The unit feature-hashing vector of `text`, `dimensions` long. A text without content words gets a fixed unit
    vector (the first axis), so every input still has a valid embedding."""
    vector = [0.0] * dimensions
    for word in content_words(text):
        digest = int.from_bytes(hashlib.blake2b(word.encode("utf-8"), digest_size=8, person=_HASH_PERSON).digest(), "big")
        vector[digest % dimensions] += 1.0 if digest >> 63 else -1.0
    norm = math.sqrt(sum(value * value for value in vector))
    if norm == 0.0:  # no words, or (rarely) words that cancel out on one index
        vector[0] = 1.0
        return vector
    return [value / norm for value in vector]


def hashed_vectors(texts: Sequence[str], dimensions: int) -> list[list[float]]:
    """`hashed_vector` of each text: the scripted engine's embeddings."""
    return [hashed_vector(text, dimensions) for text in texts]


def fit_dimensions(vector: Sequence[float], dimensions: int) -> list[float]:
    """A model's vector made `dimensions` long: zero padding (cosine similarities stay what they were) or truncation,
    then scaled to unit length again."""
    fitted = [float(value) for value in vector[:dimensions]] + [0.0] * max(0, dimensions - len(vector))
    norm = math.sqrt(sum(value * value for value in fitted))
    if norm == 0.0:
        fitted[0] = 1.0
        return fitted
    return [value / norm for value in fitted]


def as_float32(vector: Sequence[float]) -> array.array:
    """The vector as float32, what the service computes in: the "float" and "base64" formats then hold the same numbers."""
    return array.array("f", vector)


def to_base64(vector: array.array) -> str:
    """The `encoding_format: "base64"` form: the little-endian float32 bytes, base64-encoded (as OpenAI sends them)."""
    if sys.byteorder == "big":
        vector = array.array("f", vector)
        vector.byteswap()
    return base64.b64encode(vector.tobytes()).decode("ascii")
