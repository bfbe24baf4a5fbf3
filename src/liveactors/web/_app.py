"""``app``: a Starlette application with the voice-chat page at ``/`` and the socket at
``/ws``."""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path
from typing import Final

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .._orchestrator import Orchestrator
from .._protocol.setup import ConfigLike
from ._endpoint import live_endpoint
from ._options import (
    DEFAULT_AUDIO_BUFFER,
    DEFAULT_EVENT_BUFFER,
    DEFAULT_MAX_MESSAGE_BYTES,
    Authorize,
)

__all__ = ["STATIC", "app"]

#: The page's files, shipped inside the package.
STATIC: Final = Path(__file__).parent / "static"

#: The page loads only its own files and talks only to its own origin.
_HEADERS: Final = (
    (
        b"content-security-policy",
        b"default-src 'self'; connect-src 'self'; img-src 'self' data:; "
        b"base-uri 'none'; frame-ancestors 'none'; form-action 'none'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"permissions-policy", b"microphone=(self)"),
)


class _SecurityHeaders:
    """Adds :data:`_HEADERS` to every HTTP response (sockets pass through)."""

    def __init__(self, inner: ASGIApp) -> None:
        self.inner = inner

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.inner(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), *_HEADERS]
            await send(message)

        await self.inner(scope, receive, send_with_headers)


def _page(title: str) -> Route:
    html = (STATIC / "index.html").read_text(encoding="utf-8")
    html = html.replace("{{title}}", _escape(title))

    async def page(request: Request) -> Response:
        return HTMLResponse(html, headers={"cache-control": "no-store"})

    return Route("/", page, name="page")


def _escape(text: str) -> str:
    return (
        text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
    )


def app(
    orchestrator: Orchestrator,
    *,
    title: str = "liveactors voice chat",
    authorize: Authorize | None = None,
    config: ConfigLike = None,
    allowed_origins: Collection[str] | None = None,
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    keep_for: float = 30.0,
    audio_buffer: int = DEFAULT_AUDIO_BUFFER,
    event_buffer: int = DEFAULT_EVENT_BUFFER,
) -> Starlette:
    """A Starlette app: the voice-chat page at ``/`` (its files under ``/static``) and the
    conversation socket at ``/ws`` (:func:`live_endpoint`, whose arguments these are; here a
    page that loses its socket may come back within ``keep_for`` = 30 s by default).

    ``app.state.live`` is the endpoint (its ``statistics()``, its ``options``)."""
    endpoint = live_endpoint(
        orchestrator,
        path="/ws",
        authorize=authorize,
        config=config,
        allowed_origins=allowed_origins,
        max_message_bytes=max_message_bytes,
        keep_for=keep_for,
        audio_buffer=audio_buffer,
        event_buffer=event_buffer,
    )
    routes = [
        _page(title),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
        endpoint,
    ]
    application = Starlette(routes=routes)
    application.add_middleware(_SecurityHeaders)
    application.state.live = endpoint
    return application
