"""One socket bridged to one session: frames in become commands, events out become frames.

Two tasks per socket. The reader takes a frame at a time and awaits the conversation taking it
(a full mailbox makes it wait, so the server stops reading and TCP pushes back on the browser).
The writer takes events from the session's outbox and sends them, binary for audio, JSON for
the rest, each preceded by a ``"dropped"`` report when the outbox had to drop anything since the
last one. Either ends the socket by finishing its :class:`~._sessions.Attachment`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, Final

import trio
from starlette.websockets import WebSocket, WebSocketDisconnect

from .. import events as ev
from .._errors import ConversationStopped, LiveError
from ._messages import (
    ActivityEnd,
    ActivityStart,
    BadMessage,
    Command,
    Redactor,
    SendText,
    Stop,
    dropped_message,
    dumps,
    error_message,
    event_message,
    parse_command,
    session_message,
)
from ._options import INPUT_RATE, Options
from ._sessions import Attachment, Sessions, WebSession

__all__ = ["Bridge", "close_socket"]

log = logging.getLogger("liveactors.web")

#: Seconds a socket's closing handshake may take before the handler lets it go.
_CLOSE_TIMEOUT: Final = 1.0
_NAMES: Final = {SendText: "text", ActivityStart: "activity_start", ActivityEnd: "activity_end"}


async def close_socket(websocket: WebSocket, code: int, reason: str) -> None:
    """Close ``websocket`` and wait (briefly) for the client's side of the closing handshake.

    Returning from the handler while the server still answers the client's close frame races
    Hypercorn's own teardown of the TCP stream (two tasks sending on it: a BusyResourceError
    that takes the whole server down), so the handler returns only once the socket is closed
    both ways, or after ``_CLOSE_TIMEOUT``.
    """
    with trio.CancelScope(shield=True) as scope:
        scope.deadline = trio.current_time() + _CLOSE_TIMEOUT
        try:
            await websocket.close(code, reason)
            while (await websocket.receive())["type"] != "websocket.disconnect":
                pass
        except Exception:  # the client is gone already
            log.debug("closing a socket", exc_info=True)


class Bridge:
    """Runs one accepted socket for one session until either ends."""

    def __init__(
        self,
        websocket: WebSocket,
        session: WebSession,
        sessions: Sessions,
        options: Options,
        redactor: Redactor,
    ) -> None:
        self.websocket = websocket
        self.session = session
        self.sessions = sessions
        self.options = options
        self.redactor = redactor
        self.attachment = Attachment()
        self._send_lock = trio.Lock()

    async def run(self, *, resumed: bool) -> None:
        session = self.session
        attachment = self.attachment
        token = self.sessions.attach(session, attachment)
        try:
            with attachment.scope:
                await self._send_json(
                    session_message(
                        token, session.name, resumed=resumed, keep_for=self.options.keep_for
                    )
                )
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._gone_ends, self._read)
                    nursery.start_soon(self._gone_ends, self._write)
        finally:
            self.sessions.release(session, attachment)
            if attachment.close is not None:
                await self._close(*attachment.close)

    async def _gone_ends(self, loop: Callable[[], Awaitable[None]]) -> None:
        """Run ``loop``; the client vanishing under it ends the socket quietly."""
        try:
            await loop()
        except WebSocketDisconnect:
            self.attachment.finish(None)

    async def _close(self, code: int, reason: str) -> None:
        await close_socket(self.websocket, code, reason)

    async def _send_json(self, message: dict[str, Any]) -> None:
        async with self._send_lock:
            await self.websocket.send_text(dumps(message, self.redactor))

    # -- in ----------------------------------------------------------------------------------

    async def _read(self) -> None:
        limit = self.options.max_message_bytes
        while True:
            message = await self.websocket.receive()
            if message["type"] == "websocket.disconnect":
                self.attachment.finish(None)
                return
            data: bytes | None = message.get("bytes")
            text: str | None = message.get("text")
            if data is not None:
                if len(data) > limit:
                    self.attachment.finish((1009, f"message larger than {limit} bytes"))
                    return
                await self._audio(data)
            elif text is not None:
                if len(text) > limit // 4 and len(text.encode()) > limit:
                    self.attachment.finish((1009, f"message larger than {limit} bytes"))
                    return
                await self._command(text)

    async def _audio(self, pcm: bytes) -> None:
        ref = self.session.ref
        if not pcm or ref is None:
            return
        try:
            await ref.send_audio(pcm, rate=INPUT_RATE)
        except ConversationStopped:
            pass  # ending: the writer sends how, then closes
        except LiveError as exc:
            await self._send_json(error_message(str(exc), command="audio"))

    async def _command(self, text: str) -> None:
        try:
            command = parse_command(text)
        except BadMessage as exc:
            await self._send_json(error_message(str(exc)))
            return
        ref = self.session.ref
        if ref is None:
            return
        if isinstance(command, Stop):
            await self.sessions.stop(self.session)
            return
        try:
            await self._apply(command)
        except ConversationStopped:
            pass
        except LiveError as exc:
            await self._send_json(error_message(str(exc), command=_NAMES[type(command)]))

    async def _apply(self, command: Command) -> None:
        ref = self.session.ref
        assert ref is not None
        if isinstance(command, SendText):
            await ref.send_text(command.text)
        elif isinstance(command, ActivityStart):
            await ref.activity_start()
        elif isinstance(command, ActivityEnd):
            await ref.activity_end()

    # -- out ---------------------------------------------------------------------------------

    async def _write(self) -> None:
        session = self.session
        outbox = session.outbox
        while True:
            event = await outbox.get()
            await self._report_drops()
            if event is None:
                closed = (1011, "conversation failed") if session.failed else (1000, "")
                self.attachment.finish(closed)
                return
            if isinstance(event, ev.AudioChunk):
                async with self._send_lock:
                    await self.websocket.send_bytes(event.data)
            else:
                await self._send_json(event_message(event))

    async def _report_drops(self) -> None:
        drops = self.session.outbox.drops
        if drops != self.session.reported_drops:
            self.session.reported_drops = drops
            await self._send_json(dropped_message(*drops))
