"""Index generations on disk: publish one atomically, verify one, clean up after others.

A save writes the new generation into `.tmp-<gen>/`, fsyncs it, renames it to `gen-<gen>/`
and then atomically replaces manifest.json, which names the generation in use and every
file's size and checksum. A crash at any point leaves the old index or the new one, never a
mix. Saves hold the folder's writer lock; each removes what killed runs left behind and the
generations older than the one it replaced (readers that loaded that one keep working).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from retrieval.errors import (
    IndexCorrupt,
    IndexMismatch,
    IndexMissing,
    StoreError,
    describe_os_error,
)
from retrieval.store.files import digest, fsync_dir, fsync_tree, listing
from retrieval.store.folder.lock import WriterLock
from retrieval.store.manifest import (
    GENERATION_PREFIX,
    LEGACY_PREFIXES,
    MANIFEST,
    REBUILD,
    Manifest,
    read_manifest,
    write_manifest,
)

TMP_PREFIX = ".tmp-"
# Up to this many bytes, loading an index also checks every file's checksum (about 0.1 s at
# the limit); above, only sizes, and `byline check` and re-indexing check the content.
VERIFY_MAX = 1024 * 1024 * 1024


def publish(root: Path, manifest: Manifest, write: Callable[[Path], None]) -> Manifest:
    """Write a new generation with `write(folder)` and make it the index at `root`.

    Returns the manifest as published (with its file list). On an operating-system error
    nothing of the new generation is left and the index is unchanged (StoreError)."""
    with WriterLock(root):
        remove_leftovers(root)
        before = _current_folder(root)
        tmp = root / f"{TMP_PREFIX}{manifest.generation}"
        final = root / manifest.folder
        published = False
        try:
            tmp.mkdir()
            write(tmp)
            fsync_tree(tmp)
            files = listing(tmp, _linkable(root, before))
            manifest = replace(manifest, files={k: list(v) for k, v in files.items()})
            tmp.rename(final)
            fsync_dir(root)
            write_manifest(root, manifest)
            published = True
        except OSError as exc:
            raise StoreError(f"Cannot save the index at {root}: {describe_os_error(exc)}; "
                             "the index there is unchanged.") from None
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
            if not published:
                shutil.rmtree(final, ignore_errors=True)
        remove_stale(root, keep={manifest.folder, before})
        return manifest


def _linkable(root: Path, folder: str) -> dict[tuple[int, int], tuple[int, str]]:
    """(device, inode) -> (size, checksum) that the manifest records for each file of the
    generation `folder` (the one in use) that is hard-linked elsewhere. A new generation's
    link to such a file (a generation's files are never changed once published) takes that
    checksum, not one of the bytes as they are now: damage since then stays detectable."""
    try:
        manifest = read_manifest(root)
    except (IndexMissing, IndexCorrupt, IndexMismatch, StoreError):
        return {}
    files = manifest.files if manifest.folder == folder else {}
    out = {}
    for name, (size, sha) in files.items():
        try:
            st = (root / folder / name).stat()
        except OSError:
            continue
        if st.st_nlink > 1:
            out[(st.st_dev, st.st_ino)] = (size, sha)
    return out


def withdraw(root: Path) -> bool:
    """Take the index at `root` out of use: its manifest.json first (a reader then finds no
    index, never half of one), then its generations. Whether there was one. For a corpus
    that no longer holds any article: an index cannot be empty."""
    if not (root / MANIFEST).exists():
        return False
    with WriterLock(root):
        try:
            (root / MANIFEST).unlink(missing_ok=True)
            fsync_dir(root)
        except OSError as exc:
            raise StoreError(f"Cannot remove the index at {root}: "
                             f"{describe_os_error(exc)}.") from None
        remove_leftovers(root)
        remove_stale(root, keep=set())
    return True


def _current_folder(root: Path) -> str:
    """The generation folder the manifest names now ("" if none can be read)."""
    try:
        return GENERATION_PREFIX + str(json.loads((root / MANIFEST).read_text())["generation"])
    except (OSError, ValueError, KeyError, TypeError):
        return ""


def leftovers(root: Path) -> list[Path]:
    """Temp folders and temp manifests that killed saves left behind."""
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir()
                  if p.name.startswith(TMP_PREFIX)
                  or (p.name.startswith(f".{MANIFEST}.") and p.name.endswith(".tmp")))


def remove_leftovers(root: Path) -> None:
    """Remove `leftovers(root)`; only under the writer lock (no other save is running)."""
    for path in leftovers(root):
        _remove(path)


def stale(root: Path, keep: set[str]) -> list[Path]:
    """Generation folders (and format-3 files) other than those named in `keep`."""
    return sorted(p for p in root.iterdir()
                  if p.name not in keep and p.name.startswith((GENERATION_PREFIX,
                                                               *LEGACY_PREFIXES)))


def remove_stale(root: Path, keep: set[str]) -> None:
    for path in stale(root, keep):
        _remove(path)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def file_problems(root: Path, manifest: Manifest, full: bool) -> list[str]:
    """What is wrong with the generation's files: missing, another size, or (with `full`)
    other bytes than were saved. Empty when all is well."""
    folder = root / manifest.folder
    problems = []
    for name, (size, sha) in manifest.files.items():
        path = folder / name
        shown = f"{manifest.folder}/{name}"
        try:
            actual = path.stat().st_size
            if actual != size:
                problems.append(f"{shown} has {actual:,} bytes, not {size:,}")
            elif full and digest(path) != sha:
                problems.append(f"{shown} does not match its checksum")
        except FileNotFoundError:
            problems.append(f"{shown} is missing")
        except PermissionError:
            raise StoreError(f"Cannot read the index at {root}: {shown}: permission denied.") \
                from None
    return problems


def verify(root: Path, manifest: Manifest, full: bool | None = None) -> None:
    """IndexCorrupt naming the first damaged file. `full` (default: for generations up to
    VERIFY_MAX bytes) checks content hashes as well as sizes."""
    if full is None:
        full = sum(size for size, _ in manifest.files.values()) <= VERIFY_MAX
    problems = file_problems(root, manifest, full)
    if problems:
        raise IndexCorrupt(f"The index at {root} is damaged: {problems[0]}; {REBUILD}.")
