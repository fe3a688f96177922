"""What one question's ranking measured of each candidate row, kept for its deeper rounds.

When near-duplicate copies fill a question's first answers, `Retriever._answer` ranks again
with four times the candidates (200, then 800): most of the cost of those rounds is measuring
each candidate (its exact cosine, best sentence, article context), and every row of an
earlier round is a candidate again. A `RowMemo` lives for one question, so what it keeps
cannot go stale."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np


class RowMemo:
    """Per measure (a name), each row's value as first measured; the question's BM25 scores
    over every passage (`bm25`), which do not depend on the depth; and the token cosines late
    interaction measured (`tokens`: row -> question tokens x its tokens), for the quotes."""

    def __init__(self) -> None:
        self.bm25: np.ndarray | None = None
        self.tokens: dict[int, np.ndarray] = {}
        self._known: dict[str, dict[int, Any]] = {}

    def each(self, name: str, rows: np.ndarray, measure: Callable[[np.ndarray], Sequence[Any]]
             ) -> list[Any]:
        """The value of `name` for each of `rows`: `measure(rows)` (one value per row, each
        row's value its own) is called only for the rows not measured before."""
        known = self._known.setdefault(name, {})
        listed = np.asarray(rows).tolist()
        missing = [r for r in listed if r not in known]
        if missing:
            values = measure(np.array(missing, dtype=np.asarray(rows).dtype))
            known.update(zip(missing, values, strict=True))
        return [known[r] for r in listed]

    def array(self, name: str, rows: np.ndarray,
              measure: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
        """`each` for a measure giving one float32 per row."""
        return np.array(self.each(name, rows, measure), dtype=np.float32).reshape(len(rows))
