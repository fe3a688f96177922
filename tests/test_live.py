"""Hot reload without Discord: a LiveRetriever over an index folder that is re-indexed."""

from __future__ import annotations

import logging
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from retrieval import index_corpus
from retrieval.model.embed import Embedder
from retrieval.search.live import LiveRetriever
from retrieval.search.retriever import Retriever
from retrieval.store import FolderIndex, read_manifest
from retrieval.store.manifest import write_manifest

from .support.library_article import LIBRARY, LIBRARY_Q, TRIP_Q
from .support.paths import SEEDS


def live_copy(seed_index_dir: Path, embedder: Embedder, tmp_path: Path
              ) -> tuple[LiveRetriever, Path, Path]:
    """A LiveRetriever over a private copy of the seed index, and a corpus folder (the
    seeds) to re-index it from."""
    index_dir = shutil.copytree(seed_index_dir, tmp_path / "index")
    corpus = shutil.copytree(SEEDS, tmp_path / "corpus")
    return LiveRetriever(Retriever(FolderIndex.load(index_dir), embedder)), index_dir, corpus


def test_a_new_generation_is_swapped_in_and_the_old_one_keeps_answering(
        seed_index_dir, embedder, tmp_path):
    live, index_dir, corpus = live_copy(seed_index_dir, embedder, tmp_path)
    first = live.current
    before = first.ask(TRIP_Q, 3)
    assert live.location == index_dir and not live.stale() and live.load() is None
    assert not first.ask(LIBRARY_Q).answered

    (corpus / "library.txt").write_text(LIBRARY, "utf-8")
    index_corpus(corpus, index_dir, embedder, progress=False)
    assert live.stale()
    assert live.current is first  # nothing changes until the swap
    assert live.refresh()
    assert live.current is not first and live.reloads == 1 and not live.stale()
    assert live.generation == read_manifest(index_dir).generation
    assert live.generation != first.index.manifest.generation
    answer = live.current.ask(LIBRARY_Q, 1)
    assert answer.answered
    assert answer.hits[0].passage.title == "Riverside library reopens after the flood"

    # A second save removes the first generation's folder: a question that took the first
    # Retriever before the swaps still gets its whole answer (its files are still open).
    (corpus / "library.txt").write_text(LIBRARY.replace("Monday", "Tuesday"), "utf-8")
    index_corpus(corpus, index_dir, embedder, progress=False)
    assert not (index_dir / first.index.manifest.folder).exists()
    after = first.ask(TRIP_Q, 3)
    assert [h.passage.id for h in after.hits] == [h.passage.id for h in before.hits]
    assert [h.quote for h in after.hits] == [h.quote for h in before.hits]
    assert live.refresh() and live.reloads == 2
    assert "Tuesday" in live.current.ask(LIBRARY_Q, 1).hits[0].passage.text


def test_a_damaged_new_generation_is_logged_once_and_the_old_one_keeps_serving(
        seed_index_dir, embedder, tmp_path, caplog):
    live, index_dir, corpus = live_copy(seed_index_dir, embedder, tmp_path)
    first = live.current
    old = live.generation
    (corpus / "library.txt").write_text(LIBRARY, "utf-8")
    index_corpus(corpus, index_dir, embedder, progress=False)
    new = read_manifest(index_dir)
    damaged = index_dir / new.folder / "vectors" / "passages.npy"
    good = damaged.read_bytes()
    damaged.write_bytes(good[:-8] + b"\xff" * 8)  # same size, other bytes

    with caplog.at_level(logging.INFO, logger="byline.live"):
        assert not live.refresh()
        assert not live.refresh() and not live.stale()  # not tried again, not logged again
    [line] = caplog.records
    assert line.levelno == logging.ERROR and line.exc_info is None
    message = line.getMessage()
    assert f"new generation {new.generation} cannot be loaded" in message
    assert f"still answering from generation {old}" in message
    assert "does not match its checksum" in message
    assert live.current is first and live.failures == 1 and live.last_error
    assert first.ask(TRIP_Q).answered

    damaged.write_bytes(good)  # repaired, and the manifest published again
    write_manifest(index_dir, new)
    assert live.stale() and live.refresh()
    assert live.generation == new.generation and live.last_error is None
    assert live.current.ask(LIBRARY_Q).answered


def test_nothing_to_watch_or_nothing_new(seed_index_dir, embedder, tmp_path):
    built = index_corpus(SEEDS, tmp_path / "built", embedder, progress=False)
    unwatched = LiveRetriever(Retriever(built, embedder))  # an index never loaded from disk
    assert unwatched.location is None and not unwatched.stale() and unwatched.load() is None

    live, index_dir, _ = live_copy(seed_index_dir, embedder, tmp_path)
    write_manifest(index_dir, read_manifest(index_dir))  # rewritten, same generation
    assert live.stale()
    assert live.load() is None and not live.stale() and live.reloads == 0
    (index_dir / "manifest.json").unlink()  # gone: keep serving what is loaded
    assert not live.stale() and live.load() is None
    assert live.current.ask(TRIP_Q).answered


def test_a_save_between_loading_and_watching_is_not_missed(seed_index_dir, embedder, tmp_path):
    index_dir = shutil.copytree(seed_index_dir, tmp_path / "index")
    corpus = shutil.copytree(SEEDS, tmp_path / "corpus")
    retriever = Retriever(FolderIndex.load(index_dir), embedder)
    (corpus / "library.txt").write_text(LIBRARY, "utf-8")
    index_corpus(corpus, index_dir, embedder, progress=False)  # before the watch begins
    live = LiveRetriever(retriever)
    assert live.stale() and live.refresh()
    assert live.generation == read_manifest(index_dir).generation


def test_a_reload_needs_the_same_model(seed_index_dir, embedder, tmp_path, caplog):
    live, index_dir, _ = live_copy(seed_index_dir, embedder, tmp_path)
    manifest = read_manifest(index_dir)
    write_manifest(index_dir, replace(manifest, model="another-model", generation="0ther"))
    with caplog.at_level(logging.ERROR, logger="byline.live"):
        reload = live.load()
    assert reload is not None and not reload.ok and "another-model" in (reload.error or "")
    with pytest.raises(ValueError):
        live.swap(reload)
    assert len(caplog.records) == 1
