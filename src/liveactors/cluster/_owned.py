"""One conversation a worker owns: take it over, feed it its durable input, write its record.

Theory of operation. A worker that leased a conversation (``_worker.py``) runs an
:class:`Owned` for it:

1. **Adopt.** One script stamps the conversation's record with this lease's fencing token
   (from then on a previous owner's writes are refused) and returns what it needs: the config,
   the last ``seq`` and ``turn``, the handle, the input no handle covers, the answers of
   exchanges no handle covers, and the covered history (parsed by ``_record.py``). The
   supervisor's ledger takes that input as if sent on an earlier connection, so its first
   connect is planned like any reconnect: resume from the handle, restore answered exchanges
   as history, send unanswered input again (or start a fresh session restoring the history,
   when the handle cannot tell).
2. **Run.** The conversation runs in the worker's local orchestrator. A *pump*
   (``_pump.py``) hands each command of the input stream to the mailbox, in order, with its
   stream id as its tag: the command that a notice carries when the notice says it follows
   the last one taken (no read of the stream), else what a read of the stream after the last
   one taken returns. A *writer* (``_record_writer.py``) commits the journal's batches one at
   a time.
3. **Fencing.** Every frame the conversation sends asks :meth:`Owned.may_act` first: false
   once the local lease deadline (renewal sent + lease - margin, always before the server's
   expiry) has passed. A commit refused for its fence, a renewal that finds another owner, or
   that deadline passing ends the conversation here at once, writing nothing more.
4. **End.** A stop or a failure is written with the conversation's last events and the lease
   removed; a drain (SIGTERM) stops taking input, lets the answer in progress finish, closes
   the socket, writes the handle, and only then gives the lease back for another worker.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Final

import trio

from .._conversation import Conversation, ConversationRef
from .._errors import InvalidCommand, LeaseLost, LiveError
from .._exception_groups import sole_exception
from .._supervisor import Supervisor, SupervisorHooks
from . import _scripts
from ._commands import wire_message
from ._journal import Journal
from ._pump import InputPump
from ._record import Record
from ._record_writer import RecordWriter
from ._redis import ClusterUnavailable

if TYPE_CHECKING:
    from ._worker import Worker

__all__ = ["Owned"]

log = logging.getLogger("liveactors.cluster")

#: How long a worker whose lease ran out (Redis unreachable) keeps trying to write what it
#: had recorded, once Redis answers again.
LATE_PATIENCE: Final = 30.0


class Owned:
    """A conversation this worker holds the lease of (see the module docstring)."""

    def __init__(
        self,
        worker: Worker,
        name: str,
        fence: int,
        deadline: float,
        previous: Owned | None = None,
    ) -> None:
        self.worker = worker
        #: An earlier lease of this name here, still winding down (this worker stalled past
        #: its lease and claimed the orphan back): it must end before this one adopts.
        self.previous = previous
        #: Set when :meth:`run` is over.
        self.finished = trio.Event()
        self.name = name
        self.fence = fence
        self.token = f"{worker.id} {fence}"
        self.keys = worker.keys.conversation(name)
        #: Local lease deadline (trio clock): past it, nothing is sent or written.
        self.deadline = deadline
        self.lost = False
        self.draining = False
        self.ref: ConversationRef | None = None
        self.journal: Journal | None = None
        #: After a loss: another worker holds the lease (else it ran out here).
        self.taken = True
        self.pump = InputPump(self)
        self.writer = RecordWriter(self)
        self._scope = trio.CancelScope()
        self._drain_grace = 0.0

    def __repr__(self) -> str:
        return f"<Owned {self.name!r} fence={self.fence}>"

    # -- the lease --------------------------------------------------------------------------------

    def may_act(self) -> bool:
        """Whether this worker may still act for the conversation."""
        return not self.lost and trio.current_time() < self.deadline

    def lose(self, why: str, *, taken: bool = True) -> None:
        """The lease is gone: stop here at once. ``taken``: another worker holds it (write
        nothing more); else it ran out here (Redis unreachable), and what was recorded is
        still written, late, if the record turns out to carry no newer owner."""
        if self.lost:
            return
        self.lost = True
        self.taken = taken
        log.warning(
            "%s: lease lost (%s); another worker carries the conversation on", self.name, why
        )
        if self.journal is not None:
            self.journal.closed = True
        if self.ref is not None:
            self.worker.orchestrator._cancel(self.name)
        self._scope.cancel()

    def poke(self) -> None:
        """Input may have arrived on the stream: read it."""
        self.pump.poke()

    def offer(self, prev: str, entry_id: str, raw: bytes) -> None:
        """A notice of input ``entry_id`` (``raw``: its command, empty when too long to carry),
        appended right after ``prev`` (see :meth:`InputPump.offer`)."""
        self.pump.offer(prev, entry_id, raw)

    # -- the run ----------------------------------------------------------------------------------

    async def run(self) -> None:
        """Adopt, run until the conversation ends here, then settle the lease."""
        outcome = "orphan"
        try:
            if self.previous is not None:
                await self.previous.finished.wait()
            with self._scope:
                try:
                    try:
                        outcome = await self._run()
                    except BaseExceptionGroup as group:
                        # The writer's or the pump's error, through the run's nursery.
                        raise sole_exception(group) from None
                except LeaseLost as exc:
                    self.lose(str(exc))
                except ClusterUnavailable as exc:
                    log.warning("%s: %s", self.name, exc)
                except Exception:
                    log.exception("%s: failed here; another worker may take it", self.name)
                finally:
                    # Whatever ended this run, the conversation must not run on here unowned.
                    if self.ref is not None:
                        ended = self.worker.orchestrator._cancel(self.name)
                        if ended is not None:
                            with trio.CancelScope(shield=True), trio.move_on_after(5.0):
                                await ended.wait()
            self.worker.forget(self)
            if self.lost:
                with trio.CancelScope(shield=True):
                    await self.writer.write_late(LATE_PATIENCE)
            # After a loss too: a lease that ran out here while Redis was slow may still be
            # ours (a renewal raced the deadline); giving it back lets another worker take it
            # now. The script checks the token, so a lease another worker holds is left alone.
            with trio.CancelScope(shield=True), trio.move_on_after(self.worker.target.timeout):
                try:
                    await self.worker.release(self.name, self.token, outcome)
                except ClusterUnavailable as exc:
                    log.warning(
                        "%s: could not settle the lease (it expires by itself): %s", self.name, exc
                    )
        finally:
            self.finished.set()

    async def _run(self) -> str:
        worker = self.worker
        reply = await worker.redis.script(
            f"take over {self.name!r}", _scripts.ADOPT, self.keys.all(), [worker.id, self.fence]
        )
        if reply[0] == 0:
            self.lost = True  # a newer owner took it already
            return "orphan"
        if reply[0] == -1:
            return "remove"  # it ended (a stop won the race with this claim)
        record = Record.parse(reply)
        self.pump.last_input = record.inputs[-1][0] if record.inputs else "0-0"
        journal = self.journal = Journal(
            validity=worker.orchestrator.handle_validity, seq=record.seq, started=record.started
        )
        stop_grace: float | None = None
        for _, cmd in record.inputs:
            if cmd.kind == "stop":
                stop_grace = cmd.grace

        def prepare(sup: Supervisor) -> None:
            journal.attach(sup)
            now_epoch, now = time.time(), trio.current_time()
            inputs = []
            for entry_id, cmd in record.inputs:
                message = wire_message(sup, cmd)
                if message is not None:
                    age = max(0.0, now_epoch - int(entry_id.partition("-")[0]) / 1000)
                    inputs.append((entry_id, message, now - age))
            cut = sup.session.adopt(
                handle=record.handle,
                seq=record.seq,
                turn=record.turn,
                turn_open=record.turn_open,
                started=record.started,
                inputs=inputs,
                answered=record.answered,
                seen=record.seen,
                mode=record.mode,
                transcript=record.transcript,
            )
            for event in cut:
                journal.record(event)

        hooks = SupervisorHooks(journal=journal.record, may_send=self.may_act, prepare=prepare)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self.writer.run)
            nursery.start_soon(self._watchdog)
            try:
                self.ref = await worker.orchestrator._spawn(
                    record.config, self.name, Conversation, worker.restart, None, hooks
                )
            except InvalidCommand:
                raise  # not the service's refusal: a bug here; another worker may do better
            except LiveError:
                # The first connect failed: for good (the journal has ConversationFailed), or
                # after retrying (the journal says retry: another worker tries again later).
                await self.writer.flush()
                nursery.cancel_scope.cancel()
                return "retry" if journal.retry else "remove"
            if self.draining:  # a drain began while this was taking over
                nursery.start_soon(self._stop, self._drain_grace)
            elif stop_grace is not None:
                nursery.start_soon(self._stop, stop_grace)
            else:
                nursery.start_soon(self.pump.run)
            await self.ref.wait_closed()
            await self.writer.flush()
            nursery.cancel_scope.cancel()
        if journal.retry:
            return "retry"
        return "orphan" if self.draining else "remove"

    async def drain(self, grace: float) -> None:
        """Hand the conversation over at a resumable point: stop taking input, let the answer
        in progress finish, close the socket, write the handle; the lease is then released
        (by :meth:`run`) for another worker."""
        self.draining = True
        self._drain_grace = grace
        if self.journal is not None:
            self.journal.quiet = True
        self.pump.scope.cancel()
        if self.ref is not None:
            await self.ref.stop(grace=grace)

    async def _watchdog(self) -> None:
        """Stop here when the local lease deadline passes without a renewal (Redis down or
        slow): from then on another worker may take the conversation."""
        while trio.current_time() < self.deadline:  # noqa: ASYNC110 - renewals move it
            await trio.sleep_until(self.deadline)
        self.lose("not renewed in time", taken=False)

    async def _stop(self, grace: float) -> None:
        assert self.ref is not None
        await self.ref.stop(grace=grace)
