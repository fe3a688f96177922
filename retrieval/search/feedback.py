"""Reader feedback on answers (👍/👎), kept in a small SQLite file beside the index.

Readers are kept as salted hashes of their Discord ids; the salt lives in a file of its own
beside the store (`<store>.salt`, the user's alone), never in the store: with both, anyone
could hash every plausible id and find who rated what. A store from before keeps its hashes:
its salt moves to that file on opening."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import sqlite3
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from retrieval.errors import BylineError, describe_os_error

VERDICTS = ("up", "down")


class FeedbackError(BylineError):
    """The feedback store is damaged, locked or unreadable."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS answers (key TEXT PRIMARY KEY, question TEXT NOT NULL,
    passage_ids TEXT NOT NULL, created TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS feedback (id INTEGER PRIMARY KEY, answer_key TEXT NOT NULL,
    question TEXT NOT NULL, passage_ids TEXT NOT NULL,
    verdict TEXT NOT NULL CHECK (verdict IN ('up', 'down')),
    user_hash TEXT NOT NULL, created TEXT NOT NULL, UNIQUE (answer_key, user_hash));
"""


@dataclass(frozen=True)
class Feedback:
    """One reader's verdict on one answer."""

    question: str
    passage_ids: list[str]
    verdict: str
    user_hash: str
    created: str


def default_path(index_dir: str | Path) -> Path:
    """`feedback.sqlite` in the folder that holds the index folder."""
    return Path(index_dir).resolve().parent / "feedback.sqlite"


def salt_path(store: Path) -> Path:
    """The file beside the store that keeps its readers' salt."""
    return store.with_name(store.name + ".salt")


def _salt(path: Path, db: sqlite3.Connection) -> tuple[str, bool]:
    """The store's salt: read from `path`; else the one an older store kept inside (moved
    out, so its hashes stay the same), else a new one; written private to the user. And
    whether one was taken out of the store."""
    try:
        salt = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        salt = ""
    row = db.execute("SELECT value FROM meta WHERE key='salt'").fetchone()
    if not salt:
        salt = row[0] if row else secrets.token_hex(16)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as fh:
            fh.write(salt + "\n")
            fh.flush()
            os.fsync(fh.fileno())
    if row:
        db.execute("DELETE FROM meta WHERE key='salt'")
    return salt, bool(row)


class FeedbackStore:
    """Remembers answers shown and the verdicts readers give them; thread-safe."""

    def __init__(self, path: str | Path) -> None:
        """Open (or create) the store; FeedbackError in one line when the file is damaged,
        unreadable or cannot be written."""
        self.path = Path(path)
        self._lock = threading.Lock()
        db = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if not self.path.exists():  # private, whatever the umask
                os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            db = sqlite3.connect(self.path, check_same_thread=False)
            # WAL with NORMAL sync: a commit does not wait for an fsync, which would serialise
            # a burst of answers; a power cut can lose the last commits, never corrupt the file.
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            with db:
                db.executescript(_SCHEMA)
                self._salt, moved = _salt(salt_path(self.path), db)
            if moved:
                db.execute("VACUUM")  # no copy of the old salt left in a free page
        except (sqlite3.Error, OSError) as exc:
            if db is not None:
                db.close()
            reason = describe_os_error(exc) if isinstance(exc, OSError) else str(exc)
            raise FeedbackError(f"The feedback store {self.path} cannot be opened for "
                                f"writing ({reason}).") from None
        self._db = db

    def remember(self, question: str, passage_ids: list[str]) -> str:
        """Store an answer that was shown; returns a short key to vote on it later."""
        key = secrets.token_hex(6)
        with self._lock, self._db:
            self._db.execute("INSERT INTO answers VALUES (?,?,?,?)",
                             (key, question, json.dumps(passage_ids), _now()))
        return key

    def record(self, answer_key: str, verdict: str, user_id: int | str) -> Feedback | None:
        """Store (or change) a reader's verdict; None when the answer key is unknown."""
        if verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {VERDICTS}")
        with self._lock, self._db:
            row = self._db.execute("SELECT question, passage_ids FROM answers WHERE key=?",
                                   (answer_key,)).fetchone()
            if row is None:
                return None
            fb = Feedback(row[0], json.loads(row[1]), verdict, self.hash_user(user_id), _now())
            self._db.execute(
                "INSERT INTO feedback (answer_key, question, passage_ids, verdict, user_hash, "
                "created) VALUES (?,?,?,?,?,?) ON CONFLICT (answer_key, user_hash) DO UPDATE "
                "SET verdict=excluded.verdict, created=excluded.created",
                (answer_key, fb.question, row[1], verdict, fb.user_hash, fb.created))
        return fb

    def export(self) -> list[Feedback]:
        """Every verdict, oldest first."""
        with self._lock:
            rows = self._db.execute("SELECT question, passage_ids, verdict, user_hash, created "
                                    "FROM feedback ORDER BY id").fetchall()
        return [Feedback(q, json.loads(ids), v, u, c) for q, ids, v, u, c in rows]

    def hash_user(self, user_id: int | str) -> str:
        """A salted hash: Discord ids are guessable, so a plain hash would not hide them."""
        return hashlib.sha256(f"{self._salt}:{user_id}".encode()).hexdigest()[:16]

    def close(self) -> None:
        with self._lock:
            self._db.close()


def read_feedback(path: str | Path) -> list[Feedback]:
    """Every verdict in the store at `path`, oldest first, opened read-only (no journal files
    are created); FeedbackError in one line when it is damaged, locked or unreadable."""
    path = Path(path)
    # With no write-ahead log beside it no writer is active: read the file as immutable, which
    # creates no -wal/-shm files; while the bot writes (its -wal exists), a plain read-only
    # connection shares its log.
    live = path.with_name(path.name + "-wal").exists()
    try:
        db = sqlite3.connect(f"{path.resolve().as_uri()}?{'mode=ro' if live else 'immutable=1'}",
                             uri=True)
        try:
            rows = db.execute("SELECT question, passage_ids, verdict, user_hash, created "
                              "FROM feedback ORDER BY id").fetchall()
        finally:
            db.close()
        return [Feedback(q, json.loads(ids), v, u, c) for q, ids, v, u, c in rows]
    except (sqlite3.Error, ValueError, TypeError) as exc:
        raise FeedbackError(f"The feedback store {path} cannot be read ({exc}).") from None


def to_dict(fb: Feedback) -> dict:
    return asdict(fb)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
