"""Connections to the PostgreSQL store: one pool per database URL per process, the `vector`
type read as numpy, and connection failures as one-line errors (never showing a password).

The URL is libpq's own: TLS (`sslmode=verify-full&sslrootcert=...`), timeouts and the rest
pass through untouched, and a password left out of it is taken from PGPASSWORD or
~/.pgpass by libpq. The pool's size is BYLINE_PG_POOL (default 4) connections.
"""

from __future__ import annotations

import contextlib
import os
import re
import struct
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from retrieval.errors import StoreError

if TYPE_CHECKING:
    import psycopg
    from psycopg_pool import ConnectionPool

CONNECT_TIMEOUT = 10  # seconds, unless the URL sets connect_timeout
# How often a session busy in a statement checks that its client is still there: a writer
# killed during a long statement (an index build at scale) would otherwise leave its session
# running it, and holding the publish lock, until it ends (PostgreSQL 14 and later; ignored before).
CLIENT_CHECK = "2s"
T = TypeVar("T")
_pools: dict[str, ConnectionPool] = {}
_guard = threading.Lock()


def redact(url: str) -> str:
    """`url` as it may be shown (to any server's admins): its host, port and database, never
    its user or password. Read by hand, not by libpq: libpq takes an unescaped `@`, `:` or `/`
    in a password for the end of the host, and would show the rest as one."""
    pairs = dict(re.findall(r"(\w+)\s*=\s*('(?:[^'\\]|\\.)*'|\S*)", url))
    if pairs and "://" not in url:  # key=value
        host = pairs.get("host", "").strip("'") or "localhost"
        port = f":{pairs['port'].strip(chr(39))}" if pairs.get("port") else ""
        return _shown(f"{host}{port}", pairs.get("dbname", "").strip("'"))
    rest = url.split("://", 1)[-1]
    after = rest[rest.rfind("@") + 1:]  # the last "@": a password may hold one
    netloc, _, path = after.partition("/")
    return _shown(netloc.split("?")[0], path.split("?")[0])


def _shown(netloc: str, dbname: str) -> str:
    host = re.sub(r"[^\w.:\[\]{}%-]", "", netloc)[:200] or "localhost"
    db = re.sub(r"[^\w.{}%-]", "", dbname)[:100]
    return f"postgresql://{host}/{db}"


def _secrets(url: str) -> list[str]:
    """Whatever of `url` may be a password, longest first: the user-info part and its
    pieces split where libpq may have split it, and libpq's own reading of the password."""
    rest = url.split("://", 1)[-1]
    info = rest[:rest.rfind("@")] if "@" in rest else ""
    found = {info, info.partition(":")[2], *re.split(r"[:@/?#]", info)[1:]}
    found |= set(re.findall(r"password\s*=\s*'?([^'\s]+)", url))
    try:
        from psycopg.conninfo import conninfo_to_dict

        found.add(str(conninfo_to_dict(url).get("password") or ""))
    except Exception:
        pass
    return sorted((f for f in found if len(f) >= 2), key=len, reverse=True)


def failure(url: str, exc: BaseException) -> StoreError:
    """One line for a failure to reach or use the database at `url` (libpq's reason, with
    anything that may be the password masked)."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    for prefix in ("connection failed: ", "FATAL:  "):
        text = text.removeprefix(prefix)
    for secret in _secrets(url):
        text = text.replace(secret, "***")
    return StoreError(f"Cannot use the store at {redact(url)}: {text}.")


def _kwargs(url: str) -> dict[str, Any]:
    from psycopg.conninfo import conninfo_to_dict

    try:
        info = conninfo_to_dict(url)
    except Exception:  # libpq's reason quotes the part it could not read: not shown
        raise StoreError(f"The store URL for {redact(url)} cannot be read; percent-encode any "
                         "@ : / ? # % in its password (or leave the password to PGPASSWORD "
                         "or ~/.pgpass).") from None
    extra: dict[str, Any] = {"autocommit": True}
    if "connect_timeout" not in info:
        extra["connect_timeout"] = CONNECT_TIMEOUT
    return extra


def connect(url: str) -> psycopg.Connection:
    """A connection of its own (LISTEN, the writer's lock, publishing, migrations),
    autocommit; its server session ends soon after this process dies, even mid-statement."""
    import psycopg

    kwargs = _kwargs(url)
    try:
        conn = psycopg.connect(url, **kwargs)
        # before PostgreSQL 14 there is no such setting; where the kernel cannot tell, 0 only
        with contextlib.suppress(psycopg.errors.UndefinedObject,
                                 psycopg.errors.InvalidParameterValue):
            conn.execute("SELECT set_config('client_connection_check_interval', %s, false)",
                         (CLIENT_CHECK,))
    except psycopg.Error as exc:
        raise failure(url, exc) from None
    _register_vector(conn)
    return conn


def pool(url: str) -> ConnectionPool:
    """The process's pool for `url` (opened on first use; a failure to connect is raised
    here, as one line, rather than as a pool timeout later)."""
    with _guard:
        found = _pools.get(url)
        if found is not None and not found.closed:
            return found
        connect(url).close()  # the real reason, if the database cannot be reached
        from psycopg_pool import ConnectionPool

        size = max(1, int(os.environ.get("BYLINE_PG_POOL") or 4))
        made = ConnectionPool(url, min_size=1, max_size=size, kwargs=_kwargs(url),
                              configure=_register_vector, open=True, name="byline")
        _pools[url] = made
        return made


def read(pool: ConnectionPool, work: Callable[[psycopg.Connection], T]) -> T:
    """`work(conn)` on one of `pool`'s connections, for a read. When the server dropped that
    connection (a restart, an administrator's terminate), the pool's idle connections are
    checked, the dead ones replaced, and the read runs once more: a question asked once the
    server is back never fails for a connection it killed earlier. Errors are psycopg's;
    the caller makes them one line."""
    import psycopg

    used: list[psycopg.Connection] = []
    try:
        with pool.connection() as conn:
            used.append(conn)
            return work(conn)
    except psycopg.OperationalError:
        if not used or not used[0].broken:
            raise  # the query failed, not the connection: the same read would fail again
    pool.check()
    with pool.connection() as conn:
        return work(conn)


def forget_pool(url: str) -> None:
    """Close the pool for `url` (connections in use close when given back); the next use
    opens a new one: after a coverage is unloaded, or when its connections were opened
    before the vector type existed (a database with no store yet)."""
    with _guard:
        found = _pools.pop(url, None)
    if found is not None:
        found.close()


def close_pools() -> None:
    """Close every pool (tests; a process that is done with the store)."""
    with _guard:
        for p in _pools.values():
            p.close()
        _pools.clear()


class _VectorLoader:
    """pgvector's binary `vector`: int16 dimension, int16 unused, big-endian float4s."""

    @staticmethod
    def load(data: Any) -> np.ndarray:
        dim = struct.unpack_from(">H", data, 0)[0]
        return np.frombuffer(bytes(data), ">f4", count=dim, offset=4).astype(np.float32)


def _register_vector(conn: psycopg.Connection) -> None:
    from psycopg.adapt import Loader
    from psycopg.types import TypeInfo

    info = TypeInfo.fetch(conn, "vector")
    if info is None:
        return  # no extension yet: migrations create it

    class VectorBinary(Loader):
        format = 1  # binary

        def load(self, data: Any) -> np.ndarray:
            return _VectorLoader.load(data)

    class VectorText(Loader):
        def load(self, data: Any) -> np.ndarray:
            return np.array(bytes(data).decode()[1:-1].split(","), dtype=np.float32)

    conn.adapters.register_loader(info.oid, VectorBinary)
    conn.adapters.register_loader(info.oid, VectorText)


def vector_text(vec: np.ndarray) -> str:
    """A vector as pgvector's text input ('[0.1,0.2,...]'), exact for float32."""
    return "[" + ",".join(repr(float(x)) for x in np.asarray(vec, np.float32)) + "]"
