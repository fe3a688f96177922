"""Gateway heartbeat while the bot re-indexes 1,000 articles: is the event loop still free?

    .venv/bin/python -m bench.heartbeat [--articles 1000] [--worker thread|process|both]
                                        [--out bench-heartbeat.json]

For each worker kind (BYLINE_WORKER), a fresh fake Discord (tests/support/fake_discord) and the
real bot in shared mode over a copy of the seeds; `--articles` generated articles (four
paragraphs each, seeded, all different) are put into its corpus folder, then an admin's
`/coverage add url:` of a page on a local HTTP server makes the bot's worker index the
folder: every generated article is new, so it reads, embeds, de-duplicates and saves them
all, then loads the new generation, and only then replies. Throughout, the fake asks the
bot for a heartbeat every PROBE_EVERY seconds from its own thread (discord.py answers from
its event loop, so a loop held by the indexing shows up as a slow ACK), and a question is
asked every ASK_EVERY seconds. The probes are limited by discord.py's gateway rate (about
two a second), so a task in the bot's loop also sleeps 10 ms again and again and records
how late it wakes: every stall of the loop, not a sample. Figures: heartbeat ACK latency
max / p99 / p50 during the re-index, the loop's lag max / p99, the re-index time (command
to reply), the answers' latencies meanwhile, and peak RSS (bot; worker processes).
Target: heartbeat ACK max < 1 s. Takes about a minute per worker kind on 2 cores.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from bench.concurrency import percentile
from bot.app import BylineBot
from bot.settings import PROCESS, THREAD, BotSettings
from retrieval import index_corpus
from retrieval.cli.config import Settings
from retrieval.feeds.addresses import AddressPolicy
from retrieval.feeds.fetch import FetchSettings
from retrieval.model.embed import Embedder
from retrieval.search.live import LiveRetriever
from retrieval.search.retriever import Retriever
from retrieval.store import FolderIndex
from tests.support.fake_discord import ADMIN_PERMISSIONS, FakeDiscord, running

ROOT = Path(__file__).resolve().parent.parent

PROBE_EVERY = 0.6  # s; discord.py sends at most 110 gateway frames a minute
ASK_EVERY = 2.0  # s between two questions while it indexes
LAG_EVERY = 0.01  # s: the in-loop lag monitor's sleep
TARGET_MAX_S = 1.0
TOKEN = "bench-token"

TOWNS = ["Eastport", "Millbrook", "Ashford", "Kingsbridge", "Harwell", "Redcliff", "Dunmore",
         "Westfield", "Carrow", "Linton", "Brackley", "Norwood", "Stanmere", "Felton"]
BODIES = ["council", "harbour authority", "school board", "water company", "police",
          "hospital trust", "transport office", "library service", "planning committee",
          "fire service", "university", "chamber of commerce"]
ACTS = ["approved", "rejected", "postponed", "announced", "reviewed", "funded", "delayed",
        "expanded", "cancelled", "defended", "questioned", "published"]
THINGS = ["a new bus route", "repairs to the old bridge", "a budget for street lighting",
          "plans for a sports hall", "a ban on night flights", "a study of river flooding",
          "longer opening hours", "a cycle lane on the high street", "a rise in parking fees",
          "a housing scheme near the station", "a review of school meals",
          "a grant for the museum", "a pilot for electric ferries", "new rules for markets"]
REASONS = ["after months of complaints from residents", "citing rising costs",
           "following a public consultation", "despite objections from shop owners",
           "because the contractor went bust", "after an inspection found cracks",
           "to meet a national target", "as the winter storms damaged the coast"]
PEOPLE = ["Ann Smith", "Raj Patel", "Maria Lopez", "Tom Becker", "Li Wei", "Grace Okafor",
          "Jonas Berg", "Fatima Noor", "Peter Hall", "Nina Kovacs"]


def generate_corpus(folder: Path, n: int, seed: int = 7) -> None:
    """`n` plausible local-news articles, four paragraphs each, every one different."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        town, body = rng.choice(TOWNS), rng.choice(BODIES)
        act, thing = rng.choice(ACTS), rng.choice(THINGS)
        who = rng.choice(PEOPLE)
        month = rng.randint(1, 12)
        day = rng.randint(1, 28)
        title = f"{town} {body} {act} {thing} (report {i})"
        paragraphs = [
            f"The {town} {body} {act} {thing} on day {day} of month {month}, "
            f"{rng.choice(REASONS)}, officials said in statement number {i}.",
            f"{who}, who chairs the {body}, said the decision would cost "
            f"{rng.randint(2, 90)} thousand pounds and affect about {rng.randint(100, 9000)} "
            f"people in {town} and {rng.choice(TOWNS)}.",
            f"Critics argued that {rng.choice(THINGS)} mattered more, and that the {body} "
            f"had {rng.choice(ACTS)} it {rng.choice(REASONS)}; a vote is due in "
            f"{rng.randint(2, 11)} weeks.",
            f"Local businesses in {town} said they expected {rng.randint(3, 40)} per cent "
            f"more visitors if {thing} went ahead, while {rng.choice(PEOPLE)} warned of "
            f"delays of up to {rng.randint(2, 18)} months.",
        ]
        (folder / f"story-{i:04d}.txt").write_text(
            f"Date: 2024-{month:02d}-{day:02d}\nOutlet: {town} Gazette\n\n{title}\n\n"
            + "\n\n".join(paragraphs) + "\n", "utf-8")


PAGE = (b"<html><head><title>Eastport ferry resumes crossings</title></head><body><article>"
        b"<h1>Eastport ferry resumes crossings</h1><p>The Eastport ferry resumed its "
        b"crossings on Monday after the harbour authority finished rebuilding the main "
        b"pier, which storm waves wrecked in January.</p></article></body></html>")


def serve_page() -> tuple[ThreadingHTTPServer, str]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(PAGE)))
            self.end_headers()
            self.wfile.write(PAGE)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/news/ferry.html"


async def loop_lag(lags: list[float]) -> None:
    """How late each LAG_EVERY-second sleep wakes, on the running (the bot's) loop."""
    loop = asyncio.get_running_loop()
    while True:
        start = loop.time()
        await asyncio.sleep(LAG_EVERY)
        lags.append(loop.time() - start - LAG_EVERY)


def rss_mb(pid: int) -> float:
    """Resident memory of a process, in MB (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        found += [int(c) for c in text]
    return found


async def run_one(kind: str, articles: int, embedder: Embedder, seed_index: Path,
                  workdir: Path) -> dict[str, Any]:
    corpus = shutil.copytree(ROOT / "seeds", workdir / kind / "corpus")
    index_dir = shutil.copytree(seed_index, workdir / kind / "index")
    generate_corpus(corpus / "generated", articles)
    live = LiveRetriever(Retriever(FolderIndex.load(index_dir), embedder))
    server, url = serve_page()
    settings = BotSettings(token=TOKEN, guild_id=None, cooldown_seconds=0.0,
                           core=Settings(index_dir=index_dir, corpus_dir=corpus),
                           feedback_db=workdir / kind / "feedback.sqlite", worker=kind,
                           fetch=FetchSettings(rate=1000.0,
                                               policy=AddressPolicy.allowing(["127.0.0.1"])),
                           follow=False,
                           reload_seconds=10.0)
    try:
        async with FakeDiscord() as fake:
            bot = BylineBot(settings, live, guild_ready_timeout=0.05)
            async with running(bot, token=TOKEN):
                warm = await fake.send_command("ask", {"question": "why was the trip cancelled"})
                await warm.followup(timeout=60)
                fake.start_probing(every=PROBE_EVERY)
                await asyncio.sleep(3 * PROBE_EVERY)
                before = len(fake.heartbeat_rtts)
                lags: list[float] = []
                monitor = asyncio.create_task(loop_lag(lags))
                started = time.monotonic()
                add = await fake.send_command("coverage add", {"url": url}, user_id=42,
                                              permissions=ADMIN_PERMISSIONS)
                asks: list[tuple[float, asyncio.Task]] = []
                peak = {"bot": rss_mb(os.getpid()), "workers": 0.0}
                reply_task = asyncio.create_task(add.followup(timeout=1800))
                n = 0
                while not reply_task.done():
                    handle = await fake.send_command(
                        "ask", {"question": "why was the trip cancelled", "results": 1},
                        user_id=1000 + n)
                    n += 1
                    asks.append((time.monotonic(),
                                 asyncio.create_task(handle.followup(timeout=600))))
                    peak["bot"] = max(peak["bot"], rss_mb(os.getpid()))
                    kids = [rss_mb(c) for c in children(os.getpid())]
                    peak["workers"] = max(peak["workers"], sum(kids))
                    await asyncio.wait({reply_task}, timeout=ASK_EVERY)
                reply = reply_task.result()
                reindex_s = time.monotonic() - started
                monitor.cancel()
                during = list(fake.heartbeat_rtts[before:])
                await fake.stop_probing()
                latencies = []
                for sent, task in asks:
                    r = await task
                    latencies.append(r.received_at - sent)
                text = reply.json.get("content", "")
                ok = text.startswith("Added")
                articles_now = len(bot.shared.articles)
    finally:
        server.shutdown()
        server.server_close()
    return {
        "worker": kind, "articles_indexed": articles_now, "reply": text[:120], "ok": ok,
        "reindex_s": round(reindex_s, 1), "probes": len(during),
        "heartbeat_max_s": round(max(during), 3) if during else None,
        "heartbeat_p99_s": round(percentile(during, 99), 3),
        "heartbeat_p50_s": round(percentile(during, 50), 3),
        "loop_lag_max_s": round(max(lags), 3) if lags else None,
        "loop_lag_p99_s": round(percentile(lags, 99), 3), "lag_samples": len(lags),
        "asks_during": len(latencies),
        "ask_p50_s": round(percentile(latencies, 50), 2),
        "ask_max_s": round(max(latencies), 2) if latencies else None,
        "rss_bot_mb": round(peak["bot"]), "rss_workers_mb": round(peak["workers"]),
        "target_max_s": TARGET_MAX_S,
        "pass": bool(during) and max(during) < TARGET_MAX_S and ok,
    }


def run(articles: int = 1000, workers: tuple[str, ...] = (THREAD, PROCESS)) -> dict:
    """Both workers' figures, with a summary (the thread's, Byline's default) and a table."""
    embedder = Embedder()
    embedder.model  # noqa: B018  (loaded before the clock starts)
    results = []
    with tempfile.TemporaryDirectory(prefix="byline-heartbeat-") as tmp:
        workdir = Path(tmp)
        seed_index = workdir / "seed-index"
        index_corpus(ROOT / "seeds", seed_index, embedder, progress=False)
        for kind in workers:
            result = asyncio.run(run_one(kind, articles, embedder, seed_index, workdir))
            results.append(result)
            print(json.dumps(result), flush=True)
    summary = {"articles": articles, "cpus": os.cpu_count(),
               "load_before": os.getloadavg()[0], "results": results}
    main_result = results[0]
    return {**summary, "heartbeat_max_s": main_result["heartbeat_max_s"],
            "reindex_s": main_result["reindex_s"], "pass": all(r["pass"] for r in results),
            "markdown": markdown(summary)}


def run_alone(articles: int = 1000) -> dict:
    """`run` in a fresh process (what make bench calls): the bot's RSS is then the bot's own,
    not that of a process that has held other benchmarks' models and indexes."""
    with tempfile.TemporaryDirectory(prefix="byline-heartbeat-out-") as tmp:
        out = Path(tmp) / "figures.json"
        subprocess.run([sys.executable, "-m", "bench.heartbeat", "--articles", str(articles),
                        "--out", str(out)], check=False,
                       env=os.environ | {"PYTHONPATH": str(ROOT)})
        summary = json.loads(out.read_text())
    first = summary["results"][0]
    return {**summary, "heartbeat_max_s": first["heartbeat_max_s"],
            "reindex_s": first["reindex_s"], "pass": all(r["pass"] for r in summary["results"]),
            "markdown": markdown(summary)}


def markdown(summary: dict) -> str:
    """The results as a Markdown table for docs/performance.md."""
    rows = ["| worker | re-index | heartbeat ACK max / p99 / p50 | event-loop lag max / p99 | "
            "asks meanwhile (p50 / max) | RSS bot / workers | < 1 s |",
            "|---|---|---|---|---|---|---|"]
    for r in summary["results"]:
        rows.append(
            f"| {r['worker']} | {r['reindex_s']} s | {r['heartbeat_max_s'] * 1e3:.0f} / "
            f"{r['heartbeat_p99_s'] * 1e3:.0f} / {r['heartbeat_p50_s'] * 1e3:.0f} ms "
            f"({r['probes']} probes) | {r['loop_lag_max_s'] * 1e3:.0f} / "
            f"{r['loop_lag_p99_s'] * 1e3:.0f} ms | {r['asks_during']} ({r['ask_p50_s']} s / "
            f"{r['ask_max_s']} s) | {r['rss_bot_mb']} / {r['rss_workers_mb']} MB | "
            f"{'✓' if r['pass'] else '✗'} |")
    return (f"`/coverage add` re-indexing {summary['articles']:,} generated articles while the "
            "bot answers through the fake Discord; heartbeat probes every 0.6 s and a 10 ms "
            "loop-lag probe (`bench/heartbeat.py`).\n\n" + "\n".join(rows))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--articles", type=int, default=1000)
    parser.add_argument("--worker", choices=(THREAD, PROCESS, "both"), default="both")
    parser.add_argument("--out", type=Path, help="also write the figures here (JSON)")
    args = parser.parse_args()
    kinds = (THREAD, PROCESS) if args.worker == "both" else (args.worker,)
    summary = run(args.articles, kinds)
    if args.out:
        args.out.write_text(json.dumps({k: v for k, v in summary.items() if k != "markdown"},
                                       indent=2) + "\n")
    for r in summary["results"]:
        print(f"{r['worker']:>7}: re-index of {args.articles:,} articles {r['reindex_s']} s; "
              f"heartbeat ACK max {r['heartbeat_max_s']} s, p99 {r['heartbeat_p99_s']} s, "
              f"p50 {r['heartbeat_p50_s']} s over {r['probes']} probes; loop lag max "
              f"{r['loop_lag_max_s']} s, p99 {r['loop_lag_p99_s']} s; {r['asks_during']} "
              f"asks meanwhile, p50 {r['ask_p50_s']} s, max {r['ask_max_s']} s; RSS bot "
              f"{r['rss_bot_mb']} MB, workers {r['rss_workers_mb']} MB "
              f"({'PASS' if r['pass'] else 'FAIL'})")
    return 0 if summary["pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
