"""Bot settings from the environment (and `.env`); the token is never shown or logged."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from retrieval.config import Settings
from retrieval.errors import BylineError

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

    @property
    def index_dir(self) -> Path:
        return self.core.index_dir

    @property
    def model(self) -> str:
        return self.core.model

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
        return cls(
            token=token,
            core=core if core is not None else Settings.from_env(env),
            guild_id=_int(env, "DISCORD_GUILD_ID", "a Discord id"),
            cooldown_seconds=_float(env, "BYLINE_COOLDOWN_SECONDS", 10.0),
            feedback_db=Path(env["BYLINE_FEEDBACK_DB"]) if env.get("BYLINE_FEEDBACK_DB") else None,
            reload_seconds=_float(env, "BYLINE_RELOAD_SECONDS", 10.0),
            shutdown_seconds=_float(env, "BYLINE_SHUTDOWN_SECONDS", 20.0),
            metrics_port=_port(env, "BYLINE_METRICS_PORT"),
            metrics_host=(env.get("BYLINE_METRICS_HOST") or "").strip() or "127.0.0.1",
        )


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


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = (env.get(name) or "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if value < 0:
        raise BotConfigError(f"{name} must be a number of seconds >= 0, got {raw[:30]!r}.")
    return value
