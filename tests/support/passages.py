"""Every passage of an index, in row order (what tests and benches compare builds by)."""

from __future__ import annotations

from retrieval.corpus import Passage
from retrieval.store.base import Store


def every_passage(index: Store) -> list[Passage]:
    return index.passages(list(range(len(index))))
