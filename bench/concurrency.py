"""/ask under load: 50 concurrent asks to the real bot through the fake Discord, batched and not.

    .venv/bin/python -m bench.concurrency

Figures per run: answers received, latency from dispatching the interaction to its followup
(p50 / p95 / max), heartbeat round trips while the burst runs (a probe every 50 ms from the
fake's own thread), and the retrieval batches. `run()` returns them as plain numbers.
Targets: every ask answered, p95 < 1.5 s, no heartbeat round trip over 1 s.
"""

from __future__ import annotations

import asyncio
import math
import tempfile
import time
from pathlib import Path
from typing import Any

from bot.app import BylineBot
from bot.batching import MAX_BATCH
from bot.settings import BotSettings
from retrieval import index_corpus
from retrieval.cli.config import Settings
from retrieval.model.embed import Embedder
from retrieval.search.retriever import Retriever
from tests.support.fake_discord import FakeDiscord, running
from tests.support.seed_questions import ON_TOPIC

ROOT = Path(__file__).resolve().parent.parent

REQUESTS = 50
PROBE_EVERY = 0.05  # s; discord.py sends at most 110 gateway frames a minute: keep runs short
TARGET_P95_S, TARGET_HEARTBEAT_S = 1.5, 1.0
TOKEN = "bench-token"


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def questions(n: int = REQUESTS) -> list[tuple[str, int]]:
    """`n` questions about the seeds (cycling through them) with results 1..5 in turn."""
    return [(ON_TOPIC[i % len(ON_TOPIC)][0], 1 + i % 5) for i in range(n)]


async def burst(retriever: Retriever, max_batch: int, asks: list[tuple[str, int]],
                workdir: Path) -> dict[str, Any]:
    """One fresh fake Discord and bot; a warm-up ask, then every ask at once."""
    async with FakeDiscord() as fake:
        settings = BotSettings(token=TOKEN, guild_id=fake.guild_id,
                               core=Settings(index_dir=workdir / "index"),
                               cooldown_seconds=0.0,
                               feedback_db=workdir / f"feedback-{max_batch}.sqlite")
        bot = BylineBot(settings, retriever, max_batch=max_batch, guild_ready_timeout=0.05)
        async with running(bot, token=TOKEN):
            warm = await fake.send_command("ask", {"question": "why was the trip cancelled"})
            await warm.followup(timeout=60)  # thread pool, SQLite and caches warmed
            warm_batches = len(bot.shared.batcher.batch_sizes)
            fake.start_probing(every=PROBE_EVERY)
            await asyncio.sleep(0.2)  # a few probes at rest first
            first_probe = len(fake.heartbeat_rtts)
            handles = await asyncio.gather(*(
                fake.send_command("ask", {"question": q, "results": k}, user_id=10_000 + i)
                for i, (q, k) in enumerate(asks)))
            replies = await asyncio.gather(*(h.followup(timeout=60) for h in handles),
                                           return_exceptions=True)
            await asyncio.sleep(2 * PROBE_EVERY)  # a probe or two after the last answer
            await fake.stop_probing()
            rtts = list(fake.heartbeat_rtts[first_probe:])
            sizes = list(bot.shared.batcher.batch_sizes)[warm_batches:]

    latencies, answered = [], 0
    for (_, k), handle, reply in zip(asks, handles, replies, strict=True):
        if isinstance(reply, BaseException):  # no followup within the timeout
            continue
        latencies.append(reply.received_at - handle.dispatched_at)
        embeds = reply.json.get("embeds") or [{}]
        sources = [f["value"] for f in embeds[0].get("fields", []) if f["name"] == "Sources"]
        answered += bool(sources) and sources[0].count("**[") == k  # with k cited sources
    first = min(h.dispatched_at for h in handles)
    last = max((r.received_at for r in replies if not isinstance(r, BaseException)),
               default=float("nan"))
    return {
        "requests": len(asks), "replied": len(latencies), "answered": answered,
        "max_batch": max_batch, "burst_s": round(last - first, 3),
        "latency_p50_s": round(percentile(latencies, 50), 3),
        "latency_p95_s": round(percentile(latencies, 95), 3),
        "latency_max_s": round(max(latencies, default=float("nan")), 3),
        "heartbeat_p95_s": round(percentile(rtts, 95), 3),
        "heartbeat_max_s": round(max(rtts, default=float("nan")), 3),
        "probes": len(rtts), "batches": len(sizes), "batch_sizes": sizes,
        "largest_batch": max(sizes, default=0),
    }


def run(n: int = REQUESTS, compare: bool = True) -> dict[str, Any]:
    """Build a seed index in a temp dir and measure `n` concurrent /ask, batched (and, with
    `compare`, unbatched: max_batch=1). Durations in seconds. Call it outside an event loop.

    Per run: requests, replied (followups received), answered (answers citing as many
    sources as asked), burst_s (first dispatch to last followup), latency_{p50,p95,max}_s,
    heartbeat_{p95,max}_s and probes, batches, batch_sizes, largest_batch, max_batch."""
    start = time.perf_counter()
    embedder = Embedder()
    asks = questions(n)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        retriever = Retriever(index_corpus(ROOT / "seeds", workdir / "index", embedder,
                                           progress=False), embedder)
        result: dict[str, Any] = {
            "batched": asyncio.run(burst(retriever, MAX_BATCH, asks, workdir))}
        if compare:
            result["unbatched"] = asyncio.run(burst(retriever, 1, asks, workdir))
    result["seconds"] = round(time.perf_counter() - start, 1)
    return result


def meets_targets(figures: dict[str, Any]) -> bool:
    return (figures["answered"] == figures["requests"]
            and figures["latency_p95_s"] < TARGET_P95_S
            and figures["heartbeat_max_s"] <= TARGET_HEARTBEAT_S)


def table(result: dict[str, Any]) -> str:
    runs = {name: f for name, f in result.items() if isinstance(f, dict)}
    head = " | ".join(f"{name} (max batch {f['max_batch']})" for name, f in runs.items())
    n = next(iter(runs.values()))["requests"]
    rows = [f"| {n} concurrent /ask | {head} |",
            "|---|" + "---|" * len(runs)]

    def row(label: str, fmt: Any) -> None:
        rows.append(f"| {label} | " + " | ".join(fmt(f) for f in runs.values()) + " |")

    row("answered", lambda f: f"{f['answered']}/{f['requests']}")
    row("all answered after", lambda f: f"{f['burst_s']:.2f} s")
    row("latency p50 / p95 / max", lambda f: f"{f['latency_p50_s']:.2f} / "
        f"{f['latency_p95_s']:.2f} / {f['latency_max_s']:.2f} s")
    row("heartbeat RTT p95 / max", lambda f: f"{f['heartbeat_p95_s'] * 1000:.0f} / "
        f"{f['heartbeat_max_s'] * 1000:.0f} ms ({f['probes']} probes)")
    row("retrieval calls (batches)", lambda f: str(f["batches"]))
    row("batch sizes", lambda f: ", ".join(map(str, f["batch_sizes"]))
        if len(set(f["batch_sizes"])) > 1 else f"{len(f['batch_sizes'])} × {f['largest_batch']}")
    row(f"targets (all answered, p95 < {TARGET_P95_S} s, heartbeat ≤ {TARGET_HEARTBEAT_S} s)",
        lambda f: "met" if meets_targets(f) else "**missed**")
    return "\n".join(rows)


if __name__ == "__main__":
    figures = run()
    print(table(figures))
    print(f"\n({figures['seconds']} s in all, index build included)")
