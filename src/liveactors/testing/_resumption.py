"""Sessions and their resumption handles.

A :class:`Session` is the server's record of one conversation: its id, model, live
:class:`~liveactors.testing._state.SessionState`, which connection (if any) it is on, and when its
last connection ended. A handle points at a session and, in "per_turn" mode, at a snapshot of the
state taken when the handle was issued; in "once" mode it points at the live state, so resuming
restores the session as it was when its connection ended.

Handle validity runs from the session's last termination (2 h on the real service): while a
connection is open its handles cannot expire. A session ended by a session-time limit is
terminated and its handles are void at once.
"""

from __future__ import annotations

import itertools
from typing import Any

import attrs

from ._state import SessionState

__all__ = ["HandleNotFound", "Session", "SessionRegistry"]

#: Handles remembered per session; older ones are forgotten ("session not found").
HANDLES_PER_SESSION = 64


class HandleNotFound(LookupError):
    """The handle is unknown, expired, or its session was terminated."""


@attrs.define(eq=False)
class Session:
    """One conversation, across its connections."""

    id: str
    model: str
    state: SessionState
    config: dict[str, Any]
    #: The open connection of this session, if any.
    connection: int | None = None
    #: trio time the last connection ended (None while connected or never connected).
    ended_at: float | None = None
    #: Session time used by connections so far (the session limits count it).
    used_seconds: float = 0.0
    #: Whether video ever arrived (the shorter session limit applies).
    has_video: bool = False
    #: Ended by a session limit: not resumable.
    terminated: bool = False
    #: This session's handles, oldest first (at most ``HANDLES_PER_SESSION``).
    handles: list[str] = attrs.field(factory=list)


@attrs.frozen
class _Handle:
    session: Session
    #: The state to restore; None restores the live state ("once" mode).
    snapshot: SessionState | None
    #: Vertex transparent mode: the last client message index the state includes.
    consumed_index: int


class SessionRegistry:
    """All sessions of one server and the handles that lead back to them."""

    def __init__(self, validity: float) -> None:
        self.validity = validity
        self.sessions: dict[str, Session] = {}
        self._handles: dict[str, _Handle] = {}
        self._session_ids = itertools.count(1)
        self._handle_ids = itertools.count(1)

    def create(self, model: str, config: dict[str, Any]) -> Session:
        """A new session with empty state."""
        session = Session(f"session-{next(self._session_ids)}", model, SessionState(), config)
        self.sessions[session.id] = session
        return session

    def issue(self, session: Session, snapshot: SessionState | None, consumed_index: int) -> str:
        """A new handle for ``session``; ``snapshot`` None means "the live state"."""
        handle = f"rh-{session.id.removeprefix('session-')}-{next(self._handle_ids)}"
        if len(session.handles) >= HANDLES_PER_SESSION:
            self._handles.pop(session.handles.pop(0), None)
        session.handles.append(handle)
        self._handles[handle] = _Handle(session, snapshot, consumed_index)
        return handle

    def resolve(self, handle: str, now: float) -> tuple[Session, SessionState]:
        """The session and the state to restore for ``handle``; raises :class:`HandleNotFound`."""
        entry = self._handles.get(handle)
        if entry is None:
            raise HandleNotFound(handle)
        session = entry.session
        if session.terminated or (
            session.connection is None
            and session.ended_at is not None
            and now > session.ended_at + self.validity
        ):
            raise HandleNotFound(handle)
        state = entry.snapshot.copy() if entry.snapshot is not None else session.state
        return session, state

    def consumed_index(self, handle: str) -> int:
        """The client message index a handle's state includes (0 when unknown)."""
        entry = self._handles.get(handle)
        return entry.consumed_index if entry else 0
