"""The real `byline-bot` process against the fake Discord (in this process, on 127.0.0.1):
SIGTERM in the middle of a burst of /ask ends it gracefully, with exit status 0."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import sys
from pathlib import Path

from bot.replies import RESTARTING

from .support.bot_harness import GUILD_ID, TOKEN, USER_ID, embed_of
from .support.bot_process import Process
from .support.fake_discord import DEFERRED_CHANNEL_MESSAGE, EPHEMERAL, FakeDiscord, SentInteraction
from .support.paths import ROOT
from .support.seed_questions import ON_TOPIC


def test_sigterm_mid_burst_answers_or_turns_away_every_ask_and_exits_0(seed_index_dir,
                                                                       tmp_path: Path):
    index_dir = shutil.copytree(seed_index_dir, tmp_path / "index")
    questions = [q for q, _ in ON_TOPIC]

    async def main() -> None:
        async with FakeDiscord(token=TOKEN) as fake:
            env = {k: v for k, v in os.environ.items()
                   if not k.startswith(("DISCORD_", "BYLINE_"))} | {
                "FAKE_DISCORD_URL": f"http://127.0.0.1:{fake.port}",
                "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
                "DISCORD_TOKEN": TOKEN, "DISCORD_GUILD_ID": str(GUILD_ID),
                "BYLINE_INDEX_DIR": str(index_dir), "BYLINE_COOLDOWN_SECONDS": "0",
                "BYLINE_FEEDBACK_DB": str(tmp_path / "feedback.sqlite")}
            proc = Process(await asyncio.create_subprocess_exec(
                sys.executable, "-m", "tests.support.bot_entry", cwd=tmp_path, env=env,
                stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE))
            try:
                # Discord sends interactions once the session is up (READY), as the fake does.
                await proc.wait_for_line("has connected to Gateway", timeout=120)
                # A slow Discord keeps the first answers in flight while the shutdown begins.
                fake.slow_down("followup", 1.5)

                async def ask(i: int) -> SentInteraction:
                    return await fake.send_command(
                        "ask", {"question": questions[i % len(questions)]},
                        user_id=USER_ID + i)

                first = [await ask(i) for i in range(10)]
                for handle in first:
                    assert (await handle.callback(timeout=30)).json["type"] == \
                        DEFERRED_CHANNEL_MESSAGE
                proc.proc.send_signal(signal.SIGTERM)
                await proc.wait_for_line("shutting down: taking no new questions", timeout=10)
                second = [await ask(i) for i in range(10, 20)]

                for handle in second:  # told to come back, privately, at once
                    reply = await handle.callback(timeout=10)
                    assert reply.json["type"] == 4
                    assert reply.json["data"] == {**reply.json["data"], "flags": EPHEMERAL,
                                                  "content": RESTARTING}
                for handle in first:  # answered, though the shutdown had begun
                    embed = embed_of(await handle.followup(timeout=30))
                    assert embed.fields and embed.fields[0].name.startswith("[1] ")
                status = await proc.exit_status(timeout=60)
            finally:
                with contextlib.suppress(ProcessLookupError):
                    proc.proc.kill()
            log = "\n".join(proc.lines)
            assert status == 0, log
            assert "Traceback" not in log and "stopped" in proc.lines[-1], log
            # Every interaction got exactly one acknowledgement: none lost, none twice.
            callbacks = [r for r in fake.requests if r.route == "callback"]
            assert len(callbacks) == 20 and all(r.status == 200 for r in callbacks)

    asyncio.run(main())
