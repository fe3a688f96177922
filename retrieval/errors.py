"""The one family of errors Byline raises; each message is the sentence a user sees."""

from __future__ import annotations


class BylineError(Exception):
    """Base class: the message is short, user-facing and says what to do."""


class BadQuestion(BylineError):
    """The question is empty, too long or otherwise unusable."""


class CorpusError(BylineError):
    """The corpus folder is missing, empty, or holds a file that cannot be read."""


class IndexMissing(BylineError):
    """No index exists where one was expected."""


class IndexCorrupt(BylineError):
    """An index exists but cannot be read back."""


class IndexBusy(BylineError):
    """Another process is writing the index and this one was told not to wait."""


class StoreError(BylineError):
    """The operating system refused to read or write the index (space, permission, path)."""


class IndexMismatch(BylineError):
    """The index was built with another model, dimension or format."""


class ModelError(BylineError):
    """The embedding model cannot be loaded or fails its integrity check."""


class FetchError(BylineError):
    """A URL to fetch is unusable, or the folder's fetch record cannot be read."""


def describe_os_error(exc: OSError) -> str:
    """One line for an operating-system error: what it was doing it to, and why."""
    import errno

    reasons = {errno.ENOSPC: "no space left on device", errno.EDQUOT: "disk quota exceeded",
               errno.EACCES: "permission denied", errno.EPERM: "operation not permitted",
               errno.EROFS: "read-only file system", errno.ENOTDIR: "not a folder",
               errno.EISDIR: "is a folder", errno.ENOENT: "no such file or folder",
               errno.EEXIST: "already exists", errno.EMFILE: "too many open files",
               errno.EIO: "input/output error"}
    reason = reasons.get(exc.errno or 0) or (exc.strerror or str(exc) or type(exc).__name__)
    return f"{exc.filename}: {reason}" if exc.filename else reason
