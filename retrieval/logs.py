"""Log lines that untrusted text cannot forge: a URL, title or error a feed or page chose is
logged with its control characters escaped, so it can neither start a fake line nor send
escape sequences to the operator's terminal."""

from __future__ import annotations

import logging
import re

_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029]")


def escape_controls(text: str) -> str:
    """`text` with each control character (newlines too; tabs kept) written as an escape."""
    return _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


class OneLineFormatter(logging.Formatter):
    """A record's message on one line, control characters escaped; a traceback, which the
    formatter appends after the message, keeps its lines."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = escape_controls(record.message)
        return super().formatMessage(record)


def configure(level: int, fmt: str) -> None:
    """logging.basicConfig, with every root handler writing one-line messages."""
    logging.basicConfig(level=level, format=fmt)
    root = logging.getLogger()
    root.setLevel(level)
    for handler in root.handlers:
        handler.setFormatter(OneLineFormatter(fmt))
