"""The fake Discord works with the real discord.py client: login, gateway, sync, interactions.

A tiny bot defined here (not Byline's) exercises it, so these tests pin the fake's protocol
rather than the bot's behaviour.
"""

from __future__ import annotations

import asyncio
import io
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import aiohttp
import discord
import pytest
from discord import app_commands
from discord.ext import commands
from discord.gateway import DiscordWebSocket, KeepAliveHandler
from discord.http import Route

from tests.support.fake_discord import FakeDiscord, Reply, running


class AgainView(discord.ui.View):
    def __init__(self, bot: TinyBot) -> None:
        super().__init__(timeout=None)  # no timeout task left behind when the bot closes
        self.bot = bot

    @discord.ui.button(label="Again", custom_id="ping:again")
    async def again(self, interaction: discord.Interaction, button: discord.ui.Button) -> None:
        self.bot.clicks.append(interaction.user.id)
        await interaction.response.send_message("again!", ephemeral=True)


class TinyBot(commands.Bot):
    def __init__(self, guild_id: int) -> None:
        super().__init__(
            command_prefix=commands.when_mentioned,
            intents=discord.Intents.default(),
            guild_ready_timeout=0.05,  # else on_ready waits 2 s after the last GUILD_CREATE
        )
        self.guild_id = guild_id
        self.clicks: list[int] = []

        @app_commands.command(name="ping", description="Answer with an embed")
        @app_commands.describe(text="What to echo")
        async def ping(interaction: discord.Interaction, text: str) -> None:
            await interaction.response.defer(thinking=True)
            await interaction.followup.send(
                embed=discord.Embed(title="pong", description=text),
                view=AgainView(self),
                allowed_mentions=discord.AllowedMentions.none(),
            )

        self.tree.add_command(ping)

    async def setup_hook(self) -> None:
        guild = discord.Object(self.guild_id)
        self.tree.copy_global_to(guild=guild)
        await self.tree.sync(guild=guild)
        await self.tree.sync()


@asynccontextmanager
async def bot_on_fake() -> AsyncIterator[tuple[FakeDiscord, TinyBot]]:
    async with FakeDiscord() as fake:
        bot = TinyBot(fake.guild_id)
        async with running(bot):
            yield fake, bot


def run(test: Callable[[], Awaitable[None]], limit: float = 20.0) -> None:
    asyncio.run(asyncio.wait_for(test(), limit))


def test_bot_logs_in_connects_and_syncs_commands() -> None:
    async def scenario() -> None:
        async with bot_on_fake() as (fake, bot):
            assert fake.api_base == Route.BASE
            guild = bot.get_guild(fake.guild_id)
            assert guild is not None and guild.name == "Fake Newsroom"
            assert guild.get_channel(fake.channel_id) is not None
            assert bot.user is not None and bot.user.id == fake.bot_user_id
            routes = [r.route for r in fake.requests]
            assert routes[:2] == ["me", "application"]
            assert "unknown" not in routes
            assert fake.identify_count == 1
            identify = next(f for f in fake.gateway_frames if f["op"] == 2)
            assert identify["d"]["intents"] == discord.Intents.default().value

            for scope in (fake.guild_id, None):
                [ping] = fake.commands[scope]
                assert ping["name"] == "ping" and ping["type"] == 1
                [option] = ping["options"]
                assert option == {"type": 3, "name": "text", "description": "What to echo",
                                  "required": True}
                assert int(ping["id"]) > 0 and ping["application_id"] == str(fake.app_id)
            global_sync = await fake.wait_for(
                lambda r: r.route == "sync_commands" and "guild_id" not in r.params
            )
            assert [c["name"] for c in global_sync.json] == ["ping"]
        assert Route.BASE == "https://discord.com/api/v10"  # patches are undone
        assert str(DiscordWebSocket.DEFAULT_GATEWAY) == "wss://gateway.discord.gg/"

    run(scenario)


def test_ping_defers_then_sends_a_followup_with_an_embed() -> None:
    async def scenario() -> None:
        async with bot_on_fake() as (fake, _bot):
            sent = await fake.send_command("ping", {"text": "hello"})
            callback = await sent.callback()
            assert callback.json["type"] == 5  # DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE
            assert callback.status == 200
            assert callback.response["interaction"]["response_message_loading"] is True
            assert callback.received_at - sent.dispatched_at < 1.0  # Discord allows 3 s

            followup = await sent.followup()
            assert followup.query["wait"] == "1"  # discord.py wants the created message back
            assert followup.status == 200
            [embed] = followup.json["embeds"]
            assert embed["title"] == "pong" and embed["description"] == "hello"
            assert followup.json["allowed_mentions"] == {"parse": []}
            assert followup.json["components"][0]["components"][0]["custom_id"] == "ping:again"

    run(scenario)


def test_button_click_reaches_the_view() -> None:
    async def scenario() -> None:
        async with bot_on_fake() as (fake, bot):
            sent = await fake.send_command("ping", {"text": "hello"})
            await sent.followup()
            click = await fake.click("ping:again", user_id=42)
            callback = await click.callback()
            assert bot.clicks == [42]
            assert callback.json["type"] == 4  # CHANNEL_MESSAGE_WITH_SOURCE
            assert callback.json["data"]["content"] == "again!"
            assert callback.json["data"]["flags"] == 64  # ephemeral
            assert callback.response["interaction"]["response_message_ephemeral"] is True
            assert callback.response["resource"]["message"]["content"] == "again!"

    run(scenario)


def test_reconnect_resumes_the_session() -> None:
    async def scenario() -> None:
        async with bot_on_fake() as (fake, bot):
            resumed = asyncio.create_task(bot.wait_for("resumed", timeout=5))
            await fake.request_reconnect()
            resume = await fake.wait_for_frame(lambda f: f["op"] == 6)
            identify = next(f for f in fake.gateway_frames if f["op"] == 2)
            assert resume["d"]["session_id"]
            assert resume["d"]["token"] == identify["d"]["token"]
            await resumed
            assert (fake.identify_count, fake.resume_count) == (1, 1)
            sent = await fake.send_command("ping", {"text": "still here"})
            assert (await sent.followup()).status == 200

    run(scenario)


def test_heartbeat_probe_is_fast_while_idle_and_slow_when_the_loop_blocks() -> None:
    async def scenario() -> None:
        async with bot_on_fake() as (fake, _bot):
            rtts = [await fake.probe_heartbeat() for _ in range(5)]
            assert max(rtts) < 0.25, rtts  # idle: well under a second

            fake.start_probing(every=0.02)
            await asyncio.sleep(0.2)
            time.sleep(0.3)  # deliberately block the loop the bot runs on
            await asyncio.sleep(0.1)
            await fake.stop_probing()
            assert len(fake.heartbeat_rtts) >= 3
            assert max(fake.heartbeat_rtts) >= 0.2, fake.heartbeat_rtts  # the block shows
            assert min(fake.heartbeat_rtts) < 0.1
            heartbeats = [f for f in fake.gateway_frames if f["op"] == 1]
            assert len(heartbeats) >= len(fake.heartbeat_rtts)

    run(scenario)


def test_unknown_routes_and_errors_are_recorded_not_hung() -> None:
    async def scenario() -> None:
        async with bot_on_fake() as (fake, bot):
            with pytest.raises(discord.NotFound):
                await bot.fetch_channel(fake.channel_id)
            missing = await fake.wait_for(lambda r: r.route == "unknown")
            assert (missing.method, missing.path, missing.status) == (
                "GET", f"/channels/{fake.channel_id}", 404)
            assert missing.response == {"message": "404: Not Found", "code": 0}

            fake.queue_reply("GET", r"/channels/\d+", Reply(403, {"message": "Missing Access",
                                                                   "code": 50001}))
            with pytest.raises(discord.Forbidden):
                await bot.fetch_channel(fake.channel_id)

    run(scenario)


def test_original_response_edit_get_delete_and_double_ack() -> None:
    async def scenario() -> None:
        async with bot_on_fake() as (fake, bot):
            seen: asyncio.Queue[discord.Interaction] = asyncio.Queue()

            @bot.tree.command(name="echo", description="x")
            async def echo(interaction: discord.Interaction, n: int, loud: bool) -> None:
                await seen.put(interaction)

            sent = await fake.send_command("echo", {"n": 3, "loud": True})
            interaction = await asyncio.wait_for(seen.get(), 5)
            assert interaction.namespace.n == 3 and interaction.namespace.loud is True
            await interaction.response.send_message("first")
            # A second acknowledgement is refused, as Discord does (discord.py itself would
            # refuse before sending, so post it directly).
            async with aiohttp.ClientSession() as session, session.post(
                f"{fake.api_base}/interactions/{sent.id}/{sent.token}/callback",
                json={"type": 4, "data": {"content": "again"}},
            ) as response:
                assert response.status == 400
                assert (await response.json())["code"] == 40060
            edited = await interaction.edit_original_response(content="second")
            assert edited.content == "second"
            assert (await sent.original_edit()).json["content"] == "second"
            fetched = await interaction.original_response()
            assert fetched.id == edited.id
            await interaction.delete_original_response()
            assert edited.id not in fake.messages

    run(scenario)


def test_multipart_followups_message_updates_and_followup_edits() -> None:
    async def scenario() -> None:
        async with bot_on_fake() as (fake, bot):
            done: asyncio.Queue[discord.WebhookMessage] = asyncio.Queue()

            class Toggle(discord.ui.View):
                @discord.ui.button(label="Off", custom_id="toggle")
                async def toggle(self, interaction: discord.Interaction,
                                 button: discord.ui.Button) -> None:
                    await interaction.response.edit_message(content="on", view=None)

            @bot.tree.command(name="report", description="x")
            async def report(interaction: discord.Interaction) -> None:
                await interaction.response.defer(ephemeral=True, thinking=True)
                file = discord.File(io.BytesIO(b"hello"), filename="report.txt")
                sent = await interaction.followup.send("attached", file=file, view=Toggle(),
                                                       wait=True)
                await done.put(await sent.edit(content="attached, edited"))

            sent = await fake.send_command("report")
            deferred = await sent.callback()
            assert deferred.response["interaction"]["response_message_ephemeral"] is True
            followup = await sent.followup()
            assert followup.files == {"report.txt": b"hello"}
            assert followup.json["content"] == "attached"  # parsed from payload_json
            edited = await asyncio.wait_for(done.get(), 5)
            assert edited.content == "attached, edited"
            assert edited.attachments[0].filename == "report.txt"

            click = await fake.click("toggle")
            update = await click.callback()
            assert update.json["type"] == 7  # UPDATE_MESSAGE
            assert fake.messages[edited.id]["content"] == "on"
            assert fake.messages[edited.id]["components"] == []

    run(scenario)


def test_the_token_is_checked() -> None:
    async def scenario() -> None:
        async with FakeDiscord(token="right") as fake:
            with pytest.raises(discord.LoginFailure):
                async with running(TinyBot(fake.guild_id), token="wrong"):
                    pass
            assert [r.status for r in fake.requests] == [401]

            async with running(TinyBot(fake.guild_id), token="right"):
                sent = await fake.send_command("ping", {"text": "hi"})
                assert (await sent.followup()).status == 200  # webhooks need no Authorization

    run(scenario)


def test_bot_closes_cleanly() -> None:
    async def scenario() -> None:
        already_running = asyncio.all_tasks()
        async with bot_on_fake() as (_fake, bot):
            assert bot.is_ready()
        assert bot.is_closed()
        left_behind = [t for t in asyncio.all_tasks() - already_running if not t.done()]
        assert not left_behind, left_behind
        for thread in threading.enumerate():
            if isinstance(thread, KeepAliveHandler) or thread.name == "fake-discord":
                thread.join(2)
                assert not thread.is_alive(), thread

    started = time.monotonic()
    run(scenario)
    assert time.monotonic() - started < 5
