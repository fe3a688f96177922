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
    """Everything the bot needs to start; `token` is hidden from repr."""

    token: str = field(repr=False)
    guild_id: int | None = None
    index_dir: Path = Settings.index_dir
    model: str = Settings.model
    cooldown_seconds: float = 10.0  # per user, between two /ask
    feedback_db: Path | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> BotSettings:
        env = os.environ if env is None else env
        token = (env.get("DISCORD_TOKEN") or "").strip()
        if not token:
            raise BotConfigError(TOKEN_HELP)
        base = Settings.from_env(env)
        return cls(
            token=token,
            guild_id=_int(env, "DISCORD_GUILD_ID"),
            index_dir=base.index_dir,
            model=base.model,
            cooldown_seconds=_float(env, "BYLINE_COOLDOWN_SECONDS", 10.0),
            feedback_db=Path(env["BYLINE_FEEDBACK_DB"]) if env.get("BYLINE_FEEDBACK_DB") else None,
        )


def _int(env: Mapping[str, str], name: str) -> int | None:
    raw = (env.get(name) or "").strip()
    if not raw:
        return None
    if not raw.isdigit():
        raise BotConfigError(f"{name} must be a Discord id (digits only), got {raw[:30]!r}.")
    return int(raw)


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
