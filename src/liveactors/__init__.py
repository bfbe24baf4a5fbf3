"""liveactors: many Gemini Live API conversations at once, on trio.

Each conversation is an actor with a mailbox and a supervisor that keeps it alive across the
service's connection limits, GoAway notices and dropped sockets, and publishes typed events
(:mod:`liveactors.events`) to any number of subscribers.
"""

from importlib.metadata import version as _version

from . import events
from ._actor import Actor
from ._backend import DEFAULT_MODEL, TEXT_MODEL, GeminiBackend
from ._bus import Subscription, SubscriptionStatistics
from ._connect import MemoryTransport, WebSocketTransport
from ._conversation import (
    Conversation,
    ConversationRef,
    ConversationState,
    ConversationStatistics,
)
from ._errors import (
    AdmissionTimeout,
    CloseInfo,
    ConnectionLost,
    ConversationStopped,
    HandleExpired,
    InvalidCommand,
    InvalidConfig,
    LeaseLost,
    LiveError,
    ProtocolError,
    ServiceBusy,
    SessionRejected,
    SubscriberOverflow,
)
from ._handles import HandleStore, MemoryHandleStore, SQLiteHandleStore, StoredHandle
from ._orchestrator import Orchestrator, OrchestratorStatistics, open_orchestrator
from ._reply import Reply
from ._restart import RestartPolicy
from ._transport import ConnectRequest, Link, Transport
from ._vertex import VertexBackend

__version__ = _version("liveactors")

__all__ = [
    "DEFAULT_MODEL",
    "TEXT_MODEL",
    "Actor",
    "AdmissionTimeout",
    "CloseInfo",
    "ConnectRequest",
    "ConnectionLost",
    "Conversation",
    "ConversationRef",
    "ConversationState",
    "ConversationStatistics",
    "ConversationStopped",
    "GeminiBackend",
    "HandleExpired",
    "HandleStore",
    "InvalidCommand",
    "InvalidConfig",
    "LeaseLost",
    "Link",
    "LiveError",
    "MemoryHandleStore",
    "MemoryTransport",
    "Orchestrator",
    "OrchestratorStatistics",
    "ProtocolError",
    "Reply",
    "RestartPolicy",
    "SQLiteHandleStore",
    "ServiceBusy",
    "SessionRejected",
    "StoredHandle",
    "SubscriberOverflow",
    "Subscription",
    "SubscriptionStatistics",
    "Transport",
    "VertexBackend",
    "WebSocketTransport",
    "events",
    "open_orchestrator",
]
