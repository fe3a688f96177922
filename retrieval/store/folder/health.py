"""`byline check`: an index's health, every file checked against the manifest."""

from __future__ import annotations

import fcntl
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from retrieval.errors import BylineError, IndexMissing, StoreError, describe_os_error
from retrieval.store.files import digest
from retrieval.store.folder import generations
from retrieval.store.folder.index import FolderIndex
from retrieval.store.folder.lock import LOCK
from retrieval.store.manifest import Manifest, read_manifest

_CHUNK = 65_536  # rows per finite-value check


@dataclass(frozen=True)
class FileHealth:
    """One file of the generation: its size and whether it matches the manifest."""

    path: str
    size: int
    status: str  # "ok", "missing", "wrong size", "wrong checksum", "unreadable"


@dataclass
class IndexHealth:
    """What `byline check` found; `ok` when nothing is wrong."""

    root: Path
    manifest: Manifest | None = None
    files: list[FileHealth] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # Those of `problems` that are not damage: no index there, not a folder, no permission
    # (a rebuild would not mend them).
    access: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def damaged(self) -> bool:
        return len(self.problems) > len(self.access)

    def cannot_read(self, problem: str) -> None:
        self.problems.append(problem)
        self.access.append(problem)

    def to_dict(self) -> dict:
        m = self.manifest
        return {"index_dir": str(self.root), "ok": self.ok, "damaged": self.damaged,
                "problems": self.problems,
                "notes": self.notes,
                "generation": m.generation if m else None,
                "created": m.created if m else None,
                "passages": m.passages if m else None, "articles": m.articles if m else None,
                "model": m.model if m else None, "encoder": m.encoder if m else None,
                "graph": m.graph if m else None, "kernel": m.kernel if m else None,
                "background": m.background if m else None,
                "bytes": sum(f.size for f in self.files),
                "files": [{"path": f.path, "size": f.size, "status": f.status}
                          for f in self.files]}


def check_index(root: str | Path) -> IndexHealth:
    """Check the index at `root` fully: manifest, every file's size and checksum, the arrays'
    shapes and values, the background; leftovers and old generations are noted."""
    root = Path(root)
    health = IndexHealth(root)
    try:
        health.manifest = manifest = read_manifest(root)
    except (IndexMissing, StoreError) as exc:
        health.cannot_read(str(exc))
        return health
    except BylineError as exc:
        health.problems.append(str(exc))
        return health
    folder = root / manifest.folder
    for name, (size, sha) in manifest.files.items():
        path = folder / name
        shown = f"{manifest.folder}/{name}"
        try:
            actual = path.stat().st_size
        except FileNotFoundError:
            health.files.append(FileHealth(shown, 0, "missing"))
            health.problems.append(f"{shown} is missing")
            continue
        except OSError as exc:
            health.files.append(FileHealth(shown, 0, "unreadable"))
            health.cannot_read(_unreadable(root, shown, exc))
            continue
        if actual != size:
            status = "wrong size"
            health.problems.append(f"{shown} has {actual:,} bytes, not {size:,}")
        else:
            try:
                status = "ok" if digest(path) == sha else "wrong checksum"
            except OSError as exc:
                status = "unreadable"
                health.cannot_read(_unreadable(root, shown, exc))
            if status == "wrong checksum":
                health.problems.append(f"{shown} does not match its checksum")
        health.files.append(FileHealth(shown, actual, status))
    if health.ok:
        try:
            _check_values(FolderIndex.load(root, verify=False), health)
        except StoreError as exc:
            health.cannot_read(str(exc))
        except BylineError as exc:
            health.problems.append(str(exc))
    _notes(root, manifest, health)
    return health


def _unreadable(root: Path, shown: str, exc: OSError) -> str:
    """The same sentence as loading the index gives for a file it cannot read."""
    reason = describe_os_error(OSError(exc.errno, exc.strerror))
    return f"Cannot read the index at {root}: {shown}: {reason}."


def _check_values(index: FolderIndex, health: IndexHealth) -> None:
    """Every stored vector and scale finite; the background measured and finite."""
    m = index.manifest
    arrays = {"vectors/passages.npy": index.passage_vectors,
              "sentences/vectors.npy": index.sentences.vectors}
    if index.tokens is not None:
        arrays["tokens/scales.npy"] = index.tokens.scales
    if index.probe_vectors is not None:
        arrays["vectors/probes.npy"] = index.probe_vectors
    for name, array in arrays.items():
        for start in range(0, len(array), _CHUNK):
            if not np.isfinite(np.asarray(array[start:start + _CHUNK], np.float32)).all():
                health.problems.append(f"{m.folder}/{name} holds values that are not numbers")
                break
    if set(m.background) != {"dense", "lexical", "sentence"}:
        health.problems.append("the background (what unrelated questions score) is missing")


def _notes(root: Path, manifest: Manifest, health: IndexHealth) -> None:
    left = generations.leftovers(root)
    if left:
        health.notes.append(f"{len(left)} temp file(s) left by interrupted saves; the next "
                            "`byline index` removes them")
    old = generations.stale(root, keep={manifest.folder})
    if old:
        health.notes.append(f"{len(old)} older generation(s) kept for readers that may still "
                            "use them; the next save removes all but the latest")
    holder = _writer(root)
    if holder:
        health.notes.append(f"being written now by {holder}")


def _writer(root: Path) -> str:
    """Who holds the writer lock ("" when nobody does)."""
    try:
        fd = os.open(root / LOCK, os.O_RDONLY)
    except OSError:
        return ""
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return ""
    except BlockingIOError:
        pid = os.pread(fd, 32, 0).decode(errors="replace").strip()
        return f"process {pid}" if pid.isdigit() else "another process"
    finally:
        os.close(fd)


def report(root: Path, as_json: bool = False) -> int:
    """`byline check` on a folder: the check printed (as JSON, or for people); the exit
    status (0: healthy)."""
    health = check_index(root)
    if as_json:
        sys.stdout.write(json.dumps(health.to_dict(), ensure_ascii=False, indent=2) + "\n")
        return 0 if health.ok else 1
    m = health.manifest
    print(f"Index: {root}")
    if m is not None:
        print(f"Generation {m.generation}, built {m.created}: {m.articles:,} articles, "
              f"{m.passages:,} passages ({m.model}, {m.encoder}, {m.ann})")
        if m.kernel:
            print(f"Encoded on: {m.kernel}")
        size = sum(f.size for f in health.files)
        bad = [f for f in health.files if f.status != "ok"]
        unreadable = sum(f.status == "unreadable" for f in bad)
        counts = [f"{len(bad) - unreadable or 'none'} damaged"] if len(bad) > unreadable \
            or not unreadable else []
        counts += [f"{unreadable} unreadable"] if unreadable else []
        print(f"Files: {len(health.files)} checked, {size / 1e6:,.1f} MB, {', '.join(counts)}")
        for f in bad:
            print(f"  {f.status}: {f.path}")
        bg = ", ".join(f"{k} {v:.3f}" for k, v in sorted(m.background.items()))
        print(f"Background: {bg or 'missing'}")
    for note in health.notes:
        print(f"Note: {note}")
    if health.ok:
        print("OK")
        return 0
    for problem in health.problems:
        print(f"byline: {problem}", file=sys.stderr)
    if health.damaged:  # not when it is only missing, elsewhere or unreadable
        print("byline: the index is damaged; run `byline index --full` to rebuild it.",
              file=sys.stderr)
    return 1
