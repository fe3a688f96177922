"""Hot reload over the PostgreSQL store: a generation published by another process is heard
by LISTEN/NOTIFY and swapped in by every LiveRetriever following the store."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

from retrieval.cli.main import main
from retrieval.search.live import LiveRetriever
from retrieval.search.retriever import Retriever
from retrieval.store import open_store

from .support.library_article import LIBRARY, LIBRARY_Q, TRIP_Q
from .support.paths import ROOT, SEEDS
from .support.polling import wait_for


def test_two_followers_pick_up_a_generation_published_elsewhere(
        pg_url, seed_index_dir, embedder, tmp_path):
    assert main(["migrate", "--from", str(seed_index_dir), "--to", pg_url]) == 0
    followers = [LiveRetriever(Retriever(open_store(pg_url, model=embedder.name), embedder))
                 for _ in range(2)]
    try:
        first = followers[0].generation
        assert all(f.location == pg_url and not f.stale() and f.load() is None
                   for f in followers)
        assert not followers[0].current.ask(LIBRARY_Q).answered
        # a third process re-indexes the coverage, one article added, into the store
        corpus = shutil.copytree(SEEDS, tmp_path / "corpus")
        (corpus / "library.txt").write_text(LIBRARY, "utf-8")
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        done = subprocess.run(
            [sys.executable, "-m", "retrieval.cli", "--store", pg_url, "index", "--json",
             str(corpus)], env=env, capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["embedded"] == 2  # the new article's paragraphs only
        for f in followers:
            assert wait_for(f.stale), "no notification heard"
            held = f.current
            assert f.refresh()
            assert f.generation != first
            assert f.current.ask(LIBRARY_Q).answered
            assert held.ask(TRIP_Q).answered  # the old generation still answers
            assert not f.stale()
    finally:
        for f in followers:
            f.close()


def test_a_folder_follower_needs_no_listener(seed_index_dir, embedder):
    live = LiveRetriever(Retriever(open_store(seed_index_dir), embedder))
    assert live.store is not None and not live.store.shared
    live.close()
