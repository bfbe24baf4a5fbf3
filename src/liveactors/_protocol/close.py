"""WebSocket close code + reason -> the typed error it means.

See docs/protocol.md, "Errors and close codes".

The service reports errors only as close frames. The gRPC status behind them shows through the
code: INVALID_ARGUMENT -> 1007, NOT_FOUND / PERMISSION_DENIED -> 1008, INTERNAL /
DEADLINE_EXCEEDED / UNAVAILABLE -> 1011. Retryable closes become ``ConnectionLost``; the rest
``SessionRejected``, with an unknown or expired resumption handle singled out as
``HandleExpired``. Quota exhaustion ("You exceeded your current quota...") is fatal even on
1011: reconnecting would only fail again until the plan changes, so the caller decides. The
concurrency limit ("Resource has been exhausted", HTTP 429 at the upgrade) is
:class:`~liveactors.ServiceBusy`: retryable, after a longer delay.
"""

from __future__ import annotations

from typing import Final

from .._errors import (
    CloseInfo,
    ConnectionLost,
    HandleExpired,
    ServiceBusy,
    SessionRejected,
)

__all__ = ["ABNORMAL", "RETRYABLE_CODES", "classify_close"]

#: What trio-websocket (and browsers) report when the socket ended without a close frame.
ABNORMAL: Final = 1006

#: 1000 normal (the service's way of ending a connection), 1001 going away, 1006 abrupt EOF,
#: 1011 internal error / deadline expired, 1012 service restart, 1013 try again later.
RETRYABLE_CODES: Final = frozenset({1000, 1001, 1006, 1011, 1012, 1013})

_SESSION_NOT_FOUND: Final = "session not found"
_AUTH_MARKERS: Final = (
    "api key",
    "api_key",
    "permission denied",
    "permission_denied",
    "unauthenticated",
    "unauthorized",
    "access token",
    "auth token",
    "authentication",
)
#: The concurrency limit (too many sessions at once): wait and retry.
_BUSY_MARKERS: Final = (
    "resource has been exhausted",
    "resource_exhausted",
    "resource exhausted",
    "too many",
    "rate limit",
)
#: The plan's quota is used up: retrying does not help. The service's own wording comes first,
#: before the concurrency markers (it may say RESOURCE_EXHAUSTED too); the others after them.
_OVER_QUOTA: Final = "exceeded your current quota"
_QUOTA_MARKERS: Final = ("quota exceeded", "quota")


def classify_close(code: int, reason: str = "") -> ConnectionLost | SessionRejected:
    """The exception a close with ``code`` and ``reason`` means; the reason is kept verbatim."""
    close = CloseInfo(code, reason)
    lowered = reason.lower()
    if _SESSION_NOT_FOUND in lowered:
        return HandleExpired(f"resumption handle refused: {close}", close)
    if _OVER_QUOTA in lowered:
        return SessionRejected(f"quota exhausted: {close}", close)
    if any(marker in lowered for marker in _BUSY_MARKERS):
        return ServiceBusy(f"service at its concurrency limit: {close}", close)
    if any(marker in lowered for marker in _QUOTA_MARKERS):
        return SessionRejected(f"quota exhausted: {close}", close)
    if any(marker in lowered for marker in _AUTH_MARKERS) and code != 1000:
        return SessionRejected(f"authentication failed: {close}", close)
    if code in RETRYABLE_CODES:
        return ConnectionLost(f"connection closed: {close}", close)
    if code == 1007:
        return SessionRejected(f"invalid argument: {close}", close)
    if code == 1008:
        return SessionRejected(f"policy violation or not found: {close}", close)
    if 4000 <= code <= 4999:
        # Application-defined codes: nothing says retrying helps.
        return SessionRejected(f"closed by the server: {close}", close)
    return ConnectionLost(f"connection closed: {close}", close)


def rejected_upgrade(status: int, body: str = "") -> ConnectionLost | SessionRejected:
    """The error for an HTTP status that refused the WebSocket upgrade.

    429 and 5xx are worth retrying with backoff; 401/403 (auth) and 404 (wrong path/model) are not.
    """
    text = f"upgrade refused with HTTP {status}" + (f": {body[:120]}" if body else "")
    if status == 429:
        return ServiceBusy(text)
    if status >= 500:
        return ConnectionLost(text)
    return SessionRejected(text)
