"""`byline ask --as-of/--since/--until/--outlet` and `byline timeline`, in process."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from retrieval import index_corpus
from retrieval.cli.main import main
from retrieval.model.embed import Embedder

from .support.news_by_date import write_corpus


@pytest.fixture(scope="module")
def dated_dir(tmp_path_factory, embedder: Embedder) -> Path:
    root = tmp_path_factory.mktemp("dated-cli")
    index_corpus(write_corpus(root / "corpus"), root / "index", embedder, progress=False)
    return root / "index"


def run(capsys, dated_dir: Path, *args: str) -> tuple[int, str, str]:
    code = main(["--index-dir", str(dated_dir), *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_ask_with_filters_shows_each_answer_date(capsys, dated_dir):
    code, out, _ = run(capsys, dated_dir, "ask", "Which official has Covid this week?", "-k", "1")
    flat = " ".join(out.split())  # rich wraps long lines
    assert code == 0 and "President Biden tests positive for Covid — CNN, 2022-07-21" in flat
    code, out, _ = run(capsys, dated_dir, "ask", "Which", "official", "has", "Covid", "now?",
                       "--as-of", "2022-05-01", "-k", "1", "--json")
    [hit] = json.loads(out)["results"]
    assert hit["citation"]["date"].startswith("2022-04-26")
    code, out, _ = run(capsys, dated_dir, "ask", "Who is prime minister?", "--outlet", "CNN",
                       "--since", "2022-01-01", "--until", "2022-03-01", "--json")
    results = json.loads(out)["results"]
    assert {r["citation"]["title"] for r in results} == {"Boris Johnson is prime minister"}


@pytest.mark.parametrize(("args", "message"), [
    (("--since", "someday"), "The since date “someday” is not a date I can read"),
    (("--since", "2022-05-01", "--until", "2022-04-01"), "is after the until date"),
    (("--outlet", "Nowhere Gazette"), "No coverage from outlet “Nowhere Gazette”"),
    (("--until", "1990-01-01"), "No article in the coverage matches the filters (until "
                                "1990-01-01)."),
])
def test_bad_filters_are_one_line_and_status_1(capsys, dated_dir, args, message):
    for command in (["ask", "who is prime minister"], ["timeline", "prime minister"]):
        code, out, err = run(capsys, dated_dir, *command, *args)
        assert code == 1 and out == ""
        assert err.startswith("byline: ") and message in err and err.count("\n") == 1


def test_timeline_lines_in_date_order(capsys, dated_dir):
    code, out, _ = run(capsys, dated_dir, "timeline", "prime", "minister")
    flat = " ".join(out.split())  # rich wraps long lines
    heads = ["2022-02-01 CNN Boris Johnson is prime minister: The prime minister said",
             "2022-07-07 BBC Boris Johnson resigns as Conservative leader: Boris Johnson",
             "2022-09-06 BBC Liz Truss becomes prime minister: Liz Truss became"]
    assert code == 0 and all(h in flat for h in heads)
    assert [flat.index(h) for h in heads] == sorted(flat.index(h) for h in heads)
    assert flat.count(" 2022-") == 2  # one line per story: the first starts the output
    code, out, _ = run(capsys, dated_dir, "timeline", "freight train derailment", "--json",
                       "-n", "1")
    data = json.loads(out)
    assert data["covered"] and len(data["stories"]) == 1
    assert len(data["stories"][0]["also_in"]) == 2
    code, out, _ = run(capsys, dated_dir, "timeline", "the capital of France")
    assert code == 0 and "says nothing about “the capital of France”" in out


def test_citations_and_sources_show_the_day_not_the_timestamp(capsys, dated_dir):
    """A story stored as 2022-07-21T13:05:00+00:00 is cited as 2022-07-21, as the bot does."""
    code, out, _ = run(capsys, dated_dir, "ask", "Which official has Covid this week?", "-k", "1")
    flat = " ".join(out.split())
    assert code == 0 and "Covid — CNN, 2022-07-21 — ¶1 (biden-covid.txt)" in flat
    assert "T13:05" not in out
    code, out, _ = run(capsys, dated_dir, "sources", "--sort", "date")
    assert code == 0 and "2022-07-21" in out and "2022-04-26" in out and "T1" not in out
