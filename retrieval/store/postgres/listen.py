"""Hearing of new generations: LISTEN byline_generation on a connection of its own, in a
daemon thread. `latest` is the generation the store serves as last heard (read from the
manifest row at start and after every reconnect, so a notification missed while the
connection was down is not missed for good).

A hot standby (a read replica) refuses LISTEN, and NOTIFY is not replicated: there the
thread polls the manifest row's generation instead (one tiny query every `poll_seconds`,
the reload loop's schedule). Where LISTEN works the row is still read every SAFETY_SECONDS,
a cheap safety net for a notification lost on the way (a pooler, a failover). Which mode
is used is logged once.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import TYPE_CHECKING

from retrieval.errors import BylineError
from retrieval.store.postgres import schema
from retrieval.store.postgres.connect import connect, redact

if TYPE_CHECKING:
    import psycopg

log = logging.getLogger("byline.live")
RETRY_SECONDS = 2.0
SAFETY_SECONDS = 60.0  # re-read of the manifest row while listening
POLL_DEFAULT = 10.0  # seconds between polls where LISTEN is refused (BYLINE_RELOAD_SECONDS)
GENERATION = "SELECT generation FROM byline_manifest"


def poll_seconds_from_env() -> float:
    """BYLINE_RELOAD_SECONDS (the bot's reload loop), or POLL_DEFAULT when unset or off."""
    try:
        value = float(os.environ.get("BYLINE_RELOAD_SECONDS") or POLL_DEFAULT)
    except ValueError:
        value = POLL_DEFAULT
    return value if value > 0 else POLL_DEFAULT


class GenerationListener:
    """Follows the store at `url`; `latest` changes when a generation is published.
    `mode` is "listen" (LISTEN on `channel`, polled every `safety_seconds` too) or "poll" (a
    hot standby: the manifest row read every `poll_seconds`); "" until connected."""

    def __init__(self, url: str, poll_seconds: float | None = None,
                 safety_seconds: float = SAFETY_SECONDS, channel: str = schema.CHANNEL) -> None:
        self.url = url
        self.poll_seconds = poll_seconds if poll_seconds else poll_seconds_from_env()
        self.safety_seconds = safety_seconds
        self.channel = channel
        self.latest = ""
        self.mode = ""
        self.heard = threading.Event()  # set on each change of `latest`
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._logged: set[str] = set()
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

    def _read(self, conn: psycopg.Connection) -> None:
        row = conn.execute(GENERATION).fetchone()
        self._set(row[0] if row else "")

    def _use(self, mode: str) -> None:
        """Record the mode; logged once per mode for the listener's life."""
        self.mode = mode
        if mode in self._logged:
            return
        self._logged.add(mode)
        if mode == "listen":
            log.info("following %s by LISTEN %s (and a poll every %.0f s)", redact(self.url),
                     self.channel, self.safety_seconds)
        else:
            log.info("following %s by polling its generation every %g s (LISTEN refused: a "
                     "hot standby)", redact(self.url), self.poll_seconds)

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
                    listening = self._listen(conn)
                    self._read(conn)
                    warned = False
                    self._use("listen" if listening else "poll")
                    self._ready.set()
                    self._follow(conn, listening)
            except psycopg.Error as exc:
                if not self._stop.is_set():
                    log.warning("lost the connection listening to %s (%s); reconnecting",
                                redact(self.url), str(exc).splitlines()[0] if str(exc) else exc)
                    self._stop.wait(RETRY_SECONDS)

    def _listen(self, conn: psycopg.Connection) -> bool:
        """LISTEN on `conn`; False where the server refuses it (a hot standby)."""
        import psycopg

        try:
            conn.execute(f"LISTEN {self.channel}")
        except (psycopg.errors.ReadOnlySqlTransaction,
                psycopg.errors.FeatureNotSupported):
            return False
        return True

    def _follow(self, conn: psycopg.Connection, listening: bool) -> None:
        """Notifications (when `listening`) and the manifest row's generation, polled, until
        stopped or the connection fails."""
        every = self.safety_seconds if listening else self.poll_seconds
        due = time.monotonic() + every
        while not self._stop.is_set():
            if listening:
                for note in conn.notifies(timeout=min(1.0, every)):
                    self._set(note.payload)
            else:
                self._stop.wait(max(0.0, min(1.0, due - time.monotonic())))
            if time.monotonic() >= due and not self._stop.is_set():
                self._read(conn)
                due = time.monotonic() + every
