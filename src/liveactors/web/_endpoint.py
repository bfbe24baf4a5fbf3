"""``live_endpoint``: the Starlette route of the conversation socket."""

from __future__ import annotations

import logging
import os
from collections.abc import Collection
from typing import Any

from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket

from .._orchestrator import Orchestrator
from .._protocol.setup import ConfigLike
from ._bridge import Bridge, close_socket
from ._guard import Reject, authorize, deny, origin_refusal
from ._messages import Redactor, dumps, error_message
from ._options import (
    DEFAULT_AUDIO_BUFFER,
    DEFAULT_EVENT_BUFFER,
    DEFAULT_MAX_MESSAGE_BYTES,
    Authorize,
    Options,
)
from ._sessions import Sessions

__all__ = ["LiveEndpoint", "live_endpoint"]

log = logging.getLogger("liveactors.web")

_CREDENTIAL_HEADERS = frozenset({"x-goog-api-key", "authorization"})


class LiveEndpoint(WebSocketRoute):
    """A WebSocket route bridging each socket to one conversation of ``orchestrator``; made by
    :func:`live_endpoint` (which says what the arguments mean)."""

    def __init__(
        self,
        orchestrator: Orchestrator,
        *,
        path: str = "/ws",
        authorize: Authorize | None = None,
        config: ConfigLike = None,
        allowed_origins: Collection[str] | None = None,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        keep_for: float = 0.0,
        audio_buffer: int = DEFAULT_AUDIO_BUFFER,
        event_buffer: int = DEFAULT_EVENT_BUFFER,
    ) -> None:
        self.orchestrator = orchestrator
        self.options = Options.build(
            authorize=authorize,
            config=config,
            allowed_origins=allowed_origins,
            max_message_bytes=max_message_bytes,
            keep_for=keep_for,
            audio_buffer=audio_buffer,
            event_buffer=event_buffer,
        )
        self.sessions = Sessions(orchestrator, self.options)
        super().__init__(path, self._handle, name="live")

    def statistics(self) -> dict[str, Any]:
        """Per live session (by conversation name): whether a socket is attached, and its
        outbox's counters (queued, peak and dropped audio bytes and events)."""
        return self.sessions.statistics()

    async def _handle(self, websocket: WebSocket) -> None:
        options = self.options
        refusal = origin_refusal(websocket, options.allowed_origins)
        verdict: Any = None
        if refusal is None:
            verdict = await authorize(options.authorize, websocket, options.config)
            if isinstance(verdict, Reject):
                refusal = verdict
        if refusal is not None:
            await deny(websocket, refusal)
            return
        token = websocket.query_params.get("resume")
        session = self.sessions.claim(token) if token else None
        resumed = session is not None
        await websocket.accept()
        redactor = Redactor(_credentials(self.orchestrator))
        if session is None:
            try:
                session = await self.sessions.create(verdict)
            except Exception as exc:
                log.warning("could not start a conversation for a socket", exc_info=True)
                message = error_message(f"could not start the conversation: {exc}")
                await websocket.send_text(dumps(message, redactor))
                await close_socket(websocket, 1011, "could not start the conversation")
                return
        await Bridge(websocket, session, self.sessions, options, redactor).run(resumed=resumed)


def _credentials(orchestrator: Orchestrator) -> list[str]:
    """The credentials this process holds, so no text frame ever carries one."""
    found = [os.environ.get(name, "") for name in ("GEMINI_API_KEY", "GOOGLE_API_KEY")]
    try:
        request = orchestrator.backend.connect_request()
    except Exception:  # a backend that needs prepare() first (Vertex AI)
        return found
    for name, value in request.headers:
        if name.lower() in _CREDENTIAL_HEADERS:
            found += [value, value.rpartition(" ")[2]]
    return found


def live_endpoint(
    orchestrator: Orchestrator,
    *,
    path: str = "/ws",
    authorize: Authorize | None = None,
    config: ConfigLike = None,
    allowed_origins: Collection[str] | None = None,
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    keep_for: float = 0.0,
    audio_buffer: int = DEFAULT_AUDIO_BUFFER,
    event_buffer: int = DEFAULT_EVENT_BUFFER,
) -> LiveEndpoint:
    """A Starlette WebSocket route (at ``path``) bridging each socket to a conversation of
    ``orchestrator``; it runs in the orchestrator's trio loop (Hypercorn's trio worker).

    * ``authorize(websocket)``: called before the socket is accepted, sync or async; returns
      the conversation's config (a ``LiveConnectConfig`` or dict; ``None``: the default
      config), or returns / raises :class:`Reject` to refuse with an HTTP status. Without it,
      every socket gets ``config``. The browser never sends a config.
    * ``allowed_origins``: the ``Origin`` values browsers may connect from; None (default):
      the page's own origin only; ``{"*"}``: any.
    * ``max_message_bytes``: a larger frame from the client closes the socket with 1009.
    * ``keep_for``: seconds a conversation outlives its socket, for the page to reconnect with
      the token of its ``"session"`` message (``?resume=TOKEN``); 0 stops it at once.
    * ``audio_buffer`` (bytes) and ``event_buffer`` (events): what is held for a client that
      does not keep up, oldest dropped first, the drops reported (``"dropped"``).
    """
    return LiveEndpoint(
        orchestrator,
        path=path,
        authorize=authorize,
        config=config,
        allowed_origins=allowed_origins,
        max_message_bytes=max_message_bytes,
        keep_for=keep_for,
        audio_buffer=audio_buffer,
        event_buffer=event_buffer,
    )
