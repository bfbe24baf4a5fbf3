"""One accepted WebSocket connection: its lifetime, its writes, its reads.

:class:`ConnectionBase` is the transport side of a fake-server connection; the Live protocol
(:class:`~liveactors.testing._session.Connection`) builds on it. Each connection runs its tasks
in its own nursery, owned by the server's: the *reader* (:meth:`ConnectionBase._read_loop`)
takes client messages one at a time, in order, checks and logs them and hands them to the
protocol; the protocol adds a *timer* task and one *turn* task at a time.

Every server message goes through :meth:`ConnectionBase.send`, the one place that consults fault
rules, writes the frame and logs it; a lock there makes the log order the wire order. Ending:
:meth:`close` sends a close frame, :meth:`drop` closes the byte stream without one; both first
settle the books synchronously (:meth:`_wind_up`), then cancel the connection's nursery, so
every task of the connection ends with it.
"""

from __future__ import annotations

import json
import logging
import traceback
from collections.abc import Awaitable, Callable, Mapping
from contextlib import suppress
from typing import Any

import trio
import trio_websocket

from . import _frames as frames
from ._faults import Action, Close, ConnectionFaults, Drop, GoAway
from ._frames import Frame
from ._log import ClientMessage, ConnectionRecord, ServerMessage
from ._options import ServerOptions
from ._resumption import Session
from ._schema import normalise
from ._shared import ServerCore
from ._wire import INTERNAL_REASON, ProtocolViolation, truncate_reason

__all__ = ["ConnectionBase"]

#: How long a drop waits for a frame being written to finish.
_WRITE_GRACE = 0.2

log = logging.getLogger("liveactors.testing")


class ConnectionBase:
    """The transport side of one fake-server connection."""

    __slots__ = (
        "_auth_error",
        "_binary",
        "_early",
        "_empty_every",
        "_nursery",
        "_scope",
        "_send_lock",
        "_wound_up",
        "_write_done",
        "closing",
        "core",
        "faults",
        "id",
        "index",
        "opened_at",
        "options",
        "record",
        "server_count",
        "session",
        "stream",
        "ws",
    )

    def __init__(
        self,
        core: ServerCore,
        ws: trio_websocket.WebSocketConnection,
        stream: trio.abc.Stream,
        record: ConnectionRecord,
        *,
        auth_error: str | None = None,
    ) -> None:
        self.core = core
        self.options: ServerOptions = core.options
        self.ws = ws
        self.stream = stream
        self.record = record
        self.id = record.id
        self.opened_at = record.opened_at
        self._auth_error = auth_error
        self._binary = self.options.frame_type == "binary"
        #: ``empty_frames``: a bare ``{}`` after every n-th server message.
        self._empty_every = self.options.empty_frames or 0
        self.session: Session | None = None
        self.closing = False
        #: Index of the last client message processed (setup = 0).
        self.index = -1
        self.server_count = 0
        self._send_lock = trio.StrictFIFOLock()
        self._nursery: trio.Nursery | None = None
        self._scope = trio.CancelScope()
        #: Messages read ahead (during the setup latency), to process next.
        self._early: list[str | bytes] = []
        self._wound_up = False
        #: Set while no frame is being written (a drop lets a write under way finish).
        self._write_done = trio.Event()
        self._write_done.set()
        self.faults: ConnectionFaults

    # -- lifecycle -------------------------------------------------------------------------

    async def serve(self) -> None:
        """Run the connection until it closes; every task it started has ended on return."""
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                self._scope = nursery.cancel_scope
                self.faults = self.core.faults.attach(self)
                nursery.start_soon(self._guarded, self._timers)
                await self._guarded(self._read_loop)
                nursery.cancel_scope.cancel()
        finally:
            self._wind_up()

    def spawn(self, fn: Callable[[], Awaitable[None]]) -> None:
        """Run ``fn`` in this connection's nursery (fault rules use it)."""
        if self._nursery is not None and not self.closing:
            self._nursery.start_soon(self._guarded, fn)

    async def _guarded(self, fn: Callable[[], Awaitable[None]]) -> None:
        """Run ``fn``; a bug becomes a 1011 close and a logged error, never a crashed server."""
        try:
            await fn()
        except ProtocolViolation as violation:
            await self.close(violation.code, violation.reason, cause="protocol")
        except Exception as exc:
            await self._internal_error(exc)

    async def _internal_error(self, exc: BaseException) -> None:
        session = self.session.id if self.session else None
        detail = "".join(traceback.format_exception(exc)).rstrip()
        self.core.log.note(self.id, session, "error", detail)
        log.error("fake server connection %d failed:\n%s", self.id, detail)
        await self.close(1011, INTERNAL_REASON, cause="error")

    def _wind_up(self) -> None:
        """What must hold the moment the connection is over (synchronous, idempotent).

        Done before the stream closes, so a client that reconnects at once finds the session
        detached and a cut turn's input back in the state, whatever the scheduling.
        """
        if self._wound_up:
            return
        self._wound_up = True
        self.closing = True
        now = trio.current_time()
        record = self.record
        if record.closed_at is None:
            record.closed_at = now
            record.close_code = 1006
            record.cause = record.cause or "shutdown"
        self._session_over(now)
        self.core.faults.detach(self.id)
        self.core.open.pop(self.id, None)
        self.core.log.changed()

    def _record_close(self, code: int, reason: str, cause: str) -> None:
        record = self.record
        if record.closed_at is None:
            record.closed_at = trio.current_time()
            record.close_code = code
            record.close_reason = reason
            record.cause = cause
            self.core.log.changed()

    async def close(self, code: int, reason: str, *, cause: str) -> None:
        """Send a close frame (waiting briefly for the client's), then end the connection."""
        if self.closing:
            return
        reason = truncate_reason(reason)
        self._record_close(code, reason, cause)
        self._wind_up()
        await self._close_frame(code, reason)

    async def _close_frame(self, code: int, reason: str) -> None:
        with trio.CancelScope(shield=True) as scope:
            scope.deadline = trio.current_time() + self.options.close_timeout
            with suppress(trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                await self.ws.aclose(code, reason or None)
            await trio.aclose_forcefully(self.stream)
        self._scope.cancel()

    async def drop(self, *, cause: str) -> None:
        """End the connection without a close frame (the client sees 1006)."""
        if self.closing:
            return
        if not self._write_done.is_set():
            # A frame is being written: it is sent or not by the time its write returns, so
            # let that happen first (within a moment: a client that stopped reading can block
            # it forever), and a drop never splits "sent" from "the client got it".
            with trio.move_on_after(_WRITE_GRACE):
                await self._write_done.wait()
            if self.closing:
                return
        self._record_close(1006, "", cause)
        self._wind_up()
        await trio.aclose_forcefully(self.stream)
        self._scope.cancel()

    def supersede(self) -> None:
        """Another connection resumed this session (``resume_while_open_fails=False``)."""
        if self.closing or self._nursery is None:
            return
        self._record_close(1000, "", "superseded")
        self._wind_up()
        self._nursery.start_soon(self._close_frame, 1000, "")

    # -- sending ---------------------------------------------------------------------------

    async def send(self, frame: Frame, on_sent: Callable[[], None] | None = None) -> bool:
        """Send one server message through the fault rules; False if it did not go out.

        A frame is out once its write returned. ``on_sent`` runs then, before any fault that
        acts *after* it: a turn whose ``turnComplete`` went out is answered even if the line
        drops right after.
        """
        if self.closing:
            return False
        lock = self._send_lock
        if lock.locked():
            await lock.acquire()
        else:
            # Uncontended: skip the lock's scheduling round trip (the write below checkpoints).
            await trio.lowlevel.checkpoint_if_cancelled()
            lock.acquire_nowait()
        try:
            if self.closing:
                return False
            faults = self.faults
            if faults.active:
                for action in await faults.before_send(frame[0]):
                    await self._act(action)
                    if self.closing:
                        return False
            self._write_done = trio.Event()
            try:
                sent = await self._transmit(frame)
            finally:
                self._write_done.set()
            if sent and on_sent is not None:
                on_sent()
            every = self._empty_every
            if sent and every and self.server_count % (every + 1) == every:
                # Counted with the {} frames themselves: one after every n messages.
                await self._transmit(frames.EMPTY)
            if sent and faults.active:
                with trio.CancelScope(shield=True):
                    for action in faults.after_send(frame[0], self.server_count):
                        await self._act(action)
            return sent
        finally:
            lock.release()

    async def _transmit(self, frame: Frame) -> bool:
        """Write one frame (the send lock is held); log it once it is out.

        Nothing here is shielded: only the end of the connection cancels a write, and then
        the stream is going anyway. (A client that stops reading blocks the write until the
        connection's lifetime ends or the server shuts down.)
        """
        kind, data = frame
        try:
            await self.ws.send_message(data if self._binary else data.decode("utf-8"))
        except trio_websocket.ConnectionClosed:
            return False
        index = self.server_count
        self.server_count = index + 1
        core = self.core
        core.messages_sent += 1
        if core.log.record_server_messages:
            session = self.session.id if self.session is not None else None
            core.log.add_server(
                ServerMessage(self.id, session, index, kind, data, trio.current_time())
            )
        return True

    async def _act(self, action: Action) -> None:
        """Carry out a fault action (the send lock is held for GoAway)."""
        if isinstance(action, Drop):
            await self.drop(cause="fault")
        elif isinstance(action, Close):
            await self.close(action.code, action.reason, cause="fault")
        elif isinstance(action, GoAway):
            await self._transmit(frames.go_away(action.time_left))
            if action.close:
                deadline = trio.current_time() + action.time_left

                async def close_later() -> None:
                    await trio.sleep_until(deadline)
                    await self.close(action.code, action.reason, cause="fault")

                self.spawn(close_later)

    async def apply_fault(self, action: Action) -> None:
        """Carry out a fault action now (fault rules call this)."""
        if isinstance(action, GoAway):
            async with self._send_lock:
                await self._act(action)
        else:
            await self._act(action)

    # -- reading ---------------------------------------------------------------------------

    async def _read_loop(self) -> None:
        while not self.closing:
            if self._early:
                raw = self._early.pop(0)
            else:
                try:
                    raw = await self.ws.get_message()
                except trio_websocket.ConnectionClosed as exc:
                    self._client_closed(exc)
                    return
            await self._receive(raw)

    def _client_closed(self, exc: trio_websocket.ConnectionClosed) -> None:
        reason = exc.reason
        if reason is None or reason.code == 1006:
            self._record_close(1006, "", "client_drop")
        elif reason.code == 1009:
            # trio-websocket itself closed: a message over ``max_message_size``.
            self._record_close(1009, reason.reason or "", "protocol")
        else:
            self._record_close(int(reason.code), reason.reason or "", "client")
        self._wind_up()

    async def _receive(self, raw: str | bytes) -> None:
        """Log, check and act on one client message."""
        self.index += 1
        index = self.index
        session = self.session.id if self.session else None
        try:
            try:
                message = json.loads(raw)
            except ValueError:
                raise ProtocolViolation(
                    1007, "Invalid JSON payload received. Unexpected token."
                ) from None
            key, normalised = normalise(message, vertex=self.options.vertex)
        except ProtocolViolation as violation:
            text = raw if isinstance(raw, str) else raw.decode("utf-8", "replace")
            self._log_client(index, session, "invalid", {"raw": text})
            if self._auth_error is not None:
                await self.close(1007, self._auth_error, cause="auth")
            else:
                await self.close(violation.code, violation.reason, cause="protocol")
            return
        body = normalised[key]
        kind = key
        if key == "realtimeInput" and body:
            kind = f"realtimeInput.{next(iter(body))}"
        self._log_client(index, session, kind, normalised)
        if self._auth_error is not None:
            await self.close(1007, self._auth_error, cause="auth")
            return
        if self.faults.active:
            for action in self.faults.client_message(index + 1):
                await self.apply_fault(action)
                if not isinstance(action, GoAway):
                    return  # the message arrived (and is logged) but is never acted on
        await self._dispatch(key, body)
        await self._pump()

    def _log_client(
        self, index: int, session: str | None, kind: str, message: Mapping[str, Any]
    ) -> None:
        self.core.log.add_client(
            ClientMessage(self.id, session, index, kind, message, trio.current_time())
        )

    # -- what the Live protocol layer provides ---------------------------------------------

    async def _dispatch(self, key: str, body: Any) -> None:
        """Act on one checked client message (``key`` is its top-level field)."""
        raise NotImplementedError

    async def _pump(self) -> None:
        """After each client message: start whatever should run next."""
        raise NotImplementedError

    async def _timers(self) -> None:
        """The connection's timed events; runs for the connection's whole life."""
        raise NotImplementedError

    def _session_over(self, now: float) -> None:
        """The connection ended at ``now``: settle turns, detach the session."""
        raise NotImplementedError
