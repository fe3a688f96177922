"""Incremental indexing: only new or edited paragraphs are embedded, removed articles drop
out, ids stay stable, and the result equals a full rebuild of the same corpus."""

import json
import os
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from retrieval import index_corpus
from retrieval.corpus import load_corpus
from retrieval.errors import IndexCorrupt
from retrieval.model.probes import PROBES
from retrieval.search.retriever import Retriever, check_question
from retrieval.store import MANIFEST, FolderIndex

from .support.passages import every_passage
from .support.paths import SEEDS

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


def _same(a: FolderIndex, b: FolderIndex) -> None:
    assert [(p.id, p.text, p.title, p.paragraph, p.outlet, p.date) for p in every_passage(a)] \
        == [(p.id, p.text, p.title, p.paragraph, p.outlet, p.date) for p in every_passage(b)]
    np.testing.assert_array_equal(a.passage_vectors, b.passage_vectors)
    np.testing.assert_array_equal(a.sentences.vectors, b.sentences.vectors)
    np.testing.assert_array_equal(a.sentences.spans, b.sentences.spans)
    np.testing.assert_array_equal(a.sentences.offsets, b.sentences.offsets)
    np.testing.assert_array_equal(a.tokens.vectors, b.tokens.vectors)
    np.testing.assert_array_equal(a.tokens.scales, b.tokens.scales)
    np.testing.assert_array_equal(a.tokens.offsets, b.tokens.offsets)
    assert a.manifest.fingerprint == b.manifest.fingerprint
    assert a.manifest.background == b.manifest.background
    assert a.articles() == b.articles()
    np.testing.assert_array_equal(a.probe_vectors, b.probe_vectors)


def test_reindex_embeds_only_changes_and_equals_a_full_build(tmp_path, embedder):
    corpus = _corpus(tmp_path / "corpus")
    incremental, full = tmp_path / "inc", tmp_path / "full"
    first = index_corpus(corpus, incremental, embedder, progress=False)
    assert first.reused == 0
    ids_before = {p.text: p.id for p in every_passage(first)}

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
    assert not any(p.source == removed for p in every_passage(again))
    # Unchanged paragraphs keep their ids.
    for p in every_passage(again):
        if p.text in ids_before:
            assert p.id == ids_before[p.text]

    loaded_inc, loaded_full = FolderIndex.load(incremental), FolderIndex.load(full)
    _same(loaded_inc, loaded_full)
    r_inc, r_full = Retriever(loaded_inc, embedder), Retriever(loaded_full, embedder)
    for q in QUESTIONS:
        assert r_inc.ask(q).to_dict() == r_full.ask(q).to_dict()


def test_reindex_with_another_encoder_embeds_everything(tmp_path, embedder):
    from retrieval.model.embed import Embedder

    corpus = _corpus(tmp_path / "corpus")
    index_corpus(corpus, tmp_path / "idx", embedder, progress=False)
    other = index_corpus(corpus, tmp_path / "idx", Embedder(encoder="onnx"), progress=False)
    assert other.reused == 0 and other.manifest.encoder == "onnx"


def test_vectors_of_another_encoder_graph_are_not_reused(tmp_path, embedder):
    """The manifest names the graph recipe and the CPU kernel that encoded the vectors; an
    index from another recipe (an older int8 scheme) is embedded again, not mixed."""
    corpus, idx = _corpus(tmp_path / "corpus"), tmp_path / "idx"
    first = index_corpus(corpus, idx, embedder, progress=False)
    assert first.manifest.graph == embedder.graph != ""
    assert first.manifest.kernel == embedder.kernel
    assert json.loads((idx / MANIFEST).read_text())["kernel"] == embedder.kernel
    data = json.loads((idx / MANIFEST).read_text())
    (idx / MANIFEST).write_text(json.dumps({**data, "graph": "onnx-int8-r1"}))
    (corpus / "night-bus.txt").write_text(EXTRA + "\nA late paragraph.\n", encoding="utf-8")
    again = index_corpus(corpus, idx, embedder, progress=False)
    assert again.reused == 0 and again.manifest.graph == embedder.graph


def test_reindex_takes_unchanged_articles_and_probe_vectors_from_the_index(tmp_path, embedder):
    corpus = _corpus(tmp_path / "corpus")
    index_corpus(corpus, tmp_path / "idx", embedder, progress=False)
    loaded = FolderIndex.load(tmp_path / "idx")
    articles = load_corpus(corpus)
    assert loaded.parsed_articles() == {a.source: [a] for a in articles}  # exactly as parsed
    probes = embedder.encode([check_question(q) for q in PROBES])
    np.testing.assert_array_equal(loaded.probe_vectors, probes)

    # A known article stands in for its file only while the file's bytes are unchanged.
    stand_in = {a.source: [replace(a, title=f"known {a.title}")] for a in articles}
    (corpus / "night-bus.txt").write_text(EXTRA.replace("7-2", "6-3"), encoding="utf-8")
    titles = {a.source: a.title for a in load_corpus(corpus, known=stand_in)}
    assert titles["night-bus.txt"] == "Council Votes to Expand Night Bus Service"
    assert all(t.startswith("known ") for s, t in titles.items() if s != "night-bus.txt")


def test_other_cleaning_rules_or_probes_mean_parsing_and_encoding_again(tmp_path, embedder):
    corpus = _corpus(tmp_path / "corpus")
    first = index_corpus(corpus, tmp_path / "idx", embedder, progress=False)
    manifest = tmp_path / "idx" / MANIFEST
    data = json.loads(manifest.read_text())
    manifest.write_text(json.dumps({**data, "parser": "0" * 16, "probes": "0" * 16}))
    stale = FolderIndex.load(tmp_path / "idx")
    assert stale.parsed_articles() == {} and stale.probe_vectors is None
    again = index_corpus(corpus, tmp_path / "idx", embedder, progress=False)
    assert again.reused == len(again)
    assert again.manifest.background == first.manifest.background
    assert again.manifest.parser == first.manifest.parser != "0" * 16
    np.testing.assert_array_equal(FolderIndex.load(tmp_path / "idx").probe_vectors,
                                  first.probe_vectors)


def test_a_reindex_links_the_token_file_and_writes_only_new_rows(tmp_path, embedder):
    """Above `splice_min` (0 here), a re-index hard-links the previous token file (base.npy,
    with the checksum recorded for it) and writes only the other rows, and still equals a
    full build; a damaged base is never reused, and a mostly unused one is not linked."""
    corpus, inc = _corpus(tmp_path / "corpus"), tmp_path / "inc"
    first = index_corpus(corpus, inc, embedder, progress=False, splice_min=0)
    folder = inc / first.manifest.folder / "tokens"
    assert not (folder / "base.npy").exists()
    bus = corpus / "night-bus.txt"
    for n, vote in enumerate(("6-3", "5-4")):
        before = json.loads((inc / MANIFEST).read_text())["files"]["tokens/vectors.npy"]
        bus.write_text(EXTRA.replace("7-2", vote), encoding="utf-8")
        again = index_corpus(corpus, inc, embedder, progress=False, splice_min=0)
        assert again.reused == len(again) - 1
        tokens = inc / again.manifest.folder / "tokens"
        assert (tokens / "base.npy").stat().st_ino == first.tokens.vectors.path.stat().st_ino \
            if n == 0 else (tokens / "base.npy").stat().st_nlink == 2
        if n == 0:
            assert again.manifest.files["tokens/base.npy"] == before  # its checksum, kept
        assert (tokens / "vectors.npy").stat().st_size < (tokens / "base.npy").stat().st_size
        index_corpus(corpus, tmp_path / f"full{n}", embedder, progress=False, incremental=False)
        _same(FolderIndex.load(inc, verify=True), FolderIndex.load(tmp_path / f"full{n}"))

    # Damage the shared file: the index is damaged, and a re-index rebuilds from scratch.
    path = inc / FolderIndex.load(inc).manifest.folder / "tokens" / "base.npy"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(IndexCorrupt, match=r"base\.npy does not match its checksum"):
        FolderIndex.load(inc, verify=True)
    rebuilt = index_corpus(corpus, inc, embedder, progress=False, splice_min=0)
    assert rebuilt.reused == 0 and not (inc / rebuilt.manifest.folder / "tokens" /
                                        "base.npy").exists()
    _same(FolderIndex.load(inc, verify=True), FolderIndex.load(tmp_path / "full1"))

    # Most articles removed: the token file is written whole again, not linked.
    index_corpus(corpus, inc, embedder, progress=False, splice_min=0)  # spliced once more
    for f in corpus.iterdir():
        if f != bus:
            os.unlink(f)
    small = index_corpus(corpus, inc, embedder, progress=False, splice_min=0)
    assert not (inc / small.manifest.folder / "tokens" / "base.npy").exists()
    index_corpus(corpus, tmp_path / "full2", embedder, progress=False, incremental=False)
    _same(FolderIndex.load(inc, verify=True), FolderIndex.load(tmp_path / "full2"))
