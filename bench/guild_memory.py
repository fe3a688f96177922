"""Memory of per-server coverage: the bot's RSS with 20 guilds' indexes loaded.

    .venv/bin/python -m bench.guild_memory [--guilds 20] [--articles 20] [--caps 20,5]
                                           [--out bench-guild-memory.json]

Builds `--guilds` small coverages (`--articles` generated articles each, as
bench/heartbeat.py writes them, different per guild) under a temporary BYLINE_DATA_DIR,
then, for each cap in `--caps` (BYLINE_MAX_LOADED), runs a fresh process with the real
bot in per-server mode against the fake Discord (tests/support/fake_discord) in all the guilds,
asks one question in each guild in turn (loading its coverage), and reads the process's
resident memory (/proc VmRSS) at the start (model loaded, nothing else) and after each
guild's first answer. Figures: RSS at start, after all, per loaded coverage (the slope),
the indexes' size on disk, and how many stayed loaded.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

FIRST_GUILD = 1_200_000_000_000_000_002


def guild_ids(n: int) -> list[int]:
    return [FIRST_GUILD + 1000 * i for i in range(n)]


def prepare(data_dir: Path, guilds: int, articles: int) -> int:
    """Each guild's corpus and index; the indexes' total size on disk, in bytes."""
    from bench.heartbeat import generate_corpus
    from bot.coverage import CORPUS, GUILDS, INDEX, size_on_disk
    from retrieval import index_corpus
    from retrieval.model.embed import Embedder

    embedder = Embedder()
    total = 0
    for n, guild in enumerate(guild_ids(guilds)):
        root = data_dir / GUILDS / str(guild)
        generate_corpus(root / CORPUS, articles, seed=n)
        index = index_corpus(root / CORPUS, root / INDEX, embedder, progress=False)
        total += size_on_disk(index.manifest)
    return total


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def measure(data_dir: Path, guilds: int, cap: int) -> dict[str, Any]:
    """In this (fresh) process: the bot per server, one question per guild, RSS after each."""
    import gc

    from bot.app import BylineBot
    from bot.settings import PER_SERVER, BotSettings
    from retrieval.model.embed import Embedder
    from tests.support.fake_discord import FakeDiscord, running

    embedder = Embedder()
    embedder.model  # noqa: B018
    ids = guild_ids(guilds)
    settings = BotSettings(token="bench", guild_id=None, cooldown_seconds=0.0,
                           coverage=PER_SERVER, data_dir=data_dir, max_loaded=cap,
                           feedback_db=data_dir / "feedback.sqlite", follow=False)
    async with FakeDiscord(guild_id=ids[0], extra_guilds=tuple(ids[1:])) as fake:
        bot = BylineBot(settings, embedder=embedder, guild_ready_timeout=0.05)
        async with running(bot, token="bench"):
            warm = await fake.send_command("help", guild_id=ids[0])
            await warm.callback(timeout=60)
            gc.collect()
            start = rss_mb()
            after: list[float] = []
            for n, guild in enumerate(ids):
                handle = await fake.send_command(
                    "ask", {"question": "What did the Eastport council approve?",
                            "results": 1}, guild_id=guild, user_id=10_000 + n)
                await handle.followup(timeout=120)
                gc.collect()
                after.append(rss_mb())
            loaded = len(bot.coverages.loaded())
            evictions = bot.coverages.evictions
            held = sum(c.loaded_bytes for c in bot.coverages.loaded())
    slope = (after[-1] - after[0]) / (len(after) - 1) if len(after) > 1 else float("nan")
    return {"max_loaded": cap, "guilds": guilds, "rss_start_mb": round(start, 1),
            "rss_after_first_mb": round(after[0], 1), "rss_after_all_mb": round(after[-1], 1),
            "rss_peak_mb": round(max(after), 1), "per_coverage_mb": round(slope, 2),
            "rss_after_each_mb": [round(x, 1) for x in after], "loaded_at_end": loaded,
            "evictions": evictions, "loaded_on_disk_mb": round(held / 1024 / 1024, 2)}


def run(guilds: int = 20, articles: int = 20, caps: tuple[int, ...] = (20, 5)) -> dict:
    """RSS with `guilds` per-server coverages loaded, under each BYLINE_MAX_LOADED in `caps`
    (each in a fresh child process), with a summary and a table."""
    results = []
    with tempfile.TemporaryDirectory(prefix="byline-guild-memory-") as tmp:
        data_dir = Path(tmp) / "data"
        on_disk = prepare(data_dir, guilds, articles)
        for cap in caps:
            child = subprocess.run(
                [sys.executable, "-m", "bench.guild_memory", "--measure", str(data_dir), "--guilds",
                 str(guilds), "--cap", str(cap)], capture_output=True, text=True,
                env=os.environ | {"PYTHONPATH": str(ROOT)}, check=False)
            if child.returncode:
                raise RuntimeError(f"the measuring child failed: {child.stderr[-2000:]}")
            result = json.loads(child.stdout.strip().splitlines()[-1])
            results.append(result)
            print(json.dumps(result), flush=True)
    summary = {"guilds": guilds, "articles_per_guild": articles,
               "indexes_on_disk_mb": round(on_disk / 1024 / 1024, 2),
               "load_before": os.getloadavg()[0], "results": results}
    first = results[0]
    return {**summary, "rss_after_all_mb": first["rss_after_all_mb"],
            "rss_start_mb": first["rss_start_mb"], "markdown": markdown(summary)}


def markdown(summary: dict) -> str:
    """The results as a Markdown table for docs/performance.md."""
    rows = ["| BYLINE_MAX_LOADED | RSS at start | after every guild's first question | peak | "
            "per coverage loaded | loaded at the end | unloaded |", "|---|---|---|---|---|---|---|"]
    for r in summary["results"]:
        rows.append(f"| {r['max_loaded']} | {r['rss_start_mb']} MB | {r['rss_after_all_mb']} MB "
                    f"| {r['rss_peak_mb']} MB | {r['per_coverage_mb']} MB | "
                    f"{r['loaded_at_end']} | {r['evictions']} |")
    return (f"{summary['guilds']} servers in `BYLINE_COVERAGE=per-server`, "
            f"{summary['articles_per_guild']} generated articles each "
            f"({summary['indexes_on_disk_mb']} MB of indexes on disk in all), one question "
            "per server through the bot (`bench/guild_memory.py`).\n\n" + "\n".join(rows))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--guilds", type=int, default=20)
    parser.add_argument("--articles", type=int, default=20)
    parser.add_argument("--caps", default="20,5", help="BYLINE_MAX_LOADED values to run")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--measure", type=Path, help=argparse.SUPPRESS)  # the child's part
    parser.add_argument("--cap", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(asyncio.run(measure(args.measure, args.guilds, args.cap))))
        return 0
    summary = run(args.guilds, args.articles, tuple(int(c) for c in args.caps.split(",")))
    if args.out:
        args.out.write_text(json.dumps({k: v for k, v in summary.items() if k != "markdown"},
                                       indent=2) + "\n")
    for r in summary["results"]:
        print(f"BYLINE_MAX_LOADED={r['max_loaded']}: RSS {r['rss_start_mb']} MB at start, "
              f"{r['rss_after_all_mb']} MB after {r['guilds']} guilds' first questions "
              f"(peak {r['rss_peak_mb']} MB; {r['per_coverage_mb']} MB per coverage "
              f"loaded); {r['loaded_at_end']} loaded at the end, {r['evictions']} unloaded; "
              f"indexes on disk {summary['indexes_on_disk_mb']} MB in all")
    return 0


if __name__ == "__main__":
    sys.exit(main())
