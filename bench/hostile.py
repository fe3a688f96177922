"""/ask while hostile fetches run: six tarpits and gzip bombs from seven other servers.

    .venv/bin/python -m bench.hostile [--asks 40]

The real bot in per-server mode, in nine guilds of the fake Discord; fetches may reach
127.0.0.1 (as BYLINE_FETCH_ALLOW would let them), with the bot's default limits otherwise
(a 30 s deadline per fetch, 10 MB per page). One guild answers from the seed articles. Its
members' /ask are timed twice on the same schedule (one every ASK_EVERY seconds, each answered
while the next ones are sent): at rest, then while six other servers' admins each
`/coverage add` a tarpit (one header byte every 0.5 s, held until the fetch's deadline) and a
seventh adds a gzip bomb (1 GiB of zeros gzipped twice, a few KB on the wire) again and
again. Memory: the process's resident size sampled every 10 ms (Linux's /proc/self/status),
idle before the hostile phase, peak during it.

Targets (issue 21): /ask p95 under attack within 1.5× its p95 at rest; peak RSS during the
bombs under 300 MB above idle. Figures go to docs/security.md ("Measured").
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import shutil
import tempfile
import threading
import time
import zlib
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

from bench.concurrency import percentile
from bot.app import BylineBot
from bot.settings import PER_SERVER, BotSettings
from retrieval.cli.config import Settings
from retrieval.feeds.addresses import AddressPolicy
from retrieval.feeds.fetch import FetchSettings
from retrieval.model.embed import Embedder
from tests.support.fake_discord import ADMIN_PERMISSIONS, FakeDiscord, running
from tests.support.local_http import base_url, http_server
from tests.support.seed_questions import ON_TOPIC

ROOT = Path(__file__).resolve().parent.parent

TOKEN = "bench-token"
ASKER = 1_500_000_000_000_000_001  # the guild whose members ask
ATTACKERS = tuple(ASKER + n for n in range(1, 8))  # six tarpits, then the bomber
ASKS = 40
ASK_EVERY = 0.15  # s between two /ask
TARPIT_BYTE_EVERY = 0.5  # s
BOMB_MIB = 1024
BOMB_EVERY = 0.5  # s between two bombs from the bomber (an admin typing fast)
TARGET_RATIO, TARGET_RSS_MB = 1.5, 300.0


def bomb(mib: int = BOMB_MIB) -> bytes:
    """`mib` MiB of zeros, gzipped twice."""
    inner = zlib.compressobj(9, zlib.DEFLATED, 31)
    zero = bytes(1 << 20)
    once = b"".join(inner.compress(zero) for _ in range(mib)) + inner.flush()
    return gzip.compress(once, 9)


class Hostile(BaseHTTPRequestHandler):
    """A tarpit at any path but /bomb.html, which answers with the bomb."""

    BOMB = b""
    stop = threading.Event()

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        if self.path == "/bomb.html":
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Encoding", "gzip, gzip")
            self.send_header("Content-Length", str(len(self.BOMB)))
            self.end_headers()
            self.wfile.write(self.BOMB)
            return
        try:
            for byte in b"HTTP/1.1 200 OK\r\n" * 20:
                if self.stop.is_set():
                    return
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
                time.sleep(TARPIT_BYTE_EVERY)
        except OSError:
            pass


class RssSampler:
    """The process's resident size in MB, every `every` seconds, in a thread of its own."""

    def __init__(self, every: float = 0.01) -> None:
        self.every = every
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def rss_mb() -> float:
        with open("/proc/self/status") as status:
            kb = next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
        return kb / 1024

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.monotonic(), self.rss_mb()))
            time.sleep(self.every)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def peak(self, since: float, until: float) -> float:
        return max((mb for t, mb in self.samples if since <= t <= until), default=float("nan"))

    def median(self, since: float, until: float) -> float:
        window = sorted(mb for t, mb in self.samples if since <= t <= until)
        return window[len(window) // 2] if window else float("nan")


async def ask_phase(fake: FakeDiscord, n: int) -> list[float]:
    """`n` /ask on a fixed schedule; the seconds from each dispatch to its answer."""
    async def one(i: int) -> float:
        question = ON_TOPIC[i % len(ON_TOPIC)][0]
        handle = await fake.send_command("ask", {"question": question, "results": 3},
                                         guild_id=ASKER, user_id=10_000 + i)
        reply = await handle.followup(timeout=60)
        assert reply.json.get("embeds"), reply.json
        return reply.received_at - handle.dispatched_at

    tasks = []
    for i in range(n):
        tasks.append(asyncio.create_task(one(i)))
        await asyncio.sleep(ASK_EVERY)
    return list(await asyncio.gather(*tasks))


async def admin_add(fake: FakeDiscord, guild: int, url: str) -> str:
    handle = await fake.send_command("coverage add", {"url": url}, guild_id=guild,
                                     user_id=20_000 + guild % 1000,
                                     permissions=ADMIN_PERMISSIONS)
    callback = await handle.callback()
    if callback.json["type"] == 4:
        return callback.json["data"].get("content") or ""
    return (await handle.followup(timeout=120)).json.get("content") or ""


async def scenario(fake: FakeDiscord, base: str, asks: int, rss: RssSampler,
                   tarpits: int = 6, bomb_every: float = BOMB_EVERY) -> dict[str, Any]:
    await ask_phase(fake, 3)  # the seed coverage indexed and loaded, caches warm
    rest_started = time.monotonic()
    at_rest = await ask_phase(fake, asks)
    idle_mb = rss.median(rest_started, time.monotonic())

    bombs: list[str] = []
    stop_bombing = asyncio.Event()

    async def bomber() -> None:
        while not stop_bombing.is_set():
            bombs.append(await admin_add(fake, ATTACKERS[-1], f"{base}/bomb.html"))
            if bomb_every:
                await asyncio.sleep(bomb_every)

    attack_started = time.monotonic()
    bombing = asyncio.create_task(bomber()) if bomb_every >= 0 else None
    pits = [asyncio.create_task(admin_add(fake, guild, f"{base}/tarpit-{n}.html"))
            for n, guild in enumerate(ATTACKERS[:tarpits])]
    await asyncio.sleep(1.0)  # every tarpit connected, the first bombs decoding
    under_attack = await ask_phase(fake, asks)
    attack_asked = time.monotonic()
    open_tarpits = sum(not t.done() for t in pits)
    stop_bombing.set()
    if bombing is not None:
        await bombing
    attack_ended = time.monotonic()
    Hostile.stop.set()
    told = await asyncio.gather(*pits)
    return {
        "asks": asks,
        "rest_p50_s": percentile(at_rest, 50), "rest_p95_s": percentile(at_rest, 95),
        "attack_p50_s": percentile(under_attack, 50),
        "attack_p95_s": percentile(under_attack, 95),
        "tarpits": len(pits), "tarpits_open_after_asks": open_tarpits,
        "tarpit_replies": sorted(set(told)),
        "bombs": len(bombs), "bomb_replies": sorted(set(bombs)),
        "idle_rss_mb": idle_mb,
        "attack_peak_rss_mb": rss.peak(attack_started, attack_ended),
        "attack_asked_s": attack_asked - attack_started,
    }


def run(asks: int = ASKS, tarpits: int = 6, bomb_every: float = BOMB_EVERY) -> dict[str, Any]:
    """Index the seeds for the asking guild, start the bot and measure both phases."""
    Hostile.BOMB = bomb()
    Hostile.stop.clear()
    embedder = Embedder()
    with tempfile.TemporaryDirectory() as tmp, http_server(Hostile) as server:
        work = Path(tmp)
        corpus = work / "data" / "guilds" / str(ASKER) / "corpus"
        shutil.copytree(ROOT / "seeds", corpus)
        fetch = FetchSettings(policy=AddressPolicy.allowing(["127.0.0.1"]))
        settings = BotSettings(token=TOKEN, guild_id=None, cooldown_seconds=0.0,
                               core=Settings(index_dir=work / "index"),
                               feedback_db=work / "feedback.sqlite", coverage=PER_SERVER,
                               data_dir=work / "data", follow=False, fetch=fetch)

        async def main() -> dict[str, Any]:
            async with FakeDiscord(token=TOKEN, guild_id=ASKER,
                                   extra_guilds=ATTACKERS) as fake:
                bot = BylineBot(settings, None, embedder=embedder, guild_ready_timeout=0.05)
                async with running(bot, token=TOKEN):
                    with RssSampler() as rss:
                        return await scenario(fake, base_url(server), asks, rss,
                                              tarpits, bomb_every)

        figures = asyncio.run(main())
    figures["bomb_bytes"] = len(Hostile.BOMB)
    return figures


def table(f: dict[str, Any], bomb_every: float = BOMB_EVERY) -> str:
    ratio = f["attack_p95_s"] / f["rest_p95_s"]
    rss_rise = f["attack_peak_rss_mb"] - f["idle_rss_mb"]
    met = ratio <= TARGET_RATIO and rss_rise < TARGET_RSS_MB
    pace = "back to back" if bomb_every == 0 else f"one every {bomb_every:g} s"
    return "\n".join([
        f"| {f['asks']} /ask, one every {ASK_EVERY} s | at rest | under attack |",
        "|---|---|---|",
        f"| latency p50 / p95 | {f['rest_p50_s'] * 1000:.1f} / {f['rest_p95_s'] * 1000:.1f} ms"
        f" | {f['attack_p50_s'] * 1000:.1f} / {f['attack_p95_s'] * 1000:.1f} ms "
        f"(p95 {ratio:.2f}× at rest) |",
        f"| resident memory | {f['idle_rss_mb']:.0f} MB (median) | "
        f"peak {f['attack_peak_rss_mb']:.0f} MB (+{rss_rise:.0f} MB) |",
        f"| hostile fetches | | {f['tarpits']} tarpits (still open after the asks: "
        f"{f['tarpits_open_after_asks']}); {f['bombs']} gzip bombs ({pace}) of "
        f"{f['bomb_bytes']:,} bytes, {BOMB_MIB} MiB unpacked |",
        f"| targets (p95 ≤ {TARGET_RATIO}× at rest, RSS < +{TARGET_RSS_MB:.0f} MB) | | "
        + ("met" if met else "**missed**") + " |",
    ])


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--asks", type=int, default=ASKS)
    parser.add_argument("--tarpits", type=int, default=6)
    parser.add_argument("--bomb-every", type=float, default=BOMB_EVERY,
                        help="seconds between two bombs (0: back to back; -1: none)")
    args = parser.parse_args()
    figures = run(args.asks, args.tarpits, args.bomb_every)
    print(table(figures, args.bomb_every))
    print(f"\ntarpit replies: {figures['tarpit_replies']}\nbomb replies: "
          f"{figures['bomb_replies']}")
