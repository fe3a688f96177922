"""Evaluation data: SQuAD-format files as articles (one passage per paragraph) + questions."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from retrieval.corpus import Article
from retrieval.errors import CorpusError


@dataclass(frozen=True)
class EvalQuestion:
    """A question, the passage id(s) that answer it, and the gold answer strings."""

    question: str
    gold_ids: frozenset[str]
    answers: tuple[str, ...]


def load_squad(path: str | Path) -> tuple[list[Article], list[EvalQuestion]]:
    """Read a SQuAD v1.1 JSON file: each title is an article, each context one passage."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))["data"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CorpusError(f"{path} is not a readable SQuAD JSON file ({exc}).") from None
    articles: list[Article] = []
    questions: list[EvalQuestion] = []
    for doc in data:
        aid = re.sub(r"[^\w.-]+", "-", doc["title"]).strip("-")
        contexts = tuple(" ".join(p["context"].split()) for p in doc["paragraphs"])
        articles.append(Article(id=aid, title=doc["title"].replace("_", " "),
                                source=f"squad:{doc['title']}", paragraphs=contexts))
        for n, para in enumerate(doc["paragraphs"], start=1):
            for qa in para["qas"]:
                answers = tuple(dict.fromkeys(a["text"] for a in qa["answers"]))
                questions.append(EvalQuestion(qa["question"].strip(),
                                              frozenset({f"{aid}#{n}"}), answers))
    return articles, questions
