"""The REST API (/api/v10): the routes, their handlers (login, command sync, interaction
callbacks, followups, message edits), and the message bodies they read and apply."""

from __future__ import annotations

import asyncio
import copy
import json
import re
import time
from collections.abc import Callable, Mapping
from typing import Any

from aiohttp import BodyPartReader, web

from .models import (
    APPLICATION_COMMAND,
    CHANNEL_MESSAGE,
    DEFERRED_CHANNEL_MESSAGE,
    DEFERRED_UPDATE,
    EPHEMERAL,
    JSON,
    LOADING,
    UPDATE_MESSAGE,
    Reply,
    Request,
    _InteractionState,
    _now,
    snowflake,
)
from .payloads import _user


def _error(status: int, message: str, code: int = 0) -> Reply:
    return Reply(status, {"message": message, "code": code})  # Discord's error shape


# Routes: (method, path regex, handler name). Handlers are FakeDiscord._r_<name>(request).
# A new behaviour (a 429, a 5xx) is a new entry here or a queued reply (see queue_reply).
_SNOW = r"\d+"
_WEBHOOK = rf"/webhooks/(?P<app_id>{_SNOW})/(?P<token>[^/]+)"  # an interaction's webhook
_MESSAGE = _WEBHOOK + r"/messages/(?P<message>@original|\d+)"
ROUTES: list[tuple[str, str, str]] = [
    ("GET", r"/users/@me", "me"),
    ("GET", r"/oauth2/applications/@me", "application"),
    ("GET", r"/gateway", "gateway"),
    ("GET", r"/gateway/bot", "gateway_bot"),
    ("PUT", rf"/applications/(?P<app_id>{_SNOW})/commands", "sync_commands"),
    ("GET", rf"/applications/(?P<app_id>{_SNOW})/commands", "get_commands"),
    ("PUT", rf"/applications/(?P<app_id>{_SNOW})/guilds/(?P<guild_id>{_SNOW})/commands",
     "sync_commands"),
    ("GET", rf"/applications/(?P<app_id>{_SNOW})/guilds/(?P<guild_id>{_SNOW})/commands",
     "get_commands"),
    ("POST", rf"/interactions/(?P<interaction_id>{_SNOW})/(?P<token>[^/]+)/callback", "callback"),
    ("POST", _WEBHOOK, "followup"),
    ("GET", _MESSAGE, "get_message"),
    ("PATCH", _MESSAGE, "edit_message"),
    ("DELETE", _MESSAGE, "delete_message"),
]
_COMPILED = [(method, re.compile(pattern), name) for method, pattern, name in ROUTES]
_TOKEN_IN_PATH = {"callback", "followup", "get_message", "edit_message", "delete_message"}


class Rest:
    """FakeDiscord's REST routes and their handlers."""

    async def _rest(self, request: web.Request) -> web.Response:
        received_at = time.monotonic()
        path = "/" + request.match_info["tail"]
        body, files = await _read_body(request)
        recorded = Request(request.method, path, dict(request.query), body, files,
                           "unknown", {}, received_at)
        reply = self._route(request, recorded)
        text = None if reply.body is None else json.dumps(reply.body)
        # A snapshot of what was sent: stored messages change with later edits.
        recorded.status, recorded.response = reply.status, text and json.loads(text)
        await self._record(self.requests, recorded)
        if delay := self._delays.get(recorded.route):
            await asyncio.sleep(delay)
        if text is None:
            return web.Response(status=reply.status, headers=reply.headers)
        # discord.py parses JSON only when Content-Type is exactly "application/json": aiohttp
        # appends "; charset=utf-8" to text= bodies, so send bytes with the header set by hand.
        return web.Response(status=reply.status, body=text.encode(),
                            headers={"Content-Type": "application/json", **reply.headers})

    def _route(self, request: web.Request, recorded: Request) -> Reply:
        handler: Callable[[Request], Reply] | None = None
        for method, pattern, name in _COMPILED:
            if method == recorded.method and (match := pattern.fullmatch(recorded.path)):
                recorded.route, recorded.params = name, match.groupdict()
                handler = getattr(self, f"_r_{name}")
                break
        for i, (method, pattern, reply) in enumerate(self._queued):  # injected answers first
            if method == recorded.method and pattern.fullmatch(recorded.path):
                del self._queued[i]
                return reply
        # Interaction callbacks and webhooks carry no Authorization: the token in the path is it.
        needs_auth = recorded.route not in _TOKEN_IN_PATH and self.token is not None
        if needs_auth and request.headers.get("Authorization") != f"Bot {self.token}":
            return _error(401, "401: Unauthorized")
        return handler(recorded) if handler else _error(404, "404: Not Found")

    def _r_me(self, r: Request) -> Reply:
        return Reply(200, self.bot_user() | {"verified": True, "mfa_enabled": False, "flags": 0,
                                             "locale": "en-US", "email": None})

    def _r_application(self, r: Request) -> Reply:
        owner = _user(self.user_id, "owner")
        return Reply(200, {
            "id": str(self.app_id), "name": self.bot_name, "icon": None, "description": "",
            "bot_public": False, "bot_require_code_grant": False, "bot": self.bot_user(),
            "owner": owner, "team": None, "verify_key": "0" * 64, "flags": 0,
            "summary": "", "tags": [], "redirect_uris": [], "interactions_endpoint_url": None,
        })

    def _r_gateway(self, r: Request) -> Reply:
        return Reply(200, {"url": self.gateway_url})

    def _r_gateway_bot(self, r: Request) -> Reply:
        return Reply(200, {"url": self.gateway_url, "shards": 1, "session_start_limit": {
            "total": 1000, "remaining": 999, "reset_after": 14_400_000, "max_concurrency": 1}})

    def _r_sync_commands(self, r: Request) -> Reply:
        guild_id = int(r.params["guild_id"]) if "guild_id" in r.params else None
        synced = []
        for command in r.json or []:
            key = (guild_id, command["name"])
            command_id = self._command_ids.setdefault(key, snowflake())
            synced.append({
                "type": 1, "description": "", "options": [], "default_member_permissions": None,
                "nsfw": False, "contexts": None, "integration_types": [0],
                **copy.deepcopy(command),
                "id": str(command_id), "application_id": r.params["app_id"],
                "version": str(snowflake()),
                **({"guild_id": str(guild_id)} if guild_id is not None else {}),
            })
        self.commands[guild_id] = synced  # a bulk overwrite replaces the whole set
        return Reply(200, synced)

    def _r_get_commands(self, r: Request) -> Reply:
        guild_id = int(r.params["guild_id"]) if "guild_id" in r.params else None
        return Reply(200, self.commands.get(guild_id, []))

    def _r_callback(self, r: Request) -> Reply:
        state = self._interactions.get(r.params["token"])
        if state is None or state.id != int(r.params["interaction_id"]):
            return _error(404, "Unknown interaction", 10062)
        if state.callback_type is not None:
            return _error(400, "Interaction has already been acknowledged.", 40060)
        kind = int(r.json["type"])
        data = r.json.get("data") or {}
        state.callback_type = kind
        message: dict[str, Any] | None = None
        if kind in (CHANNEL_MESSAGE, DEFERRED_CHANNEL_MESSAGE):
            flags = int(data.get("flags", 0)) | (LOADING if kind == DEFERRED_CHANNEL_MESSAGE else 0)
            message = self._new_message(data, state, r.files, flags=flags)
            state.original_id = int(message["id"])
        elif kind in (DEFERRED_UPDATE, UPDATE_MESSAGE) and state.message_id in self.messages:
            message = self.messages[state.message_id]
            if kind == UPDATE_MESSAGE:
                _apply_edit(message, data, r.files)
            state.original_id = state.message_id
        callback: dict[str, Any] = {"id": str(state.id), "type": state.type}
        if message is not None:
            callback |= {
                "response_message_id": message["id"],
                "response_message_loading": kind == DEFERRED_CHANNEL_MESSAGE,
                "response_message_ephemeral": bool(message["flags"] & EPHEMERAL),
            }
        resource: dict[str, Any] = {"type": kind}
        if message is not None:
            resource["message"] = message
        return Reply(200, {"interaction": callback, "resource": resource})

    def _r_followup(self, r: Request) -> Reply:
        state = self._webhook(r)
        if state is None:
            return _error(404, "Unknown Webhook", 10015)
        message = self._new_message(r.json or {}, state, r.files,
                                    flags=int((r.json or {}).get("flags", 0)))
        # wait=true asks for the created message; without it Discord answers 204.
        return Reply(200, message) if r.query.get("wait") in ("1", "true") else Reply(204)

    def _r_get_message(self, r: Request) -> Reply:
        message = self._webhook_message(r)
        return Reply(200, message) if message else _error(404, "Unknown Message", 10008)

    def _r_edit_message(self, r: Request) -> Reply:
        message = self._webhook_message(r)
        if message is None:
            return _error(404, "Unknown Message", 10008)
        _apply_edit(message, r.json or {}, r.files)
        return Reply(200, message)

    def _r_delete_message(self, r: Request) -> Reply:
        message = self._webhook_message(r)
        if message is None:
            return _error(404, "Unknown Message", 10008)
        del self.messages[int(message["id"])]
        return Reply(204)

    def _webhook(self, r: Request) -> _InteractionState | None:
        # An interaction's webhook is addressed by application id + interaction token.
        if int(r.params["app_id"]) != self.app_id:
            return None
        return self._interactions.get(r.params["token"])

    def _webhook_message(self, r: Request) -> dict[str, Any] | None:
        state = self._webhook(r)
        if state is None:
            return None
        ref = r.params["message"]
        message_id = state.original_id if ref == "@original" else int(ref)
        return self.messages.get(message_id) if message_id is not None else None

    def _new_message(
        self, data: Mapping[str, Any], state: _InteractionState, files: dict[str, bytes],
        *, flags: int,
    ) -> dict[str, Any]:
        message: dict[str, Any] = {
            "id": str(snowflake()), "channel_id": str(state.channel_id or self.channel_id),
            "guild_id": str(state.guild_id or self.guild_id), "author": self.bot_user(),
            # 20: CHAT_INPUT_COMMAND reply; 0: DEFAULT (component responses)
            "type": 20 if state.type == APPLICATION_COMMAND else 0,
            "content": "", "embeds": [], "components": [], "attachments": [],
            "mentions": [], "mention_roles": [], "mention_everyone": False, "pinned": False,
            "tts": False, "timestamp": _now(), "edited_timestamp": None, "flags": flags,
            "webhook_id": str(self.app_id), "application_id": str(self.app_id),
            "interaction_metadata": {"id": str(state.id), "type": state.type,
                                     "user": self.user_payload(state.user_id),
                                     "authorizing_integration_owners": {}},
        }
        _apply_edit(message, data, files)
        message["flags"], message["edited_timestamp"] = flags, None
        self.messages[int(message["id"])] = message
        return message


def _apply_edit(
    message: dict[str, Any], data: Mapping[str, Any], files: dict[str, bytes] | None = None
) -> None:
    """Apply the message fields a create/edit body carries, as Discord does (others stay)."""
    for key, empty in (("content", ""), ("embeds", []), ("components", []), ("flags", 0)):
        if key in data:
            message[key] = copy.deepcopy(data[key]) if data[key] is not None else empty
    if files or any(key in data for key in ("content", "embeds", "components")):
        message["flags"] = int(message["flags"]) & ~LOADING  # a deferred reply stops "thinking"
    if files:
        message["attachments"] = [
            {"id": str(snowflake()), "filename": name, "size": len(blob),
             "url": f"https://cdn.invalid/{name}", "proxy_url": f"https://cdn.invalid/{name}"}
            for name, blob in files.items()
        ]
    elif "attachments" in data:  # keeps the listed existing attachments, drops the rest
        kept = {str(a.get("id")) for a in data["attachments"] or []}
        message["attachments"] = [a for a in message["attachments"] if a["id"] in kept]
    message["edited_timestamp"] = _now()


async def _read_body(request: web.Request) -> tuple[JSON, dict[str, bytes]]:
    """A JSON body, or a multipart one (payload_json + files[n]) when files are attached."""
    if not request.content_type.startswith("multipart/"):
        raw = await request.read()
        return (json.loads(raw) if raw else None), {}
    body: JSON = None
    files: dict[str, bytes] = {}
    reader = await request.multipart()
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader):
            continue  # a nested multipart: discord.py never sends one
        if part.name == "payload_json":
            body = json.loads(await part.text())
        else:
            files[part.filename or part.name or "file"] = await part.read()
    return body, files
