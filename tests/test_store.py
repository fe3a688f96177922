"""The on-disk index: round trip, stable ids, atomic saves, clear errors when damaged."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import faiss
import numpy as np
import pytest

from retrieval import index_corpus
from retrieval.build.pipeline import build_index
from retrieval.corpus import Article, load_corpus
from retrieval.errors import IndexCorrupt, IndexMismatch, IndexMissing, StoreError
from retrieval.model.embed import Embedder
from retrieval.search.retriever import Retriever
from retrieval.store import MANIFEST, FolderIndex, RowFile, Sentences
from retrieval.store.folder.rows import MAP_MAX, load_rows

from .support.paths import SEEDS


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _snapshot(index_dir: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in index_dir.rglob("*") if p.is_file()}


def test_round_trip(seed_index_dir: Path, embedder: Embedder):
    index = FolderIndex.load(seed_index_dir, model=embedder.name)
    m = index.manifest
    assert (m.model, m.dimension, m.passages, m.articles) == ("all-MiniLM-L6-v2", 384, 20, 2)
    assert set(m.background) == {"dense", "lexical", "sentence"}
    passages = index.passages(list(range(len(index))))
    expected = [p for a in load_corpus(SEEDS) for p in a.passages()]
    assert passages == expected
    # The stored vectors are the model's embeddings of the passage texts.
    stored = index.vectors.reconstruct_n(0, len(index))
    fresh = embedder.encode([p.text for p in expected])
    np.testing.assert_allclose(stored, fresh, atol=1e-5)
    assert [(a.title, a.passages) for a in index.articles()] == [
        ("Trump Calls Off Pompeo's North Korea Trip", 11),
        ("After Trump-Kim Summit Failure, Pompeo Says Nuclear Talks With NK Will Resume", 9),
    ]


def test_reindex_keeps_ids_and_replaces_generation(seed_index_dir: Path, tmp_path: Path,
                                                   embedder: Embedder):
    index_dir = _copy(seed_index_dir, tmp_path / "idx")
    before = FolderIndex.load(index_dir)
    index_corpus(SEEDS, index_dir, embedder, progress=False)
    after = FolderIndex.load(index_dir)
    ids = [[p.id for p in i.passages(list(range(len(i))))] for i in (after, before)]
    assert ids[0] == ids[1]
    assert after.manifest.generation != before.manifest.generation
    # The generation replaced is kept for readers that loaded it; the one before goes.
    names = {p.name for p in index_dir.iterdir()}
    assert names == {MANIFEST, ".lock", before.manifest.folder, after.manifest.folder}
    index_corpus(SEEDS, index_dir, embedder, progress=False)
    last = FolderIndex.load(index_dir)
    names = {p.name for p in index_dir.iterdir()}
    assert names == {MANIFEST, ".lock", after.manifest.folder, last.manifest.folder}


def test_missing_index(tmp_path: Path):
    with pytest.raises(IndexMissing, match="run `byline index`"):
        FolderIndex.load(tmp_path / "nowhere")


@pytest.mark.parametrize("damage", ["garbage manifest", "truncated vectors", "missing meta",
                                    "wrong count", "missing bm25", "missing sentences"])
def test_damaged_index_is_reported(seed_index_dir: Path, tmp_path: Path, damage: str):
    index_dir = _copy(seed_index_dir, tmp_path / "idx")
    manifest = json.loads((index_dir / MANIFEST).read_text())
    folder = index_dir / FolderIndex.load(index_dir).manifest.folder
    if damage == "garbage manifest":
        (index_dir / MANIFEST).write_text("{not json")
    elif damage == "truncated vectors":
        path = folder / "vectors" / "passages.npy"
        path.write_bytes(path.read_bytes()[:1000])
    elif damage == "missing meta":
        (folder / "meta.sqlite").unlink()
    elif damage == "wrong count":
        manifest["passages"] = 21
        (index_dir / MANIFEST).write_text(json.dumps(manifest))
    elif damage == "missing bm25":
        shutil.rmtree(folder / "bm25")
    else:
        (folder / "sentences" / "vectors.npy").unlink()
    with pytest.raises(IndexCorrupt, match=r"run `byline index --full` to rebuild it"):
        FolderIndex.load(index_dir)


def test_other_model_is_a_mismatch(seed_index_dir: Path):
    with pytest.raises(IndexMismatch, match="built with model 'all-MiniLM-L6-v2'"):
        FolderIndex.load(seed_index_dir, model="sentence-transformers/all-mpnet-base-v2")


def test_other_format_is_a_mismatch(seed_index_dir: Path, tmp_path: Path):
    index_dir = _copy(seed_index_dir, tmp_path / "idx")
    manifest = json.loads((index_dir / MANIFEST).read_text())
    manifest["format"] = 99
    (index_dir / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(IndexMismatch, match="format 99"):
        FolderIndex.load(index_dir)


def test_other_dimension_is_a_mismatch(tmp_path: Path, embedder: Embedder):
    # An index whose vectors have 8 dimensions, saved and loaded for real.
    article = Article(id="a", title="A", source="a.txt",
                      paragraphs=("One paragraph that is long enough to be kept.",))
    index = build_index([article], embedder, progress=False)
    small = faiss.IndexFlatIP(8)
    small.add(np.ones((1, 8), dtype=np.float32))
    from dataclasses import replace
    sentences = Sentences(np.ones((1, 8), np.float16), np.array([[0, 10]], np.int32),
                          np.array([0, 1]))
    odd = FolderIndex(replace(index.manifest, dimension=8, background={"dense": 0, "lexical": 0}),
                small, index.postings, index.db, sentences)
    odd.save(tmp_path / "idx")
    with pytest.raises(IndexMismatch, match="8-dimensional vectors"):
        Retriever(FolderIndex.load(tmp_path / "idx"), embedder)


def test_bad_corpus_leaves_index_untouched(seed_index_dir: Path, tmp_path: Path,
                                           embedder: Embedder):
    index_dir = _copy(seed_index_dir, tmp_path / "idx")
    before = _snapshot(index_dir)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "x.txt").write_bytes(b"Title\n\n\xff\xfe not utf-8 at all, sorry.")
    with pytest.raises(Exception, match="not UTF-8"):
        index_corpus(bad, index_dir, embedder, progress=False)
    assert _snapshot(index_dir) == before


def test_crash_during_save_keeps_old_index(seed_index_dir: Path, tmp_path: Path,
                                           embedder: Embedder, monkeypatch):
    index_dir = _copy(seed_index_dir, tmp_path / "idx")
    before = _snapshot(index_dir)

    saved = []
    real_save = np.lib.format.write_array  # what the store's save_array writes with

    def save_then_fill_disk(*args, **kwargs):  # the disk fills up after the vectors are written
        if saved:
            raise OSError("disk full")
        saved.append(args[0])
        real_save(*args, **kwargs)

    monkeypatch.setattr(np.lib.format, "write_array", save_then_fill_disk)
    with pytest.raises(StoreError, match="disk full; the index there is unchanged"):
        index_corpus(SEEDS, index_dir, embedder, progress=False)
    monkeypatch.undo()
    assert saved  # it failed mid-save, after writing the first file
    assert _snapshot(index_dir) == before  # no half-written files, no temp folder left
    assert len(FolderIndex.load(index_dir)) == 20


def test_large_index_uses_tuned_ivf_memory_mapped(tmp_path: Path, embedder: Embedder):
    import faiss

    from retrieval.corpus import load_corpus

    articles = load_corpus(SEEDS)
    flat = build_index(articles, embedder, progress=False)
    ivf = build_index(articles, embedder, progress=False, exact_max=5)
    assert flat.manifest.ann == "flat" and ivf.manifest.ann.startswith("ivf")
    assert ivf.manifest.nprobe >= 1
    ivf.save(tmp_path / "ivf")
    loaded = FolderIndex.load(tmp_path / "ivf")
    assert isinstance(loaded.vectors, faiss.IndexIVF)
    assert faiss.extract_index_ivf(loaded.vectors).nprobe == ivf.manifest.nprobe
    # Vectors are never loaded whole: files this small are memory-mapped, larger ones read
    # from disk by row (memory stays flat); the rows are the same either way.
    for part, vectors in (("vectors/passages.npy", loaded.passage_vectors),
                          ("sentences/vectors.npy", loaded.sentences.vectors)):
        path = tmp_path / "ivf" / loaded.manifest.folder / part
        assert isinstance(vectors, np.ndarray) and isinstance(vectors.base, np.memmap)
        assert path.stat().st_size <= MAP_MAX and isinstance(load_rows(path, MAP_MAX), np.ndarray)
        by_row = load_rows(path)
        assert isinstance(by_row, RowFile)
        picks = np.array([3, 0, len(vectors) - 1, 4, 5])
        np.testing.assert_array_equal(by_row[picks], vectors[picks])
    a, b = Retriever(flat, embedder), Retriever(loaded, embedder)
    for q in ("why was the trip cancelled", "Who did Trump phone while leaving Vietnam?"):
        assert a.ask(q).hits[0].passage.id == b.ask(q).hits[0].passage.id


def test_token_vectors_are_kept_and_read_back(seed_index_dir: Path, embedder: Embedder):
    index = FolderIndex.load(seed_index_dir)
    assert isinstance(index.tokens.vectors, RowFile)
    passages = index.passages(list(range(len(index))))
    for row in (0, 7, len(passages) - 1):
        text = passages[row].text
        stored = index.tokens.of(row)
        _, scales, _ = index.tokens.raw(row)
        _, _, fresh = embedder.encode_passages([text], [[(0, len(text))]], tokens=True)
        # One vector per real token of the passage, equal to the model's up to int8
        # rounding: each number within half a step (its token's scale) of the model's.
        assert stored.shape == fresh[0].shape == (len(embedder.token_offsets(text)), 384)
        error = np.abs(stored - fresh[0]).max(axis=1)
        assert (error <= scales * 0.5 * (1 + 1e-3) + 1e-7).all()


def test_above_tokens_max_no_token_vectors_are_kept(tmp_path: Path, embedder: Embedder):
    articles = load_corpus(SEEDS)
    index = build_index(articles, embedder, progress=False, tokens_max=5)
    assert index.tokens is None
    index.save(tmp_path / "idx")
    loaded = FolderIndex.load(tmp_path / "idx")
    assert loaded.tokens is None
    answer = Retriever(loaded, embedder).ask("Who did Trump phone while leaving Vietnam?")
    assert answer.answered and "Moon" in answer.hits[0].passage.text
