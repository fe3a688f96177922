"""*Ask Byline*, the message context menu: synced as a message command, asked through the
fake Discord on a member's message, answered privately from the coverage."""

from __future__ import annotations

import re
import time

import pytest
from discord import app_commands

from bot.app import BylineBot
from bot.cogs.menu import MENU_NAME, NO_TEXT, MessageQuestion, UserCooldowns
from bot.replies import RESTARTING
from retrieval.search.answer import MAX_QUESTION_CHARS

from .support.bot_harness import GUILD_ID, USER_ID, custom_ids, embed_of, requests, run_bot
from .support.fake_discord import COMMAND_MESSAGE, EPHEMERAL, FakeDiscord

CLAIM = ("Heard that Trump called off Pompeo's trip to North Korea because the nuclear talks "
         "weren't going anywhere. True?")
TRIP = "[1] Trump Calls Off Pompeo's North Korea Trip"


def count(bot: BylineBot, metric: str) -> float:
    return getattr(bot.metrics, metric).labels("ask_message")._value.get()


def test_ask_byline_answers_a_claim_privately(retriever, tmp_path):
    async def scenario(fake: FakeDiscord, bot: BylineBot) -> None:
        [put] = requests(fake, "PUT")
        [menu] = [c for c in put.json if c["name"] == MENU_NAME]
        assert menu["type"] == COMMAND_MESSAGE and "options" not in menu

        said = await fake.post_message(f"{CLAIM} https://example.com/some-story",
                                       author_id=USER_ID + 1)
        handle = await fake.send_message_command(MENU_NAME, said)  # by USER_ID
        callback = await handle.callback()
        assert callback.json["type"] == 5 and callback.json["data"]["flags"] == EPHEMERAL
        followup = await handle.followup(timeout=30)
        assert followup.json["flags"] & EPHEMERAL
        assert followup.json["allowed_mentions"] == {"parse": []}
        embed = embed_of(followup)
        assert embed.title == CLAIM
        assert "example.com" not in embed.title  # the link was not part of the question
        assert embed.fields[0].name == TRIP
        jump = f"https://discord.com/channels/{GUILD_ID}/{fake.channel_id}/{said}"
        assert followup.json["content"] == f"About [this message]({jump})."
        assert [c.split(":")[2] for c in custom_ids(followup)] == ["up", "down"]
        assert count(bot, "questions") == 1 and count(bot, "not_covered") == 0

        other = await fake.post_message("lol look at this, the cat is on the keyboard again")
        miss = await (await fake.send_message_command(MENU_NAME, other)).followup(timeout=30)
        assert embed_of(miss).title == "Not covered" and miss.json["flags"] & EPHEMERAL
        assert count(bot, "not_covered") == 1

    run_bot(retriever, tmp_path, scenario)


def test_a_message_without_text_gets_an_explanation(retriever, tmp_path):
    image = {"id": "1", "filename": "claim.png", "size": 10, "url": "https://cdn.invalid/c.png",
             "proxy_url": "https://cdn.invalid/c.png"}

    async def scenario(fake: FakeDiscord, bot: BylineBot) -> None:
        for said in (await fake.post_message("", attachments=[image]),
                     await fake.post_message("", embeds=[{"title": "A link preview"}]),
                     await fake.post_message("<https://example.com/story> 👀")):
            handle = await fake.send_message_command(MENU_NAME, said)
            reply = await handle.callback()
            assert reply.json["type"] == 4 and reply.json["data"]["flags"] == EPHEMERAL
            assert reply.json["data"]["content"] == NO_TEXT
        assert count(bot, "questions") == 0
        # Nothing was asked, so nothing counted against the cooldown: a real claim is answered.
        said = await fake.post_message(CLAIM)
        answer = await (await fake.send_message_command(MENU_NAME, said)).followup(timeout=30)
        assert embed_of(answer).fields[0].name == TRIP
        again = await (await fake.send_message_command(MENU_NAME, said)).callback()
        assert re.fullmatch(r"Slow down a little: try again in \d+ s\.",
                            again.json["data"]["content"])
        assert bot.metrics.turned_away.labels("cooldown")._value.get() == 1

        bot.drain.closing = True  # shutting down: told to come back, not answered
        late = await (await fake.send_message_command(MENU_NAME, said,
                                                      user_id=USER_ID + 2)).callback()
        assert late.json["data"]["content"] == RESTARTING

    run_bot(retriever, tmp_path, scenario, cooldown_seconds=60)


def test_a_long_message_is_asked_by_its_first_sentences(retriever, tmp_path):
    filler = "People in my group chat keep sharing this story about the trip being called off. "
    text = CLAIM + " " + filler * 15
    asked = MessageQuestion.of(text)
    assert asked is not None and asked.shortened and len(asked.text) <= MAX_QUESTION_CHARS

    async def scenario(fake: FakeDiscord, bot: BylineBot) -> None:
        said = await fake.post_message(text)
        followup = await (await fake.send_message_command(MENU_NAME, said)).followup(timeout=30)
        assert f"The message is {len(text.strip()):,} characters long" in followup.json["content"]
        assert f"its first {asked.sentences} sentences" in followup.json["content"]
        embed = embed_of(followup)
        assert embed.title.startswith("Heard that Trump called off Pompeo")
        assert embed.fields[0].name == TRIP

    run_bot(retriever, tmp_path, scenario)


@pytest.mark.parametrize(("content", "asked"), [
    ("  Did   Pompeo\nresign? ", "Did Pompeo resign?"),
    ("Look <:think:123456> https://x.example/a?b=c Pompeo quit", "Look :think: Pompeo quit"),
    ("", None), ("https://x.example/only-a-link", None), ("👀 !!", None),
])
def test_the_question_of_a_message(content, asked):
    q = MessageQuestion.of(content)
    assert (q.text if q else None) == asked
    assert q is None or (not q.shortened and q.note() == "")


def test_a_long_message_without_sentence_breaks_is_cut_to_the_limit():
    words = "word " * 400  # 2,000 characters, one sentence
    q = MessageQuestion.of(words)
    assert q is not None and q.shortened and q.sentences is None
    assert len(q.text) <= MAX_QUESTION_CHARS and q.text.endswith("…")
    assert "its beginning" in q.note()
    sentences = MessageQuestion.of("First point here. " + "Then more. " * 200, limit=40)
    assert sentences is not None and sentences.text == "First point here. Then more. Then more."
    assert sentences.sentences == 3 and "first 3 sentences" in sentences.note()


def test_help_tells_where_the_menu_is():
    from bot.render import render_help

    other = {f.name: f.value for f in render_help([]).fields}["Other commands"]
    assert "**Apps** → **Ask Byline**" in other


def test_cooldowns_forget_only_users_whose_cooldown_has_passed():
    short = UserCooldowns(0.05, keep=2)
    for user in (1, 2, 3):
        short.hit(user)
    with pytest.raises(app_commands.CommandOnCooldown):
        short.hit(1)
    time.sleep(0.06)
    short.hit(4)  # more than 2 remembered, all cooled down: forgotten
    assert len(short) == 1
    long = UserCooldowns(60, keep=2)
    for user in (1, 2, 3, 4):
        long.hit(user)
    assert len(long) == 4
    with pytest.raises(app_commands.CommandOnCooldown):
        long.hit(1)  # still cooling down: remembered
