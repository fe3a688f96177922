"""Test only: `byline-bot`'s real entry point, pointed at a fake Discord
(tests/support/fake_discord) listening at FAKE_DISCORD_URL (http://127.0.0.1:PORT).
Production never runs this file.

    FAKE_DISCORD_URL=http://127.0.0.1:PORT python -m tests.support.bot_entry [byline-bot options]
"""

from __future__ import annotations

import os
import sys

import yarl
from discord.gateway import DiscordWebSocket
from discord.http import Route

from bot.cli import main

if __name__ == "__main__":
    base = os.environ["FAKE_DISCORD_URL"].rstrip("/")
    # Every REST URL is built from Route.BASE; a plain Client connects to DEFAULT_GATEWAY.
    Route.BASE = f"{base}/api/v10"
    DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL("ws" + base.removeprefix("http") + "/")
    sys.exit(main(sys.argv[1:]))
