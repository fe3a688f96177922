"""Follow-up questions over the seed coverage: resolved against the turns before, topic
switches told apart, follow-ups the coverage does not answer refused; `byline chat --json`
and `byline ask --after` end to end."""

from __future__ import annotations

import json
import os
import subprocess

from retrieval.search.conversation import MAX_TURNS, Conversation
from retrieval.search.filters import Filters
from retrieval.search.retriever import Retriever

from .support.paths import BYLINE
from .support.seed_questions import HANOI, TRIP

TRIP_Q = "why was the trip cancelled"


def test_a_follow_up_is_answered_from_the_story_before(retriever: Retriever):
    """"What did Bolton say?" after the trip question: Bolton's paragraph of the trip story
    (asked alone it has two words to go on)."""
    chat = Conversation()
    assert chat.ask(retriever, TRIP_Q).answered
    answer = chat.ask(retriever, "what did Bolton say?", k=3)
    assert chat.turns[-1].follow_up and answer.answered
    assert answer.hits[0].passage.id in {f"{TRIP}#6", f"{TRIP}#7"}
    assert [h.rank for h in answer.hits] == [1, 2, 3]


def test_a_pronoun_follow_up_stays_with_the_story(retriever: Retriever):
    chat = Conversation()
    chat.ask(retriever, "Why did Trump walk out of the talks with Kim?")
    answer = chat.ask(retriever, "who did he phone while leaving?")
    assert chat.turns[-1].follow_up and answer.answered
    assert answer.hits[0].passage.id == f"{HANOI}#6"


def test_a_new_question_starts_a_new_topic(retriever: Retriever):
    chat = Conversation()
    chat.ask(retriever, TRIP_Q)
    answer = chat.ask(retriever, "Why did Trump walk out of the talks with Kim?")
    assert not chat.turns[-1].follow_up
    assert answer.answered and answer.hits[0].passage.id == f"{HANOI}#8"
    off = chat.ask(retriever, "How do I bake sourdough bread?")
    assert not off.answered and off.hits == []


def test_a_follow_up_the_coverage_does_not_answer_is_refused(retriever: Retriever):
    """The context makes the trip story match anything; the follow-up's own new word
    ("wife") is in no passage found, so it is refused rather than bluffed."""
    chat = Conversation()
    chat.ask(retriever, TRIP_Q)
    answer = chat.ask(retriever, "and what did his wife think about it?")
    assert chat.turns[-1].follow_up and not answer.answered and answer.hits == []
    alone_with_context = retriever.ask(f"what did his wife think about it? {chat.context()}")
    assert alone_with_context.answered  # what the check stops


def test_filters_carry_over_and_the_turns_are_bounded(retriever: Retriever):
    chat = Conversation()
    dated = Filters.parse(as_of="2030-01-01")
    chat.ask(retriever, TRIP_Q, filters=dated)
    chat.ask(retriever, "when did he announce it?")
    assert chat.turns[-1].filters == dated
    for _ in range(MAX_TURNS + 3):
        chat.ask(retriever, "what did Bolton say?")
    assert len(chat.turns) == MAX_TURNS


def _byline(args: list[str], index: str, stdin: str = "") -> subprocess.CompletedProcess:
    env = {**os.environ, "BYLINE_INDEX_DIR": index}
    return subprocess.run([str(BYLINE), *args], input=stdin, capture_output=True, text=True,
                          env=env, timeout=300)


def test_chat_json_answers_each_line_in_the_conversation(seed_index_dir):
    lines = [TRIP_Q, "what did Bolton say?", "", "and what did his wife think about it?",
             "x" * 2000, "How do I bake sourdough bread?"]
    done = _byline(["chat", "--json", "-k", "1"], str(seed_index_dir), "\n".join(lines) + "\n")
    assert done.returncode == 0, done.stderr
    answers = [json.loads(line) for line in done.stdout.splitlines()]
    assert [a["question"] for a in answers] == [q for q in lines if q]
    assert [a.get("answered") for a in answers] == [True, True, False, None, False]
    assert answers[1]["results"][0]["id"] in {f"{TRIP}#6", f"{TRIP}#7"}
    assert "error" in answers[3]  # a bad line is one error object; the chat goes on


def test_ask_after_answers_a_follow_up_in_one_command(seed_index_dir):
    done = _byline(["ask", "--after", TRIP_Q, "what did Bolton say?", "-k", "1", "--json"],
                   str(seed_index_dir))
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["answered"] and answer["results"][0]["id"] in {f"{TRIP}#6", f"{TRIP}#7"}


def test_follow_ups_through_discord_keep_each_members_conversation(retriever, tmp_path):
    """Two members ask in one channel through the fake Discord: each one's follow-ups
    resolve against their own questions, an unanswerable follow-up is refused, a new
    question switches the topic, and the next follow-up follows the new topic; in a thread,
    three follow-ups in a row, apart from the channel's conversation."""
    from .support.bot_harness import run_bot
    from .support.guilds import first_source

    alice, bob = 2_000_000_000_000_000_001, 2_000_000_000_000_000_002

    async def ask(fake, question: str, user: int, thread: int | None = None
                  ) -> tuple[str, str]:
        handle = await fake.send_command("ask", {"question": question, "results": 1},
                                         user_id=user, thread_id=thread)
        reply = await handle.followup(timeout=30)
        title = first_source(reply)
        fields = reply.json["embeds"][0].get("fields") or [{}]
        return title, fields[0].get("value", "")

    async def scenario(fake, bot) -> None:
        trip, hanoi = "Trump Calls Off Pompeo's North Korea Trip", "After Trump-Kim"
        assert (await ask(fake, TRIP_Q, alice))[0] == trip
        assert (await ask(fake, "Why did Trump walk out of the talks with Kim?", bob)
                )[0].startswith(hanoi)
        title, text = await ask(fake, "what did Bolton say?", alice)
        assert title == trip and "Bolton" in text
        title, text = await ask(fake, "who did he phone while leaving?", bob)
        assert title.startswith(hanoi) and "phone" in text
        assert (await ask(fake, "and what did his wife think about it?", alice)
                )[0] == "Not covered"
        title, text = await ask(fake, "Why was no agreement signed in Hanoi?", alice)
        assert title.startswith(hanoi)
        title, text = await ask(fake, "where did Pompeo go after that?", alice)
        assert title.startswith(hanoi) and "Manila" in text
        assert len(bot.conversations) == 2

        # In a thread, Bob starts afresh: his channel conversation stays where it was.
        thread = 3_000_000_000_000_000_001
        assert (await ask(fake, TRIP_Q, bob, thread))[0] == trip
        title, text = await ask(fake, "what did Bolton say?", bob, thread)
        assert title == trip and "Bolton" in text
        title, text = await ask(fake, "did he trust Kim before?", bob, thread)
        assert title == trip and "Kim" in text  # worded otherwise: "defended Kim's intentions"
        assert (await ask(fake, "which country did he blame?", bob, thread))[0] == trip
        title, text = await ask(fake, "what did Moon urge him to do?", bob)
        assert title.startswith(hanoi) and "Moon" in text  # the channel's topic: Hanoi
        assert len(bot.conversations) == 3

    run_bot(retriever, tmp_path, scenario)


def test_the_bots_conversations_expire_when_idle_and_are_capped():
    import asyncio

    from bot.conversations import Conversations

    now = [0.0]
    talks = Conversations(idle=60.0, cap=3, clock=lambda: now[0])

    async def main() -> None:
        async with talks.turn("a") as first:
            first.turns.append("turn")  # type: ignore[arg-type]
        now[0] = 30.0
        async with talks.turn("a") as again:
            assert again is first  # within the idle time: the same conversation
        now[0] = 100.0
        async with talks.turn("a") as later:
            assert later is not first and not later.turns  # idle too long: a new one
        for key in "bcde":
            async with talks.turn(key):
                pass
        assert len(talks) == 3  # the least recently used went first

    asyncio.run(main())
