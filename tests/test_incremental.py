"""Incremental indexing: only new or edited paragraphs are embedded, removed articles drop
out, ids stay stable, and the result equals a full rebuild of the same corpus."""

import shutil
from pathlib import Path

import numpy as np

from retrieval.indexer import index_corpus
from retrieval.search import Retriever
from retrieval.store import Index

from .conftest import SEEDS

EXTRA = """Council Votes to Expand Night Bus Service
Outlet: City Ledger
Date: 2026-03-02

The city council voted 7-2 on Tuesday to add four night bus routes starting in June.

Supporters said shift workers had waited years for a way home after midnight.

The expansion will cost about $3 million a year, paid from the parking fund.
"""

QUESTIONS = ["why was the trip cancelled", "How will the night buses be paid for?",
             "Where did Pompeo fly after Hanoi?", "Who voted against the bus plan?"]


def _corpus(root: Path) -> Path:
    root.mkdir()
    for f in SEEDS.iterdir():
        shutil.copy(f, root / f.name)
    (root / "night-bus.txt").write_text(EXTRA, encoding="utf-8")
    return root


def _same(a: Index, b: Index) -> None:
    assert [(p.id, p.text, p.title, p.paragraph, p.outlet, p.date) for p in a.all_passages()] \
        == [(p.id, p.text, p.title, p.paragraph, p.outlet, p.date) for p in b.all_passages()]
    np.testing.assert_array_equal(a.passage_vectors, b.passage_vectors)
    np.testing.assert_array_equal(a.sentences.vectors, b.sentences.vectors)
    np.testing.assert_array_equal(a.sentences.spans, b.sentences.spans)
    np.testing.assert_array_equal(a.sentences.offsets, b.sentences.offsets)
    assert a.manifest.fingerprint == b.manifest.fingerprint
    assert a.manifest.background == b.manifest.background


def test_reindex_embeds_only_changes_and_equals_a_full_build(tmp_path, embedder):
    corpus = _corpus(tmp_path / "corpus")
    incremental, full = tmp_path / "inc", tmp_path / "full"
    first = index_corpus(corpus, incremental, embedder, progress=False)
    assert first.reused == 0
    ids_before = {p.text: p.id for p in first.all_passages()}

    # Edit one paragraph, add one, and remove a whole article.
    bus = corpus / "night-bus.txt"
    bus.write_text(EXTRA.replace("7-2", "6-3") + "\nA public hearing is set for May 4.\n",
                   encoding="utf-8")
    removed = sorted(SEEDS.iterdir())[1].name
    (corpus / removed).unlink()

    again = index_corpus(corpus, incremental, embedder, progress=False)
    rebuilt = index_corpus(corpus, full, embedder, progress=False, incremental=False)
    assert rebuilt.reused == 0
    # Embedded: the edited paragraph and the new one; everything else was reused.
    assert again.reused == len(again) - 2
    assert not any(p.source == removed for p in again.all_passages())
    # Unchanged paragraphs keep their ids.
    for p in again.all_passages():
        if p.text in ids_before:
            assert p.id == ids_before[p.text]

    loaded_inc, loaded_full = Index.load(incremental), Index.load(full)
    _same(loaded_inc, loaded_full)
    r_inc, r_full = Retriever(loaded_inc, embedder), Retriever(loaded_full, embedder)
    for q in QUESTIONS:
        assert r_inc.ask(q).to_dict() == r_full.ask(q).to_dict()


def test_reindex_with_another_encoder_embeds_everything(tmp_path, embedder):
    from retrieval.embed import Embedder

    corpus = _corpus(tmp_path / "corpus")
    index_corpus(corpus, tmp_path / "idx", embedder, progress=False)
    other = index_corpus(corpus, tmp_path / "idx", Embedder(encoder="onnx"), progress=False)
    assert other.reused == 0 and other.manifest.encoder == "onnx"
