"""liveactors: many Gemini Live API conversations at once, on trio.

Each conversation is an actor with a mailbox and a supervisor that keeps it alive across the
service's connection limits, GoAway notices and dropped sockets, and publishes typed events
(:mod:`liveactors.events`) to any number of subscribers.
"""

from . import events
from ._backend import DEFAULT_MODEL, TEXT_MODEL, GeminiBackend
from ._errors import (
    AdmissionTimeout,
    CloseInfo,
    ConnectionLost,
    ConversationStopped,
    HandleExpired,
    InvalidCommand,
    LiveError,
    ProtocolError,
    SessionRejected,
    SubscriberOverflow,
)
from ._transport import ConnectRequest, Link, MemoryTransport, Transport, WebSocketTransport

__all__ = [
    "DEFAULT_MODEL",
    "TEXT_MODEL",
    "AdmissionTimeout",
    "CloseInfo",
    "ConnectRequest",
    "ConnectionLost",
    "ConversationStopped",
    "GeminiBackend",
    "HandleExpired",
    "InvalidCommand",
    "Link",
    "LiveError",
    "MemoryTransport",
    "ProtocolError",
    "SessionRejected",
    "SubscriberOverflow",
    "Transport",
    "WebSocketTransport",
    "events",
]
