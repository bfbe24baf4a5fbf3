"""The per-connection state machine of the Live protocol (sans-IO).

Theory of operation::

    CONNECTING --send_setup--> SETUP_SENT --setupComplete--> READY --goAway--> GOING_AWAY
         \\                         \\                          \\                   \\
          +-------------------------+--------------------------+-------------------+--> CLOSED

* ``setup`` is the first and only setup of a connection; it has client index 0.
* Nothing else may be sent before ``setupComplete`` (the service says clients should wait). A
  message sent too early, a second ``setup`` or anything after close raises
  :class:`~liveactors.InvalidCommand` and changes nothing: the index does not move.
* Every message after setup gets the next client index (1, 2, ...). The numbering restarts on
  every connection; the service's ``lastConsumedClientMessageIndex`` refers to it.
* During GOING_AWAY sending is still allowed (the socket is open until ``timeLeft`` runs out); the
  supervisor decides what to hold back.

The connection turns frames into parsed messages; the
:class:`~liveactors._protocol.tracker.EventTracker` turns messages into events (and the transport
turns close codes into typed errors).
"""

from __future__ import annotations

import enum
from typing import Any

import attrs

from .._errors import InvalidCommand, ProtocolError
from ._wire import dumps
from .decode import parse_frame

__all__ = ["ConnectionState", "LiveConnection"]


class ConnectionState(enum.Enum):
    """Lifecycle of one WebSocket connection."""

    CONNECTING = "connecting"
    SETUP_SENT = "setup_sent"
    READY = "ready"
    GOING_AWAY = "going_away"
    CLOSED = "closed"


@attrs.define
class LiveConnection:
    """Protocol state of one connection: what may be sent now, and the client message index."""

    number: int = 1
    state: ConnectionState = ConnectionState.CONNECTING
    #: Index of the last client message sent on this connection (setup = 0).
    index: int = -1
    session_id: str | None = None

    def send_setup(self, setup: dict[str, Any]) -> str:
        """The setup frame; the connection is now waiting for ``setupComplete``."""
        if self.state is not ConnectionState.CONNECTING:
            raise InvalidCommand(
                f"setup may only be sent once, first, on a new connection "
                f"(connection is {self.state.value})"
            )
        if set(setup) != {"setup"}:
            raise InvalidCommand("the first message must be a setup message")
        text = dumps(setup)
        self.state = ConnectionState.SETUP_SENT
        self.index = 0
        return text

    def check_can_send(self) -> None:
        """Raise unless a client message may be sent now."""
        state = self.state
        if state is ConnectionState.READY or state is ConnectionState.GOING_AWAY:
            return
        if state is ConnectionState.CLOSED:
            raise InvalidCommand("the connection is closed; nothing can be sent on it")
        raise InvalidCommand(
            f"cannot send before the server confirmed setup (connection is {state.value})"
        )

    def send(self, message: dict[str, Any]) -> tuple[int, str]:
        """Encode one client message: its index on this connection and the frame text."""
        self.check_can_send()
        if "setup" in message:
            raise InvalidCommand("setup may only be sent once, first, on a new connection")
        if len(message) != 1:
            raise InvalidCommand("a client message has exactly one top-level field")
        text = dumps(message)
        self.index += 1
        return self.index, text

    def receive(self, frame: str | bytes | bytearray | memoryview) -> dict[str, Any]:
        """Parse one server frame and advance the state machine."""
        if self.state is ConnectionState.CLOSED:
            raise ProtocolError("frame received after the connection closed")
        message = parse_frame(frame)
        if "setupComplete" in message:
            if self.state is not ConnectionState.SETUP_SENT:
                raise ProtocolError(f"unexpected setupComplete (connection is {self.state.value})")
            complete = message["setupComplete"]
            session_id = complete.get("sessionId") if isinstance(complete, dict) else None
            self.session_id = session_id if isinstance(session_id, str) else None
            self.state = ConnectionState.READY
        elif not message:
            return message  # a bare ``{}`` (the 3.x service sends some): nothing to act on
        elif self.state is ConnectionState.SETUP_SENT or self.state is ConnectionState.CONNECTING:
            raise ProtocolError(
                "the server sent a message before setupComplete: " + ", ".join(sorted(message)[:4])
            )
        if "goAway" in message:
            # How long is left is the tracker's business (the GoAway event carries it).
            self.state = ConnectionState.GOING_AWAY
        return message

    def local_close(self) -> None:
        """The connection ended (closed by either side): nothing more is sent on it."""
        self.state = ConnectionState.CLOSED
