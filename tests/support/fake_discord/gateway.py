"""The gateway websocket: HELLO, IDENTIFY -> READY and GUILD_CREATE, HEARTBEAT_ACK, RESUME,
and the DISPATCH events the fake sends (INTERACTION_CREATE, RECONNECT)."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from aiohttp import WSMsgType, web

from .models import JSON, _on_fake_loop


class Gateway:
    """FakeDiscord's gateway: every frame the client sends is recorded."""

    async def _gateway(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=0)
        await ws.prepare(request)
        self._ws = ws
        # discord.py asks for zlib-stream but only inflates binary frames: text frames are fine.
        await self._send(ws, {"op": 10, "d": {"heartbeat_interval": self.heartbeat_interval_ms}})
        try:
            async for msg in ws:
                if msg.type is WSMsgType.TEXT:
                    frame = json.loads(msg.data)
                    await self._record(self.gateway_frames, frame)
                    await self._on_frame(ws, frame)
        finally:
            if self._ws is ws:
                self._ws = None
        return ws

    async def _record(self, log: list[Any], item: object) -> None:
        async with self._changed:
            log.append(item)
            self._changed.notify_all()

    async def _on_frame(self, ws: web.WebSocketResponse, frame: dict[str, Any]) -> None:
        op, data = frame.get("op"), frame.get("d")
        if op == 1:  # HEARTBEAT: Discord acknowledges each one
            if self._probe_waiter is not None and not self._probe_waiter.done():
                self._probe_waiter.set_result(time.perf_counter())
            await self._send(ws, {"op": 11})
        elif op == 2:  # IDENTIFY
            if self.token is not None and data.get("token") != self.token:
                await ws.close(code=4004, message=b"Authentication failed.")
                return
            self.identify_count += 1
            self._session_id, self._seq = uuid.uuid4().hex, 0
            await self._dispatch(ws, "READY", self._ready_payload())
            for guild_id in self.guild_ids:
                await self._dispatch(ws, "GUILD_CREATE", self.guild_payload(guild_id))
        elif op == 6:  # RESUME: we keep no backlog to replay, so just confirm
            if data.get("session_id") != self._session_id:
                await self._send(ws, {"op": 9, "d": False})  # invalid session, not resumable
                return
            self.resume_count += 1
            await self._dispatch(ws, "RESUMED", {})

    async def _send(self, ws: web.WebSocketResponse, payload: dict[str, Any]) -> None:
        async with self._send_lock:
            frame = {"op": payload["op"], "d": payload.get("d"), "s": None, "t": None}
            if payload["op"] == 0:
                self._seq += 1
                frame |= {"s": self._seq, "t": payload["t"]}
            await ws.send_str(json.dumps(frame))

    async def _dispatch(self, ws: web.WebSocketResponse, event: str, data: JSON) -> None:
        await self._send(ws, {"op": 0, "t": event, "d": data})

    @_on_fake_loop
    async def dispatch(self, event: str, data: JSON) -> None:
        """Send a DISPATCH (op 0) event to the connected client."""
        if self._ws is None:
            raise ConnectionError("no client is connected to the fake gateway")
        await self._dispatch(self._ws, event, data)

    @_on_fake_loop
    async def request_reconnect(self) -> None:
        """Send op 7 RECONNECT: the client drops the socket and comes back with a RESUME."""
        if self._ws is None:
            raise ConnectionError("no client is connected to the fake gateway")
        await self._send(self._ws, {"op": 7})
