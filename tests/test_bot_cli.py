"""`byline-bot` and `byline bot`: settings read once, fail fast, the core never imports the bot."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.cli import main as bot_main
from bot.settings import BotConfigError, BotSettings
from retrieval.cli.config import Settings

from .support.paths import ROOT


def _python(code: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DISCORD_", "BYLINE_"))}
    clean["PYTHONPATH"] = os.pathsep.join([str(ROOT), clean.get("PYTHONPATH", "")])
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=cwd, env=clean | env, timeout=120)


def test_byline_bot_without_token_is_one_line(monkeypatch, tmp_path: Path, capsys):
    monkeypatch.delenv("DISCORD_TOKEN", raising=False)
    monkeypatch.chdir(tmp_path)  # no .env here
    assert bot_main([]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("byline-bot: DISCORD_TOKEN is not set") and "\n" not in err


def test_byline_bot_subcommand_hands_over_to_byline_bot(tmp_path: Path):
    """`byline bot` replaces itself with `byline-bot` (python -m bot): the same one line."""
    done = _python("from retrieval.cli.main import main; raise SystemExit(main(['bot']))", tmp_path)
    assert done.returncode == 1
    assert done.stderr.startswith("byline-bot: DISCORD_TOKEN is not set"), done.stderr
    assert done.stderr.count("\n") == 1


def test_the_core_never_imports_the_bot_or_discord(tmp_path: Path):
    done = _python("import sys, retrieval.cli.main as c; c.build_parser(); "
                   "print(sorted(m for m in sys.modules if m.split('.')[0] in "
                   "('bot', 'discord', 'aiohttp', 'prometheus_client')))", tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_dotenv_is_read_once_for_both_settings(monkeypatch, tmp_path: Path):
    """The entry point reads .env; the core and the bot's settings come from the same place,
    and the command line's --index-dir reaches the bot (its feedback store's default)."""
    from bot.cli import build_parser
    from retrieval.cli.options import settings_from

    for name in ("DISCORD_TOKEN", "BYLINE_INDEX_DIR", "BYLINE_METRICS_PORT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("DISCORD_TOKEN=from-dotenv\nBYLINE_INDEX_DIR=/from/env\n"
                                   "BYLINE_METRICS_PORT=9464\n", "utf-8")
    core = settings_from(build_parser().parse_args(["--index-dir", "/from/option"]))
    settings = BotSettings.from_env(core=core)
    assert settings.token == "from-dotenv" and settings.index_dir == Path("/from/option")
    assert (settings.metrics_host, settings.metrics_port) == ("127.0.0.1", 9464)
    for name in ("DISCORD_TOKEN", "BYLINE_INDEX_DIR", "BYLINE_METRICS_PORT"):
        monkeypatch.delenv(name, raising=False)  # load_dotenv set them for real


def test_bot_settings_for_running_long():
    s = BotSettings.from_env({"DISCORD_TOKEN": "t", "BYLINE_RELOAD_SECONDS": "2",
                              "BYLINE_SHUTDOWN_SECONDS": "5", "BYLINE_METRICS_PORT": "0",
                              "BYLINE_METRICS_HOST": "0.0.0.0"})
    assert (s.reload_seconds, s.shutdown_seconds) == (2.0, 5.0)
    assert (s.metrics_host, s.metrics_port) == ("0.0.0.0", 0)
    plain = BotSettings.from_env({"DISCORD_TOKEN": "t"})
    assert (plain.metrics_port, plain.reload_seconds, plain.shutdown_seconds) == (None, 10, 20)
    assert plain.core == Settings()


@pytest.mark.parametrize(("env", "message"), [
    ({"BYLINE_METRICS_PORT": "http"}, "BYLINE_METRICS_PORT must be a TCP port"),
    ({"BYLINE_METRICS_PORT": "70000"}, "BYLINE_METRICS_PORT must be a TCP port"),
    ({"BYLINE_RELOAD_SECONDS": "-1"}, "BYLINE_RELOAD_SECONDS must"),
    ({"BYLINE_SHUTDOWN_SECONDS": "soon"}, "BYLINE_SHUTDOWN_SECONDS must"),
])
def test_bad_running_settings(env, message):
    with pytest.raises(BotConfigError, match=message):
        BotSettings.from_env({"DISCORD_TOKEN": "t", **env})


def test_byline_bot_with_discord_missing_says_so(monkeypatch, tmp_path: Path, capsys):
    """A broken install (discord.py missing): one line, before any model is loaded."""
    monkeypatch.setenv("DISCORD_TOKEN", "t")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delitem(sys.modules, "bot.app", raising=False)
    monkeypatch.setitem(sys.modules, "discord", None)  # `import discord` fails
    assert bot_main([]) == 1
    err = capsys.readouterr().err.strip()
    assert err == ("byline-bot: The bot needs discord, which is not installed; reinstall "
                   "Byline (pip install byline) to get its dependencies.")
