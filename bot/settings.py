"""Bot settings from the environment (and `.env`); the token is never shown or logged."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from retrieval.cli.config import Settings
from retrieval.errors import BylineError
from retrieval.feeds.addresses import AddressPolicy
from retrieval.feeds.fetch import FetchSettings
from retrieval.store import backend

SHARED, PER_SERVER = "shared", "per-server"  # BYLINE_COVERAGE
GUILD = "{guild}"  # in BYLINE_STORE's database name, per server: the guild's id
THREAD, PROCESS = "thread", "process"  # BYLINE_WORKER

TOKEN_HELP = (
    "DISCORD_TOKEN is not set: create an application at "
    "https://discord.com/developers/applications, open Bot, press Reset Token, and put the "
    "token in .env as DISCORD_TOKEN=... (see .env.example)."
)


class BotConfigError(BylineError):
    """A bot setting is missing or malformed."""


@dataclass(frozen=True)
class BotSettings:
    """Everything the bot needs to start: the core Settings (index, model, corpus) it shares
    with the `byline` command, and the bot's own; `token` is hidden from repr."""

    token: str = field(repr=False)
    core: Settings = field(default_factory=Settings)
    guild_id: int | None = None
    cooldown_seconds: float = 10.0  # per user, between two /ask
    feedback_db: Path | None = None
    reload_seconds: float = 10.0  # how often the index folder is checked for a new generation
    shutdown_seconds: float = 20.0  # on SIGTERM, how long answers in flight may still take
    metrics_port: int | None = None  # /healthz and /metrics (None: not served; 0: any port)
    metrics_host: str = "127.0.0.1"
    coverage: str = SHARED  # one coverage for every server, or one per server
    data_dir: Path = Path(".byline")  # per-server coverages live in <data_dir>/guilds/<id>/
    max_loaded: int = 20  # per-server indexes kept in memory at once (least recently used go)
    max_loaded_mb: float = 1024.0  # and at most this many MB of them on disk (0: no byte cap)
    follow: bool = True  # poll each coverage's feeds.txt in the background
    follow_minutes: float = 15.0  # between two polls of a feed (±10%; failures back off)
    follow_check_seconds: float = 60.0  # how often each coverage's feed task looks for work
    worker: str = THREAD  # where indexing and fetching run: a thread, or a worker process
    fetch: FetchSettings = field(default_factory=FetchSettings)  # limits for /coverage add

    @property
    def index_dir(self) -> Path:
        return self.core.index_dir

    @property
    def model(self) -> str:
        return self.core.model

    @property
    def store_url(self) -> str | None:
        """BYLINE_STORE when it is a PostgreSQL URL (per server: a template, GUILD in it)."""
        store = self.core.store
        return store if store and backend(store).shared else None

    def guild_store(self, guild_id: int) -> str | None:
        """The PostgreSQL database of one guild's coverage (None: per-server folders)."""
        url = self.store_url
        return url.replace(GUILD, str(int(guild_id))) if url and self.coverage == PER_SERVER \
            else None

    def check_store(self) -> None:
        """BotConfigError unless BYLINE_STORE fits the coverage mode: per server, a URL must
        give each guild a database of its own; shared, it must name one."""
        url = self.store_url
        if url is None:
            return
        if self.coverage != PER_SERVER:
            if GUILD in url:
                raise BotConfigError(f"BYLINE_STORE holds {GUILD}, which only "
                                     "BYLINE_COVERAGE=per-server fills in; name one database "
                                     "for the shared coverage.")
            return
        if _dbname(url.replace(GUILD, "1")) == _dbname(url.replace(GUILD, "2")):
            raise BotConfigError(
                f"BYLINE_COVERAGE=per-server needs {GUILD} in the database name of "
                f"BYLINE_STORE (like postgresql://host/byline_{GUILD}), so that no two "
                "servers share one index.")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None,
                 core: Settings | None = None) -> BotSettings:
        """The bot's settings from `env` (default: the environment, where the entry point
        has read `.env`); `core` (default: from the same `env`) may carry command-line
        overrides."""
        env = os.environ if env is None else env
        token = (env.get("DISCORD_TOKEN") or "").strip()
        if not token:
            raise BotConfigError(TOKEN_HELP)
        settings = cls(
            token=token,
            core=core if core is not None else Settings.from_env(env),
            guild_id=_int(env, "DISCORD_GUILD_ID", "a Discord id"),
            cooldown_seconds=_float(env, "BYLINE_COOLDOWN_SECONDS", 10.0),
            feedback_db=Path(env["BYLINE_FEEDBACK_DB"]) if env.get("BYLINE_FEEDBACK_DB") else None,
            reload_seconds=_float(env, "BYLINE_RELOAD_SECONDS", 10.0),
            shutdown_seconds=_float(env, "BYLINE_SHUTDOWN_SECONDS", 20.0),
            metrics_port=_port(env, "BYLINE_METRICS_PORT"),
            metrics_host=(env.get("BYLINE_METRICS_HOST") or "").strip() or "127.0.0.1",
            coverage=_choice(env, "BYLINE_COVERAGE", (SHARED, PER_SERVER)),
            data_dir=Path((env.get("BYLINE_DATA_DIR") or "").strip() or ".byline"),
            max_loaded=_count(env, "BYLINE_MAX_LOADED", 20),
            max_loaded_mb=_float(env, "BYLINE_MAX_LOADED_MB", 1024.0, "a number of MB"),
            follow=_flag(env, "BYLINE_FOLLOW", True),
            follow_minutes=_minutes(env, "BYLINE_FOLLOW_MINUTES", 15.0),
            worker=_choice(env, "BYLINE_WORKER", (THREAD, PROCESS)),
            fetch=FetchSettings(policy=_policy(env), folder_bytes=int(_float(
                env, "BYLINE_SERVER_MAX_MB", 500.0, "a number of MB") * 2**20)),
        )
        settings.check_store()
        return settings


def _policy(env: Mapping[str, str]) -> AddressPolicy:
    """BYLINE_FETCH_ALLOW: hosts and networks a server admin's URLs may reach beside public
    addresses (none by default)."""
    try:
        return AddressPolicy.from_env(env)
    except ValueError as exc:
        raise BotConfigError(f"BYLINE_FETCH_ALLOW: {exc}.") from None


def _dbname(url: str) -> str:
    """The database a PostgreSQL URL names ("" when it cannot be read)."""
    try:
        from psycopg.conninfo import conninfo_to_dict

        return str(conninfo_to_dict(url).get("dbname") or "")
    except Exception:
        return ""


def _int(env: Mapping[str, str], name: str, what: str) -> int | None:
    raw = (env.get(name) or "").strip()
    if not raw:
        return None
    if not raw.isdigit():
        raise BotConfigError(f"{name} must be {what} (digits only), got {raw[:30]!r}.")
    return int(raw)


def _port(env: Mapping[str, str], name: str) -> int | None:
    port = _int(env, name, "a TCP port")
    if port is not None and port > 65535:
        raise BotConfigError(f"{name} must be a TCP port (0-65535), got {port}.")
    return port


def _float(env: Mapping[str, str], name: str, default: float,
           what: str = "a number of seconds") -> float:
    raw = (env.get(name) or "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value >= 0 or value == float("inf"):
        raise BotConfigError(f"{name} must be {what} >= 0, got {raw[:30]!r}.")
    return value


def _minutes(env: Mapping[str, str], name: str, default: float) -> float:
    value = _float(env, name, default, "a number of minutes")
    if value <= 0:
        raise BotConfigError(f"{name} must be a number of minutes > 0, got {value:g}.")
    return value


def _count(env: Mapping[str, str], name: str, default: int) -> int:
    value = _int(env, name, "a whole number")
    if value is None:
        return default
    if value < 1:
        raise BotConfigError(f"{name} must be at least 1, got {value}.")
    return value


def _choice(env: Mapping[str, str], name: str, choices: tuple[str, ...]) -> str:
    """One of `choices` (the first is the default), case-insensitive."""
    raw = (env.get(name) or "").strip().lower()
    if not raw:
        return choices[0]
    if raw not in choices:
        raise BotConfigError(f"{name} must be {' or '.join(choices)}, got {raw[:30]!r}.")
    return raw


def _flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = (env.get(name) or "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise BotConfigError(f"{name} must be 1 or 0, got {raw[:30]!r}.")
