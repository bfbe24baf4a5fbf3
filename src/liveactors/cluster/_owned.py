"""One conversation a worker owns: take it over, feed it its durable input, write its record.

Theory of operation. A worker that leased a conversation (``_worker.py``) runs an
:class:`Owned` for it:

1. **Adopt.** One script stamps the conversation's record with this lease's fencing token
   (from then on a previous owner's writes are refused) and returns what it needs: the config,
   the last ``seq`` and ``turn``, the handle, the input no handle covers, the answers of
   exchanges no handle covers, and the covered history. The supervisor's ledger takes that
   input as if sent on an earlier connection, so its first connect is planned like any
   reconnect: resume from the handle, restore answered exchanges as history, send unanswered
   input again (or start a fresh session restoring the history, when the handle cannot tell).
2. **Run.** The conversation runs in the worker's local orchestrator. A *pump* hands each
   command of the input stream to the mailbox, in order, with its stream id as its tag: the
   command that a notice carries when the notice says it follows the last one taken (no read
   of the stream), else what a read of the stream after the last one taken returns. A
   *writer* commits the journal's batches one at a time.
3. **Fencing.** Every frame the conversation sends asks :meth:`Owned.may_act` first: false
   once the local lease deadline (renewal sent + lease - margin, always before the server's
   expiry) has passed. A commit refused for its fence, a renewal that finds another owner, or
   that deadline passing ends the conversation here at once, writing nothing more.
4. **End.** A stop or a failure is written with the conversation's last events and the lease
   removed; a drain (SIGTERM) stops taking input, lets the answer in progress finish, closes
   the socket, writes the handle, and only then gives the lease back for another worker.
"""

from __future__ import annotations

import json
import logging
import time
from collections import deque
from typing import TYPE_CHECKING, Any, Final

import trio
from google.genai import types

from .._conversation import Conversation, ConversationRef
from .._errors import InvalidCommand, LeaseLost, LiveError
from .._exception_groups import sole_exception
from .._protocol.ledger import HandleMode
from .._supervisor import Supervisor, SupervisorHooks
from . import _scripts
from ._commands import decode_command
from ._handle_store import ClusterUnavailable
from ._journal import Batch, Journal
from ._resp import stream_id

if TYPE_CHECKING:
    from ._worker import Worker

__all__ = ["Owned"]

log = logging.getLogger("liveactors.cluster")

#: How long the pump sleeps between reads of a quiet input stream when no notice comes (a
#: notice published while the worker's subscription was down is lost; this bounds the cost).
POLL: Final = 5.0
#: Entries the pump reads per call.
BATCH: Final = 256
#: Notices whose commands wait for the pump, at most (beyond: it reads the stream instead).
OFFERED: Final = 1024
#: The longest command a notice carries (a longer one is read from the stream).
NOTICE_COMMAND: Final = 64 * 1024
#: How long a worker whose lease ran out (Redis unreachable) keeps trying to write what it
#: had recorded, once Redis answers again.
LATE_PATIENCE: Final = 30.0
#: How long a finished conversation's record and events stay readable.
RETAIN: Final = 3600


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
        self._last_input = "0-0"
        self._poke = trio.Event()
        #: Read the input stream next (else take what notices carry).
        self._read_next = True
        #: Input the notices carried, not taken yet: (previous id, id, command).
        self._offered: deque[tuple[str, str, bytes]] = deque()
        self._scope = trio.CancelScope()
        self._pump_scope = trio.CancelScope()
        #: Set when the writer finished a batch or went idle (what a flush waits on).
        self._progress = trio.Event()
        self._writing = False
        #: Batches committed under this lease (a retried batch keeps its number).
        self._batches = 0
        #: Script arguments of the batches taken and not written yet, oldest first.
        self._unwritten: list[list[Any]] = []
        self._taken = True
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
        self._taken = taken
        log.warning(
            "%s: lease lost (%s); another worker carries the conversation on", self.name, why
        )
        if self.journal is not None:
            self.journal.quiet = True
        if self.ref is not None:
            self.worker.orchestrator._cancel(self.name)
        self._scope.cancel()

    def poke(self) -> None:
        """Input may have arrived on the stream: read it."""
        self._read_next = True
        self._poke.set()

    def offer(self, prev: str, entry_id: str, raw: bytes) -> None:
        """A notice of input ``entry_id`` (``raw``: its command, empty when too long to carry),
        appended right after ``prev``: the pump takes it as is when ``prev`` is the last input
        it took, and reads the stream otherwise."""
        if len(self._offered) >= OFFERED:
            self._offered.clear()
            self._read_next = True
        else:
            self._offered.append((prev, entry_id, raw))
        self._poke.set()

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
                    await self.write_late(LATE_PATIENCE)
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
        self._last_input = record.inputs[-1][0] if record.inputs else "0-0"
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
                message = _wire(sup, cmd)
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
            nursery.start_soon(self._writer)
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
                await self._flush()
                nursery.cancel_scope.cancel()
                return "retry" if journal.retry else "remove"
            if self.draining:  # a drain began while this was taking over
                nursery.start_soon(self._stop, self._drain_grace)
            elif stop_grace is not None:
                nursery.start_soon(self._stop, stop_grace)
            else:
                nursery.start_soon(self._pump)
            await self.ref.wait_closed()
            await self._flush()
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
        self._pump_scope.cancel()
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

    # -- input ------------------------------------------------------------------------------------

    async def _pump(self) -> None:
        """Hand the input to the conversation, in stream order: the commands that notices
        carry (see :meth:`offer`) while they follow on from the last one taken, else what a
        read of the stream after it returns."""
        redis, ref = self.worker.redis, self.ref
        assert ref is not None
        with self._pump_scope:
            while True:
                self._poke = trio.Event()
                if not self._read_next:
                    while self._offered:
                        prev, entry_id, raw = self._offered.popleft()
                        if stream_id(entry_id) <= stream_id(self._last_input):
                            continue  # a read took it already
                        if prev != self._last_input or not raw:
                            self._read_next = True  # one came in between, or it was too long
                            break
                        if not await self._take(entry_id, raw):
                            return
                if self._read_next:
                    self._offered.clear()
                    try:
                        entries = await redis.xrange(
                            f"read the input of {self.name!r}",
                            self.keys.input,
                            f"({self._last_input}",
                            "+",
                            count=BATCH,
                        )
                    except ClusterUnavailable as exc:
                        # The conversation runs on meanwhile (until the lease deadline).
                        log.warning("%s: %s", self.name, exc)
                        with trio.move_on_after(0.5):
                            await self._poke.wait()
                        continue
                    # Read everything there was (else read on); then notices say what comes.
                    self._read_next = len(entries) == BATCH
                    for entry_id, fields in entries:
                        if not await self._take(entry_id, fields.get("c", b"")):
                            return
                if not self._read_next and not self._offered:
                    # Wait for a notice (one that came meanwhile is kept, since the event was
                    # made before it); read the stream when none came for a while.
                    with trio.move_on_after(POLL) as quiet:
                        await self._poke.wait()
                    if quiet.cancelled_caught:
                        self._read_next = True

    async def _take(self, entry_id: str, raw: bytes) -> bool:
        """Hand one input command to the conversation; False after a stop."""
        ref = self.ref
        assert ref is not None
        self._last_input = entry_id
        try:
            cmd = decode_command(raw.decode())
        except (KeyError, TypeError, ValueError) as exc:  # (UnicodeDecodeError: a ValueError)
            log.error("%s: skipped input %s: %s", self.name, entry_id, exc)
            return True
        if cmd.kind == "stop":
            await ref.stop(grace=cmd.grace)
            return False
        if cmd.kind == "tool":
            try:
                await ref.send_tool_response(list(cmd.responses))
            except InvalidCommand as exc:
                log.info("%s: tool response %s not sent: %s", self.name, entry_id, exc)
            return True
        sup = ref._sup
        message = _wire(sup, cmd)
        if message is not None:
            # (What it changes in the record, the next event's batch writes.)
            await sup.submit(message, tag=entry_id)
        return True

    # -- the record -------------------------------------------------------------------------------

    async def _writer(self) -> None:
        journal = self.journal
        assert journal is not None
        while True:
            self._progress.set()
            await journal.wait()
            # One pass for the reader: an event that follows at once (the resumption update
            # after a turn) joins this batch instead of costing a write of its own.
            await trio.lowlevel.checkpoint()
            self._writing = True
            try:
                await self._commit(journal.take())
            finally:
                self._writing = False

    async def _flush(self) -> None:
        """Until everything recorded is written (or the lease is gone)."""
        journal = self.journal
        assert journal is not None
        while not self.lost and (journal.pending or self._writing):
            self._progress = trio.Event()
            await self._progress.wait()

    async def _commit(self, batch: Batch) -> None:
        """Write ``batch`` (after any earlier one not written yet), retrying while Redis is
        unreachable, until the lease runs out here."""
        self._queue(batch)
        delay = 0.05
        while self._unwritten:
            if not self.may_act():
                raise LeaseLost(f"{self.name}: the lease ran out before the record was written")
            try:
                await self._write(self._unwritten[0])
            except ClusterUnavailable as exc:
                log.warning("%s: %s; retrying", self.name, exc)
                await trio.sleep(delay)
                delay = min(1.0, delay * 2)

    async def _write(self, args: list[Any]) -> None:
        """One COMMIT; raises :class:`LeaseLost` when the record carries a newer owner."""
        state = json.loads(args[2])
        secrets = [state["handle"]] if "handle" in state else []
        written = await self.worker.redis.script(
            f"write the record of {self.name!r}",
            _scripts.COMMIT,
            self.keys.all(),
            args,
            secrets=secrets,
        )
        if not written:
            self._unwritten.clear()
            raise LeaseLost(f"{self.name}: another worker owns the conversation now")
        self._unwritten.pop(0)

    async def write_late(self, patience: float) -> None:
        """After the lease ran out here: write what was recorded, if no other worker took
        the conversation meanwhile (the fence says), retrying for ``patience`` seconds. An
        answer given while Redis was unreachable is then not asked again by the next owner."""
        journal = self.journal
        if self._taken or journal is None:
            return
        if journal.pending:
            self._queue(journal.take())
        delay = 0.05
        with trio.move_on_after(patience):
            while self._unwritten:
                try:
                    await self._write(self._unwritten[0])
                except ClusterUnavailable:
                    # Soon after Redis is back, before other workers take the orphan (they
                    # leave it alone for ``RESYNC`` seconds after an outage).
                    await trio.sleep(delay)
                    delay = min(0.25, delay * 2)
                except LeaseLost:
                    return

    def _queue(self, batch: Batch) -> None:
        """``batch`` as COMMIT's arguments, numbered, after those not written yet."""
        state = dict(batch.state)
        if batch.final is not None:
            state["retain"] = RETAIN
        self._batches += 1
        args: list[Any] = [self.fence, self.worker.events_cap, _json(state), self._batches]
        for entry in batch.events:
            args.extend(entry)
        self._unwritten.append(args)


class Record:
    """What :data:`~._scripts.ADOPT` returned, parsed."""

    def __init__(self) -> None:
        self.config: types.LiveConnectConfig | None = None
        self.seq = 0
        self.turn = 1
        self.turn_open = False
        self.started = False
        self.mode = HandleMode.UNKNOWN
        self.handle: str | None = None
        self.inputs: list[tuple[str, Any]] = []
        self.answered: dict[str, list[str]] = {}
        self.seen: set[str] = set()
        self.transcript: list[dict[str, Any]] = []

    @classmethod
    def parse(cls, reply: list[Any]) -> Record:
        out = cls()
        meta = _pairs(reply[1])
        config = meta.get("config")
        if config:
            out.config = types.LiveConnectConfig.model_validate(json.loads(config))
        out.seq = int(meta.get("seq", 0))
        out.turn = int(meta.get("turn", 1))
        out.turn_open = meta.get("open") == "1"
        out.started = meta.get("started") == "1"
        out.mode = HandleMode(meta.get("mode", "unknown"))
        for entry_id, fields in reply[2]:
            values = _pairs(fields)
            try:
                out.inputs.append((entry_id, decode_command(values["c"])))
            except (KeyError, ValueError) as exc:
                log.error("skipped input %s: %s", entry_id, exc)
        for field, value in _pairs(reply[3]).items():
            if field.startswith("a:"):
                out.answered[field[2:]] = [value] if value else []
            elif field.startswith("s:"):
                out.seen.add(field[2:])
        handle = reply[4][0] if reply[4] else None
        out.handle = handle or None
        out.transcript = [json.loads(entry) for entry in reply[5]]
        return out


def _pairs(flat: Any) -> dict[str, Any]:
    if isinstance(flat, dict):
        return dict(flat)
    items = list(flat)
    return dict(zip(items[::2], items[1::2], strict=True))


def _wire(sup: Supervisor, cmd: Any) -> dict[str, Any] | None:
    """The wire message of an input command (None: not input)."""
    if cmd.kind == "text":
        message: dict[str, Any] = sup.text_message(cmd.text, turn_complete=cmd.turn_complete)
        return message
    if cmd.kind == "wire":
        return dict(cmd.message)
    return None


def _json(state: dict[str, Any]) -> str:
    return json.dumps(state, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
