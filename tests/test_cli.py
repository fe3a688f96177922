"""The `byline` command: JSON contract, human output, and every bad-input case."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from retrieval.cli.main import main

from .support.paths import BYLINE, ROOT, SEEDS


def _snapshot(index_dir: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in index_dir.rglob("*") if p.is_file()}


def _run(*args: str, index_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "BYLINE_INDEX_DIR": str(index_dir)}
    return subprocess.run([str(BYLINE), *args], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=300)


@pytest.fixture
def index_dir(seed_index_dir: Path, tmp_path: Path, monkeypatch) -> Path:
    """A private copy of the seed index, selected through the environment."""
    dst = tmp_path / "index"
    shutil.copytree(seed_index_dir, dst)
    monkeypatch.setenv("BYLINE_INDEX_DIR", str(dst))
    monkeypatch.chdir(ROOT)
    return dst


def _check_schema(data: dict) -> None:
    assert set(data) == {"question", "answered", "results"}
    assert isinstance(data["question"], str) and isinstance(data["answered"], bool)
    for n, r in enumerate(data["results"], start=1):
        assert set(r) == {"rank", "score", "id", "text", "quote", "quote_from", "citation"}
        assert r["rank"] == n and isinstance(r["score"], float)
        assert all(isinstance(r[k], str) and r[k] for k in ("id", "text", "quote"))
        assert r["quote_from"] in ("text", "headline")
        c = r["citation"]
        assert set(c) == {"title", "source", "paragraph", "outlet", "date", "url", "also_in"}
        assert c["also_in"] == []  # the seeds hold no copies of each other
        assert isinstance(c["title"], str) and isinstance(c["source"], str)
        assert isinstance(c["paragraph"], int) and c["paragraph"] >= 1
        assert all(c[k] is None or isinstance(c[k], str) for k in ("outlet", "date", "url"))


def test_console_script_json_answer(index_dir: Path):
    proc = _run("ask", "--json", "-k", "3", "why was the trip cancelled", index_dir=index_dir)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)  # exactly one JSON object on stdout
    _check_schema(data)
    assert data["answered"] is True and len(data["results"]) == 3
    first = data["results"][0]
    assert first["citation"]["title"] == "Trump Calls Off Pompeo's North Korea Trip"
    assert first["citation"]["source"] == "000_94a4140cf05cdf3f.txt"
    assert first["quote"] in first["text"]


def test_console_script_refuses_off_topic(index_dir: Path):
    proc = _run("ask", "--json", "What is the capital of France?", index_dir=index_dir)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    _check_schema(data)
    assert data == {"question": "What is the capital of France?", "answered": False,
                    "results": []}


def test_ask_starts_without_heavy_imports(index_dir: Path):
    # Cold start: answering from a saved index needs neither bm25s (and the scipy it
    # imports) nor torch; those are for building.
    code = ("import sys; from retrieval.cli.main import main; main(['ask', '--json', 'why was the "
            "trip cancelled']); print(sorted(m for m in ('scipy', 'bm25s', 'torch', "
            "'sentence_transformers', 'transformers') if m in sys.modules), file=sys.stderr)")
    env = {**os.environ, "BYLINE_INDEX_DIR": str(index_dir)}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["answered"] is True
    assert proc.stderr.strip().splitlines()[-1] == "[]"


def test_human_output(index_dir: Path, capsys):
    assert main(["ask", "-k", "2", "Where", "did", "Pompeo", "fly", "after", "Hanoi?"]) == 0
    out = capsys.readouterr().out
    assert "Q: Where did Pompeo fly after Hanoi?" in out
    assert "[1]" in out and "[2]" in out and "[3]" not in out
    assert "¶4 (003_0c19cdefe2f9ba84.txt)" in " ".join(out.split())


def test_human_output_not_covered(index_dir: Path, capsys):
    assert main(["ask", "How do I bake sourdough bread?"]) == 0
    assert "does not answer" in capsys.readouterr().out


def test_sources(index_dir: Path, capsys):
    assert main(["sources", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["id"], r["passages"]) for r in rows] == [
        ("000_94a4140cf05cdf3f", 11), ("003_0c19cdefe2f9ba84", 9)]


def test_ask_without_index_builds_from_seeds(tmp_path: Path, monkeypatch, capsys):
    monkeypatch.setenv("BYLINE_INDEX_DIR", str(tmp_path / "fresh"))
    monkeypatch.chdir(ROOT)
    assert main(["ask", "--json", "why was the trip cancelled"]) == 0
    captured = capsys.readouterr()
    assert "building one from seeds" in captured.err
    assert json.loads(captured.out)["answered"] is True
    assert (tmp_path / "fresh" / "manifest.json").is_file()


def test_index_command(tmp_path: Path, monkeypatch, capsys):
    monkeypatch.setenv("BYLINE_INDEX_DIR", str(tmp_path / "idx"))
    assert main(["index", str(SEEDS), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert (summary["articles"], summary["passages"]) == (2, 20)


# -- bad input: one clear line on stderr, non-zero exit, index untouched ----------------

def _bad_corpus(tmp_path: Path, kind: str) -> Path:
    folder = tmp_path / kind
    if kind == "missing":
        return folder
    folder.mkdir()
    if kind == "non-utf8":
        (folder / "a.txt").write_bytes(b"Title\n\nCaf\xe9 closed on Monday after a fire.")
    elif kind == "unreadable":
        os.symlink(folder / "nothing-here.txt", folder / "a.txt")
    return folder


@pytest.mark.parametrize(("argv", "message"), [
    (["ask", ""], "The question is empty"),
    (["ask", "   "], "The question is empty"),
    (["ask", "x" * 1001], "the limit is 1,000"),
    (["ask", "-k", "0", "why"], "-k must be between 1 and 20"),
    (["ask", "caf\udcff"], "not valid UTF-8"),  # how Python passes argv byte 0xff
])
def test_bad_question(index_dir: Path, capsys, argv: list[str], message: str):
    before = _snapshot(index_dir)
    assert main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err and "Traceback" not in err
    assert _snapshot(index_dir) == before


@pytest.mark.parametrize(("kind", "message"), [
    ("missing", "does not exist"),
    ("empty", "has no articles"),
    ("non-utf8", "not UTF-8"),
    ("unreadable", "cannot be read"),
])
def test_bad_corpus(index_dir: Path, tmp_path: Path, capsys, kind: str, message: str):
    before = _snapshot(index_dir)
    assert main(["index", str(_bad_corpus(tmp_path, kind))]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("byline: ") and message in err and "\n" not in err
    assert _snapshot(index_dir) == before


def test_corrupt_index_message(index_dir: Path, capsys):
    (index_dir / "manifest.json").write_text("]]")
    assert main(["ask", "why was the trip cancelled"]) == 1
    err = capsys.readouterr().err.strip()
    manifest = index_dir / "manifest.json"
    assert err == (f"byline: The index manifest {manifest} is damaged (not valid JSON); "
                   "run `byline index --full` to rebuild it.")


def test_model_mismatch_message(index_dir: Path, capsys):
    assert main(["--model", "some-other-model", "sources"]) == 1
    err = capsys.readouterr().err.strip()
    assert "built with model 'all-MiniLM-L6-v2'" in err and "\n" not in err


def test_env_file_is_read_from_the_working_folder(tmp_path: Path, seed_index_dir: Path):
    """A `.env` beside where byline runs (not the checkout's) sets its index folder."""
    index = tmp_path / "index"
    shutil.copytree(seed_index_dir, index)
    (tmp_path / ".env").write_text(f"BYLINE_INDEX_DIR={index}\n", "utf-8")
    env = {k: v for k, v in os.environ.items() if k != "BYLINE_INDEX_DIR"}
    done = subprocess.run([str(BYLINE), "sources", "--json"], capture_output=True, text=True,
                          env=env, cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr
    assert len(json.loads(done.stdout)) == 2


def test_ask_never_builds_over_an_index_that_lost_its_manifest(index_dir: Path, capsys):
    (index_dir / "manifest.json").unlink()
    before = _snapshot(index_dir)
    assert main(["ask", "why was the trip cancelled"]) == 1
    err = capsys.readouterr().err.strip()
    assert err == (f"byline: The index at {index_dir} has lost its manifest.json; "
                   "run `byline index --full` to rebuild it.")
    assert _snapshot(index_dir) == before


def test_progress_off_a_terminal_is_a_line_per_tenth_with_the_time_left():
    """An hour of indexing in a log or a pipe is never silent: ten lines, each with the rate
    and the time left, the last without."""
    import io

    from retrieval.progress import plain_progress

    now = [0.0]
    out = io.StringIO()
    with plain_progress("Embedding 1,000 passages", 1000, out, clock=lambda: now[0]) as step:
        for _ in range(100):
            now[0] += 1.0
            step(10)
    lines = out.getvalue().splitlines()
    assert len(lines) == 10
    assert lines[0] == "Embedding 1,000 passages: 10% (100) in 10s, 10/s, about 1m 30s left"
    assert lines[-1] == "Embedding 1,000 passages: 100% (1,000) in 1m 40s, 10/s"
