"""Who is talking with the bot: a member's /ask in one channel (a thread is a channel of its
own) follows up on their own last questions there, for IDLE_SECONDS after the last one.

Kept in memory only, at most MAX_CONVERSATIONS (the least recently used goes first), each at
most retrieval.search.conversation.MAX_TURNS turns: a restart forgets them, and the next question
simply starts a new conversation. Two members in one channel never share one.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Hashable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from retrieval.search.conversation import Conversation

IDLE_SECONDS = 15 * 60.0
MAX_CONVERSATIONS = 2000  # a few kB each: questions, headlines, article ids


@dataclass
class _Entry:
    conversation: Conversation = field(default_factory=Conversation)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)  # one turn at a time
    used: float = 0.0


class Conversations:
    """The bot's open conversations, by (guild, channel, member)."""

    def __init__(self, idle: float = IDLE_SECONDS, cap: int = MAX_CONVERSATIONS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.idle = idle
        self.cap = cap
        self.clock = clock
        self._open: OrderedDict[Hashable, _Entry] = OrderedDict()

    def __len__(self) -> int:
        return len(self._open)

    @asynccontextmanager
    async def turn(self, key: Hashable) -> AsyncIterator[Conversation]:
        """The conversation of `key` (a new one after IDLE_SECONDS without a question), for
        one turn: a member's two questions at once take turns."""
        entry = self._entry(key)
        async with entry.lock:
            try:
                yield entry.conversation
            finally:
                entry.used = self.clock()

    def _entry(self, key: Hashable) -> _Entry:
        now = self.clock()
        while self._open:  # the idle ones first: the least recently used lead
            oldest = next(iter(self._open.values()))
            if now - oldest.used <= self.idle or oldest.lock.locked():
                break
            self._open.popitem(last=False)
        entry = self._open.get(key)
        if entry is None or now - entry.used > self.idle:
            entry = self._open[key] = _Entry(used=now)
        self._open.move_to_end(key)
        while len(self._open) > self.cap:
            self._open.popitem(last=False)
        return entry
