"""The Discord objects the fake sends: users, members, channels, guilds, READY."""

from __future__ import annotations

from typing import Any

from .models import CHANNEL_PERMISSIONS, _now


class Payloads:
    """FakeDiscord's users, members, channels and guilds as Discord shapes them."""

    def bot_user(self) -> dict[str, Any]:
        return _user(self.bot_user_id, self.bot_name, bot=True)

    def user_payload(self, user_id: int) -> dict[str, Any]:
        if user_id == self.bot_user_id:
            return self.bot_user()
        return _user(user_id, f"user{user_id % 10_000}")

    def member_payload(self, user_id: int) -> dict[str, Any]:
        return {
            "user": self.user_payload(user_id), "nick": None,
            "avatar": None, "roles": [], "joined_at": _now(), "premium_since": None,
            "deaf": False, "mute": False, "flags": 0, "pending": False,
            "communication_disabled_until": None,
        }

    def channel_payload(self, guild_id: int | None = None) -> dict[str, Any]:
        guild_id = guild_id or self.guild_id
        return {
            "id": str(self.channel_ids[guild_id]), "type": 0, "guild_id": str(guild_id),
            "name": "general", "position": 0, "permission_overwrites": [], "nsfw": False,
            "topic": None, "last_message_id": None, "rate_limit_per_user": 0, "parent_id": None,
        }

    def guild_payload(self, guild_id: int | None = None) -> dict[str, Any]:
        """GUILD_CREATE: a guild object plus the gateway-only fields, for one text channel."""
        guild_id = guild_id or self.guild_id
        everyone = {
            "id": str(guild_id), "name": "@everyone", "color": 0, "hoist": False,
            "icon": None, "unicode_emoji": None, "position": 0,
            "permissions": str(CHANNEL_PERMISSIONS), "managed": False, "mentionable": False,
            "flags": 0,
        }
        return {
            "id": str(guild_id), "name": "Fake Newsroom", "icon": None, "splash": None,
            "discovery_splash": None, "owner_id": str(self.user_id), "afk_channel_id": None,
            "afk_timeout": 300, "verification_level": 0, "default_message_notifications": 1,
            "explicit_content_filter": 0, "roles": [everyone], "emojis": [], "stickers": [],
            "features": [], "mfa_level": 0, "application_id": None,
            "system_channel_id": str(self.channel_ids[guild_id]), "system_channel_flags": 0,
            "rules_channel_id": None, "vanity_url_code": None, "description": None,
            "banner": None, "premium_tier": 0, "premium_subscription_count": 0,
            "preferred_locale": "en-US", "public_updates_channel_id": None, "nsfw_level": 0,
            "premium_progress_bar_enabled": False, "max_members": 500_000,
            # gateway-only GUILD_CREATE fields
            "joined_at": _now(), "large": False, "unavailable": False, "member_count": 2,
            "members": [self.member_payload(self.bot_user_id)],
            "channels": [self.channel_payload(guild_id)], "threads": [], "voice_states": [],
            "presences": [], "stage_instances": [], "guild_scheduled_events": [],
            "soundboard_sounds": [],
        }

    def _ready_payload(self) -> dict[str, Any]:
        return {
            "v": 10, "user": self.bot_user(), "private_channels": [], "relationships": [],
            "guilds": [{"id": str(g), "unavailable": True} for g in self.guild_ids],
            "session_id": self._session_id, "session_type": "normal",
            "resume_gateway_url": self.gateway_url,
            "application": {"id": str(self.app_id), "flags": 0},
        }


def _user(user_id: int, name: str, *, bot: bool = False) -> dict[str, Any]:
    return {"id": str(user_id), "username": name, "discriminator": "0", "global_name": None,
            "avatar": None, "bot": bot, "public_flags": 0}
