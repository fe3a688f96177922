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


class IndexMismatch(BylineError):
    """The index was built with another model, dimension or format."""


class ModelError(BylineError):
    """The embedding model cannot be loaded or fails its integrity check."""


class FetchError(BylineError):
    """A URL to fetch is unusable, or the folder's fetch record cannot be read."""
