"""`byline eval` and `feedback`: how well it answers, measured and as readers rated it."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from retrieval.cli.config import Settings
from retrieval.cli.options import open_retriever, print_json
from retrieval.search.retriever import Retriever
from retrieval.search.settings import METHODS

if TYPE_CHECKING:
    pass

def add_eval(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="measure retrieval, quotes and refusals on a dataset")
    p.add_argument(
        "dataset",
        type=Path,
        help="SQuAD JSON or a news dev set folder (questions.jsonl + corpus/), both indexed "
        'on the fly, or a JSONL of {"question", "gold"} rows (asked against the current index)',
    )
    p.add_argument(
        "--off-topic",
        type=Path,
        metavar="OTHER",
        help="questions that should be refused (SQuAD JSON or JSONL)",
    )
    p.add_argument(
        "--method",
        choices=METHODS,
        default="hybrid",
        help="ranking to evaluate (default: hybrid, what ask uses)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_eval)


def add_feedback(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("feedback", help="export the 👍/👎 ratings readers gave answers")
    p.add_argument("--json", action="store_true", help="print a JSON list")
    p.set_defaults(func=cmd_feedback)



def cmd_eval(args: argparse.Namespace, settings: Settings) -> int:
    from retrieval.build.pipeline import build_index
    from retrieval.model.embed import Embedder
    from retrieval.search.evaluate import evaluate, load_dataset
    from retrieval.search.retriever import SearchSettings

    articles, questions = load_dataset(args.dataset)
    off_topic = load_dataset(args.off_topic)[1] if args.off_topic else None
    search = SearchSettings(method=args.method)
    if articles is None:  # JSONL: the questions are about the current index
        retriever = open_retriever(settings)
        retriever = Retriever(retriever.index, retriever.embedder, search)
    else:
        embedder = Embedder(settings.model, encoder=settings.encoder)
        index = build_index(articles, embedder, corpus=str(args.dataset))
        retriever = Retriever(index, embedder, search)  # measures the background too
    report = {
        "dataset": str(args.dataset),
        "method": args.method,
        **evaluate(retriever, questions, off_topic),
    }
    if args.json:
        print_json(report)
        return 0
    for key, value in report.items():
        shown = f"{value:.4f}" if isinstance(value, float) else str(value)
        print(f"{key:>20}  {shown}")
    return 0


def cmd_feedback(args: argparse.Namespace, settings: Settings) -> int:
    import os

    from retrieval.search.feedback import default_path, read_feedback

    path = Path(os.environ.get("BYLINE_FEEDBACK_DB") or default_path(settings.index_dir))
    rows = read_feedback(path) if path.exists() else []
    if args.json:
        print_json([r.__dict__ for r in rows])
        return 0
    if not rows:
        print(f"No feedback yet ({path}).")
        return 0
    up = sum(r.verdict == "up" for r in rows)
    print(f"{len(rows)} ratings: {up} helpful, {len(rows) - up} not helpful ({path})")
    for r in rows:
        mark = "+" if r.verdict == "up" else "-"
        print(f"{r.created}  {mark}  {r.question}  [{', '.join(r.passage_ids)}]")
    return 0
