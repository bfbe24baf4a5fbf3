"""A conversation's durable record, as its owner writes it: events and ledger state in batches.

The supervisor calls :meth:`Journal.record` with every event, synchronously, just before it is
published, so what the journal reads of the ledger then is exactly the state that event left.
:meth:`Journal.take` makes one batch of everything recorded since the last: the events (entry
id ``<seq>-1``, so a reader can start at any ``seq``), and the state a new owner needs —
``seq`` and ``turn``, the handle and the oldest input still needed (older input is covered by
that handle and is trimmed with it, in the same atomic write), the answers of exchanges no
handle covers yet, the history that went into the transcript. One task writes batches one at
a time (``_record_writer.py``), so they land in order. A batch is due as soon as an event is
recorded, except for the "not resumable" resumption update the service sends as a turn
starts: it waits for the next event, :data:`LAZY` seconds at most.

The events that end the conversation *here* without ending it (a drain hands it to another
worker, a lost lease leaves it to one) are not recorded: the next owner carries on after the
last recorded ``seq``.

An event's field ``e`` in the stream is its JSON (``_event_codec``), except for an event that
carries media (``AudioChunk``, ``VideoChunk``): its JSON with ``"data": ""``, a NUL byte (which
JSON text never holds), then the bytes as they are. Base64 both ways would cost more than the
rest of the event's trip (:func:`encode_event`, :func:`decode_event`). The JSON is written and
read by orjson where it means the same as the standard library's (``_json``).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Final

import attrs
import trio

from .. import events as ev
from .._errors import LeaseLost
from .._event_codec import event_from_json, event_to_json
from .._protocol.tracker import EventTracker, TurnPhase
from ._json import dumps, loads

if TYPE_CHECKING:
    from .._supervisor import Supervisor

__all__ = ["LAZY", "Batch", "Journal", "decode_event", "encode_event"]

#: How long an event nobody waits for (a "not resumable" update) waits for company before it
#: is written alone. The turn's first output normally comes well within it.
LAZY: Final = 1.0


@attrs.frozen
class Batch:
    """One atomic write: events as (entry id, JSON, answered input id or "") and the state."""

    events: tuple[tuple[str, str | bytes, str], ...]
    state: dict[str, Any] = attrs.field(repr=False)
    #: The conversation ended with this batch ("stopped" or "failed").
    final: str | None = None
    handle: str | None = attrs.field(default=None, repr=False)


class Journal:
    """What a conversation's owner has yet to write to Redis."""

    def __init__(self, *, validity: float, seq: int, started: bool) -> None:
        self.validity = validity
        self.supervisor: Supervisor | None = None
        #: Drop the events that end the conversation here (a drain, a lost lease).
        self.quiet = False
        #: The lease is gone: nothing more is recorded at all (what the conversation does while
        #: it is cancelled here, such as closing its cut turn, belongs to no owner).
        self.closed = False
        #: (turn, whether a turn is open) as the last recorded event left them.
        self._turn: tuple[int, bool] | None = None
        self._events: list[tuple[str, str | bytes, str]] = []
        self._answered: dict[str, str] = {}
        self._seen: list[str] = []
        self._final: str | None = None
        #: A ConversationFailed was recorded: the ConversationClosed after it ends it "failed".
        self._failed = False
        #: The conversation ended here on a retryable error (its connection kept failing):
        #: it is not over; another worker tries again later, with its input still durable.
        self.retry = False
        #: An InputUndelivered waiting to learn whether the end is a retry (then it is not
        #: recorded: the input is still on the stream).
        self._held: ev.Event | None = None
        self._seq = seq
        self._started = started
        self._handle_written: str | None = None
        self._trim_written: str | None = None
        self._remembered = 0
        #: Set when something is recorded (see :meth:`wait`).
        self._changed = trio.Event()
        #: Something recorded is to be written now.
        self._due = False
        #: When the lazy events recorded since the last batch are written anyway, if nothing
        #: due comes first (None: there are none).
        self._lazy_until: float | None = None

    def attach(self, supervisor: Supervisor) -> None:
        """Start journaling ``supervisor`` (before its first connect)."""
        self.supervisor = supervisor
        ledger = supervisor.session.ledger
        ledger.journaling = True
        self._remembered = ledger.remembered
        self._handle_written = supervisor.session.tracker.handle

    @property
    def pending(self) -> bool:
        """Something is recorded and not taken yet."""
        return bool(self._events) or self._due

    def record(self, event: ev.Event) -> None:
        """Note one event about to be published (see the module docstring)."""
        if self.closed:
            return
        kind = type(event)
        if kind is ev.InputUndelivered:
            self._held = event  # the conversation is ending: for good? (the next event says)
            return
        if kind is ev.ConversationFailed and not self.quiet and event.error.retryable:  # type: ignore[attr-defined]
            self.retry = self.quiet = True
        held, self._held = self._held, None
        if held is not None and not self.quiet:
            self._note(held)
        if kind is ev.ConversationClosed:
            if self.quiet:
                return
            self._final = "failed" if self._failed else "stopped"
        elif kind is ev.ConversationFailed:
            if self.quiet or isinstance(event.error, LeaseLost):  # type: ignore[attr-defined]
                return
            self._failed = True
        self._note(event)

    def _note(self, event: ev.Event) -> None:
        kind = type(event)
        answered = ""
        sup = self.supervisor
        if sup is not None:
            # The turn as this event left it (not as it is when the batch is taken: a record
            # closed by a lost lease must not claim what the cancelled conversation did after).
            self._turn = _turn_of(sup.session.tracker)
            ledger = sup.session.ledger
            if ledger.answered_log:  # (mostly empty: this runs for every event)
                for exchange in ledger.answered_log:
                    if exchange.last_tag is not None:
                        self._answered[exchange.last_tag] = "".join(exchange.model_text)
                        answered = exchange.last_tag
                ledger.answered_log.clear()
            if ledger.seen_log:
                for exchange in ledger.seen_log:
                    if exchange.last_tag is not None:
                        self._seen.append(exchange.last_tag)
                ledger.seen_log.clear()
        payload = encode_event(event)
        self._events.append(
            (f"{event.seq}-1", payload, answered if kind is ev.TurnComplete else "")
        )
        self._seq = event.seq
        if kind is ev.ResumptionUpdate and not event.resumable and not event.handle:  # type: ignore[attr-defined]
            # The service's "not resumable now", sent as a turn starts: it changes nothing
            # anyone waits for, so it goes with the next batch (the turn's first output,
            # usually) instead of costing a write of its own (see ``LAZY``).
            if self._lazy_until is None:
                self._lazy_until = trio.current_time() + LAZY
        else:
            self._due = True
        self._changed.set()

    def poke(self) -> None:
        """State changed without an event (input sent): write it with the next batch."""
        self._due = True
        self._changed.set()

    async def wait(self) -> None:
        """Until a batch is due: something recorded to be written now, or lazy events that
        waited ``LAZY`` seconds for company."""
        while not self._due:
            until = self._lazy_until
            if until is not None and trio.current_time() >= until:
                return
            self._changed = trio.Event()
            if until is None:
                await self._changed.wait()
            else:
                with trio.move_on_at(until):
                    await self._changed.wait()

    def take(self) -> Batch:
        """Everything recorded since the last batch, and the state now."""
        self._changed = trio.Event()
        self._due = False
        self._lazy_until = None
        events, self._events = tuple(self._events), []
        state: dict[str, Any] = {"seq": self._seq}
        handle = None
        sup = self.supervisor
        if sup is not None:
            session = sup.session
            ledger, tracker = session.ledger, session.tracker
            self._started = self._started or ledger.last_sent_tag is not None
            turn, turn_open = self._turn if self._turn is not None else _turn_of(tracker)
            state.update(
                turn=turn,
                open=int(turn_open),
                mode=ledger.mode.value,
                started=int(self._started),
            )
            handle = tracker.handle
            if handle is not None and handle != self._handle_written:
                state.update(
                    handle=handle, saved=time.time(), ttl=max(1, round(self.validity * 1000))
                )
                self._handle_written = handle
            trim = ledger.earliest_held_tag()
            if trim is None and ledger.last_sent_tag is not None:
                trim = _after(ledger.last_sent_tag)
            if trim is not None and trim != self._trim_written:
                state["trim"] = trim
                self._trim_written = trim
            fresh = ledger.remembered - self._remembered
            if fresh > 0:
                entries = (
                    list(ledger.transcript)[-fresh:]
                    if fresh <= len(ledger.transcript)
                    else list(ledger.transcript)
                )
                state["tx"] = [dumps(e).decode() for e in entries]
                state["tx_limit"] = ledger.transcript_limit
                self._remembered = ledger.remembered
        if self._answered:
            state["answered"], self._answered = self._answered, {}
        if self._seen:
            state["seen"], self._seen = self._seen, []
        final, self._final = self._final, None
        if final is not None:
            state["final"] = final
        return Batch(events, state, final, handle if "handle" in state else None)


def encode_event(event: ev.Event) -> str | bytes:
    """``event`` as the stream's field ``e`` (see the module docstring)."""
    data = getattr(event, "data", None)
    if type(data) is bytes and data:
        return dumps(event_to_json(event, media=False)) + b"\0" + data
    return dumps(event_to_json(event))


def decode_event(field: bytes) -> ev.Event:
    """The event :func:`encode_event` wrote (``ValueError`` if it is not one)."""
    head, media, data = field.partition(b"\0")
    return event_from_json(loads(head), media=data if media else None)


def _after(entry_id: str) -> str:
    """The stream id right after ``entry_id`` (``XTRIM MINID`` keeps ids from it on)."""
    ms, _, seq = entry_id.partition("-")
    return f"{ms}-{int(seq or 0) + 1}"


def _turn_of(tracker: EventTracker) -> tuple[int, bool]:
    """The tracker's turn number, and whether a turn is in progress."""
    return tracker.turn, tracker.phase is not TurnPhase.IDLE
