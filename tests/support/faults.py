"""Helpers for the fault suite (tests/test_faults.py): small generated corpora, `byline` run
as a real process on this checkout's code, an index's content fingerprint, and the
restricted child and the tmpfs the permission and full-disk cases need."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from retrieval.store import FolderIndex
from retrieval.store.folder.generations import TMP_PREFIX
from retrieval.store.folder.lock import LOCK
from retrieval.store.manifest import GENERATION_PREFIX, MANIFEST

from .passages import every_passage
from .paths import ROOT

_PLACES = ("Ashford", "Brindle", "Corvale", "Dunmore", "Elsworth", "Fairhaven", "Glenrock",
           "Harwick", "Ivybridge", "Jarrow", "Kelso", "Larkhill", "Marden")
_TOPICS = ("bridge repairs", "school budget", "water main", "library hours", "bus routes",
           "harbour dredging", "park lighting", "housing permits", "flood barrier",
           "tram extension", "market hall", "cycle lanes")
QUESTION = "How much will the bridge repairs in Ashford cost?"


def _article(i: int, edit: str = "") -> str:
    place, topic = _PLACES[i % len(_PLACES)], _TOPICS[(i * 7) % len(_TOPICS)]
    return (
        f"{place} council weighs {topic} plan {i}\n\n"
        f"Officials in {place} said on day {i} that the {topic} plan would cost {100 + i} "
        f"thousand pounds and take {i % 9 + 2} months to finish.\n\n"
        f"Residents of {place} told reporter number {i} that they had waited years for the "
        f"{topic} work and hoped it would start before winter{edit}.\n\n"
        f"The council of {place} will vote on the {topic} proposal at its meeting number "
        f"{i * 3 + 1}, a spokesperson confirmed to the paper.\n"
    )


def write_corpus(folder: Path, articles: int, version: int = 1) -> Path:
    """`articles` short articles of three paragraphs as .txt files. Version 2 edits a
    paragraph of every fifth article, drops every seventh and adds three new ones, so a
    re-index from one version to the other embeds some passages and reuses the rest."""
    folder.mkdir(parents=True)
    numbers = list(range(articles))
    if version == 2:
        numbers = [i for i in numbers if i % 7 != 3] + [articles + j for j in range(3)]
    for i in numbers:
        edit = ", the second survey found" if version == 2 and i % 5 == 0 else ""
        (folder / f"a{i:03d}.txt").write_text(_article(i, edit), encoding="utf-8")
    return folder


# -- running byline ------------------------------------------------------------------------

def env(**extra: str) -> dict[str, str]:
    """The environment for a `byline` process: this checkout's code first, none of the
    caller's BYLINE_* settings (the model cache folder excepted)."""
    out = {k: v for k, v in os.environ.items()
           if not k.startswith("BYLINE_") or k == "BYLINE_CACHE_DIR"}
    out["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [os.environ.get(
        "PYTHONPATH")])])
    out["PYTHONDONTWRITEBYTECODE"] = "1"
    out.update(extra)
    return out


def command(index_dir: Path | str, *args: str) -> list[str]:
    return [sys.executable, "-m", "retrieval.cli", "--index-dir", str(index_dir), *args]


def run(argv: list[str], *, timeout: float = 120, cwd: Path | None = None,
        extra_env: dict[str, str] | None = None, prefix: tuple[str, ...] = (),
        **kwargs) -> subprocess.CompletedProcess:
    """Run `argv` to the end in the environment above (plus `extra_env`), behind the
    command `prefix` if any; `kwargs` go to subprocess.run."""
    return subprocess.run([*prefix, *argv], capture_output=True, text=True,
                          env=env(**(extra_env or {})), cwd=cwd or tempfile.gettempdir(),
                          timeout=timeout, **kwargs)


def byline(index_dir: Path | str, *args: str, **kwargs) -> subprocess.CompletedProcess:
    """Run `byline --index-dir INDEX ARGS...` to the end (`kwargs` as for `run`)."""
    return run(command(index_dir, *args), **kwargs)


def spawn(index_dir: Path | str, *args: str, stderr: Path | None = None,
          **kwargs) -> subprocess.Popen:
    """Start `byline --index-dir INDEX ARGS...`; stdout is discarded unless `kwargs` say,
    stderr goes to the file `stderr` (readable while it runs) or is discarded."""
    err = stderr.open("w") if stderr is not None else subprocess.DEVNULL
    try:
        return subprocess.Popen(command(index_dir, *args), env=env(),
                                cwd=tempfile.gettempdir(), stderr=err,
                                stdout=kwargs.pop("stdout", subprocess.DEVNULL), **kwargs)
    finally:
        if stderr is not None:
            err.close()


def one_line_error(proc: subprocess.CompletedProcess, *fragments: str,
                   command: str = "byline") -> str:
    """Assert `proc` failed with exit 1 and exactly one `<command>: ...` line on stderr (no
    traceback, no answer on stdout) holding every fragment; returns the line."""
    err = proc.stderr.strip()
    assert proc.returncode == 1, (proc.returncode, proc.stderr, proc.stdout)
    assert "Traceback" not in err and "\n" not in err, err
    assert err.startswith(f"{command}: "), err
    for fragment in fragments:
        assert fragment in err, (fragment, err)
    return err


# -- looking at an index folder --------------------------------------------------------------

def _digest(array: object) -> str:
    a = np.ascontiguousarray(np.asarray(array))
    return f"{a.dtype}{a.shape}:{hashlib.sha256(a.tobytes()).hexdigest()[:16]}"


def content(index_dir: Path) -> dict:
    """What an index holds, without its generation name, build time or file checksums: two
    indexes of the same corpus, one built from scratch and one by any mix of re-indexes,
    must have equal contents. Loads with every checksum verified (IndexCorrupt if any
    file is damaged)."""
    index = FolderIndex.load(index_dir, verify=True)
    m = index.manifest
    return {
        "manifest": (m.format, m.model, m.encoder, m.dimension, m.passages, m.articles,
                     m.fingerprint, m.corpus, m.ann, m.nprobe, m.probes, m.parser,
                     tuple(sorted(m.background.items()))),
        "passages": [(p.id, p.article_id, p.title, p.source, p.paragraph, p.text, p.outlet,
                      p.date, p.url) for p in every_passage(index)],
        "articles": index.articles(),
        "passage_vectors": _digest(index.passage_vectors),
        "sentences": [_digest(a) for a in (index.sentences.vectors, index.sentences.spans,
                                           index.sentences.offsets)],
        "tokens": [_digest(a) for a in (index.tokens.vectors, index.tokens.scales,
                                        index.tokens.offsets, index.tokens.spans)],
        "probes": _digest(index.probe_vectors),
        "postings": _postings(index),
    }


def _postings(index: FolderIndex) -> str:
    """The BM25 postings by term: bm25s numbers terms in an order that changes from one
    process to the next (string hashing), so the arrays are compared term by term."""
    p = index.postings
    h = hashlib.sha256()
    for term, t in sorted(p.vocab.items()):
        if t + 1 >= len(p.indptr):  # bm25s's empty padding term has no postings
            h.update(term.encode() + b"\0")
            continue
        a, b = int(p.indptr[t]), int(p.indptr[t + 1])
        h.update(term.encode() + b"\0" + np.asarray(p.docs[a:b]).tobytes()
                 + np.asarray(p.weights[a:b]).tobytes())
    return f"{len(p.vocab)} terms:{h.hexdigest()[:16]}"


def names(index_dir: Path) -> set[str]:
    return {p.name for p in index_dir.iterdir()} if index_dir.is_dir() else set()


def leftovers(index_dir: Path) -> set[str]:
    """Temp folders and temp manifests of unfinished saves."""
    return {n for n in names(index_dir)
            if n.startswith(TMP_PREFIX) or (n.startswith(f".{MANIFEST}.") and n.endswith(".tmp"))}


def appeared(index_dir: Path, before: set[str]) -> set[str]:
    """Temp or generation folders in `index_dir` that were not among `before`."""
    return {n for n in names(index_dir) - before if n.startswith((TMP_PREFIX, GENERATION_PREFIX))}


def generations(index_dir: Path) -> set[str]:
    return {n for n in names(index_dir) if n.startswith(GENERATION_PREFIX)}


def lock_held(index_dir: Path) -> bool:
    """Whether some process holds the index's writer lock now."""
    try:
        fd = os.open(index_dir / LOCK, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def wait_for(condition: Callable[[], object], timeout: float, interval: float = 0.0005,
             what: str = "condition") -> object:
    """Poll `condition` until it returns something true; AssertionError after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def copy_index(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, symlinks=True)
    return dst


def garble(path: Path) -> None:
    """Overwrite bytes in the middle of `path` (its size unchanged) with other bytes."""
    data = bytearray(path.read_bytes())
    assert data, f"{path} is empty"
    start = len(data) // 2
    for i in range(start, min(start + 64, len(data))):
        data[i] = (data[i] + 0x5A) % 256  # never the byte it was
    path.write_bytes(bytes(data))


# -- a user the permission bits apply to -----------------------------------------------------

NOBODY = "nobody"
# Runs the command in its arguments as root without CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH
# (prctl PR_CAPBSET_DROP, then exec: the capabilities go with the exec), so the permission
# bits of root's files apply to it.
WITHOUT_FILE_CAPABILITIES = (
    sys.executable, "-c",
    "import ctypes, os, sys\n"
    "libc = ctypes.CDLL(None, use_errno=True)\n"
    "for cap in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH\n"
    "    if libc.prctl(24, cap, 0, 0, 0) != 0:  # PR_CAPBSET_DROP\n"
    "        raise OSError(ctypes.get_errno(), 'prctl(PR_CAPBSET_DROP)')\n"
    "os.execv(sys.argv[1], sys.argv[1:])\n")


def restricted(folder: Path) -> tuple[str, dict] | None:
    """How to run a child to which file permission bits apply: (a description, subprocess
    keyword arguments), or None when there is no way. Not root: as ourselves (owners are
    bound by their files' bits). Root: as `nobody` when it can run this Python (then
    `folder` holds the home and the model cache it needs), else as root without
    CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH."""
    if os.geteuid() != 0:
        return "as the (unprivileged) owner of the files", {}
    import pwd

    probe = folder / "probe"
    probe.write_text("secret")
    probe.chmod(0)
    try:
        try:
            user = pwd.getpwnam(NOBODY)
            kwargs = {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}
            if subprocess.run([sys.executable, "-c", "pass"], capture_output=True,
                              timeout=60, **kwargs).returncode == 0:
                home = folder / "home"
                home.mkdir()
                os.chown(home, user.pw_uid, user.pw_gid)
                return "as nobody", {**kwargs, "extra_env": {
                    "HOME": str(home), "BYLINE_CACHE_DIR": str(share_model_cache(folder))}}
        except (KeyError, OSError):
            pass
        kwargs = {"prefix": WITHOUT_FILE_CAPABILITIES}
        read = run([sys.executable, "-c", f"open({str(probe)!r}).read()"], timeout=60,
                   **kwargs)
        if read.returncode != 0 and f"[Errno 13] Permission denied: {str(probe)!r}" \
                in read.stderr:  # the capabilities were dropped, and the bits applied
            return "as root without CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH", kwargs
        return None
    finally:
        probe.unlink()


@contextlib.contextmanager
def shared_folder() -> Iterator[Path]:
    """A temp folder the unprivileged user can reach (pytest's tmp_path is root-only)."""
    folder = Path(tempfile.mkdtemp(prefix="byline-faults-"))
    try:
        folder.chmod(0o755)
        yield folder
    finally:
        for path in [folder, *folder.rglob("*")]:  # chmod 000 folders would stop rmtree
            with contextlib.suppress(OSError):
                if path.is_dir() and not path.is_symlink():
                    path.chmod(0o755)
        shutil.rmtree(folder, ignore_errors=True)


def share_model_cache(folder: Path) -> Path:
    """A copy of the built ONNX graph the unprivileged user can read (the cache of root's
    home is not), as a BYLINE_CACHE_DIR."""
    from retrieval.model.embed import DEFAULT_ENCODER
    from retrieval.model.onnx_model import default_cache_dir

    cache = folder / "cache"
    cache.mkdir()
    for graph in default_cache_dir().glob(f"*-{DEFAULT_ENCODER}-r*"):
        shutil.copytree(graph, cache / graph.name)
    for path in [cache, *cache.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return cache


# -- a small file system ---------------------------------------------------------------------

@contextlib.contextmanager
def tmpfs(folder: Path, size: int) -> Iterator[Path]:
    """A tmpfs of `size` bytes mounted on `folder`, unmounted at the end (PermissionError
    when mounting is not allowed here)."""
    folder.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs",
                           str(folder)], capture_output=True, text=True)
    if done.returncode != 0:
        raise PermissionError(errno.EPERM, done.stderr.strip() or "mount failed")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def free_bytes(folder: Path) -> int:
    st = os.statvfs(folder)
    return st.f_bavail * st.f_frsize


def fill(folder: Path, leave: int) -> Path:
    """A filler file in `folder` that leaves `leave` bytes free."""
    filler = folder / "filler"
    size = free_bytes(folder) - leave
    assert size >= 0, f"only {free_bytes(folder)} bytes free, want {leave} left"
    with filler.open("wb") as fh:
        fh.write(b"\0" * size)
    assert free_bytes(folder) == leave, (free_bytes(folder), leave)
    return filler


def snapshot(index_dir: Path) -> dict[str, str]:
    """Every path under `index_dir` with its bytes' sha256 ("dir" for folders); the writer
    lock file's content (the last writer's pid) is left out."""
    out = {}
    for path in sorted(index_dir.rglob("*")):
        rel = path.relative_to(index_dir).as_posix()
        if path.is_dir():
            out[rel] = "dir"
        else:
            out[rel] = "" if rel == LOCK else hashlib.sha256(path.read_bytes()).hexdigest()
    return out
