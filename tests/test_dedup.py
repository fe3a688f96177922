"""Near-duplicate passages: wire copies are grouped at index time and shown once, citing
every outlet that ran them."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from retrieval import index_corpus
from retrieval.build.dedup import copy_groups, shingles
from retrieval.search.retriever import Retriever
from retrieval.store import FolderIndex

from .support.passages import every_passage
from .support.paths import ROOT
from .support.wire_story import OUTLETS, PARAGRAPHS, QUESTION, write_corpus

WIRE = PARAGRAPHS[1]  # the sheriff's account: two sentences, 47 words


def test_equal_words_make_equal_shingles_whatever_the_case_and_quotes():
    grams, owner, words = shingles(["\u201cWe\u2019re not done,\u201d she said.",
                                    '"we\'re NOT done," She said', "one two"])
    assert words.tolist() == [6, 6, 2]
    assert grams[owner == 0].tolist() == grams[owner == 1].tolist()
    assert not (owner == 2).any()  # two words: no 3-word shingle


@pytest.mark.parametrize("copy", [
    WIRE.replace("14 cars", "fourteen cars"),  # a word changed
    WIRE.replace("sheriff's office", "sheriff\u2019s department"),  # another outlet's style
    WIRE.rsplit(" Two of the cars", 1)[0],  # the trailing sentence trimmed
    WIRE + " A second train was stopped in time.",  # a line added
])
def test_a_wire_paragraph_edited_a_little_is_a_copy(copy: str):
    assert copy_groups([WIRE, copy], ["ap", "courier"]).tolist() == [0, 0]


def test_different_paragraphs_on_the_same_topic_are_not_copies():
    own_report = ("Fourteen cars of a Great Plains Railway freight train came off the tracks "
                  "east of Marlow late Tuesday, the sheriff's office said, and two of them, "
                  "loaded with fertilizer, rolled into the creek below the curve.")
    texts = [*PARAGRAPHS, own_report]
    groups = copy_groups(texts, [f"article-{i}" for i in range(len(texts))])
    assert groups.tolist() == [-1] * len(texts)


def test_copies_within_one_article_are_not_grouped():
    assert copy_groups([WIRE, WIRE, PARAGRAPHS[2]], ["a", "a", "a"]).tolist() == [-1, -1, -1]
    # ... but a third article's copy groups all three (each to the first row).
    assert copy_groups([WIRE, WIRE, WIRE], ["a", "a", "b"]).tolist() == [0, 0, 0]


def test_short_boilerplate_is_never_grouped():
    line = "Associated Press writer Jane Doe contributed to this report."
    assert copy_groups([line, line], ["a", "b"]).tolist() == [-1, -1]


def test_a_story_copied_many_times_is_one_group_in_order():
    texts = [WIRE.replace("14 cars", f"{14 + i % 2} cars") for i in range(60)]
    groups = copy_groups([*texts, PARAGRAPHS[2]], [str(i) for i in range(61)])
    assert groups.tolist() == [0] * 60 + [-1]


@pytest.fixture(scope="module")
def wire_index(tmp_path_factory: pytest.TempPathFactory, embedder) -> Path:
    root = tmp_path_factory.mktemp("wire")
    index_corpus(write_corpus(root / "corpus"), root / "index", embedder, progress=False)
    return root / "index"


def test_three_copies_of_a_wire_story_are_one_result(wire_index: Path, embedder):
    answer = Retriever(FolderIndex.load(wire_index), embedder).ask(QUESTION, k=5)
    assert answer.answered
    top = answer.hits[0]
    assert "Red Cross" in top.passage.text  # the paragraph that answers, from one outlet
    # Shown once: no other hit is a copy of the same paragraph.
    assert sum("Red Cross" in h.passage.text for h in answer.hits) == 1
    assert len({h.passage.text[:60] for h in answer.hits}) == len(answer.hits)
    others = [c.outlet for c in top.also_in]
    assert sorted([top.passage.outlet, *others]) == sorted(OUTLETS) and len(others) == 2
    assert top.to_dict()["citation"]["also_in"] == [
        {"source": c.source, "title": c.title, "outlet": c.outlet, "date": c.date,
         "url": None} for c in top.also_in]
    # Ordered by date, then source: the two of 2024-05-01 before the one of 2024-05-02.
    assert [c.date for c in top.also_in] == sorted(c.date for c in top.also_in)
    # Five distinct stories' passages fill the five places.
    assert len(answer.hits) == 5


def test_a_trimmed_copys_cut_paragraph_still_counts_as_the_story(wire_index: Path, embedder):
    answer = Retriever(FolderIndex.load(wire_index), embedder).ask(
        "Who will pay for the cleanup of the derailment?", k=5)
    payers = [h for h in answer.hits if "pay for the cleanup" in h.passage.text]
    assert len(payers) == 1
    assert {c.outlet for c in payers[0].also_in} | {payers[0].passage.outlet} == set(OUTLETS)


def test_passages_without_copies_have_an_empty_also_in(wire_index: Path, embedder):
    answer = Retriever(FolderIndex.load(wire_index), embedder).ask("why was the trip cancelled")
    assert answer.hits[0].passage.source == "000_94a4140cf05cdf3f.txt"
    assert answer.hits[0].also_in == () and answer.to_dict()["results"][0]["citation"][
        "also_in"] == []


def test_reindex_groups_equal_a_full_build(tmp_path: Path, embedder):
    corpus = write_corpus(tmp_path / "corpus")
    index_corpus(corpus, tmp_path / "inc", embedder, progress=False)
    # The third outlet's copy is withdrawn; another outlet runs the story.
    (corpus / "ppr-derailment.txt").unlink()
    text = (corpus / "ap-derailment.txt").read_text(encoding="utf-8")
    (corpus / "zz-gazette.txt").write_text(text.replace("Associated Press", "Marlow Gazette")
                                           .replace("about 400", "nearly 400"),
                                           encoding="utf-8")
    inc = index_corpus(corpus, tmp_path / "inc", embedder, progress=False)
    index_corpus(corpus, tmp_path / "full", embedder, progress=False, incremental=False)
    assert inc.reused > 0

    def grouped(index: FolderIndex) -> list[tuple[str, str]]:
        ids = [p.id for p in every_passage(index)]  # in row order
        return sorted((ids[r], ids[g]) for r, g in index.groups_of(range(len(ids))).items())

    loaded = [FolderIndex.load(tmp_path / name) for name in ("inc", "full")]
    assert grouped(loaded[0]) == grouped(loaded[1])
    assert ("zz-gazette#1", "ap-derailment#1") in grouped(inc)
    r_inc = Retriever(FolderIndex.load(tmp_path / "inc"), embedder)
    r_full = Retriever(FolderIndex.load(tmp_path / "full"), embedder)
    assert r_inc.ask(QUESTION).to_dict() == r_full.ask(QUESTION).to_dict()
    outlets = {c.outlet for c in r_inc.ask(QUESTION).hits[0].also_in}
    assert "Marlow Gazette" in outlets | {r_inc.ask(QUESTION).hits[0].passage.outlet}
    assert "Plains Public Radio" not in outlets


def test_human_output_names_the_other_outlets(wire_index: Path, tmp_path: Path, monkeypatch,
                                              capsys):
    from retrieval.cli.main import main

    monkeypatch.setenv("BYLINE_INDEX_DIR", str(shutil.copytree(wire_index, tmp_path / "i")))
    monkeypatch.setenv("COLUMNS", "200")
    assert main(["ask", QUESTION]) == 0
    lines = capsys.readouterr().out.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("    [1] "))
    shown = next(o for o in OUTLETS if f"— {o}, 2024-05-0" in lines[at])
    dates = dict(zip(OUTLETS, ("2024-05-01", "2024-05-02", "2024-05-01"), strict=True))
    others = sorted((dates[o], o) for o in OUTLETS if o != shown)
    assert lines[at + 1] == f"    also in: {', '.join(f'{o} ({d})' for d, o in others)}"


def test_ask_json_carries_also_in_for_every_result(wire_index: Path, tmp_path: Path):
    index_dir = shutil.copytree(wire_index, tmp_path / "index")
    env = {**os.environ, "BYLINE_INDEX_DIR": str(index_dir)}
    proc = subprocess.run([str(Path(sys.executable).parent / "byline"), "ask", "--json",
                           QUESTION], capture_output=True, text=True, env=env, cwd=ROOT,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    results = json.loads(proc.stdout)["results"]
    assert results and all(isinstance(r["citation"]["also_in"], list) for r in results)
    top = results[0]["citation"]
    assert len(top["also_in"]) == 2
    assert {c["outlet"] for c in top["also_in"]} | {top["outlet"]} == set(OUTLETS)
    assert all(set(c) == {"source", "title", "outlet", "date", "url"} for c in top["also_in"])


def test_a_story_copied_into_many_articles_lists_its_first_copies_only(tmp_path: Path,
                                                                      embedder):
    from retrieval.store.tables import MAX_COPIES

    text = ("The regional council approved a new ferry timetable on Monday after months of "
            "complaints from island residents about cancelled crossings.")
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for i in range(MAX_COPIES + 5):
        (corpus / f"copy{i:02d}.txt").write_text(
            f"Outlet: Paper {i:02d}\nDate: 2024-05-{i + 1:02d}\n\nFerry timetable {i}\n\n"
            f"{text}\n", "utf-8")
    index = index_corpus(corpus, tmp_path / "idx", embedder, progress=False)
    groups = index.groups_of(range(len(index)))
    assert len(set(groups.values())) == 1 and len(groups) == MAX_COPIES + 5
    [(_, copies)] = index.copies(sorted(set(groups.values()))).items()
    # The first MAX_COPIES articles by date, in order: a bounded answer, whatever the group.
    assert [c.outlet for c in copies] == [f"Paper {i:02d}" for i in range(MAX_COPIES)]


def _first_stories(index: FolderIndex, rows: list[int], k: int) -> list[int]:
    """The first `k` of `rows` that are not copies of a row before them."""
    groups = index.groups_of(rows)
    seen: set[int] = set()
    picked = []
    for row in rows:
        if row in groups:
            if groups[row] in seen:
                continue
            seen.add(groups[row])
        picked.append(row)
    return picked[:k]


def test_copies_filling_the_first_candidates_are_ranked_again_deeper_as_if_fresh(
        tmp_path: Path, embedder):
    from dataclasses import replace

    from retrieval.search.settings import SearchSettings

    corpus = write_corpus(tmp_path / "corpus")
    text = (corpus / "ap-derailment.txt").read_text(encoding="utf-8")
    for i in range(9):  # twelve outlets ran the story
        (corpus / f"wire-{i}.txt").write_text(
            text.replace("Associated Press", f"Wire Paper {i}"), encoding="utf-8")
    index = index_corpus(corpus, tmp_path / "index", embedder, progress=False)
    retriever = Retriever(index, embedder, replace(SearchSettings(), candidates=3))
    depth = 3
    while len(_first_stories(index, retriever.candidates(QUESTION, depth).rows, 5)) < 5:
        depth *= 4
    assert depth >= 12  # copies filled the first candidates: the answer needed deeper rounds
    answer = retriever.ask(QUESTION, k=5)
    # What the first rounds measured of a row, the last reuses (search/memo.py): the answer is
    # still the first five stories of a fresh ranking at the last round's depth.
    fresh = retriever.candidates(QUESTION, depth)
    assert [h.row for h in answer.hits] == _first_stories(index, fresh.rows, 5)


def test_a_row_memo_measures_each_row_once_in_the_order_asked():
    from retrieval.search.memo import RowMemo

    measured: list[list[int]] = []

    def square(rows):
        measured.append(rows.tolist())
        return (rows * rows).astype("float32")

    memo = RowMemo()
    assert memo.array("sq", np.array([3, 1]), square).tolist() == [9.0, 1.0]
    assert memo.array("sq", np.array([1, 4, 3, 2]), square).tolist() == [1.0, 16.0, 9.0, 4.0]
    assert memo.array("sq", np.array([2, 3]), square).tolist() == [4.0, 9.0]
    assert measured == [[3, 1], [4, 2]]  # nothing measured twice
    assert memo.each("other", np.array([2]), lambda r: [("two",)]) == [("two",)]
    assert memo.array("sq", np.array([], dtype=np.int64), square).shape == (0,)
