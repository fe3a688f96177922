"""Real coverage in: pages, feeds, exports and text files read into one corpus; bad files
skipped and named, never blocking the rest; citation metadata made safe."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import time
from pathlib import Path

import pytest

from retrieval import index_corpus
from retrieval.cli.main import main
from retrieval.corpus import load_corpus, scan_corpus
from retrieval.corpus.clean import PARAGRAPH_MAX
from retrieval.corpus.meta import clean_text, clean_url, parse_date
from retrieval.corpus.workers import POOL_MIN, Parsers
from retrieval.errors import CorpusError
from retrieval.model.embed import Embedder

from .support.paths import SEEDS

PAGE = """<!DOCTYPE html><html><head><meta charset="utf-8">
<title>Tram line opens to the airport | Metro Ledger</title>
<meta property="og:site_name" content="Metro Ledger">
<meta property="og:title" content="Tram line opens to the airport">
<meta name="author" content="Sam Okafor">
<meta property="article:published_time" content="2022-03-04T10:42:00+00:00">
<link rel="canonical" href="https://ledger.example/2022/03/04/tram-airport">
</head><body>
<nav><a href="/">Home</a> | <a href="/news">News</a> | <a href="/sport">Sport</a></nav>
<div class="cookie">We use cookies. Accept all?</div>
<article><h1>Tram line opens to the airport</h1>
<p>The new tram line between the city centre and the airport opened to passengers on Friday,
two years after construction began.</p>
<p>The mayor said the line would carry twelve thousand riders a day and cut the journey to
twenty-two minutes.</p>
<p>Sign up for our morning newsletter</p>
<p>Tickets cost the same as a bus fare, and trams will run every eight minutes at peak times,
the transit authority said.</p>
</article>
<footer>Related: <a href="/a">Bus fares rise</a> | <a href="/b">Bridge closes</a> |
<a href="/c">Rail strike</a></footer>
</body></html>"""

FEED = """<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/">
<channel><title>Harbour Gazette</title><link>https://gazette.example/</link>
<item><title>Ferry service resumes after storm</title>
<link>https://gazette.example/ferry</link><guid>https://gazette.example/ferry</guid>
<pubDate>Tue, 03 May 2022 08:15:00 GMT</pubDate>
<description>Short summary only.</description>
<content:encoded><![CDATA[<p>The island ferry resumed service on Tuesday morning after a
three-day suspension caused by the storm.</p><p>Operators said the first crossing carried
140 passengers and a backlog of freight.</p>]]></content:encoded></item>
<item><title>Harbour dredging approved</title><link>https://gazette.example/dredging</link>
<pubDate>Wed, 04 May 2022 09:00:00 GMT</pubDate>
<description>The port authority approved a plan to dredge the harbour channel to allow larger
cargo ships to dock, starting in the autumn.</description></item>
<item><title>Only a title</title><link>https://gazette.example/empty</link></item>
</channel></rss>"""

JSONL_ROWS = [
    {"id": "a1", "headline": "Council approves new library",
     "body": "The city council voted 7-2 on Monday to fund a new public library in the east "
             "district.\n\nConstruction is expected to start next spring and take eighteen "
             "months.",
     "published_at": "2022-04-11T17:00:00Z", "source": {"id": "ct", "name": "City Times"},
     "url": "https://citytimes.example/library", "author": "Dana Lee"},
    {"id": "a2", "headline": "A row with no body"},
]

CSV = ('title,text,date,link,site\n"School buses go electric","The district will replace '
       'forty diesel buses with electric ones by 2024, the school board said on Wednesday.",'
       '2022-06-01,https://valleynews.example/buses,Valley News\n')


def _mixed(folder: Path) -> Path:
    """The seeds, a saved page, a feed, a JSONL and a CSV export in one folder."""
    shutil.copytree(SEEDS, folder)
    (folder / "pages").mkdir()
    (folder / "pages" / "tram.html").write_text(PAGE, "utf-8")
    (folder / "feeds").mkdir()
    (folder / "feeds" / "gazette.xml").write_text(FEED, "utf-8")
    (folder / "exports").mkdir()
    (folder / "exports" / "cms.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in JSONL_ROWS), "utf-8")
    (folder / "exports" / "api.csv").write_text(CSV, "utf-8")
    return folder


def test_every_format_in_one_folder(tmp_path: Path):
    report = scan_corpus(_mixed(tmp_path / "corpus"))
    by_id = {a.id: a for a in report.articles}
    assert report.files == 6 and len(report.articles) == 7
    page = by_id["pages/tram"]
    assert (page.title, page.outlet, page.author) == (
        "Tram line opens to the airport", "Metro Ledger", "Sam Okafor")
    assert page.date.startswith("2022-03-04")
    assert page.url == "https://ledger.example/2022/03/04/tram-airport"
    assert any("twelve thousand riders" in p for p in page.paragraphs)
    assert not any("newsletter" in p or "cookies" in p or "Rail strike" in p
                   for p in page.paragraphs)
    ferry = by_id["feeds/gazette:gazette.example-ferry"]
    assert (ferry.outlet, ferry.date, ferry.url) == (
        "Harbour Gazette", "2022-05-03T08:15:00+00:00", "https://gazette.example/ferry")
    assert len(ferry.paragraphs) == 2 and "Short summary" not in " ".join(ferry.paragraphs)
    dredging = by_id["feeds/gazette:gazette.example-dredging"]  # no content: the summary
    assert "dredge the harbour channel" in dredging.paragraphs[0]
    library = by_id["exports/cms:a1"]
    assert (library.title, library.outlet, library.author, library.date) == (
        "Council approves new library", "City Times", "Dana Lee", "2022-04-11T17:00:00+00:00")
    assert len(library.paragraphs) == 2
    buses = by_id["exports/api:valleynews.example-buses"]
    assert (buses.outlet, buses.date) == ("Valley News", "2022-06-01")
    # Every article whose source states a date is dated; the seeds state none.
    assert all(a.date for a in report.articles if not a.source.startswith("0"))
    skipped = {(p.source, p.row) for p in report.problems}
    assert skipped == {("exports/cms.jsonl", "line 2"), ("feeds/gazette.xml", "entry 3")}


def test_pages_parsed_in_worker_processes_give_the_same_report(tmp_path: Path):
    """A folder big enough for worker processes: pages and feeds parsed there, the rest here,
    and the report (articles, their order, every problem) equals one read all here."""
    folder = _mixed(tmp_path / "corpus")
    for i in range(POOL_MIN):
        (folder / "pages" / f"tram-{i:03d}.html").write_text(
            PAGE.replace("Friday", f"day {i}").replace("tram-airport", f"tram-{i}"), "utf-8")
    (folder / "pages" / "broken.html.gz").write_bytes(b"not gzip")
    (folder / "pages" / "empty.html").write_text("<html><body><nav>Home</nav></body></html>")
    (folder / "pages" / "latin.txt").write_bytes("caf\xe9 ".encode("latin-1") * 20)
    (folder / "feeds" / "bad.xml").write_text("<rss><channel><item>", "utf-8")
    here = scan_corpus(folder, workers=0)
    pooled = scan_corpus(folder, workers=2)
    assert len(here.articles) == POOL_MIN + 7
    assert pooled.articles == here.articles
    assert pooled.problems == here.problems and pooled.files == here.files
    reasons = {p.source: p.reason for p in here.problems if p.kind != "warning"}
    assert {"pages/broken.html.gz", "pages/empty.html", "pages/latin.txt",
            "feeds/bad.xml"} <= set(reasons)


def _where(job: tuple[int, int]) -> tuple[list[int], list[int]]:
    """A parse for `Parsers`: the process it ran in; a worker process dies on the last
    even job."""
    number, parent = job
    if number == POOL_MIN - 2 and os.getpid() != parent:
        os._exit(1)
    return [os.getpid()], [number]


def test_worker_processes_keep_the_walks_order_and_survive_a_dead_worker():
    jobs = [(i, os.getpid()) for i in range(POOL_MIN)]
    walk = [(f"file-{i}", job, []) for i, job in enumerate(jobs)]
    with Parsers(len(walk), _where, offload=lambda job: job[0] % 2 == 0, workers=2) as parsers:
        out = list(parsers.in_order(walk))
    assert [name for name, _, _ in out] == [name for name, _, _ in walk]
    assert [notes for _, _, notes in out] == [[i] for i in range(POOL_MIN)]
    pids = [items[0] for _, items, _ in out]
    assert all(pid == os.getpid() for pid in pids[1::2])  # not offloaded: parsed here
    # Job 0 was collected long before the last jobs went out (a bounded window ahead).
    assert pids[0] != os.getpid()  # offloaded
    assert pids[-2] == os.getpid()  # the job its worker died on: parsed here


def test_mixed_folder_indexes_in_one_run(tmp_path: Path, embedder: Embedder, capsys,
                                         monkeypatch):
    corpus = _mixed(tmp_path / "corpus")
    monkeypatch.setenv("BYLINE_INDEX_DIR", str(tmp_path / "idx"))
    assert main(["index", str(corpus)]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("Indexed 7 articles from 6 files; skipped 2 rows or entries.")
    assert "byline: skipped exports/cms.jsonl (line 2): no text" in err.splitlines()
    assert main(["ask", "--json", "how", "many", "riders", "will", "the", "tram", "carry"]) == 0
    top = json.loads(capsys.readouterr().out)["results"][0]
    assert top["citation"]["outlet"] == "Metro Ledger"
    assert top["citation"]["url"] == "https://ledger.example/2022/03/04/tram-airport"
    assert main(["sources", "--json", "--sort", "date"]) == 0
    dates = [a["date"] for a in json.loads(capsys.readouterr().out)]
    assert dates[0].startswith("2022-06-01") and dates[-2:] == [None, None]
    # --strict: the two skipped rows fail the run, and the index stays as it was.
    before = {p: p.read_bytes() for p in (tmp_path / "idx").rglob("*") if p.is_file()}
    assert main(["index", "--strict", str(corpus)]) == 1
    assert "--strict" in capsys.readouterr().err
    assert {p: p.read_bytes() for p in (tmp_path / "idx").rglob("*") if p.is_file()} == before


def test_multi_article_files_reindex_incrementally(tmp_path: Path, embedder: Embedder):
    corpus = _mixed(tmp_path / "corpus")
    first = index_corpus(corpus, tmp_path / "idx", embedder, progress=False)
    rows = [*JSONL_ROWS, {"id": "a3", "title": "Pool reopens", "text":
                          "The municipal pool reopened on Saturday after a summer of repairs "
                          "to its roof and heating."}]
    (corpus / "exports" / "cms.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in rows), "utf-8")
    second = index_corpus(corpus, tmp_path / "idx", embedder, progress=False)
    assert len(second) == len(first) + 1 and second.reused == len(first)
    ids = {a.id for a in second.articles()}
    assert {"exports/cms:a1", "exports/cms:a3"} <= ids


def test_links_out_of_the_folder_fifos_and_clashing_ids(tmp_path: Path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    story = "Bridge reopens\n\nThe Old Mill bridge reopened on Wednesday after repairs.\n"
    (corpus / "x.txt").write_text(story, "utf-8")
    (corpus / "x.md").write_text(story.replace("Wednesday", "Thursday"), "utf-8")
    (corpus / "a b.txt").write_text(story.replace("Old Mill", "Ferry Lane"), "utf-8")
    (corpus / "a-b.txt").write_text(story.replace("Old Mill", "Quay Road"), "utf-8")
    (tmp_path / "secret.txt").write_text("Secret\n\nThis text lives outside the corpus.\n")
    os.symlink(tmp_path / "secret.txt", corpus / "outside.txt")
    os.symlink(corpus / "x.txt", corpus / "inside.txt")  # a link within the folder is fine
    os.mkfifo(corpus / "pipe.txt")
    (corpus / "empty.txt").write_text("", "utf-8")
    (corpus / "title-only.md").write_text("# Just a headline\n", "utf-8")
    start = time.monotonic()
    report = scan_corpus(corpus)
    assert time.monotonic() - start < 30  # the FIFO was not opened (it would block forever)
    ids = [a.id for a in report.articles]
    assert len(ids) == len(set(ids)) == 5
    assert {i.split("~")[0] for i in ids} == {"x", "a-b", "inside"}
    assert not any("outside the corpus" in p for a in report.articles for p in a.paragraphs)
    reasons = {p.source: (p.kind, p.reason) for p in report.problems}
    assert "outside the corpus folder" in reasons["outside.txt"][1]
    assert "not a regular file" in reasons["pipe.txt"][1]
    assert reasons["empty.txt"][0] == reasons["title-only.md"][0] == "empty"
    assert any("share the id 'x'" in p.reason for p in report.problems)
    assert "skipped 2 files; 2 with no article text" in report.summary()
    with pytest.raises(CorpusError, match="--strict"):
        load_corpus(corpus, strict=True)


def test_huge_line_and_huge_file_are_bounded(tmp_path: Path):
    sentence = "The committee met again on Tuesday to review the budget in detail. "
    (tmp_path / "long-line.txt").write_text("Budget\n\n" + sentence * 30_000, "utf-8")
    (tmp_path / "huge.txt").write_text("Huge\n\n" + (sentence * 20 + "\n\n") * 40_000, "utf-8")
    start = time.monotonic()
    report = scan_corpus(tmp_path)
    assert time.monotonic() - start < 60
    long_line = next(a for a in report.articles if a.id == "long-line")
    assert max(map(len, long_line.paragraphs)) <= PARAGRAPH_MAX
    assert len(long_line.paragraphs) > 100
    huge = next(a for a in report.articles if a.id == "huge")
    assert sum(map(len, huge.paragraphs)) <= 500_000
    assert any(p.source == "huge.txt" and "cut to its first" in p.reason
               for p in report.problems)


def test_header_values_are_made_safe(tmp_path: Path):
    (tmp_path / "a.txt").write_text(
        "Outlet: The \x1b[31mRed\x1b[0m Times\nDate: not-a-date\nURL: javascript:alert(1)\n\n"
        "Title with \x1b]0;pwned\x07escape\n\nThe council approved the plan on Monday.\n",
        "utf-8")
    (tmp_path / "b.txt").write_text(
        f"URL: https://example.com/{'x' * 5000}\nDate: March 4, 2022\n\nB\n\n"
        "The council approved the plan on Monday evening.\n", "utf-8")
    a, b = load_corpus(tmp_path)
    assert (a.outlet, a.date, a.url, a.title) == ("The Red Times", None, None,
                                                  "Title with escape")
    assert (b.url, b.date) == (None, "2022-03-04")


@pytest.mark.parametrize(("value", "iso"), [
    ("2024-05-01", "2024-05-01"),
    ("2024-05-01T09:30:00Z", "2024-05-01T09:30:00+00:00"),
    ("Fri, 04 Mar 2022 10:42:00 GMT", "2022-03-04T10:42:00+00:00"),
    ("March 4, 2022", "2022-03-04"),
    ("4 Mar 2022 10:42 AM", "2022-03-04T10:42:00"),
    ("2022/03/04", "2022-03-04"),
    (1646390520, "2022-03-04T10:42:00+00:00"),
    ("not-a-date", None), ("Thursday", None), ("12", None), ("", None),
])
def test_dates_are_iso_8601_or_nothing(value: object, iso: str | None):
    assert parse_date(value) == iso


def test_text_and_url_cleaning():
    assert clean_text("a\tb\x00c\u200bd  e") == "a b c d e"
    assert len(clean_text("word " * 200, 50)) <= 50
    assert clean_url("https://ok.example/a?b=1") == "https://ok.example/a?b=1"
    for bad in ("javascript:alert(1)", "ftp://x.example/", "//x.example", "https://",
                "https://x.example/\x00", "data:text/html,hi"):
        assert clean_url(bad) is None


def test_dateline_dates_a_text_file(tmp_path: Path):
    (tmp_path / "a.txt").write_text(
        "Mayor resigns\n\nUpdated 10:42 AM ET, Fri March 4, 2022\n\n"
        "The mayor resigned on Friday after a week of protests over the budget.\n", "utf-8")
    [a] = load_corpus(tmp_path)
    assert a.date == "2022-03-04"  # the written time ("ET") has no usable zone


def test_gzipped_page_and_page_saved_as_txt(tmp_path: Path):
    (tmp_path / "tram.html.gz").write_bytes(gzip.compress(PAGE.encode()))
    (tmp_path / "saved.txt").write_text(PAGE.replace("tram-airport", "saved"), "utf-8")
    (tmp_path / "bad.html.gz").write_bytes(b"not gzip at all")
    report = scan_corpus(tmp_path)
    assert {a.id: a.outlet for a in report.articles} == {"tram": "Metro Ledger",
                                                         "saved": "Metro Ledger"}
    assert [(p.source, p.reason) for p in report.problems] == [
        ("bad.html.gz", "not a valid .gz file")]


def test_bad_exports_and_feeds_are_skipped_with_a_reason(tmp_path: Path):
    (tmp_path / "ok.txt").write_text("Ok\n\nThe council approved the plan on Monday.\n")
    (tmp_path / "broken.jsonl").write_text('{"title": "x", "text": "fine text here."}\n{oops\n')
    (tmp_path / "broken.json").write_text("[1, 2")
    (tmp_path / "notafeed.xml").write_text("<config><a>1</a></config>")
    (tmp_path / "latin.txt").write_bytes("Café\n\nLe café a fermé lundi.".encode("latin-1"))
    report = scan_corpus(tmp_path)
    assert [a.id for a in report.articles] == ["ok"]
    reasons = {p.source: p.reason for p in report.problems}
    assert reasons["broken.jsonl"].startswith("line 2 is not JSON")
    assert reasons["broken.json"].startswith("not JSON")
    assert reasons["notafeed.xml"].startswith("not an RSS or Atom feed")
    assert reasons["latin.txt"].startswith("not UTF-8 text")


def test_fetched_pages_cite_the_recorded_url(tmp_path: Path):
    page = PAGE.replace('<link rel="canonical" href="https://ledger.example/2022/03/04/'
                        'tram-airport">', "")
    (tmp_path / "ledger.example").mkdir()
    (tmp_path / "ledger.example" / "tram.html").write_text(page, "utf-8")
    (tmp_path / ".byline-sources.json").write_text(json.dumps({"version": 1, "files": {
        "ledger.example/tram.html": {"url": "https://ledger.example/tram"}}}))
    [a] = load_corpus(tmp_path)
    assert a.url == "https://ledger.example/tram"


def test_extract_command_prints_one_json_object_per_article(tmp_path: Path, capsys):
    corpus = _mixed(tmp_path / "corpus")
    assert main(["extract", "--json", str(corpus / "feeds" / "gazette.xml")]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["title"] for r in rows] == ["Ferry service resumes after storm",
                                          "Harbour dredging approved"]
    assert set(rows[0]) == {"source", "id", "title", "date", "outlet", "url", "author",
                            "paragraphs"}
    assert main(["extract", "--json", str(corpus)]) == 0
    out, err = capsys.readouterr()
    assert len(out.splitlines()) == 7 and "line 2" in err
    assert main(["extract", str(tmp_path / "missing.html")]) == 1
    assert "not a readable file" in capsys.readouterr().err


def test_json_lines_saved_as_json_and_a_wrapped_json_list(tmp_path: Path):
    rows = [{"title": f"Story {i}", "text": f"The council met on day {i} and approved the "
             "new budget after a long debate."} for i in range(2)]
    (tmp_path / "lines.json").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "wrapped.json").write_text(json.dumps({"status": "ok", "articles": rows},
                                                      indent=2))
    ids = sorted(a.id for a in load_corpus(tmp_path))
    assert ids == ["lines:row-1", "lines:row-2", "wrapped:row-1", "wrapped:row-2"]
