"""A fake Discord for end-to-end tests: REST (/api/v10) and a gateway websocket on 127.0.0.1.

The real discord.py client logs in, connects, syncs application commands and answers
interactions against it. Payload shapes follow Discord's API documentation: gateway opcodes
HELLO / IDENTIFY / READY / GUILD_CREATE / HEARTBEAT(_ACK) / RESUME, interaction objects,
interaction callback responses, webhook (followup) messages and application commands.
Every REST request and gateway frame is recorded so tests can assert on what the bot sent.

The fake runs on its own thread and event loop, as the real Discord runs elsewhere: its
clock, its heartbeat probes and its answers do not stall when the bot blocks its own loop,
so a blocked bot loop shows up in heartbeat round trips. Its public async methods may be
awaited from the test's loop; its attributes may be read (not mutated) from there.

    async with FakeDiscord() as fake:              # serves, and points discord.py at it
        bot = MyBot(intents=discord.Intents.default(), guild_ready_timeout=0.05)
        async with running(bot):                   # start; wait for on_ready; close on exit
            sent = await fake.send_command("ping", {"text": "hi"})
            assert (await sent.callback()).json["type"] == 5
            followup = await sent.followup()
            click = await fake.click("ping:again")
            said = await fake.post_message("a member's message")
            menu = await fake.send_message_command("Quote", said)  # right-click → Apps
            fake.start_probing(every=0.05)         # heartbeat round trips, in seconds
            ...
            assert max(fake.heartbeat_rtts) < 0.5

One fake serves one bot (one gateway session at a time), in one guild or several
(`extra_guilds`: each has its own text channel; `send_command(..., guild_id=)` picks one).
Members get the channel's ordinary permissions unless a command is sent with others
(`permissions=ADMIN_PERMISSIONS` adds Manage Server); "group sub" names a subcommand.

The parts, one module each: models.py (ids, constants, what was sent), server.py
(FakeDiscord's state and lifecycle, waiting, `running`), rest.py, gateway.py, probes.py
(event-loop responsiveness), interactions.py (what members do), payloads.py (Discord's
objects).
"""

from .models import (
    ADMIN_PERMISSIONS,
    APPLICATION_COMMAND,
    AUTOCOMPLETE,
    AUTOCOMPLETE_RESULT,
    CHANNEL_MESSAGE,
    CHANNEL_PERMISSIONS,
    COMMAND_CHAT_INPUT,
    COMMAND_MESSAGE,
    COMMAND_USER,
    DEFERRED_CHANNEL_MESSAGE,
    DEFERRED_UPDATE,
    DISCORD_EPOCH_MS,
    EPHEMERAL,
    LOADING,
    MESSAGE_COMPONENT,
    OPTION_BOOLEAN,
    OPTION_INTEGER,
    OPTION_NUMBER,
    OPTION_STRING,
    OPTION_SUB_COMMAND,
    OPTION_SUB_COMMAND_GROUP,
    UPDATE_MESSAGE,
    Reply,
    Request,
    SentInteraction,
    snowflake,
)
from .rest import ROUTES
from .server import FakeDiscord, running

__all__ = [
    "ADMIN_PERMISSIONS",
    "APPLICATION_COMMAND",
    "AUTOCOMPLETE",
    "AUTOCOMPLETE_RESULT",
    "CHANNEL_MESSAGE",
    "CHANNEL_PERMISSIONS",
    "COMMAND_CHAT_INPUT",
    "COMMAND_MESSAGE",
    "COMMAND_USER",
    "DEFERRED_CHANNEL_MESSAGE",
    "DEFERRED_UPDATE",
    "DISCORD_EPOCH_MS",
    "EPHEMERAL",
    "LOADING",
    "MESSAGE_COMPONENT",
    "OPTION_BOOLEAN",
    "OPTION_INTEGER",
    "OPTION_NUMBER",
    "OPTION_STRING",
    "OPTION_SUB_COMMAND",
    "OPTION_SUB_COMMAND_GROUP",
    "ROUTES",
    "UPDATE_MESSAGE",
    "FakeDiscord",
    "Reply",
    "Request",
    "SentInteraction",
    "running",
    "snowflake",
]
