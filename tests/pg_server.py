"""A real, throw-away PostgreSQL 16 with pgvector for the tests: pgserver's bundled binaries,
run on 127.0.0.1 (a free port) from a temporary folder, with password (SCRAM) login.

PostgreSQL refuses to run as root: under root (CI containers, this machine) the server runs
as `nobody`, its data folder handed to that user. `python -m tests.pg_server` starts one and
prints its URL until interrupted (for trying `byline --store ...` by hand).
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

USER = "byline"
DATABASE = "byline_test"


class ServerFailed(RuntimeError):
    """The test PostgreSQL could not be started (the message says why, with its log)."""


def _bin() -> Path:
    """pgserver's bundled binaries (found without importing pgserver, whose import sets up
    per-user runtime folders we do not use)."""
    spec = importlib.util.find_spec("pgserver")
    if spec is None or not spec.submodule_search_locations:
        raise ServerFailed("pgserver is not installed: pip install -e '.[dev]' (it bundles "
                           "PostgreSQL 16 with pgvector for the tests)")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


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

    @property
    def url(self) -> str:
        return f"postgresql://{USER}:{self.password}@127.0.0.1:{self.port}/{DATABASE}"

    @property
    def url_without_password(self) -> str:
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{DATABASE}"

    def stop(self) -> None:
        subprocess.run([str(_bin() / "pg_ctl"), "-D", str(self.folder / "data"), "-m", "fast",
                        "-w", "stop"], capture_output=True, timeout=60, check=False,
                       **self._as)
        shutil.rmtree(self.folder, ignore_errors=True)


def start(settings: dict[str, str] | None = None) -> TestServer:
    """initdb, start on 127.0.0.1, create DATABASE with the vector extension; `settings`
    are extra server settings (`-c name=value`: a benchmark's memory, say)."""
    bin_dir = _bin()
    folder = Path(tempfile.mkdtemp(prefix="byline-pg-"))
    run_as: dict[str, Any] = {}
    if os.geteuid() == 0:  # PostgreSQL will not run as root
        nobody = pwd.getpwnam("nobody")
        run_as = {"user": nobody.pw_uid, "group": nobody.pw_gid}
        os.chown(folder, nobody.pw_uid, nobody.pw_gid)
    password = secrets.token_hex(12)
    pwfile = folder / "pw"
    pwfile.write_text(password + "\n")
    if run_as:
        os.chown(pwfile, run_as["user"], run_as["group"])
    data, log = folder / "data", folder / "log"
    port = _free_port()

    def run(*args: str) -> None:
        done = subprocess.run(args, capture_output=True, text=True, timeout=120, check=False,
                              cwd=folder, **run_as)
        if done.returncode:
            tail = log.read_text()[-2000:] if log.exists() else ""
            raise ServerFailed(f"{Path(args[0]).name} failed ({done.returncode}): "
                               f"{done.stderr.strip()[-2000:]}\n{tail}")

    try:
        run(str(bin_dir / "initdb"), "-D", str(data), "-U", USER, "--auth=scram-sha-256",
            f"--pwfile={pwfile}", "-E", "UTF8", "--no-sync", "--locale=C")
        opts = f"-h 127.0.0.1 -p {port} -k {folder} -c fsync=off -c synchronous_commit=off"
        opts += "".join(f" -c {name}={value}" for name, value in (settings or {}).items())
        run(str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(log), "-w", "-t", "60",
            "-o", opts, "start")
    except (OSError, subprocess.SubprocessError, ServerFailed) as exc:
        shutil.rmtree(folder, ignore_errors=True)
        if isinstance(exc, ServerFailed):
            raise
        raise ServerFailed(f"could not run PostgreSQL from {bin_dir}: {exc}") from None
    server = TestServer(folder, port, password, run_as)
    try:
        import psycopg

        admin = f"postgresql://{USER}:{password}@127.0.0.1:{port}/postgres"
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {DATABASE}")
        with psycopg.connect(server.url, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
    except Exception as exc:
        server.stop()
        raise ServerFailed(f"PostgreSQL started but could not be set up: {exc}") from None
    return server


if __name__ == "__main__":  # pragma: no cover - by hand
    import time

    s = start()
    print(s.url, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        s.stop()
