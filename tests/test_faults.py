"""The fault suite: the index store and the feedback store under concurrent writers,
`kill -9`, damaged files, a full disk, missing permissions and readers racing re-indexes.

Everything runs as real `byline` processes (this checkout's code) on real files of small
generated corpora. An index is "right" when it loads with every checksum verified and its
content (passages, ids, vectors, postings, background; not its generation name or build
time) equals that of an index built once from scratch from the same corpus.

The many-round cases are marked `faults` and run by `make faults`; `make test` runs the
rest. The full-disk cases mount a small tmpfs, so they need root (skipped with the reason
otherwise). The permission cases run the child as a user the permission bits apply to:
`nobody` when root and `nobody` can run this Python, else root without CAP_DAC_OVERRIDE
and CAP_DAC_READ_SEARCH, or simply ourselves when not root (see faults.restricted).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from retrieval.errors import IndexCorrupt, IndexMissing
from retrieval.search.feedback import FeedbackError, FeedbackStore
from retrieval.store.manifest import MANIFEST

from .support.faults import (
    QUESTION,
    appeared,
    byline,
    content,
    copy_index,
    fill,
    free_bytes,
    garble,
    generations,
    leftovers,
    lock_held,
    names,
    one_line_error,
    restricted,
    run,
    shared_folder,
    snapshot,
    spawn,
    tmpfs,
    wait_for,
    write_corpus,
)

ARTICLES = 40  # three passages each: 120 passages, about a second to embed on one core

# Every file of a generation (a new kind of file must be added here, and so gets tested).
FILES = ["bm25/data.csc.index.npy", "bm25/indices.csc.index.npy", "bm25/indptr.csc.index.npy",
         "bm25/lengths.index.npy", "bm25/params.index.json", "bm25/vocab.index.json", "meta.sqlite",
         "sentences/offsets.npy", "sentences/spans.npy", "sentences/vectors.npy",
         "tokens/offsets.npy", "tokens/scales.npy", "tokens/spans.npy", "tokens/vectors.npy",
         "vectors/passages.npy", "vectors/probes.npy"]


@pytest.fixture(scope="session")
def world():
    """A session folder an unprivileged child can read too (pytest's tmp_path is ours
    alone)."""
    with shared_folder() as folder:
        yield folder


@pytest.fixture(scope="session")
def corpora(world: Path) -> dict[int, Path]:
    return {v: write_corpus(world / f"corpus-v{v}", ARTICLES, v) for v in (1, 2)}


@pytest.fixture(scope="session")
def clean(world: Path, corpora: dict[int, Path]) -> dict[int, tuple[Path, dict]]:
    """Each corpus version built once from scratch by `byline index --full`: the folder
    and its content."""
    out = {}
    for v, corpus in corpora.items():
        folder = world / f"clean-v{v}"
        done = byline(folder, "index", "--full", "--json", str(corpus))
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["passages"] == (120 if v == 1 else 111)
        out[v] = folder, content(folder)
    return out


def fresh(clean: dict, version: int, dst: Path) -> Path:
    """A private copy of the clean index of `version`."""
    return copy_index(clean[version][0], dst)


def reused(done: subprocess.CompletedProcess) -> int:
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)["reused"]


def test_the_suite_covers_every_kind_of_index_file(clean):
    folder, _ = clean[1]
    manifest = json.loads((folder / MANIFEST).read_text())
    assert sorted(manifest["files"]) == FILES


# -- paths that are not index folders -------------------------------------------------------

@pytest.mark.parametrize("args", [["ask", QUESTION], ["sources"], ["check"], ["check", "--json"],
                                  ["timeline", "bridge"], ["index"]])
def test_index_dir_naming_a_file(tmp_path: Path, corpora, args: list[str]):
    path = tmp_path / "not-a-folder"
    path.write_text("notes\n")
    if args == ["index"]:
        args = ["index", str(corpora[1])]
    done = byline(path, *args)
    if args == ["check", "--json"]:
        assert done.returncode == 1
        report = json.loads(done.stdout)
        assert not report["ok"] and not report["damaged"]
        assert "is a file, not an index folder" in report["problems"][0]
    else:
        err = one_line_error(done, f"{path} is a file, not an index folder")
        assert "damaged" not in err
    assert path.read_text() == "notes\n"


def test_a_lost_manifest_is_never_built_over(tmp_path: Path, clean, corpora):
    index = fresh(clean, 1, tmp_path / "idx")
    (index / MANIFEST).unlink()
    before = snapshot(index)
    one_line_error(byline(index, "ask", QUESTION), f"The index at {index} has lost its "
                   "manifest.json; run `byline index --full` to rebuild it.")
    assert snapshot(index) == before  # ask built nothing over it
    check = byline(index, "check")
    assert check.returncode == 1 and "lost its manifest.json" in check.stderr
    # Asked to, `index` rebuilds it from scratch (nothing of the old one can be trusted).
    done = byline(index, "index", "--json", str(corpora[1]))
    assert reused(done) == 0 and "lost its manifest.json" in done.stderr
    assert content(index) == clean[1][1]
    assert len(generations(index)) == 1  # the unnamed old generation was removed


def test_check_exit_codes_and_the_damaged_file_named(tmp_path: Path, clean):
    index = fresh(clean, 1, tmp_path / "idx")
    ok = byline(index, "check")
    assert ok.returncode == 0 and ok.stdout.rstrip().endswith("OK") and not ok.stderr
    report = json.loads(byline(index, "check", "--json").stdout)
    assert report["ok"] and {f["status"] for f in report["files"]} == {"ok"}
    assert sorted(f["path"].split("/", 1)[1] for f in report["files"]) == FILES

    gen = report["generation"]
    garble(index / f"gen-{gen}" / "meta.sqlite")
    bad = byline(index, "check")
    assert bad.returncode == 1
    assert f"wrong checksum: gen-{gen}/meta.sqlite" in bad.stdout
    assert f"gen-{gen}/meta.sqlite does not match its checksum" in bad.stderr
    assert "Traceback" not in bad.stderr
    report = json.loads(byline(index, "check", "--json").stdout)
    assert not report["ok"] and report["damaged"]
    assert [f["path"] for f in report["files"] if f["status"] != "ok"] == [
        f"gen-{gen}/meta.sqlite"]

    missing = byline(tmp_path / "nowhere", "check")
    err = one_line_error(missing, "No index at")
    assert "damaged" not in err


# -- damaged files ---------------------------------------------------------------------------

def _damage(index: Path, name: str, how: str) -> str:
    """Damage one file of the index (`name` relative to the generation folder, or the
    manifest); returns the path an error must name."""
    if name == MANIFEST:
        path, shown = index / MANIFEST, MANIFEST
    else:
        gen = json.loads((index / MANIFEST).read_text())["generation"]
        shown = f"gen-{gen}/{name}"
        path = index / shown
    if how == "garbled":
        garble(path)
    else:
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return shown


@pytest.mark.parametrize("name", [*FILES, MANIFEST])
def test_garbage_in_a_file_is_detected_and_named(tmp_path: Path, clean, name: str):
    """Same-size garbage: only the checksums can tell, and an answer from such a file
    could be silently different. Never an answer: one line naming the file."""
    index = fresh(clean, 1, tmp_path / "idx")
    shown = _damage(index, name, "garbled")
    ask = byline(index, "ask", "--json", QUESTION)
    one_line_error(ask, shown, "run `byline index --full` to rebuild it")
    assert ask.stdout == ""
    check = byline(index, "check")
    assert check.returncode == 1 and "Traceback" not in check.stderr
    assert shown in check.stdout + check.stderr


@pytest.mark.faults
@pytest.mark.parametrize("name", [*FILES, MANIFEST])
def test_a_truncated_file_is_detected_and_named(tmp_path: Path, clean, name: str):
    index = fresh(clean, 1, tmp_path / "idx")
    shown = _damage(index, name, "truncated")
    one_line_error(byline(index, "ask", "--json", QUESTION), shown)
    check = byline(index, "check")
    assert check.returncode == 1 and shown in check.stdout + check.stderr


@pytest.mark.faults
@pytest.mark.parametrize("name", FILES)
def test_reindex_over_a_damaged_file_rebuilds_from_scratch(tmp_path: Path, clean, corpora,
                                                           name: str):
    """No vector of a damaged index is reused: one warning naming the file, then a full
    build equal to a clean one."""
    index = fresh(clean, 1, tmp_path / "idx")
    shown = _damage(index, name, "garbled")
    done = byline(index, "index", "--json", str(corpora[2]))
    assert reused(done) == 0
    warning = done.stderr.strip()
    assert "\n" not in warning and shown in warning and "from scratch" in warning
    assert content(index) == clean[2][1]
    assert byline(index, "check").returncode == 0


# -- leftovers, the writer lock --------------------------------------------------------------

def test_leftovers_of_killed_saves_go_with_the_next_save(tmp_path: Path, clean, corpora):
    index = fresh(clean, 1, tmp_path / "idx")
    (index / ".tmp-0badc0de" / "vectors").mkdir(parents=True)
    (index / ".tmp-0badc0de" / "vectors" / "passages.npy").write_bytes(b"\0" * 1000)
    (index / f".{MANIFEST}.5ca1ab1e.tmp").write_text("{")
    (index / "gen-deadbeef").mkdir()  # renamed, but killed before its manifest was written
    (index / "gen-deadbeef" / "meta.sqlite").write_bytes(b"half")
    assert content(index) == clean[1][1]  # readers do not mind them
    check = byline(index, "check")
    assert check.returncode == 0, check.stderr
    assert "2 temp file(s) left by interrupted saves" in check.stdout
    done = byline(index, "index", "--json", str(corpora[2]))
    assert reused(done) > 0
    assert not leftovers(index) and "gen-deadbeef" not in names(index)
    assert len(generations(index)) == 2  # the new one and the one it replaced
    assert content(index) == clean[2][1]


def test_a_second_writer_with_no_wait_fails_fast(tmp_path: Path, clean, corpora):
    index = fresh(clean, 1, tmp_path / "idx")
    first = spawn(index, "index", str(corpora[2]))
    try:
        # Held, and the holder's pid written in the lock file (a moment after taking it).
        wait_for(lambda: (lock_held(index) and (index / ".lock").read_text().strip()
                          == str(first.pid)) or first.poll() is not None, 60, what="the lock")
        assert first.poll() is None, "the first writer finished before it could be caught"
        os.kill(first.pid, signal.SIGSTOP)  # it holds the lock for as long as it is frozen
        start = time.monotonic()
        second = byline(index, "index", "--no-wait", str(corpora[1]), timeout=30)
        assert time.monotonic() - start < 15
        one_line_error(second, f"is being written by process {first.pid}", "--no-wait")
        check = byline(index, "check")
        assert check.returncode == 0 and f"being written now by process {first.pid}" \
            in check.stdout
        assert content(index) == clean[1][1]  # readers still see the old index, whole
    finally:
        os.kill(first.pid, signal.SIGCONT)
    assert first.wait(timeout=120) == 0
    assert content(index) == clean[2][1]


@pytest.mark.faults
def test_concurrent_writers_one_frozen_mid_save(tmp_path: Path, clean, corpora):
    """Two `index` processes, 10 rounds: writer A is frozen (SIGSTOP) the moment its new
    generation appears in the folder, writer B is started, A is resumed, both finish. Every
    round the index is valid and equal to a clean build of the corpus of the one that
    finished last; and that is B, which waited for A's lock (rather than writing over A's
    half-published generation) and then reused A's vectors."""
    rng = random.Random(7)
    index = fresh(clean, 1, tmp_path / "idx")
    state = 1
    caught = 0
    for round_ in range(10):
        a_version = 3 - state  # A has real work: the other corpus
        b_version = rng.choice((1, 2))
        before = names(index)
        a = spawn(index, "index", str(corpora[a_version]))
        b = None
        try:
            # Even rounds: as its temp folder appears (A is writing files); odd rounds: as
            # it is renamed to gen-* (A is about to replace the manifest).
            prefix = (".tmp-", "gen-")[round_ % 2]
            wait_for(lambda a=a, before=before, prefix=prefix: _stop_when(a, lambda: {
                n for n in appeared(index, before) if n.startswith(prefix)}),
                60, what="A's new generation")  # frozen the moment it is seen
            new = {n for n in appeared(index, before) if n.startswith(prefix)}
            if a.poll() is not None:  # A finished between two polls: nothing to freeze
                assert a.returncode == 0
                state = a_version
                continue
            caught += 1
            # Frozen mid-save, the folder still holds a whole index: the old one or A's.
            assert content(index) in (clean[state][1], clean[a_version][1]), new
            err = tmp_path / f"b-{round_}.err"
            b = spawn(index, "index", "--json", str(corpora[b_version]), stderr=err,
                      stdout=subprocess.PIPE, text=True)
            wait_for(lambda a=a, b=b, err=err: f"Waiting for process {a.pid}"
                     in err.read_text() or b.poll() is not None, 60, interval=0.01,
                     what="B to wait or finish")
            b_went_first = b.poll() is not None  # it did not wait for A's lock
            os.kill(a.pid, signal.SIGCONT)
            a.wait(timeout=120)
            out, _ = b.communicate(timeout=120)
        finally:
            for p in (a, b):
                if p is not None and p.poll() is None:
                    os.kill(p.pid, signal.SIGCONT)
                    p.kill()
                    p.wait()
        # First of all the index is whole, equal to a clean build of the last one's corpus
        # (without the lock, B publishes and removes A's unpublished folder, then A names
        # it in the manifest: a broken index).
        last = a_version if b_went_first else b_version
        assert content(index) == clean[last][1], f"round {round_}"
        assert a.returncode == 0 and b.returncode == 0, err.read_text()
        assert not b_went_first, f"B finished while A held the lock: {err.read_text()}"
        assert json.loads(out)["reused"] > 0  # from A's index, read whole
        state = last
        assert not leftovers(index) and len(generations(index)) <= 2
    assert caught >= 5, f"A was caught mid-save in only {caught} of 10 rounds"
    assert byline(index, "check").returncode == 0


def _stop_when(proc: subprocess.Popen, seen: Callable[[], object]) -> bool:
    """Freeze `proc` (SIGSTOP) the moment `seen()` holds; True also once `proc` has ended."""
    if proc.poll() is not None:
        return True
    if seen():
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGSTOP)
        return True
    return False


@pytest.mark.faults
def test_kill_9_at_random_points(tmp_path: Path, clean, corpora):
    """`kill -9` of `index`, 10 rounds: the first kills a first build (an empty folder), the
    others re-indexes from one corpus version to the other. Rounds take turns killing at a
    random time in the run, the moment the save's temp folder appears (files being written)
    and the moment it is renamed to gen-* (the manifest about to be replaced): the writer is
    frozen with SIGSTOP as soon as the folder is seen, so a fast machine cannot finish the save
    between the sighting and the kill. After each
    kill the folder holds the old index or the new one, whole, never a mix, and `check`
    passes; the next save to finish removes everything the killed ones left."""
    rng = random.Random(9)
    index = tmp_path / "idx"
    timing = fresh(clean, 2, tmp_path / "timing")
    start = time.monotonic()
    done = byline(timing, "index", str(corpora[1]))
    assert done.returncode == 0, done.stderr
    full_run = time.monotonic() - start  # how long a re-index takes here
    state: int | None = None  # the corpus version the folder's index holds
    killed = in_save = 0
    for round_ in range(10):
        if round_ == 1 and state is None:  # the first build was killed: make one
            assert byline(index, "index", str(corpora[1])).returncode == 0
            state = 1
        target = 1 if state is None else 3 - state
        before = names(index)
        proc = spawn(index, "index", str(corpora[target]))
        try:
            if round_ % 3 == 0:
                time.sleep(rng.uniform(0, full_run))
            else:
                prefix = (".tmp-", "gen-")[round_ % 3 - 1]
                wait_for(lambda proc=proc, before=before, prefix=prefix: _stop_when(
                    proc, lambda: {n for n in appeared(index, before) if n.startswith(prefix)}),
                    60, what="the save")
            if proc.poll() is None:
                proc.kill()
                killed += 1
            proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        try:
            now = content(index)
        except IndexMissing:
            assert state is None and proc.returncode != 0  # a first build killed early
            now = None
        except IndexCorrupt as exc:
            # A first build killed between publishing its folder and its manifest looks like
            # an index that lost its manifest: `ask` refuses to build over it, `index` does.
            assert state is None and "lost its manifest.json" in str(exc), exc
            now = None
        if now is not None:
            allowed = {v for v in (state, target) if v is not None}
            assert now in [clean[v][1] for v in allowed], f"round {round_}: not a whole index"
            state = target if now == clean[target][1] else state
            check = byline(index, "check")
            assert check.returncode == 0, (round_, check.stdout, check.stderr)
        if proc.returncode != 0 and appeared(index, before) - {f"gen-{_generation(index)}"}:
            in_save += 1  # killed with a temp or unpublished generation folder left
        # At most one temp folder and one temp manifest: each save removes those of earlier
        # ones before it writes (generation folders killed before their manifest go with the
        # next save that finishes: until then they cannot be told from the one readers use).
        assert len(leftovers(index)) <= 2, names(index)
    assert killed >= 6, f"only {killed} of 10 runs were still running when killed"
    assert in_save >= 3, f"only {in_save} of 10 runs were killed inside their save"
    target = 1 if state is None else 3 - state
    done = byline(index, "index", str(corpora[target]))
    assert done.returncode == 0, done.stderr
    assert content(index) == clean[target][1]
    assert not leftovers(index) and len(generations(index)) <= 2
    check = byline(index, "check")
    assert check.returncode == 0 and "temp file" not in check.stdout


def _generation(index: Path) -> str:
    try:
        return json.loads((index / MANIFEST).read_text())["generation"]
    except (OSError, ValueError):
        return ""


@pytest.mark.faults
def test_asks_during_reindexes_never_fail(tmp_path: Path, clean, corpora, embedder):
    """A long-lived retriever (the bot), fresh loads and `byline ask` processes keep asking
    while 6 re-indexes replace the index (each save deletes the generation before last)."""
    from retrieval.search.retriever import Retriever
    from retrieval.store import FolderIndex

    index = fresh(clean, 1, tmp_path / "idx")
    long_lived = Retriever(FolderIndex.load(index), embedder)
    failures: list[str] = []
    asked = {"long": 0, "fresh": 0, "cli": 0}
    stop = threading.Event()

    def top_source(answer) -> str:
        return answer.hits[0].passage.source if answer.answered else "not answered"

    def in_process() -> None:
        while not stop.is_set():
            try:
                assert top_source(long_lived.ask(QUESTION)) == "a000.txt"
                asked["long"] += 1
                fresh_retriever = Retriever(FolderIndex.load(index), embedder)
                assert top_source(fresh_retriever.ask(QUESTION)) == "a000.txt"
                asked["fresh"] += 1
            except Exception as exc:  # every failure is recorded
                failures.append(f"in process: {exc!r}")
            time.sleep(0.005)

    def processes() -> None:
        while not stop.is_set():
            done = byline(index, "ask", "--json", QUESTION)
            if done.returncode != 0:
                failures.append(f"byline ask: {done.stderr.strip()}")
            elif json.loads(done.stdout)["results"][0]["citation"]["source"] != "a000.txt":
                failures.append(f"byline ask: {done.stdout}")
            asked["cli"] += 1

    threads = [threading.Thread(target=f) for f in (in_process, processes)]
    for t in threads:
        t.start()
    try:
        for round_ in range(6):
            done = byline(index, "index", str(corpora[2 - round_ % 2]))
            assert done.returncode == 0, done.stderr
            time.sleep(0.2)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=120)
    assert not failures, failures[:5]
    assert asked["long"] >= 20 and asked["fresh"] >= 20 and asked["cli"] >= 3, asked
    assert content(index) == clean[1][1]


# -- a full disk -----------------------------------------------------------------------------

PAGE = 4096
# The order in which a save writes a generation's files (Index._write), by part.
WRITE_ORDER = ["vectors/passages.npy", "vectors/probes.npy", "meta.sqlite", "bm25/",
               "sentences/", "tokens/"]


def _pages(size: int) -> int:
    return -(-size // PAGE) * PAGE


def _space_before(sizes: dict[str, int], where: str) -> int:
    """Bytes a save of files of `sizes` writes before it fills a disk at `where` (a part of
    WRITE_ORDER, halfway through it, or "manifest": after every file). A tmpfs counts
    whole pages per file and nothing for folders. (That each case runs out of space in the
    intended file was checked by having the error name the file: the tokens case in
    tokens/vectors.npy, bm25 in indices.csc.index.npy, the manifest case in the temp
    manifest, and so on.)"""
    total = 0
    for part in WRITE_ORDER:
        files = [s for name, s in sizes.items() if name.startswith(part)]
        if part == where:
            return total + _pages(sum(files) // 2) - PAGE
        total += sum(_pages(s) for s in files)
    assert where == "manifest"
    return total


@pytest.fixture
def small_disk(tmp_path: Path):
    """A 16 MB tmpfs (root only)."""
    if os.geteuid() != 0:
        pytest.skip("the full-disk case mounts a tmpfs, which needs root")
    mounted = contextlib.ExitStack()
    try:
        disk = mounted.enter_context(tmpfs(tmp_path / "disk", 16 * 1024 * 1024))
    except OSError as exc:  # not permitted here, or no mount command
        pytest.skip(f"cannot mount a tmpfs here ({exc.strerror or exc})")
    with mounted:
        yield disk


@pytest.mark.parametrize("where", ["tokens/"])
def test_full_disk(small_disk: Path, clean, corpora, where: str):
    _full_disk(small_disk, clean, corpora, where)


@pytest.mark.faults
@pytest.mark.parametrize("where", [w for w in [*WRITE_ORDER, "manifest"] if w != "tokens/"])
def test_full_disk_at_every_file(small_disk: Path, clean, corpora, where: str):
    _full_disk(small_disk, clean, corpora, where)


def _full_disk(disk: Path, clean, corpora, where: str) -> None:
    """A re-index that runs out of space while writing `where`: one line saying so, exit 1,
    the old index as it was (and answering), nothing of the failed save left behind; once
    there is room again the same re-index works."""
    index = fresh(clean, 1, disk / "idx")
    sizes = {name: size for name, (size, _) in
             json.loads((clean[2][0] / MANIFEST).read_text())["files"].items()}
    filler = fill(disk, _space_before(sizes, where))
    before = snapshot(index)
    done = byline(index, "index", str(corpora[2]))
    one_line_error(done, "no space left on device", "the index there is unchanged")
    assert snapshot(index) == before  # no temp folder, no new generation, no temp manifest
    assert content(index) == clean[1][1]
    ask = byline(index, "ask", "--json", QUESTION)  # reading needs no space
    assert ask.returncode == 0, ask.stderr
    filler.unlink()
    assert free_bytes(disk) > 4 * sum(sizes.values())
    assert byline(index, "index", str(corpora[2])).returncode == 0
    assert content(index) == clean[2][1]


def test_full_disk_while_writing_the_ivf_index(small_disk: Path, corpora, embedder):
    """Above EXACT_MAX passages a save also writes a FAISS IVF index (the CLI builds one only
    for big corpora, so this index is built in process with a low threshold): a full disk
    while FAISS writes is the same one-line StoreError, and nothing is left behind."""
    from retrieval.build.pipeline import build_index
    from retrieval.corpus import load_corpus
    from retrieval.errors import StoreError

    index = build_index(load_corpus(corpora[1]), embedder, progress=False, exact_max=5)
    assert index.manifest.ann.startswith("ivf")
    index.save(small_disk / "roomy")  # to learn the files' sizes
    sizes = index.manifest.files
    (small_disk / "roomy").rename(small_disk / "kept")
    fill(small_disk, _pages(sizes["vectors/passages.npy"][0])
         + _pages(sizes["vectors/ann.faiss"][0] // 2) - PAGE)
    with pytest.raises(StoreError, match="no space left on device; the index there is "
                                         "unchanged") as exc:
        index.save(small_disk / "idx")
    assert "\n" not in str(exc.value)
    assert names(small_disk / "idx") <= {".lock"}


def test_full_disk_on_a_first_build(small_disk: Path, corpora):
    index = small_disk / "idx"
    fill(small_disk, 64 * 1024)
    one_line_error(byline(index, "index", str(corpora[1])), "no space left on device")
    assert names(index) <= {".lock"}
    one_line_error(byline(index, "check"), "No index at")


# -- permissions -----------------------------------------------------------------------------

@pytest.fixture(scope="session")
def limited(world: Path) -> dict:
    """subprocess keyword arguments for a child the permission bits apply to (see
    faults.restricted: `nobody` where it can run this Python, else root without its
    file capabilities, or ourselves when not root)."""
    found = restricted(world)
    if found is None:
        pytest.skip("no way to run a child to which file permissions apply (root, no "
                    "usable `nobody`, capabilities cannot be dropped)")
    how, kwargs = found
    print(f"permission cases run {how}")
    return kwargs


@pytest.fixture
def shared(world: Path, request) -> Path:
    """A folder for one test that the limited child can reach."""
    folder = world / request.node.name.replace("[", "-").replace("]", "")
    folder.mkdir(mode=0o755)
    return folder


def _not_damage(done: subprocess.CompletedProcess) -> None:
    """A permission problem is not reported as damage (nor met with "rebuild it")."""
    assert "damaged" not in done.stdout + done.stderr, done.stdout + done.stderr
    assert "rebuild" not in done.stdout + done.stderr


@pytest.mark.parametrize("args", [["ask", QUESTION], ["sources"], ["check"]])
def test_unreadable_index_folder_is_permission_denied(limited, shared: Path, clean,
                                                      args: list[str]):
    index = fresh(clean, 1, shared / "idx")
    index.chmod(0)
    try:
        done = byline(index, *args, **limited)
    finally:
        index.chmod(0o755)
    one_line_error(done, "permission denied")
    _not_damage(done)


@pytest.mark.parametrize("args", [["ask", QUESTION], ["check"]])
def test_unreadable_index_file_is_permission_denied(limited, shared: Path, clean,
                                                    args: list[str]):
    index = fresh(clean, 1, shared / "idx")
    gen = json.loads((index / MANIFEST).read_text())["generation"]
    (index / f"gen-{gen}" / "meta.sqlite").chmod(0)
    done = byline(index, *args, **limited)
    one_line_error(done, "permission denied", f"gen-{gen}/meta.sqlite")
    _not_damage(done)


def _read_only(folder: Path) -> None:
    for path in [folder, *folder.rglob("*")]:
        path.chmod(0o555 if path.is_dir() else 0o444)


def _writable(folder: Path) -> None:
    for path in [folder, *folder.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)


def test_read_only_index_answers_but_is_not_written(limited, shared: Path, clean, corpora):
    index = fresh(clean, 1, shared / "idx")
    before = snapshot(index)
    _read_only(index)
    try:
        ask = byline(index, "ask", "--json", QUESTION, **limited)
        check = byline(index, "check", **limited)
        done = byline(index, "index", str(corpora[2]), **limited)
    finally:
        _writable(index)
    assert ask.returncode == 0, ask.stderr  # reading needs no write access
    assert json.loads(ask.stdout)["results"][0]["citation"]["source"] == "a000.txt"
    assert check.returncode == 0, check.stderr
    one_line_error(done, "permission denied", f"{index}/.lock")
    assert snapshot(index) == before and content(index) == clean[1][1]


def test_index_folder_that_cannot_be_created(limited, shared: Path, corpora):
    shared.chmod(0o555)
    try:
        done = byline(shared / "idx", "index", str(corpora[1]), **limited)
    finally:
        shared.chmod(0o755)
    one_line_error(done, "Cannot create the index folder", "permission denied")
    assert not (shared / "idx").exists()


# -- the feedback store ----------------------------------------------------------------------

def _feedback_db(folder: Path) -> Path:
    db = folder / "feedback.sqlite"
    store = FeedbackStore(db)
    store.record(store.remember("how much will it cost", ["a000#1"]), "up", 1)
    store.record(store.remember("when is the vote", ["a001#3"]), "down", 2)
    store.close()
    assert sorted(p.name for p in folder.iterdir()) == ["feedback.sqlite", "feedback.sqlite.salt"]
    return db


def _feedback(db: Path, *args: str, **kwargs) -> subprocess.CompletedProcess:
    extra = {**kwargs.pop("extra_env", {}), "BYLINE_FEEDBACK_DB": str(db)}
    return byline(db.parent / "index", "feedback", *args, extra_env=extra, **kwargs)


def test_feedback_export_is_read_only(tmp_path: Path):
    db = _feedback_db(tmp_path)
    before = snapshot(tmp_path)
    done = _feedback(db, "--json")
    assert done.returncode == 0, done.stderr
    assert [r["verdict"] for r in json.loads(done.stdout)] == ["up", "down"]
    assert snapshot(tmp_path) == before  # no -wal, -shm or -journal; not a byte changed


def test_feedback_export_while_the_bot_writes(tmp_path: Path):
    """The bot holds the store open (its write-ahead log beside it): the export sees every
    committed verdict and still writes nothing."""
    db = _feedback_db(tmp_path)
    store = FeedbackStore(db)
    try:
        store.record(store.remember("who objected", ["a002#2"]), "up", 3)
        assert (tmp_path / "feedback.sqlite-wal").exists()
        before = snapshot(tmp_path)
        done = _feedback(db, "--json")
        assert done.returncode == 0, done.stderr
        assert [r["question"] for r in json.loads(done.stdout)][-1] == "who objected"
        after = snapshot(tmp_path)
        # The database and its log are as they were, and no file was added; the readers'
        # marks in the shared-memory file are SQLite's own business.
        assert after.keys() == before.keys()
        assert {k: v for k, v in after.items() if not k.endswith("-shm")} == {
            k: v for k, v in before.items() if not k.endswith("-shm")}
    finally:
        store.close()


_KILLED_BOT = ("import os, signal, sys\n"
               "from retrieval.search.feedback import FeedbackStore\n"
               "s = FeedbackStore(sys.argv[1])\n"
               "s.record(s.remember('who objected', ['a002#2']), 'down', 4)\n"
               "os.kill(os.getpid(), signal.SIGKILL)\n")


def _killed_bot(db: Path) -> None:
    """A bot that recorded one more verdict, then was killed with -9: its write-ahead log
    and shared-memory files stay beside the store, holding that verdict."""
    killed = run([sys.executable, "-c", _KILLED_BOT, str(db)])
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert db.with_name(db.name + "-wal").exists()


def test_feedback_export_after_the_bot_was_killed(tmp_path: Path):
    """The export reads the verdicts committed to the log and adds no file."""
    db = _feedback_db(tmp_path)
    _killed_bot(db)
    before = names(tmp_path)
    done = _feedback(db, "--json")
    assert done.returncode == 0, done.stderr
    assert [r["verdict"] for r in json.loads(done.stdout)] == ["up", "down", "down"]
    assert names(tmp_path) == before


def test_read_only_feedback_store_after_the_bot_was_killed(limited, shared: Path):
    """The same with nothing writable (store, log, shared memory, folder)."""
    db = _feedback_db(shared)
    _killed_bot(db)
    before = snapshot(shared)
    _read_only(shared)
    try:
        done = _feedback(db, "--json", **limited)
    finally:
        _writable(shared)
    assert done.returncode == 0, done.stderr
    assert [r["verdict"] for r in json.loads(done.stdout)] == ["up", "down", "down"]
    assert snapshot(shared) == before


@pytest.mark.parametrize("args", [[], ["--json"]])
def test_corrupt_feedback_store_is_one_line(tmp_path: Path, args: list[str]):
    db = tmp_path / "feedback.sqlite"
    db.write_bytes(b"SQLite format 3\0" + os.urandom(4096))
    one_line_error(_feedback(db, *args), f"The feedback store {db} cannot be read")
    with pytest.raises(FeedbackError, match="cannot be") as exc:
        FeedbackStore(db)
    assert "\n" not in str(exc.value)


def test_unreadable_feedback_store_is_one_line(limited, shared: Path):
    db = _feedback_db(shared)
    db.chmod(0)
    try:
        done = _feedback(db, **limited)
    finally:
        db.chmod(0o644)
    one_line_error(done, f"The feedback store {db} cannot be read")
    assert names(shared) == {"feedback.sqlite", "feedback.sqlite.salt"}


def test_read_only_feedback_store(limited, shared: Path):
    """A store that may be read but not written (file and folder): the export works and
    writes nothing; the bot's store says in one line that it cannot write there."""
    db = _feedback_db(shared)
    before = snapshot(shared)
    code = ("import sys\n"
            "from retrieval.search.feedback import FeedbackStore, FeedbackError\n"
            "try:\n    FeedbackStore(sys.argv[1])\n"
            "except FeedbackError as exc:\n    print(exc)\n    sys.exit(3)\n")
    _read_only(shared)
    try:
        done = _feedback(db, "--json", **limited)
        opened = run([sys.executable, "-c", code, str(db)], **limited)
    finally:
        _writable(shared)
    assert done.returncode == 0, done.stderr
    assert len(json.loads(done.stdout)) == 2
    assert opened.returncode == 3, opened.stderr
    assert opened.stdout.startswith(f"The feedback store {db} cannot be"), opened.stdout
    assert "\n" not in opened.stdout.strip()
    assert snapshot(shared) == before


def test_bot_with_a_corrupt_feedback_store_stops_in_one_line(tmp_path: Path, clean):
    index = fresh(clean, 1, tmp_path / "idx")
    db = tmp_path / "feedback.sqlite"
    db.write_bytes(b"this is not a database" * 200)
    done = byline(index, "bot", extra_env={"DISCORD_TOKEN": "not-a-token",
                                           "BYLINE_FEEDBACK_DB": str(db)}, timeout=120)
    # `byline bot` hands over to `byline-bot`, which names itself
    one_line_error(done, f"The feedback store {db} cannot be", command="byline-bot")


def test_feedback_store_open_error_is_sqlite_free(tmp_path: Path):
    """The store's errors are FeedbackError (one line), never a bare sqlite3 error."""
    folder = tmp_path / "ro"
    folder.mkdir()
    db = folder / "feedback.sqlite"
    db.mkdir()  # a folder where the file should be
    with pytest.raises(FeedbackError) as exc:
        FeedbackStore(db)
    assert not isinstance(exc.value, sqlite3.Error) and "\n" not in str(exc.value)
