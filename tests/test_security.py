"""What an untrusted page, file or folder can say about itself (issue 21, first items): a
title cannot make a link of its own, a file name cannot write to the terminal, and a `.env`
outside the working folder is not read."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from bot.render import cite, markdown_link, safe
from retrieval.corpus import Passage

from .conftest import SEEDS
from .test_cli import BYLINE

REAL = "https://news.example/budget"
# Titles an attacker would write: closing the link early, a second link, escaped brackets,
# nested ones, a link in angle brackets, and a backslash before the bracket.
HOSTILE_TITLES = [
    "Council passes budget](https://evil.example/phish) [.",
    "[Click](https://evil.example) here",
    "a \\](https://evil.example) b",
    "a \\\\](https://evil.example) [b",
    "[[x]](https://evil.example)]",
    "x ] (https://evil.example) [",
    "]]]]((https://evil.example))[[[",
    "<https://evil.example> ](https://evil.example)",
]


def links(markdown: str) -> list[str]:
    """The URLs of the masked links Discord would render: `[text](url)` whose brackets are
    not escaped (an odd run of backslashes before a bracket escapes it)."""
    found, depth, start = [], 0, None
    i = 0
    while i < len(markdown):
        c = markdown[i]
        if c == "\\":
            i += 2
            continue
        if c == "[":
            depth += 1
            start = i if depth == 1 else start
        elif c == "]" and depth:
            depth -= 1
            if depth == 0 and markdown.startswith("(", i + 1):
                end = markdown.find(")", i + 2)
                if end > 0:
                    found.append(markdown[i + 2:end])
                    i = end
        i += 1
    return found


@pytest.mark.parametrize("title", HOSTILE_TITLES)
def test_a_title_cannot_link_anywhere_but_its_article(title: str):
    assert links(markdown_link(safe(title), REAL)) == [REAL]
    passage = Passage(id="a#1", article_id="a", title=title, text=title, paragraph=1,
                      url=REAL, source="a.txt")
    assert links(cite(passage)) == [REAL]
    assert links(safe(title)) == []  # quoted text links nowhere


def test_the_link_parser_sees_the_links_an_attacker_wants():
    """The check above is worth something only if it finds injected links when unescaped."""
    from discord.utils import escape_markdown

    evil = ["https://evil.example/phish", REAL]
    assert links(markdown_link(HOSTILE_TITLES[0], REAL)) == evil
    assert links(markdown_link(escape_markdown(HOSTILE_TITLES[0]), REAL)) == evil  # before
    assert links("[a](x) \\[b](y) \\\\[c](z)") == ["x", "z"]


def test_a_file_name_cannot_write_to_the_terminal(tmp_path: Path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    name = "evil\x1b[31mred\x07\nFAKE: all is well\r.txt"
    shutil.copy(next(SEEDS.glob("*.txt")), corpus / name)
    env = {**os.environ, "BYLINE_INDEX_DIR": str(tmp_path / "idx"), "COLUMNS": "400"}
    for args in (["index", str(corpus)], ["sources"], ["ask", "why was the trip cancelled"]):
        done = subprocess.run([str(BYLINE), *args], capture_output=True, text=True, env=env,
                              cwd=tmp_path, timeout=300)
        assert done.returncode == 0, done.stderr
        for out in (done.stdout, done.stderr):
            assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f]", out), repr(out)
            assert not re.search(r"^\W*FAKE", out, re.MULTILINE), out


def test_a_dotenv_in_a_parent_folder_is_not_read(tmp_path: Path):
    """A `.env` planted in a shared parent folder would set BYLINE_STORE or DISCORD_TOKEN."""
    (tmp_path / ".env").write_text(f"BYLINE_INDEX_DIR={tmp_path / 'planted'}\n", "utf-8")
    work = tmp_path / "work"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "BYLINE_INDEX_DIR"}
    done = subprocess.run([str(BYLINE), "sources"], capture_output=True, text=True, env=env,
                          cwd=work, timeout=300)
    assert "planted" not in done.stdout + done.stderr
    assert not (tmp_path / "planted").exists()


# -- the store's password (item 7) ----------------------------------------------------------

SECRET_URLS = [  # passwords left unescaped, and libpq's key=value form
    ("postgresql://byline:pa:ss/word@db.internal:5432/byline", ["pa:ss", "word"]),
    ("postgresql://byline:p@ssw0rd@db.internal/byline", ["p@ss", "ssw0rd"]),
    ("postgres://byline:s3cr?t#x@db.internal/byline?sslmode=require", ["s3cr", "t#x"]),
    ("host=db.internal dbname=byline user=byline password=s3cret", ["s3cret"]),
]


@pytest.mark.parametrize(("url", "secrets"), SECRET_URLS)
def test_a_store_is_shown_by_host_and_database_only(url: str, secrets: list[str]):
    from retrieval.store.base import describe_location, is_url

    assert is_url(url)
    shown = describe_location(url)
    assert shown.startswith("postgresql://db.internal") and shown.endswith("/byline")
    assert not any(s in shown for s in secrets) and "byline@" not in shown


@pytest.mark.parametrize(("url", "secrets"), SECRET_URLS[:3])
def test_a_store_that_cannot_be_reached_never_echoes_its_password(url: str, secrets):
    """libpq's own message quotes what it mis-read (a port of "pa:ss", a host of "ss@db")."""
    from retrieval.errors import StoreError
    from retrieval.store.postgres.connect import connect

    local = url.replace("db.internal:5432", "127.0.0.1:9").replace("db.internal", "127.0.0.1:9")
    with pytest.raises(StoreError) as caught:
        connect(local)
    assert not any(s in str(caught.value) for s in secrets), caught.value
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("store", ["postgresql+psycopg://byline:s3cret@127.0.0.1:9/byline",
                                   "host=127.0.0.1 port=9 dbname=byline password=s3cret"])
def test_another_form_of_store_url_is_never_a_folder(tmp_path: Path, store: str):
    """Taken for a folder, the URL became part of "No index at ..." and of a folder's name."""
    done = subprocess.run([str(BYLINE), "sources", "--store", store], capture_output=True,
                          text=True, cwd=tmp_path, timeout=300)
    assert done.returncode != 0
    assert "s3cret" not in done.stdout + done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert list(tmp_path.iterdir()) == []


# -- files at rest (item 9) -----------------------------------------------------------------

def test_the_feedback_store_keeps_no_salt_and_is_private(tmp_path: Path):
    import sqlite3
    import stat

    from retrieval.feedback import FeedbackStore, salt_path

    old = os.umask(0o022)  # what a shell usually has
    try:
        store = FeedbackStore(tmp_path / "fb.sqlite")
        store.record(store.remember("q", ["a#1"]), "up", 1234)
        store.close()
    finally:
        os.umask(old)
    salt = salt_path(tmp_path / "fb.sqlite").read_text().strip()
    for path in (tmp_path / "fb.sqlite", salt_path(tmp_path / "fb.sqlite")):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert salt.encode() not in (tmp_path / "fb.sqlite").read_bytes()
    with sqlite3.connect(tmp_path / "fb.sqlite") as db:
        assert db.execute("SELECT count(*) FROM meta WHERE key='salt'").fetchone() == (0,)


def test_an_older_feedback_store_keeps_its_hashes_and_loses_its_salt(tmp_path: Path):
    import sqlite3

    from retrieval.feedback import FeedbackStore, salt_path

    path = tmp_path / "fb.sqlite"
    store = FeedbackStore(path)
    store.record(store.remember("q", ["a#1"]), "up", 1234)
    before = store.hash_user(1234)
    store.close()
    salt = salt_path(path).read_text().strip()
    with sqlite3.connect(path) as db:  # as an older Byline kept it: inside
        db.execute("INSERT INTO meta VALUES ('salt', ?)", (salt,))
    db.close()
    salt_path(path).unlink()
    again = FeedbackStore(path)
    assert again.hash_user(1234) == before
    again.close()
    assert salt_path(path).read_text().strip() == salt
    assert salt.encode() not in path.read_bytes()


def test_what_byline_writes_is_private_to_its_user(tmp_path: Path):
    """An index built by `byline index` under a permissive umask: no file or folder that
    another user could read."""
    import stat

    env = {**os.environ, "BYLINE_INDEX_DIR": str(tmp_path / "idx")}
    done = subprocess.run(["sh", "-c", f'umask 022 && exec "{BYLINE}" index "{SEEDS}"'],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr
    made = [tmp_path / "idx", *(tmp_path / "idx").rglob("*")]
    assert len(made) > 5
    for path in made:
        assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, path


# -- an export row cannot displace a file (item 6) ------------------------------------------

def test_an_export_row_never_takes_a_files_id(tmp_path: Path):
    import json

    from retrieval.corpus import load_corpus

    body = "The council approved the budget on Tuesday after a long debate about roads."
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "b.txt").write_text(f"Real file\n\n{body}\n", "utf-8")
    rows = [{"id": "b", "title": "Row b", "text": "A row about ferries sailing again soon."},
            {"id": "../a/b", "title": "Row up", "text": "A row about the harbour wall repairs."}]
    (tmp_path / "a.json").write_text(json.dumps(rows), "utf-8")
    articles = load_corpus(tmp_path)
    titles = {a.title: a.id for a in articles}
    assert set(titles) == {"Real file", "Row b", "Row up"}
    assert len(set(titles.values())) == 3 and titles["Real file"] == "a/b"
