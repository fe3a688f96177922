"""`byline eval` on small datasets in tests/data (real model, real index)."""

from __future__ import annotations

import json

import pytest

from retrieval.cli.main import main
from retrieval.errors import CorpusError
from retrieval.search.evaluate import load_jsonl

from .support.paths import ROOT

DATA = ROOT / "tests" / "data"
KEYS = {"questions", "recall@1", "recall@5", "recall@10", "mrr@10", "quote_hit",
        "answered_rate", "questions_per_s"}


def _eval(capsys, *argv: str) -> dict:
    assert main(["eval", *argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_eval_squad_with_off_topic(capsys):
    r = _eval(capsys, str(DATA / "mini_squad.json"), "--off-topic", str(DATA / "off_topic.jsonl"))
    assert KEYS | {"refused_rate", "balanced_accuracy"} <= set(r)
    assert r["questions"] == 9 and r["off_topic_questions"] == 5
    assert 0 <= r["recall@1"] <= r["recall@5"] <= r["recall@10"] <= 1
    assert r["recall@5"] == 1.0 and r["recall@1"] >= 7 / 9
    assert r["mrr@10"] >= r["recall@1"]
    assert r["refused_rate"] == 1.0 and r["answered_rate"] == 1.0
    assert r["balanced_accuracy"] == pytest.approx((r["answered_rate"] + r["refused_rate"]) / 2)
    assert r["quote_hit"] >= 0.75 and r["quote_hit_lead"] <= 1


@pytest.mark.parametrize("method", ["bm25", "dense"])
def test_eval_baseline_methods(capsys, method):
    r = _eval(capsys, str(DATA / "mini_squad.json"), "--method", method)
    assert r["method"] == method and r["questions"] == 9
    assert r["recall@10"] >= 8 / 9


def test_eval_jsonl_against_the_current_index(capsys, seed_index_dir, monkeypatch):
    monkeypatch.setenv("BYLINE_INDEX_DIR", str(seed_index_dir))
    r = _eval(capsys, str(DATA / "seed_questions.jsonl"))
    assert r["questions"] == 2 and r["recall@1"] == 1.0
    assert r["quote_hit"] == 1.0  # "Manila" is in the quote


def test_eval_bad_dataset(tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "x", "gold": "y"}\nnot json\n', encoding="utf-8")
    with pytest.raises(CorpusError, match=r"bad\.jsonl:2"):
        load_jsonl(bad)
    assert main(["eval", str(tmp_path / "missing.json")]) == 1
    assert "not a readable SQuAD JSON file" in capsys.readouterr().err


def _news_dev(folder):
    """A tiny news dev set in build_news_dev.py's layout: two articles, three questions."""
    (folder / "corpus").mkdir(parents=True)
    (folder / "corpus" / "a001_bridge.txt").write_text(
        "Outlet: Coast Herald\nDate: 2022-05-02\n\nBridge reopens after repairs\n\n"
        "The Old Mill bridge reopened on Wednesday after eight months of repairs.\n\n"
        "The repairs cost four million euros, the council said on Monday.\n", "utf-8")
    (folder / "corpus" / "a002_ferry.txt").write_text(
        "Outlet: Harbour Gazette\nDate: 2022-05-03\n\nFerry strike ends\n\n"
        "Ferry crews returned to work on Tuesday after a two-week strike over pay.\n\n"
        "The bridge across the bay stayed open to traffic during the strike.\n", "utf-8")
    rows = [
        {"question": "How much did the bridge repairs cost?", "gold": ["four million euros"],
         "own_files": ["a001_bridge.txt"]},
        {"question": "How long did the ferry strike last?", "gold": ["two-week"],
         "own_files": ["a002_ferry.txt"]},
        # Answered by the headline of its own article.
        {"question": "What happened to the ferry strike?", "gold": ["Ferry strike ends"],
         "own_files": ["a002_ferry.txt"]},
    ]
    (folder / "questions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


def test_eval_news_dev_set_scores_own_article_passages(tmp_path, capsys):
    r = _eval(capsys, str(_news_dev(tmp_path / "news")),
              "--off-topic", str(DATA / "news_off_topic.jsonl"))
    assert r["questions"] == 3 and r["off_topic_questions"] == 40
    assert r["recall@1"] == 1.0  # the headline counts for the third question
    assert 0 <= r["first_and_answered"] <= r["recall@1"]
    assert r["first_and_answered"] <= r["answered_rate"]


def test_news_gold_must_come_from_the_questions_own_article(tmp_path):
    from retrieval.search.evaluate import load_news

    articles, questions = load_news(_news_dev(tmp_path / "news"))
    assert len(articles) == 2 and questions[0].own_sources == {"a001_bridge.txt"}
    # "bridge" also appears in the ferry article, but only the bridge article's passage
    # holding "four million euros" is gold.
    from retrieval.search.evaluate import is_gold
    from retrieval.search.retriever import Hit

    for a in articles:
        for p in a.passages():
            expected = p.source == "a001_bridge.txt" and "four million euros" in p.text
            assert is_gold(questions[0], Hit(1, 1.0, p, p.text)) == expected


def test_news_questions_are_asked_as_of_their_day(tmp_path, capsys):
    """Coverage published after a question was asked cannot answer it (it did not exist)."""
    folder = tmp_path / "news"
    (folder / "corpus").mkdir(parents=True)
    for name, day, who in (("a001_pm.txt", "2022-02-01", "Boris Johnson"),
                           ("a002_pm.txt", "2022-09-06", "Liz Truss")):
        (folder / "corpus" / name).write_text(
            f"Outlet: Daily Planet\nDate: {day}\n\nPrime minister in office\n\n"
            f"{who} is the prime minister of the United Kingdom, the palace said.\n", "utf-8")
    row = {"question": "Who is the prime minister of the United Kingdom?",
           "gold": ["Boris Johnson"], "own_files": ["a001_pm.txt"]}
    (folder / "questions.jsonl").write_text(json.dumps({**row, "date": "2022-03-01"}) + "\n")
    assert _eval(capsys, str(folder))["recall@1"] == 1.0
    (folder / "questions.jsonl").write_text(json.dumps({**row, "date": "2022-01-15"}) + "\n")
    assert _eval(capsys, str(folder))["recall@5"] == 0.0  # its article did not exist yet
