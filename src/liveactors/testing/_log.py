"""What the fake server saw and did, for tests to check.

* :class:`ClientMessage` — every client message, per connection: index (setup = 0), kind
  (``setup``, ``clientContent``, ``realtimeInput.audio``, ``toolResponse``, ...), the normalised
  camelCase message and the trio time it arrived.
* :class:`ServerMessage` — every server message: kind (``serverContent.turnComplete``, ...) and the
  exact frame bytes.
* :class:`ConnectionRecord` — one per connection: path, session, resumption, how it ended.
* :class:`TurnRecord` — one per model turn: session, turn number, the user input it answered,
  the reply, and its outcome ("completed", "interrupted", "cut" or None while running), so a test
  can check that every user input was answered exactly once.
* :class:`Note` — everything else worth knowing: ignored tool responses, compressions, errors.

Query helpers filter by connection, session and kind (a kind matches in full, by its last part —
``"turnComplete"`` matches ``"serverContent.turnComplete"`` — or by its top-level key:
``"serverContent"`` matches every content message). :meth:`ServerLog.wait_for` waits until a
condition on the log holds.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

import attrs
import trio

from ._frames import kind_matches

__all__ = [
    "ClientMessage",
    "ConnectionRecord",
    "Note",
    "ServerLog",
    "ServerMessage",
    "TurnRecord",
]


@attrs.frozen
class ClientMessage:
    """One message a client sent."""

    connection: int
    #: The session, once setup succeeded on this connection (None before).
    session: str | None
    #: Position on the connection: setup = 0, then +1 per message.
    index: int
    #: ``setup``, ``clientContent``, ``realtimeInput.<field>``, ``toolResponse``,
    #: ``contextUpdate``, or ``invalid`` for a message that was refused.
    kind: str
    #: The whole message, normalised (camelCase keys, standard base64); for ``invalid``,
    #: ``{"raw": <the frame as text>}``.
    message: Mapping[str, Any] = attrs.field(repr=False)
    time: float

    @property
    def body(self) -> Any:
        """The value under the message's one top-level key."""
        return next(iter(self.message.values()), None)


@attrs.frozen
class ServerMessage:
    """One message the server sent."""

    connection: int
    session: str | None
    #: Position on the connection: 0 for the first server message.
    index: int
    kind: str
    frame: bytes = attrs.field(repr=False)
    time: float

    @property
    def message(self) -> Any:
        """The frame, parsed."""
        return json.loads(self.frame)


@attrs.define(eq=False)
class ConnectionRecord:
    """One WebSocket connection, from upgrade to close."""

    id: int
    path: str
    api_version: str
    method: str
    opened_at: float
    #: Came in on the Vertex AI path (``LlmBidiService``).
    vertex: bool = False
    session: str | None = None
    #: The bare model name of the setup (once setup succeeded).
    model: str | None = None
    #: The handle the client resumed with, if any.
    resumed_from: str | None = None
    setup_at: float | None = None
    closed_at: float | None = None
    #: The close code sent or received; 1006 when there was no close frame.
    close_code: int | None = None
    close_reason: str = ""
    #: Who ended it and why: "client", "client_drop" (no close frame), "protocol", "auth",
    #: "setup", "resume", "lifetime", "session_limit", "context_window", "fault", "responder",
    #: "superseded", "shutdown", "error".
    cause: str | None = None

    @property
    def open(self) -> bool:
        """Whether the connection is still open."""
        return self.closed_at is None


@attrs.define(eq=False)
class TurnRecord:
    """One model turn (a continuation after tool results on another connection is a new one)."""

    session: str
    turn: int
    user_text: str
    connection: int
    trigger: str
    started_at: float
    #: None while running (or waiting for tool responses), then "completed" (turnComplete after
    #: generationComplete), "interrupted" (barge-in) or "cut" (the connection ended first).
    outcome: str | None = None
    ended_at: float | None = None
    #: Text (or transcript) pieces the model sent, in order.
    reply: list[str] = attrs.field(factory=list)
    tool_calls: list[str] = attrs.field(factory=list)
    #: This record continues a turn started on an earlier connection.
    continuation: bool = False

    @property
    def completed(self) -> bool:
        return self.outcome == "completed"

    @property
    def reply_text(self) -> str:
        return "".join(self.reply)


@attrs.frozen
class Note:
    """Something the server decided that is not a message: ``kind`` and free-form ``detail``."""

    connection: int | None
    session: str | None
    kind: str
    detail: str
    time: float


class ServerLog:
    """Append-only records of one fake server, with query helpers."""

    def __init__(
        self, *, record_client_messages: bool = True, record_server_messages: bool = True
    ) -> None:
        self.received: list[ClientMessage] = []
        self.sent: list[ServerMessage] = []
        self.connections: list[ConnectionRecord] = []
        self.turns: list[TurnRecord] = []
        self.notes: list[Note] = []
        self.record_client_messages = record_client_messages
        self.record_server_messages = record_server_messages
        self._changed: trio.Event | None = None

    # -- recording (server side) -----------------------------------------------------------

    def _notify(self) -> None:
        if self._changed is not None:
            self._changed.set()
            self._changed = None

    def add_client(self, record: ClientMessage) -> None:
        if self.record_client_messages:
            self.received.append(record)
            self._notify()

    def add_server(self, record: ServerMessage) -> None:
        if self.record_server_messages:
            self.sent.append(record)
            self._notify()

    def add_connection(self, record: ConnectionRecord) -> None:
        self.connections.append(record)
        self._notify()

    def add_turn(self, record: TurnRecord) -> None:
        self.turns.append(record)
        self._notify()

    def note(self, connection: int | None, session: str | None, kind: str, detail: str) -> None:
        self.notes.append(Note(connection, session, kind, detail, trio.current_time()))
        self._notify()

    def changed(self) -> None:
        """Wake :meth:`wait_for` callers after an in-place change (a turn's outcome, a close)."""
        self._notify()

    # -- queries ---------------------------------------------------------------------------

    def client_messages(
        self, connection: int | None = None, *, session: str | None = None, kind: str | None = None
    ) -> list[ClientMessage]:
        """Client messages, oldest first, filtered by connection, session and kind."""
        return [
            m
            for m in self.received
            if (connection is None or m.connection == connection)
            and (session is None or m.session == session)
            and (kind is None or kind_matches(m.kind, kind))
        ]

    def server_messages(
        self, connection: int | None = None, *, session: str | None = None, kind: str | None = None
    ) -> list[ServerMessage]:
        """Server messages, oldest first, filtered by connection, session and kind."""
        return [
            m
            for m in self.sent
            if (connection is None or m.connection == connection)
            and (session is None or m.session == session)
            and (kind is None or kind_matches(m.kind, kind))
        ]

    def client_kinds(self, connection: int) -> list[str]:
        """The kinds of the client messages of one connection, in order."""
        return [m.kind for m in self.received if m.connection == connection]

    def server_kinds(self, connection: int) -> list[str]:
        """The kinds of the server messages of one connection, in order."""
        return [m.kind for m in self.sent if m.connection == connection]

    def connection(self, id: int) -> ConnectionRecord:
        """The record of connection ``id`` (``KeyError`` if there is none)."""
        for record in self.connections:
            if record.id == id:
                return record
        raise KeyError(id)

    @property
    def last_connection(self) -> ConnectionRecord:
        """The most recently opened connection."""
        if not self.connections:
            raise LookupError("no connection yet")
        return self.connections[-1]

    def session_connections(self, session: str) -> list[ConnectionRecord]:
        """The connections a session ran on, in order."""
        return [c for c in self.connections if c.session == session]

    @property
    def sessions(self) -> list[str]:
        """Session ids in order of creation."""
        seen: dict[str, None] = {}
        for record in self.connections:
            if record.session is not None:
                seen.setdefault(record.session)
        return list(seen)

    def model_turns(
        self, session: str | None = None, *, outcome: str | None = None
    ) -> list[TurnRecord]:
        """Model turns, filtered by session and outcome ("completed", "interrupted", "cut")."""
        return [
            t
            for t in self.turns
            if (session is None or t.session == session)
            and (outcome is None or t.outcome == outcome)
        ]

    def answered(self, session: str | None = None) -> list[str]:
        """The user input of every completed turn, in order."""
        return [t.user_text for t in self.model_turns(session, outcome="completed")]

    def answer_counts(self, session: str | None = None) -> Counter[str]:
        """How many completed turns answered each user input (each should be 1)."""
        return Counter(self.answered(session))

    def notes_of(self, kind: str, connection: int | None = None) -> list[Note]:
        """Notes of one kind ("ignored_tool_response", "compression", "error", ...)."""
        return [
            n
            for n in self.notes
            if n.kind == kind and (connection is None or n.connection == connection)
        ]

    @property
    def errors(self) -> list[Note]:
        """Internal errors (a responder raising, for instance); a passing test expects none."""
        return self.notes_of("error")

    async def wait_for(self, predicate: Callable[[], object]) -> None:
        """Wait until ``predicate()`` is true; it is re-checked whenever the log changes."""
        while not predicate():
            if self._changed is None:
                self._changed = trio.Event()
            await self._changed.wait()

    def clear(self) -> None:
        """Forget every record (open connections keep logging)."""
        open_records = [c for c in self.connections if c.open]
        self.received.clear()
        self.sent.clear()
        self.turns.clear()
        self.notes.clear()
        self.connections[:] = open_records
