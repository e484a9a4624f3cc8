"""The passages that best answer a question, by cosine similarity of unit-length embedding vectors."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from memory.documents import AttachedDocument, Passage


def best_passages(question: np.ndarray, documents: Sequence[AttachedDocument], k: int
                  ) -> list[tuple[AttachedDocument, Passage, float]]:
    """The `k` passages of `documents` closest to the question vector, best first."""
    candidates = [(d, p) for d in documents for p in d.passages if p.vector is not None]
    if not candidates or k <= 0:
        return []
    matrix = np.vstack([p.vector for _, p in candidates])
    if matrix.shape[1] != question.shape[0]:  # indexed with other dimensions: that document cannot be compared
        return []
    scores = matrix @ question
    order = np.argsort(-scores, kind="stable")[:k]
    return [(candidates[i][0], candidates[i][1], float(scores[i])) for i in order]
