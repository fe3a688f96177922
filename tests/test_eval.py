"""`byline eval` on small datasets in tests/data (real model, real index)."""

from __future__ import annotations

import json

import pytest

from retrieval.cli import main
from retrieval.errors import CorpusError
from retrieval.evaluate import load_jsonl

from .conftest import ROOT

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
