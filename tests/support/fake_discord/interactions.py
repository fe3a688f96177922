"""Driving interactions as members do: slash commands (and subcommands), autocomplete,
message context menus on a member's message, component clicks."""

from __future__ import annotations

import copy
import time
import uuid
from collections.abc import Mapping
from typing import Any

from .models import (
    APPLICATION_COMMAND,
    AUTOCOMPLETE,
    CHANNEL_PERMISSIONS,
    COMMAND_CHAT_INPUT,
    COMMAND_MESSAGE,
    JSON,
    MESSAGE_COMPONENT,
    OPTION_BOOLEAN,
    OPTION_INTEGER,
    OPTION_NUMBER,
    OPTION_STRING,
    OPTION_SUB_COMMAND,
    OPTION_SUB_COMMAND_GROUP,
    SentInteraction,
    _InteractionState,
    _now,
    _on_fake_loop,
    snowflake,
)


class Interactions:
    """What FakeDiscord's members do; each returns a SentInteraction."""

    @_on_fake_loop
    async def send_command(
        self,
        name: str,
        options: Mapping[str, str | int | float | bool] | None = None,
        *,
        user_id: int | None = None,
        locale: str = "en-US",
        guild_id: int | None = None,
        permissions: int | None = None,
        thread_id: int | None = None,
    ) -> SentInteraction:
        """Dispatch INTERACTION_CREATE for a slash command as a member of a fake guild (the
        first unless `guild_id`), with `permissions` (default: CHANNEL_PERMISSIONS); with
        `thread_id`, from a public thread of the guild's channel.

        Uses the id of the synced command (a guild command wins over a global one, as in
        Discord); option types follow the Python type of each value. `name` may name a
        subcommand: "coverage add", "coverage feed list"; the options are then its own."""
        data = self._command_data(name, options, guild_id)
        return await self._interact(APPLICATION_COMMAND, data, None, user_id, locale,
                                    guild_id, permissions, thread_id)

    @_on_fake_loop
    async def send_autocomplete(
        self,
        name: str,
        options: Mapping[str, str | int | float | bool],
        focused: str,
        *,
        user_id: int | None = None,
        locale: str = "en-US",
        guild_id: int | None = None,
        permissions: int | None = None,
    ) -> SentInteraction:
        """Dispatch APPLICATION_COMMAND_AUTOCOMPLETE (type 4) while the user types option
        `focused` of command `name` (its partial value in `options`); the bot answers with
        callback type 8 and `data.choices`."""
        data = self._command_data(name, options, guild_id)
        leaf = data
        while leaf.get("options") and leaf["options"][0]["type"] in (
                OPTION_SUB_COMMAND, OPTION_SUB_COMMAND_GROUP):
            leaf = leaf["options"][0]
        for option in leaf.get("options", []):
            if option["name"] == focused:
                option["focused"] = True
        return await self._interact(AUTOCOMPLETE, data, None, user_id, locale, guild_id,
                                    permissions)

    @_on_fake_loop
    async def send_message_command(
        self, name: str, message_id: int, *, user_id: int | None = None, locale: str = "en-US",
    ) -> SentInteraction:
        """Dispatch INTERACTION_CREATE for a message context-menu command (right-click a
        message → Apps → `name`) on message `message_id`, which the fake knows (see
        post_message): type 2 with data.type 3, target_id and the message in resolved.messages,
        as Discord sends it (with its content, even to a bot without the Message Content
        intent)."""
        data = self._command_data(name, None, kind=COMMAND_MESSAGE)
        message = copy.deepcopy(self.messages[message_id])
        data |= {"target_id": str(message_id),
                 "resolved": {"messages": {str(message_id): message}}}
        return await self._interact(APPLICATION_COMMAND, data, None, user_id, locale)

    @_on_fake_loop
    async def post_message(self, content: str, *, author_id: int | None = None,
                           embeds: list[dict[str, Any]] | None = None,
                           attachments: list[dict[str, Any]] | None = None) -> int:
        """A member's message in the fake channel (as if typed in the client); its id. The bot
        is not told (it asks for no message events): a context-menu command can target it."""
        author_id = author_id or self.user_id
        message: dict[str, Any] = {
            "id": str(snowflake()), "channel_id": str(self.channel_id),
            "guild_id": str(self.guild_id), "author": self.user_payload(author_id),
            "member": {k: v for k, v in self.member_payload(author_id).items() if k != "user"},
            "type": 0, "content": content, "embeds": copy.deepcopy(embeds or []),
            "components": [], "attachments": copy.deepcopy(attachments or []),
            "mentions": [], "mention_roles": [], "mention_everyone": False, "pinned": False,
            "tts": False, "timestamp": _now(), "edited_timestamp": None, "flags": 0,
        }
        self.messages[int(message["id"])] = message
        return int(message["id"])

    def _command_data(self, name: str, options: Mapping[str, Any] | None,
                      guild_id: int | None = None, kind: int = COMMAND_CHAT_INPUT
                      ) -> dict[str, Any]:
        """`name` is a command, or (slash commands) a command then its subcommand group and
        subcommand, space-separated: their options nest as Discord nests them. A context
        menu's name is taken whole ("Ask Byline")."""
        command, *path = name.split() if kind == COMMAND_CHAT_INPUT else (name,)
        data: dict[str, Any] = {"id": str(snowflake()), "name": command, "type": kind}
        for where in (guild_id or self.guild_id, None):
            synced = [c for c in self.commands.get(where, [])
                      if c["name"] == command and c.get("type", COMMAND_CHAT_INPUT) == kind]
            if synced:
                data["id"] = synced[0]["id"]
                if where is not None:
                    data["guild_id"] = str(where)  # tells discord.py to look in guild commands
                break
        leaf = data
        for depth, part in enumerate(path):
            kind = OPTION_SUB_COMMAND if depth == len(path) - 1 else OPTION_SUB_COMMAND_GROUP
            leaf["options"] = [{"name": part, "type": kind}]
            leaf = leaf["options"][0]
        if options:
            leaf["options"] = [{"name": k, "type": _option_type(v), "value": v}
                               for k, v in options.items()]
        elif path:
            leaf["options"] = []
        return data

    @_on_fake_loop
    async def click(
        self,
        custom_id: str,
        *,
        message_id: int | None = None,
        user_id: int | None = None,
        component_type: int = 2,  # 2 button; 3 string select (pass values)
        values: list[str] | None = None,
        locale: str = "en-US",
    ) -> SentInteraction:
        """Dispatch INTERACTION_CREATE for a component on a message the fake created (by
        default the newest one carrying custom_id)."""
        if message_id is None:
            carrying = [m for m in self.messages.values() if custom_id in _custom_ids(m)]
            if not carrying:
                raise LookupError(f"no message the fake knows has a component {custom_id!r}")
            message_id = int(carrying[-1]["id"])
        data: dict[str, Any] = {"custom_id": custom_id, "component_type": component_type}
        if values is not None:
            data["values"] = values
        guild_id = int(self.messages[message_id]["guild_id"])
        return await self._interact(MESSAGE_COMPONENT, data, message_id, user_id, locale,
                                    guild_id)

    async def _interact(
        self, kind: int, data: dict[str, Any], message_id: int | None, user_id: int | None,
        locale: str, guild_id: int | None = None, permissions: int | None = None,
        thread_id: int | None = None,
    ) -> SentInteraction:
        interaction_id, token = snowflake(), f"fake-token-{uuid.uuid4().hex}"
        user_id = user_id or self.user_id
        guild_id = guild_id or self.guild_id
        if guild_id not in self.channel_ids:
            raise LookupError(f"the bot is in no fake guild {guild_id}")
        channel = self.channel_payload(guild_id)
        if thread_id is not None:  # a public thread (type 11) under the guild's channel
            channel |= {"id": str(thread_id), "type": 11, "parent_id": channel["id"],
                        "name": "thread", "owner_id": str(self.bot_user_id),
                        "message_count": 0, "member_count": 1,
                        "thread_metadata": {"archived": False, "auto_archive_duration": 1440,
                                            "archive_timestamp": "2026-01-01T00:00:00+00:00",
                                            "locked": False}}
        channel_id = int(channel["id"])
        member = self.member_payload(user_id)
        # Discord sends the member's and the app's resolved permissions as strings of bits.
        allowed = CHANNEL_PERMISSIONS if permissions is None else permissions
        payload: dict[str, Any] = {
            "id": str(interaction_id), "application_id": str(self.app_id), "type": kind,
            "data": data, "token": token, "version": 1,
            "guild_id": str(guild_id),
            "guild": {"id": str(guild_id), "locale": "en-US", "features": []},
            "channel_id": str(channel_id), "channel": channel,
            "member": member | {"permissions": str(allowed)},
            "app_permissions": str(CHANNEL_PERMISSIONS),
            "locale": locale, "guild_locale": "en-US", "entitlements": [],
            "authorizing_integration_owners": {"0": str(guild_id)},
            "context": 0,  # GUILD
            "attachment_size_limit": 10 * 1024 * 1024,  # discord.py requires this key
        }
        if message_id is not None:
            payload["message"] = copy.deepcopy(self.messages[message_id])
        self._interactions[token] = _InteractionState(interaction_id, kind, user_id, message_id,
                                                      guild_id=guild_id, channel_id=channel_id)
        dispatched_at = time.monotonic()
        await self.dispatch("INTERACTION_CREATE", payload)
        return SentInteraction(self, payload, dispatched_at)


def _option_type(value: object) -> int:
    if isinstance(value, bool):  # before int: bool is an int in Python
        return OPTION_BOOLEAN
    if isinstance(value, int):
        return OPTION_INTEGER
    if isinstance(value, float):
        return OPTION_NUMBER
    return OPTION_STRING


def _custom_ids(node: JSON) -> set[str]:
    """Every custom_id in a message's (possibly nested) components."""
    if isinstance(node, dict):
        found = {node["custom_id"]} if "custom_id" in node else set()
        return found.union(*(_custom_ids(v) for k, v in node.items() if k == "components"))
    if isinstance(node, list):
        return set().union(*(_custom_ids(v) for v in node))
    return set()
