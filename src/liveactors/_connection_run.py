"""One connection's run: connect, set up, replay, then its reader and its writer until a stop,
a handoff or a failure.

Setup goes first: the setup frame (resuming from the latest handle when the session's plan
says so), then ``setupComplete``, then the plan's history and unanswered input, before any new
input. Then the *reader* (a task of its own) turns frames into events, accounts each one before
it is published (the session's ledger, the ask it answers, tools, the restart budget, handles,
goAway) and publishes it; the *writer*, in the supervisor's own task, takes commands from the
mailbox and sends them, pings a quiet connection, and ends the connection when the
:class:`~liveactors._handoff.HandoffTimer` says so. A failure of either (a
:class:`~liveactors.LiveError`) ends the run and is raised to the supervisor.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import attrs
import trio

from . import events as ev
from ._conversation import ConversationState
from ._errors import ConnectionLost, LeaseLost, LiveError
from ._handoff import Ending
from ._keepalive import Keepalive
from ._mailbox import SendInput, SendToolResult, Stop
from ._transport import Link

if TYPE_CHECKING:
    from ._supervisor import Supervisor

__all__ = ["ConnectionRun"]

log = logging.getLogger("liveactors.supervisor")

# At most this much queued input goes out in one write: enough to catch a writer up in one
# pass, little enough that a ping or a tool result waiting behind it is not held up.
_BATCH_BYTES = 64 * 1024
_BATCH_FRAMES = 32


class ConnectionRun:
    """One connection of ``sup`` (see the module docstring)."""

    __slots__ = ("_error", "link", "progress", "sup")

    def __init__(self, sup: Supervisor) -> None:
        self.sup = sup
        self.link: Link
        #: The first failure of the reader or the writer.
        self._error: LiveError | None = None
        #: This connection made progress: a turn completed, or a handle covering every
        #: question came (a normal close after progress is a switch, not a failure).
        self.progress = False

    async def run(self, ready: Callable[[], Awaitable[None]]) -> Ending:
        """Connect and set up, await ``ready()``, then run until the writer ends the connection
        (returns how) or it fails (raises). The observer (metrics, spans) sees it start and end."""
        observer = self.sup.observer
        observer.connection_started(self.sup.connections + 1)
        try:
            ending = await self._run(ready)
        except BaseException as exc:
            observer.connection_ended(hasattr(self, "link"), None, exc)
            raise
        observer.connection_ended(True, ending, None)
        return ending

    async def _run(self, ready: Callable[[], Awaitable[None]]) -> Ending:
        sup = self.sup
        session, backend = sup.session, sup.backend
        setup = session.connect(sup.connections + 1)
        # Credentials first (a Vertex token refresh may take a moment): the gate's slot and
        # connect-rate token are then spent on a connect that goes out at once.
        await backend.prepare()
        if sup.gate is not None:
            await sup.gate()
        request = attrs.evolve(backend.connect_request(), secrets=sup.secrets)
        async with backend.transport.connect(request) as link:
            self.link = link
            await self._send(setup)
            sup.messages_out += 1
            with trio.move_on_after(backend.setup_timeout) as waited:
                while True:
                    frame = await link.receive()
                    sup.messages_in += 1
                    if session.receive_setup(frame):
                        break
            if waited.cancelled_caught:
                raise ConnectionLost(
                    f"no setupComplete within {backend.setup_timeout:g}s of sending setup"
                )
            sup.connections += 1
            sup.state = ConversationState.READY
            sup.handoff.new_connection()
            connected = session.connected()
            await sup.publisher.deliver(connected)
            for frame in session.replay():
                sup.messages_out += 1
                await self._send(frame)
            restored = session.restored()
            if restored is not None:
                await sup.publisher.deliver(restored)
            trimmed = session.replay_trimmed()
            if trimmed is not None:
                log.info(
                    "%s: replayed the input the service may lack without %d media chunks older "
                    "than the replay window",
                    sup.name,
                    trimmed.chunks,  # type: ignore[attr-defined]
                )
                await sup.publisher.deliver(trimmed)
            sup.observer.connected(connected)  # type: ignore[arg-type]
            await ready()
            try:
                return await self._pump()
            finally:
                session.closed()

    async def _pump(self) -> Ending:
        sup = self.sup
        publisher = sup.publisher
        ending = Ending.HANDOFF
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._reader, nursery.cancel_scope)
            try:
                ending = await self._writer()
            except LiveError as exc:
                if self._error is None:
                    self._error = exc
                if publisher.holding_reader and isinstance(exc, ConnectionLost):
                    # The socket died under the writer while a subscriber holds the reader.
                    # What the service sent before it closed may hold an answer: read and
                    # deliver it first (the reader stops at the close and cancels this
                    # nursery), as the blocking subscriber's backpressure asks, but no longer
                    # than a stop allows. Dropping it would ask that question again.
                    with trio.move_on_at(sup.handoff.delivery_limit(Ending.STOP)):
                        await trio.sleep_forever()
            except BaseException:
                # The conversation itself is being cancelled: a delivery waiting for a slow
                # subscriber must not hold that up.
                publisher.cut_delivery()
                raise
            # Ending the connection (stop, handoff, failure) cancels the reader, but not in the
            # middle of handing an already-numbered event to a subscriber: that may finish
            # until the switch's own deadline (a subscriber that never reads cannot hold a
            # stop or a handoff beyond it).
            if self._error is not None:
                publisher.bound_delivery(trio.current_time())
            else:
                publisher.bound_delivery(sup.handoff.delivery_limit(ending))
            nursery.cancel_scope.cancel()
        if self._error is not None:
            raise self._error
        return ending

    # -- writer -------------------------------------------------------------------------------

    async def _writer(self) -> Ending:
        sup, link = self.sup, self.link
        mailbox, handoff, session = sup.mailbox, sup.handoff, sup.session
        interval = sup.backend.keepalive
        keepalive = None
        if interval is not None:
            keepalive = Keepalive(interval, sup.backend.keepalive_timeout)
        while True:
            now = trio.current_time()
            wake = math.inf
            if keepalive is not None:
                # Every pass, not only when idle: a writer kept busy by a steady producer must
                # notice a peer that stopped answering too (liveness is what is read, not sent).
                due = keepalive.due(link.last_received, link.reads)
                if now >= due:
                    if sup.publisher.holding_reader:
                        keepalive.excuse(now)  # the reader is held by a subscriber, not reading
                    else:
                        keepalive.act(now, link.reads)  # raises if a ping went unanswered
                        await link.ping()
                    continue
                wake = due
            if handoff.pausing_input:
                ending = handoff.ending(
                    now,
                    turn_open=session.turn_open,
                    outstanding=session.outstanding,
                    handoff_ready=session.handoff_ready,
                )
                if ending is not None:
                    return ending
            command = mailbox.take(include_input=not handoff.pausing_input)
            if command is None:
                await mailbox.wait_until(min(wake, handoff.wake_at(now)))
                continue
            if type(command) is SendInput:
                await self._send_inputs(command, now)
            elif type(command) is SendToolResult:
                await self._send_tool_result(command)
            elif type(command) is Stop:
                handoff.drain()

    async def _send_inputs(self, command: SendInput, now: float) -> None:
        """Send ``command`` and the input queued right behind it in one write: one pass through
        TLS and one system call for all of them, instead of one each. Only a writer that fell
        behind (its loop busy, a microphone producing meanwhile) finds a queue, so a prompt
        writer sends each message alone, as soon as it comes: nothing waits to be batched."""
        sup = self.sup
        session, replies, mailbox = sup.session, sup.replies, sup.mailbox
        texts: list[str] = []
        size = 0
        while True:
            text, exchange = session.send_input(command.message, now, command.tag)
            replies.expect(exchange, command.reply)
            sup.messages_out += 1
            texts.append(text)
            size += len(text)
            if size >= _BATCH_BYTES or len(texts) >= _BATCH_FRAMES:
                break
            if type(mailbox.peek_input()) is not SendInput:
                break
            queued = mailbox.take_input()
            if type(queued) is not SendInput:
                break  # None: an urgent command waits, and goes before the rest
            command = queued
        if len(texts) == 1:
            await self._send(text)
        else:
            await self._send_many(texts)

    async def _send_tool_result(self, command: SendToolResult) -> None:
        sup = self.sup
        text = sup.session.send_tool_responses(command.responses)
        if text is None:
            log.debug("%s: dropped a tool result for calls no longer pending", sup.name)
            return
        sup.messages_out += 1
        await self._send(text)
        if sup.handoff.holding:
            sup.mailbox.poke()

    async def _send(self, text: str) -> None:
        """Send one frame, unless this process may no longer act for the conversation."""
        self._check_owner()
        await self.link.send(text)

    async def _send_many(self, texts: list[str]) -> None:
        """Send several frames in one write, under the same rule as :meth:`_send`."""
        self._check_owner()
        await self.link.send_many(texts)

    def _check_owner(self) -> None:
        """LeaseLost if this process may no longer act for the conversation (a cluster
        worker whose lease ran out)."""
        may_send = self.sup.may_send
        if may_send is not None and not may_send():
            raise LeaseLost(f"{self.sup.name}: this process no longer owns the conversation")

    # -- reader -------------------------------------------------------------------------------

    async def _reader(self, scope: trio.CancelScope) -> None:
        sup, link = self.sup, self.link
        session, publisher = sup.session, sup.publisher
        on_turn = sup.on_turn_complete
        trace = sup.observer.trace  # None unless liveactors.otel is on: one test per frame
        try:
            while True:
                frame = await link.receive()
                sup.messages_in += 1
                frame_events = session.receive(frame)
                if trace is not None:
                    trace.frame(frame_events)
                for position, event in enumerate(frame_events):
                    try:
                        self._account(event)
                        await publisher.deliver(event, reader=True)
                        if on_turn is not None and type(event) is ev.TurnComplete:
                            await publisher.hook(on_turn, event)
                    except BaseException:
                        # Cut mid-frame (a slow hook, a stop's grace running out): the rest of
                        # the frame is numbered already, so it still counts and reaches every
                        # subscriber, or seq would have a gap.
                        rest = frame_events[position + 1 :]
                        for later in rest:
                            self._account(later)
                        publisher.deliver_now(rest)
                        raise
                if sup.handoff.pausing_input:
                    sup.mailbox.poke()
        except LiveError as exc:
            if self._error is None:
                self._error = exc
            scope.cancel()

    # -- what each event means to the conversation --------------------------------------------

    def _account(self, event: ev.Event) -> None:
        """Account one event from the service, before subscribers see it."""
        sup = self.sup
        exchange = sup.session.account(event)
        sup.replies.take(exchange, event)
        kind = type(event)
        if kind is ev.ToolCall:
            if sup.nursery is not None:
                sup.tools.start(sup.nursery, event.calls)  # type: ignore[attr-defined]
        elif kind is ev.ToolCallCancelled:
            sup.tools.cancel(event.ids)  # type: ignore[attr-defined]
        elif kind is ev.Usage:
            sup.tokens += event.metadata.total_token_count or 0  # type: ignore[attr-defined]
            sup.observer.usage(event.metadata)  # type: ignore[attr-defined]
        elif kind is ev.TurnComplete:
            sup.reconnects.progress()
            self.progress = True
            sup.tools.turn_done(interrupted=event.interrupted)  # type: ignore[attr-defined]
            sup.observer.turn_complete(event)  # type: ignore[arg-type]
        elif kind is ev.ResumptionUpdate:
            self._resumption(event)  # type: ignore[arg-type]
        elif kind is ev.GoAway:
            sup.handoff.go_away(trio.current_time(), event.time_left)  # type: ignore[attr-defined]
            sup.observer.go_away(event.time_left)  # type: ignore[attr-defined]
            sup.mailbox.poke()

    def _resumption(self, event: ev.ResumptionUpdate) -> None:
        if not (event.resumable and event.handle):
            return
        sup = self.sup
        if not sup.session.outstanding:
            # A handle is progress only when no question waits for an answer: otherwise a
            # service that hands out a handle at setup and then always drops mid-answer would
            # reset the budget forever instead of failing the conversation.
            sup.reconnects.progress()
            self.progress = True
        sup.handle_time = trio.current_time()
        sup.secrets.add(event.handle)
        if sup.on_handle is not None:
            sup.on_handle(event.handle)
