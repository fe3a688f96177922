"""A real, throw-away PostgreSQL 16 with pgvector for the tests: pgserver's bundled binaries,
run on 127.0.0.1 (a free port) from a temporary folder, with password (SCRAM) login; and a
hot standby of one (`start_standby`, a streaming read replica made by pg_basebackup).

PostgreSQL refuses to run as root: under root (CI containers, this machine) the server runs
as `nobody`, its data folder handed to that user, and from a copy of the binaries in a
folder of its own under the temporary folder: the venv's copy may lie in a folder `nobody`
cannot enter (a clone in root's home, or in a `mktemp -d` folder). `python -m
tests.support.pg_server` starts one and prints its URL until interrupted (for trying `byline
--store ...` by hand).
"""

from __future__ import annotations

import atexit
import functools
import importlib.util
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

USER = "byline"
DATABASE = "byline_test"


class ServerFailed(RuntimeError):
    """The test PostgreSQL could not be started (the message says why, with its log)."""


def _installed() -> Path:
    """pgserver's bundled PostgreSQL (found without importing pgserver, whose import sets up
    per-user runtime folders we do not use); or the install named by BYLINE_TEST_PGINSTALL, laid
    out as pgserver's (`<folder>/pgserver/pginstall`, its libraries in `<folder>/pgserver.libs`):
    a copy with a newer pgvector built into it, for bench/pgvector_current.py."""
    chosen = os.environ.get("BYLINE_TEST_PGINSTALL")
    if chosen:
        if not (Path(chosen) / "bin" / "postgres").is_file():
            raise ServerFailed(f"BYLINE_TEST_PGINSTALL={chosen} holds no bin/postgres")
        return Path(chosen)
    spec = importlib.util.find_spec("pgserver")
    if spec is None or not spec.submodule_search_locations:
        raise ServerFailed("pgserver is not installed: pip install -e '.[dev]' (it bundles "
                           "PostgreSQL 16 with pgvector for the tests)")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall"


@functools.cache
def _bin(pgvector: bool = True) -> Path:
    """The binaries the server runs from: pgserver's own when we are not root; as root, a
    copy `nobody` can reach (made once a process, removed when it exits; PostgreSQL finds
    its libraries and share/ relative to the binary, so a copy runs as the original).
    Without `pgvector`, a copy whose vector extension is gone (a server that lacks it)."""
    installed = _installed()
    if os.geteuid() != 0 and pgvector:
        return installed / "bin"
    copy = Path(tempfile.mkdtemp(prefix="byline-pgbin-"))  # root's, not writable by others
    atexit.register(shutil.rmtree, copy, ignore_errors=True)
    # The binaries' libraries (libpq...) lie in pgserver.libs beside the package, found
    # through an rpath of $ORIGIN/../../../pgserver.libs: the copy keeps that layout.
    site = installed.parent.parent
    try:
        shutil.copytree(installed, copy / "pgserver" / "pginstall", symlinks=True)
        if (site / "pgserver.libs").is_dir():
            shutil.copytree(site / "pgserver.libs", copy / "pgserver.libs", symlinks=True)
    except OSError as exc:
        raise ServerFailed(f"could not copy PostgreSQL from {installed}: {exc}") from None
    if not pgvector:
        for found in (copy / "pgserver" / "pginstall").rglob("vector*"):
            if found.is_file() and ("extension" in found.parts or found.suffix == ".so"):
                found.unlink()
    for folder, _, files in os.walk(copy):  # a venv made under umask 077 is root's alone
        os.chmod(folder, 0o755)
        for name in files:
            path = os.path.join(folder, name)
            if not os.path.islink(path):
                mode = os.stat(path).st_mode
                os.chmod(path, mode | 0o444 | (0o111 if mode & 0o100 else 0))
    return copy / "pgserver" / "pginstall" / "bin"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class TestServer:
    """A running server: `url` logs in as USER with its password (superuser)."""

    __test__ = False  # not a pytest class

    folder: Path
    port: int
    password: str
    _as: dict[str, Any]
    pgvector: bool = True

    @property
    def url(self) -> str:
        return f"postgresql://{USER}:{self.password}@127.0.0.1:{self.port}/{DATABASE}"

    @property
    def url_without_password(self) -> str:
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{DATABASE}"

    def restart(self) -> None:
        """Stop the server (every session ended: "terminating connection due to
        administrator command") and start it again, as an operator's restart does."""
        pg_ctl = str(_bin(self.pgvector) / "pg_ctl")
        done = subprocess.run([pg_ctl, "-D", str(self.folder / "data"), "-l",
                               str(self.folder / "log"), "-m", "fast", "-w", "-t", "60",
                               "restart"], capture_output=True,
                              text=True, timeout=120, check=False, cwd=self.folder, **self._as)
        if done.returncode:
            raise ServerFailed(f"pg_ctl restart failed: {done.stderr.strip()[-2000:]}")

    def stop(self) -> None:
        subprocess.run([str(_bin(self.pgvector) / "pg_ctl"), "-D", str(self.folder / "data"),
                        "-m", "fast", "-w", "stop"], capture_output=True, timeout=60,
                       check=False, **self._as)
        shutil.rmtree(self.folder, ignore_errors=True)


def _folder() -> tuple[Path, dict[str, Any]]:
    """A temporary folder for one server, and whom to run it as (not root)."""
    folder = Path(tempfile.mkdtemp(prefix="byline-pg-"))
    run_as: dict[str, Any] = {}
    if os.geteuid() == 0:  # PostgreSQL will not run as root
        nobody = pwd.getpwnam("nobody")
        run_as = {"user": nobody.pw_uid, "group": nobody.pw_gid}
        os.chown(folder, nobody.pw_uid, nobody.pw_gid)
    return folder, run_as


def _runner(folder: Path, run_as: dict[str, Any], env: dict[str, str] | None = None
            ) -> Callable[..., None]:
    """Runs a PostgreSQL program in `folder` (ServerFailed with its log when it fails)."""
    log = folder / "log"

    def run(*args: str) -> None:
        done = subprocess.run(args, capture_output=True, text=True, timeout=120, check=False,
                              cwd=folder, env=env, **run_as)
        if done.returncode:
            tail = log.read_text()[-2000:] if log.exists() else ""
            raise ServerFailed(f"{Path(args[0]).name} failed ({done.returncode}): "
                               f"{done.stderr.strip()[-2000:]}\n{tail}")

    return run


def _options(folder: Path, port: int, settings: dict[str, str] | None = None) -> str:
    opts = f"-h 127.0.0.1 -p {port} -k {folder} -c fsync=off -c synchronous_commit=off"
    return opts + "".join(f" -c {name}={value}" for name, value in (settings or {}).items())


def start(settings: dict[str, str] | None = None, pgvector: bool = True) -> TestServer:
    """initdb, start on 127.0.0.1, create DATABASE with the vector extension (without
    `pgvector`: a server that has no such extension to create); `settings` are extra server
    settings (`-c name=value`: a benchmark's memory, say)."""
    bin_dir = _bin(pgvector)
    folder, run_as = _folder()
    password = secrets.token_hex(12)
    pwfile = folder / "pw"
    pwfile.write_text(password + "\n")
    if run_as:
        os.chown(pwfile, run_as["user"], run_as["group"])
    data, log = folder / "data", folder / "log"
    port = _free_port()
    run = _runner(folder, run_as)
    try:
        run(str(bin_dir / "initdb"), "-D", str(data), "-U", USER, "--auth=scram-sha-256",
            f"--pwfile={pwfile}", "-E", "UTF8", "--no-sync", "--locale=C")
        run(str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(log), "-w", "-t", "60",
            "-o", _options(folder, port, settings), "start")
    except (OSError, subprocess.SubprocessError, ServerFailed) as exc:
        shutil.rmtree(folder, ignore_errors=True)
        if isinstance(exc, ServerFailed):
            raise
        raise ServerFailed(f"could not run PostgreSQL from {bin_dir}: {exc}") from None
    server = TestServer(folder, port, password, run_as, pgvector)
    try:
        import psycopg

        admin = f"postgresql://{USER}:{password}@127.0.0.1:{port}/postgres"
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {DATABASE}")
        if pgvector:
            with psycopg.connect(server.url, autocommit=True) as conn:
                conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
    except Exception as exc:
        server.stop()
        raise ServerFailed(f"PostgreSQL started but could not be set up: {exc}") from None
    return server


def start_standby(primary: TestServer) -> TestServer:
    """A hot standby of `primary` (a read replica, streaming its WAL) on another free port:
    `pg_basebackup -R` from the primary, then started; ready for connections when this
    returns (see `caught_up` for its replay)."""
    bin_dir = _bin()
    folder, run_as = _folder()
    data, log = folder / "data", folder / "log"
    port = _free_port()
    env = {**os.environ, "PGPASSWORD": primary.password}
    try:
        _runner(folder, run_as, env)(
            str(bin_dir / "pg_basebackup"), "-h", "127.0.0.1", "-p", str(primary.port),
            "-U", USER, "-D", str(data), "-R", "-X", "stream", "-c", "fast", "--no-sync")
        _runner(folder, run_as)(
            str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(log), "-w", "-t", "60",
            "-o", _options(folder, port) + " -c hot_standby=on", "start")
    except (OSError, subprocess.SubprocessError, ServerFailed) as exc:
        subprocess.run([str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                       capture_output=True, timeout=60, check=False, **run_as)
        shutil.rmtree(folder, ignore_errors=True)
        if isinstance(exc, ServerFailed):
            raise
        raise ServerFailed(f"could not start a standby from {bin_dir}: {exc}") from None
    return TestServer(folder, port, primary.password, run_as)


def caught_up(primary: TestServer, standby: TestServer, seconds: float = 30.0) -> bool:
    """Whether `standby` replays `primary`'s WAL up to where it stands now, within
    `seconds` (waiting for it)."""
    import time

    import psycopg

    with psycopg.connect(primary.url, autocommit=True) as conn:
        lsn = conn.execute("SELECT pg_current_wal_lsn()").fetchone()[0]
    end = time.monotonic() + seconds
    with psycopg.connect(standby.url, autocommit=True) as conn:
        while time.monotonic() < end:
            row = conn.execute("SELECT pg_is_in_recovery(), "
                               "pg_last_wal_replay_lsn() >= %s::pg_lsn", (lsn,)).fetchone()
            if row[0] and row[1]:
                return True
            time.sleep(0.05)
    return False


if __name__ == "__main__":  # pragma: no cover - by hand
    import time

    s = start()
    print(s.url, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        s.stop()
