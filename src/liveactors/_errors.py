"""The one exception tree of liveactors.

Every error liveactors raises is a :class:`LiveError`. Lower-layer exceptions (trio-websocket,
JSON, pydantic) are translated once, at the boundary where they happen, so callers only ever
catch these::

    LiveError                       base of everything below
    ├── InvalidCommand              bad local input (wrong type, wrong state); nothing was sent
    │   ├── InvalidConfig           a config the model is known to refuse, or a retired model
    │   └── ConversationStopped     the conversation no longer accepts commands
    ├── ProtocolError               the peer sent something that is not the Live protocol
    ├── ConnectionLost              retryable: close 1000/1006/1011/1013, abrupt EOF, refused
    │   │                           or timed-out connect; the supervisor reconnects
    │   └── ServiceBusy             the service's concurrency limit (1011 "Resource has been
    │                               exhausted", HTTP 429): retried after a longer delay
    ├── SessionRejected             fatal: 1007 invalid argument, 1008 policy/not found, auth,
    │   │                           quota; retrying the same request would fail the same way
    │   └── HandleExpired           1008 "session not found" on resume: start a fresh session
    ├── SubscriberOverflow          a subscriber with overflow="error" fell behind
    ├── AdmissionTimeout            no session slot became free in time
    ├── LeaseLost                   a cluster worker no longer owns the conversation (its
    │                               lease ran out): it stops acting for it at once
    └── ClusterUnavailable          (liveactors.cluster) Redis / Valkey could not do what
                                    was asked; nothing acknowledged is lost

Close codes and reasons are kept on :class:`CloseInfo` so a user can see what the service said,
verbatim except for secrets: no exception text or repr ever contains an API key, token or
resumption handle (a close reason quoting one shows ``<redacted>`` in its place).
"""

from __future__ import annotations

import attrs

__all__ = [
    "AdmissionTimeout",
    "CloseInfo",
    "ConnectionLost",
    "ConversationStopped",
    "HandleExpired",
    "InvalidCommand",
    "InvalidConfig",
    "LiveError",
    "ProtocolError",
    "ServiceBusy",
    "SessionRejected",
    "SubscriberOverflow",
]


@attrs.frozen
class CloseInfo:
    """A WebSocket close as the peer sent it: ``code`` 1006 means no close frame arrived;
    ``reason`` is verbatim but for secrets, replaced by ``<redacted>``."""

    code: int
    reason: str = ""

    def __str__(self) -> str:
        return f"{self.code} {self.reason!r}" if self.reason else str(self.code)


class LiveError(Exception):
    """Base class of every error raised by liveactors."""

    #: Whether reconnecting (with backoff) may succeed where this attempt failed.
    retryable: bool = False


class InvalidCommand(LiveError, ValueError):
    """A command was rejected locally before anything was sent; the conversation is intact."""


class InvalidConfig(InvalidCommand):
    """The config asks for something the model is known to refuse (or names a retired model).

    Raised before any socket opens. ``field`` is the ``LiveConnectConfig`` field at fault (or
    ``"model"``), ``model`` the model it was checked against, ``instead`` what to use instead.
    """

    def __init__(self, message: str, *, field: str, model: str, instead: str = "") -> None:
        super().__init__(message)
        self.field = field
        self.model = model
        self.instead = instead


class ConversationStopped(InvalidCommand):
    """The conversation was stopped or failed and accepts no more commands."""


class ProtocolError(LiveError):
    """The peer sent a frame that is not valid Live protocol (bad JSON, wrong shape)."""


class _ClosedError(LiveError):
    """A connection ended; ``close`` tells how, verbatim."""

    def __init__(self, message: str, close: CloseInfo | None = None) -> None:
        super().__init__(message)
        self.close = close

    @property
    def code(self) -> int | None:
        """The WebSocket close code, or None when the connection never opened."""
        return None if self.close is None else self.close.code

    @property
    def reason(self) -> str:
        """The close reason as the server sent it, secrets redacted ("" if none)."""
        return "" if self.close is None else self.close.reason


class ConnectionLost(_ClosedError):
    """The connection ended in a way that reconnecting can fix (1000, 1006, 1011, 1013, EOF)."""

    retryable = True


class ServiceBusy(ConnectionLost):
    """The service is at its concurrency limit (1011 "Resource has been exhausted", HTTP 429).

    Retried after a longer, jittered delay that does not use up the restart budget, so one
    burst never fails a fleet; counted apart in the statistics.
    """


class SessionRejected(_ClosedError):
    """The service refused the session (1007, 1008, auth, quota); retrying would not help."""


class HandleExpired(SessionRejected):
    """The resumption handle is unknown or expired (1008 "session not found").

    Not fatal for a supervised conversation: it starts a fresh session and restores the
    transcript as history instead.
    """


class SubscriberOverflow(LiveError):
    """A subscriber whose overflow policy is ``"error"`` did not keep up with its events."""


class AdmissionTimeout(LiveError, TimeoutError):
    """No live-session slot became free within the requested time."""


class LeaseLost(LiveError):
    """This process no longer owns the conversation (its cluster lease ran out, or another
    worker holds a newer one): nothing more is sent or recorded for it from here."""
