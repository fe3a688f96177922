"""Durable file writes (fsync, atomic replace) and per-file checksums."""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import xxhash

CHECKSUM = "xxh3_128"  # the checksum's name, written before each file's value


def write_atomic(path: Path, data: str | bytes) -> None:
    """Replace `path` with `data` (text is written as UTF-8) in one step: a temp file beside
    it, fsynced, then renamed over it, so readers never see half a file. On any error the
    temp file is removed and `path` is as it was. Its folder is created if need be."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:  # private to this user whatever the umask
        with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as fh:
            fh.write(data.encode("utf-8") if isinstance(data, str) else data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    with contextlib.suppress(OSError):  # the rename is done; the kernel flushes the rest
        fsync_dir(path.parent)


class _Writes:
    """A file seen by numpy as a plain stream (it has only `write`)."""

    def __init__(self, fh) -> None:
        self.write = fh.write


def save_array(path: Path, array: np.ndarray) -> None:
    """`np.save` through Python's file writes. numpy's fast path for real files
    (ndarray.tofile) reports a full disk as "N requested and M written", an OSError without
    errno; here it is ENOSPC (EDQUOT, EIO...) like any other write error."""
    with path.open("wb") as fh:
        np.lib.format.write_array(_Writes(fh), np.asarray(array), allow_pickle=False)


def fsync_tree(path: Path) -> None:
    """fsync every file under `path` (or `path` itself), then the folders holding them.
    The files' fsyncs run side by side: the file system commits them together."""
    if path.is_file():
        _fsync(path)
        return
    walked = list(os.walk(path))
    files = [Path(folder) / name for folder, _, names in walked for name in names]
    with ThreadPoolExecutor(max_workers=min(8, len(files) or 1)) as pool:
        list(pool.map(_fsync, files))
    for folder, _, _ in walked:
        fsync_dir(Path(folder))


def _fsync(path: Path) -> None:
    with path.open("rb") as fh:
        os.fsync(fh.fileno())


def fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def digest(path: Path) -> str:
    """A checksum of a file's bytes: "xxh3_128:<hex>" (XXH3, many times sha256's speed:
    docs/performance.md); it detects damage (a checksum, not a defence against someone who
    can also rewrite the manifest)."""
    with path.open("rb") as fh:
        return f"{CHECKSUM}:{hashlib.file_digest(fh, xxhash.xxh3_128).hexdigest()}"


def listing(folder: Path, known: dict[tuple[int, int], tuple[int, str]] | None = None
            ) -> dict[str, tuple[int, str]]:
    """relative path -> (size, checksum) of every file under `folder`, sorted by path; a
    file whose (device, inode) is in `known` (a hard link to a file already listed) takes
    the checksum recorded there instead of being read again."""
    out = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        st = path.stat()
        size, sha = (known or {}).get((st.st_dev, st.st_ino), (-1, ""))
        out[path.relative_to(folder).as_posix()] = ((size, sha) if size == st.st_size
                                                   else (st.st_size, digest(path)))
    return out
