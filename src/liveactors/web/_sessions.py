"""The conversations behind the sockets: created, kept for a reconnect, resumed by token, ended.

A :class:`WebSession` is one conversation bridged to a browser. Its events flow into its
:class:`~._outbox.Outbox` for as long as the conversation lives (a *pump* task), whether a socket
is attached or not, so a page that reconnects within the window gets what it missed (bounded,
like everything else). When its socket goes, the session is kept ``keep_for`` seconds for a
reconnect that names its token, then stopped; with ``keep_for=0`` it is stopped at once.

The pumps and the timers run in a small actor of the orchestrator (spawned with the first
session), so they live exactly as long as the conversations they serve, and a socket's handler
never outlives its socket.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
from typing import Any

import trio

from .. import events as ev
from .._actor import Actor
from .._conversation import ConversationRef
from .._orchestrator import Orchestrator
from .._protocol.setup import ConfigLike
from ._options import Options
from ._outbox import Outbox

__all__ = ["Attachment", "Sessions", "WebSession"]

log = logging.getLogger("liveactors.web")


class Attachment:
    """One socket bridged to a session: how to end it, and how it ended."""

    def __init__(self) -> None:
        self.scope = trio.CancelScope()
        #: The close code and reason the socket gets (None: the client went away).
        self.close: tuple[int, str] | None = (1001, "going away")

    def finish(self, close: tuple[int, str] | None) -> None:
        """End the socket's tasks; the socket is then closed with ``close``."""
        self.close = close
        self.scope.cancel()


class WebSession:
    """One conversation bridged to a browser."""

    def __init__(self, name: str, outbox: Outbox) -> None:
        self.name = name
        self.outbox = outbox
        self.ref: ConversationRef | None = None
        #: The token that resumes it now (tokens change at every attach).
        self.token: str | None = None
        self.attachment: Attachment | None = None
        #: The conversation closed: its last events are in the outbox.
        self.ended = False
        self.failed = False
        self.stopping = False
        #: The drop totals the client was last told.
        self.reported_drops = (0, 0, 0)
        self.pump_scope = trio.CancelScope()
        self.expiry: trio.CancelScope | None = None

    def __repr__(self) -> str:
        state = "ended" if self.ended else "attached" if self.attachment else "parked"
        return f"<WebSession {self.name!r} {state} queued={len(self.outbox)}>"


class _Keeper(Actor[None]):
    """Holds the sessions' pump and timer tasks in the orchestrator's nursery."""

    async def handle(self, message: None) -> None:
        """No messages: the work is the tasks in ``self.nursery``."""


class Sessions:
    """Every web session of one endpoint, by token."""

    def __init__(self, orchestrator: Orchestrator, options: Options) -> None:
        self._orch = orchestrator
        self._options = options
        self._by_token: dict[str, WebSession] = {}
        self._live: dict[str, WebSession] = {}
        self._keeper: _Keeper | None = None
        self._keeper_lock = trio.Lock()

    def __len__(self) -> int:
        return len(self._live)

    def all(self) -> list[WebSession]:
        """The sessions whose conversation has not ended."""
        return list(self._live.values())

    async def _nursery(self) -> trio.Nursery:
        async with self._keeper_lock:
            if self._keeper is None or self._keeper.error is not None:
                self._keeper = _Keeper(name="liveactors.web")
                await self._orch.spawn_actor(self._keeper)
            return self._keeper.nursery

    async def create(self, config: ConfigLike) -> WebSession:
        """Spawn a conversation for a new socket; returns once it is connected."""
        nursery = await self._nursery()
        session = WebSession(f"web-{secrets.token_hex(6)}", self._new_outbox())
        await nursery.start(self._pump, session)
        try:
            session.ref = await self._orch.spawn(config, name=session.name)
        except BaseException:
            session.pump_scope.cancel()
            raise
        self._live[session.name] = session
        return session

    def _new_outbox(self) -> Outbox:
        return Outbox(self._options.audio_buffer, self._options.event_buffer)

    async def _pump(self, session: WebSession, *, task_status: trio.TaskStatus[None]) -> None:
        """The conversation's events into its outbox, from before it is spawned to its end."""
        try:
            with session.pump_scope:
                async with self._orch.subscribe(
                    conversation=session.name,
                    buffer=self._options.event_buffer,
                    overflow="drop_oldest",
                ) as sub:
                    task_status.started()
                    async for event in sub:
                        session.outbox.upstream_dropped = sub.dropped
                        session.outbox.put(event)
                        if isinstance(event, ev.ConversationFailed):
                            session.failed = True
                        elif isinstance(event, ev.ConversationClosed):
                            break
        finally:
            session.ended = True
            session.outbox.close()
            self._live.pop(session.name, None)
            self._forget_token(session)

    # -- sockets -------------------------------------------------------------------------------

    def claim(self, token: str) -> WebSession | None:
        """The session ``token`` resumes (its timer stopped, a socket still attached to it
        superseded), or None when the token is unknown, used up or expired."""
        session = self._by_token.get(token)
        if session is None or session.ended or session.stopping:
            return None
        if session.expiry is not None:
            session.expiry.cancel()
            session.expiry = None
        if session.attachment is not None:
            session.attachment.finish((4000, "resumed on another socket"))
        return session

    def attach(self, session: WebSession, attachment: Attachment) -> str | None:
        """Bridge ``session`` to a socket; returns the token that will resume it (a new one
        each time; None when the endpoint keeps nothing for a reconnect)."""
        session.attachment = attachment
        self._forget_token(session)
        if self._options.keep_for <= 0 or session.ended:
            return None
        token = secrets.token_urlsafe(32)
        session.token = token
        self._by_token[token] = session
        return token

    def release(self, session: WebSession, attachment: Attachment) -> None:
        """The socket is gone: keep the session for a reconnect, or stop it."""
        if session.attachment is not attachment:
            return  # superseded: the new socket has it
        session.attachment = None
        if session.ended or session.stopping or self._keeper is None:
            return
        # RuntimeError: the keeper is stopping, the orchestrator is shutting down.
        with contextlib.suppress(RuntimeError):
            self._keeper.nursery.start_soon(self._expire, session, self._options.keep_for)

    async def _expire(self, session: WebSession, delay: float) -> None:
        with trio.CancelScope() as scope:
            session.expiry = scope
            await trio.sleep(delay)
            session.expiry = None
            await self.stop(session)

    async def stop(self, session: WebSession) -> None:
        """Stop the conversation (the ``stop`` command, or the window ran out)."""
        self._forget_token(session)
        if session.stopping or session.ended or session.ref is None:
            return
        session.stopping = True
        try:
            await session.ref.stop()
        except Exception:  # already ending; its events say how
            log.debug("stopping %s", session.name, exc_info=True)

    def _forget_token(self, session: WebSession) -> None:
        if session.token is not None:
            self._by_token.pop(session.token, None)
            session.token = None

    def statistics(self) -> dict[str, Any]:
        """Per session: attached or not, and its outbox's counters."""
        return {
            s.name: {"attached": s.attachment is not None, "outbox": s.outbox.statistics()}
            for s in self._live.values()
        }
