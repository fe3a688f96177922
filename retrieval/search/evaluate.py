"""Evaluation data: SQuAD-format files as articles (one passage per paragraph) + questions."""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from retrieval.corpus import Article
from retrieval.errors import BadQuestion, CorpusError
from retrieval.search.retriever import Answer, Hit, Retriever, check_question
from retrieval.text import analyze

_BATCH = 128


@dataclass(frozen=True)
class EvalQuestion:
    """A question, the passage id(s) that answer it, and the gold answer strings."""

    question: str
    gold_ids: frozenset[str]  # SQuAD: the passage ids that answer it
    answers: tuple[str, ...]  # strings a good quote contains
    gold_texts: tuple[str, ...] = field(default=())  # JSONL: strings the answering passage has
    # News dev set: the corpus files of the question's own article(s); a passage is right only
    # when it comes from one of them and holds a gold string (in its text or its headline).
    own_sources: frozenset[str] = field(default=frozenset())
    # The day the question was asked (news): it is asked "as of" that day, as a reader then
    # would have asked it (later coverage did not exist; "this week" meant that week).
    as_of: str | None = None


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


def load_jsonl(path: str | Path) -> list[EvalQuestion]:
    """Rows of {"question": str, "gold"?: str | [str], "answers"?: [str]}; a passage is gold
    when its text contains one of the gold strings (off-topic rows need no gold)."""
    out = []
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise CorpusError(f"Cannot read {path} ({exc}).") from None
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            gold = row.get("gold", ())
            gold = (gold,) if isinstance(gold, str) else tuple(gold)
            answers = tuple(row.get("answers", ()))
            question = row["question"]
        except (ValueError, KeyError, TypeError):
            raise CorpusError(f"{path}:{n} is not a {{\"question\", \"gold\"}} JSON row.") from None
        out.append(EvalQuestion(question, frozenset(), answers or gold, gold))
    if not out:
        raise CorpusError(f"{path} has no questions.")
    return out


def load_news(folder: str | Path) -> tuple[list[Article], list[EvalQuestion]]:
    """The real-news development set (../shared/tools/build_news_dev.py): `corpus/` (one
    article per file, read and cleaned as `byline index` reads them) and `questions.jsonl`
    rows {"question", "gold": [answers], "own_files": [corpus file names]}."""
    from retrieval.corpus import load_corpus

    root = Path(folder)
    questions = []
    for row in _jsonl_rows(root / "questions.jsonl"):
        try:
            gold = tuple(row["gold"]) if isinstance(row["gold"], list) else (row["gold"],)
            own = frozenset(row["own_files"])
            questions.append(EvalQuestion(row["question"], frozenset(), gold, gold, own,
                                          row.get("date")))
        except (KeyError, TypeError):
            raise CorpusError(f"{root / 'questions.jsonl'} has a row without "
                              "question, gold and own_files.") from None
    return load_corpus(root / "corpus"), questions


def _jsonl_rows(path: Path) -> list[dict]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines if line.strip()]
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise CorpusError(f"Cannot read {path} ({exc}).") from None


def is_news_dev(path: str | Path) -> bool:
    """Whether `path` is a news development set folder (questions.jsonl + corpus/)."""
    root = Path(path)
    return (root / "questions.jsonl").is_file() and (root / "corpus").is_dir()


def load_dataset(path: str | Path) -> tuple[list[Article] | None, list[EvalQuestion]]:
    """SQuAD JSON (with its own paragraphs), a news dev set folder (with its own corpus), or
    JSONL questions (for the current index)."""
    if is_news_dev(path):
        return load_news(path)
    if str(path).endswith(".jsonl"):
        return None, load_jsonl(path)
    return load_squad(path)


def is_gold(q: EvalQuestion, hit: Hit) -> bool:
    if q.own_sources:
        p = hit.passage
        return p.source in q.own_sources and any(g in p.text or g in p.title
                                                 for g in q.gold_texts)
    if q.gold_ids:
        return hit.passage.id in q.gold_ids
    return any(g in hit.passage.text for g in q.gold_texts)


def _holds_answer(q: EvalQuestion, hit: Hit) -> bool:
    p = hit.passage
    return any(g in p.text or g in p.title for g in q.gold_texts)


def evaluate(retriever: Retriever, questions: list[EvalQuestion],
             off_topic: list[EvalQuestion] | None = None, k: int = 10,
             progress: bool = True) -> dict[str, float | int | None]:
    """Ask every question the way `byline ask` does and score ranking, quotes and refusals."""
    start = time.perf_counter()
    answers = _ask_dated(retriever, questions, k, progress)
    refused_answers = (_ask_all(retriever, [q.question for q in off_topic], k, progress,
                                "Off-topic") if off_topic else [])
    seconds = time.perf_counter() - start
    ranks = []
    first = []  # (question, answer) whose gold passage is ranked first
    for q, a in zip(questions, answers, strict=True):
        rank = next((h.rank for h in a.hits if is_gold(q, h)), None)
        ranks.append(rank)
        if rank == 1:
            first.append((q, a))
    n = len(questions)
    report: dict[str, float | int | None] = {"questions": n}
    for cut in (1, 5, 10):
        report[f"recall@{cut}"] = sum(r is not None and r <= cut for r in ranks) / n
    report["mrr@10"] = sum(1 / r for r in ranks if r is not None and r <= 10) / n
    report.update(_quote_hits(retriever, first))
    report["answered_rate"] = sum(a.answered for a in answers) / n
    # What a reader sees: the right passage first, and the question answered (not refused).
    report["first_and_answered"] = sum(a.answered and r == 1
                                       for a, r in zip(answers, ranks, strict=True)) / n
    # Lenient: the first passage holds the answer, from whichever article (another outlet's
    # report of the same event answers as well as the question's own).
    report["any_first_and_answered"] = sum(
        a.answered and bool(a.hits) and _holds_answer(q, a.hits[0])
        for q, a in zip(questions, answers, strict=True)) / n
    if off_topic:
        refused = sum(not a.answered for a in refused_answers) / len(off_topic)
        report["off_topic_questions"] = len(off_topic)
        report["refused_rate"] = refused
        report["balanced_accuracy"] = (report["answered_rate"] + refused) / 2
    report["questions_per_s"] = (n + len(off_topic or [])) / seconds
    return report


def _ask_dated(retriever: Retriever, questions: list[EvalQuestion], k: int, progress: bool
               ) -> list[Answer]:
    """`_ask_all`, each question asked as of its own day when it has one."""
    if not any(q.as_of for q in questions):
        return _ask_all(retriever, [q.question for q in questions], k, progress, "Questions")
    from retrieval.search.filters import Filters

    by_day: dict[str | None, list[int]] = {}
    for i, q in enumerate(questions):
        by_day.setdefault(q.as_of, []).append(i)
    answers: list[Answer | None] = [None] * len(questions)
    for day, idx in by_day.items():
        filters = Filters.parse(as_of=day) if day else None
        texts = [questions[i].question for i in idx]
        try:
            got = _ask_all(retriever, texts, k, False, "Questions", filters)
        except BadQuestion:  # no coverage existed yet on that day: nothing to answer from
            got = [Answer(check_question(t), False) for t in texts]
        for i, a in zip(idx, got, strict=True):
            answers[i] = a
    return answers


def _ask_all(retriever: Retriever, questions: list[str], k: int, progress: bool, label: str,
             filters: object = None) -> list[Answer]:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    out: list[Answer] = []
    columns = ("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
               TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True,
                  disable=not progress) as bar:
        task = bar.add_task(label, total=len(questions))
        for start in range(0, len(questions), _BATCH):
            batch = questions[start:start + _BATCH]
            out.extend(retriever.ask_many(batch, k=k, keep_refused=True, filters=filters))
            bar.advance(task, len(batch))
    return out


def _quote_hits(retriever: Retriever, first: list[tuple[EvalQuestion, Answer]]
                ) -> dict[str, float | None]:
    """Share of quotes containing a gold answer, for questions whose gold passage is first;
    with the lead-sentence and similarity-only choices beside it."""
    if not first:
        return {"quote_hit": None, "quote_hit_lead": None, "quote_hit_dense": None}
    vecs = retriever.embedder.encode([a.question for _, a in first])
    hits = {"quote_hit": 0, "quote_hit_lead": 0, "quote_hit_dense": 0}
    for (q, a), vec in zip(first, vecs, strict=True):
        top = a.hits[0]
        terms = analyze(a.question)
        for key, quote in (("quote_hit", top.quote),
                           ("quote_hit_lead", retriever.quote(vec, terms, top.passage, top.row,
                                                              mode="lead")),
                           ("quote_hit_dense", retriever.quote(vec, terms, top.passage, top.row,
                                                               mode="dense"))):
            hits[key] += any(ans in quote for ans in q.answers)
    return {key: value / len(first) for key, value in hits.items()}
