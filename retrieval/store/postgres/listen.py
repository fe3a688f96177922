"""Hearing of new generations: LISTEN byline_generation on a connection of its own, in a
daemon thread. `latest` is the generation the store serves as last heard (read from the
manifest row at start and after every reconnect, so a notification missed while the
connection was down is not missed for good)."""

from __future__ import annotations

import logging
import threading

from retrieval.errors import BylineError
from retrieval.store.postgres import schema
from retrieval.store.postgres.connect import connect, redact

log = logging.getLogger("byline.live")
RETRY_SECONDS = 2.0


class GenerationListener:
    """Follows the store at `url`; `latest` changes when a generation is published."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.latest = ""
        self.heard = threading.Event()  # set on each change of `latest`
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="byline-listen", daemon=True)
        self._thread.start()
        self._ready.wait(10)

    def check(self) -> None:
        """Read the generation the store serves now (a notification may be on its way);
        a failure is left to the listening thread to report."""
        try:
            with connect(self.url) as conn:
                row = conn.execute("SELECT generation FROM byline_manifest").fetchone()
        except Exception:  # the listening thread reports a failure to connect
            return
        self._set(row[0] if row else "")

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def _set(self, generation: str) -> None:
        if generation and generation != self.latest:
            self.latest = generation
            self.heard.set()

    def _run(self) -> None:
        import psycopg

        warned = False
        while not self._stop.is_set():
            try:
                conn = connect(self.url)
            except BylineError as exc:
                if not warned:
                    log.warning("not listening for new generations: %s", exc)
                    warned = True
                self._ready.set()
                self._stop.wait(RETRY_SECONDS)
                continue
            try:
                with conn:
                    conn.execute(f"LISTEN {schema.CHANNEL}")
                    row = conn.execute("SELECT generation FROM byline_manifest").fetchone()
                    self._set(row[0] if row else "")
                    warned = False
                    self._ready.set()
                    while not self._stop.is_set():
                        for note in conn.notifies(timeout=1.0):
                            self._set(note.payload)
            except psycopg.Error as exc:
                if not self._stop.is_set():
                    log.warning("lost the connection listening to %s (%s); reconnecting",
                                redact(self.url), str(exc).splitlines()[0] if str(exc) else exc)
                    self._stop.wait(RETRY_SECONDS)
