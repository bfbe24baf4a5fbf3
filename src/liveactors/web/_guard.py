"""Who may open a conversation socket: the origin check and the authorization hook.

Both run before the WebSocket is accepted, so a refused client gets an HTTP status (403 by
default) and never a socket.
"""

from __future__ import annotations

import inspect
from collections.abc import Collection
from typing import Any

from starlette.requests import HTTPConnection
from starlette.responses import PlainTextResponse
from starlette.websockets import WebSocket

from ._options import Authorize, normalize_origin

__all__ = ["Reject", "authorize", "deny", "origin_refusal"]


class Reject(Exception):
    """Refuse a connection: return it (or raise it) from ``authorize``.

    The client gets HTTP ``status`` with ``reason`` as the body, before any socket is open.
    """

    def __init__(self, reason: str = "forbidden", *, status: int = 403) -> None:
        super().__init__(reason)
        if isinstance(status, bool) or not isinstance(status, int) or not 400 <= status < 600:
            raise ValueError(f"status must be an HTTP error status (4xx, 5xx), not {status!r}")
        self.reason = reason
        self.status = status


def origin_refusal(conn: HTTPConnection, allowed: Collection[str] | None) -> Reject | None:
    """A ``Reject`` when the browser's ``Origin`` may not use this endpoint, else None.

    No ``Origin`` header (a client that is not a browser) passes: the check protects browsers'
    users from pages on other sites (cross-site WebSocket hijacking), and a script outside a
    browser can send any header it likes. ``allowed`` None means the page's own origin only
    (the ``Origin`` names the ``Host`` the socket was opened to); ``"*"`` allows any.
    """
    origin = conn.headers.get("origin")
    if origin is None:
        return None
    origin = normalize_origin(origin)
    if allowed is None:
        host = conn.headers.get("host", "").lower()
        _, _, where = origin.partition("://")
        if host and where == host:
            return None
    elif "*" in allowed or origin in allowed:
        return None
    return Reject("origin not allowed", status=403)


async def authorize(hook: Authorize | None, conn: HTTPConnection, default: Any) -> Any:
    """The config the hook grants (``default`` without a hook), or the ``Reject`` it returned
    or raised."""
    if hook is None:
        return default
    try:
        verdict = hook(conn)
        if inspect.isawaitable(verdict):
            verdict = await verdict
    except Reject as refusal:
        return refusal
    return verdict


async def deny(websocket: WebSocket, refusal: Reject) -> None:
    """Answer the upgrade with the refusal's HTTP status (where the server can say one; else
    the server's own refusal, 403 under Hypercorn and Uvicorn)."""
    if "websocket.http.response" in websocket.scope.get("extensions", {}):
        response = PlainTextResponse(refusal.reason, status_code=refusal.status)
        await websocket.send_denial_response(response)
    else:
        await websocket.close(1008, refusal.reason)
