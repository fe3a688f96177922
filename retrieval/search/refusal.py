"""The "not covered" decision's background: what generic, unrelated questions (the probes)
score against a corpus, scaled to a question's length."""

from __future__ import annotations

import functools

import numpy as np

from retrieval.model.probes import PROBES
from retrieval.search.answer import check_question
from retrieval.text import analyze


@functools.cache
def probe_terms() -> float:
    """The mean number of distinct content terms of the PROBES."""
    return float(np.mean([len(set(analyze(check_question(q)))) for q in PROBES]))


def lexical_background(mean: float, terms: int) -> float:
    """What a question of `terms` content terms covers by chance in a corpus whose probes
    cover `mean` of theirs: the same for a question as short as the probes, less for a
    longer one, in proportion. The probes are short, and a short question's few words are
    found together in a big enough corpus by chance (in 107k news passages their mean
    coverage is 0.67, against 0.42 in 4k), while a twenty-word question's are not."""
    return mean * min(1.0, probe_terms() / max(terms, 1))
