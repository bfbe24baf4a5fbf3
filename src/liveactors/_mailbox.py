"""A conversation's mailbox: ordered input with backpressure, plus urgent control messages.

Input (text, audio, video, activity signals, stop) is processed strictly in order, and a full
mailbox makes senders wait: that is the backpressure users feel when they send faster than the
connection drains. Urgent messages (tool results) skip the queue, because the model cannot finish
its turn without them — in particular while new input is held back during a GoAway handoff.
The single consumer (the conversation's writer) can also be *poked* when something other than a
new message should make it look again (the handoff became possible, a deadline passed).

A conversation's mailbox carries the commands at the end of this module: :class:`SendInput`
(in order), :class:`SendToolResult` (urgent) and :class:`Stop` (last, when sealed).
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import attrs
import trio

from ._errors import LiveError

if TYPE_CHECKING:
    from google.genai import types

    from ._reply import ReplyBuilder

__all__ = ["Alarm", "Command", "Mailbox", "SendInput", "SendToolResult", "Stop"]

T = TypeVar("T")


class Mailbox(Generic[T]):
    """Bounded ordered input + unbounded urgent lane, one consumer."""

    __slots__ = (
        "_alarm",
        "_alarm_at",
        "_all_closed",
        "_closed",
        "_input",
        "_reader",
        "_urgent",
        "_waiting",
        "capacity",
    )

    def __init__(self, capacity: int, alarm: Alarm | None = None) -> None:
        self.capacity = capacity
        self._input: deque[T] = deque()
        self._urgent: deque[T] = deque()
        self._reader = trio.lowlevel.ParkingLot()
        #: Senders waiting for room, first come first: each with the item it brings.
        self._waiting: deque[_Waiter[T]] = deque()
        #: What refused input raises (set by seal or close).
        self._closed: Callable[[], LiveError] | None = None
        #: Closed for good: urgent messages are refused too.
        self._all_closed = False
        #: The alarm that pokes this mailbox at a deadline (:meth:`wait_until`; without one, a
        #: cancel scope per wait), and when it will (infinity: it will not).
        self._alarm = alarm
        self._alarm_at = math.inf

    def __len__(self) -> int:
        return len(self._input)

    @property
    def closed(self) -> bool:
        """Whether the mailbox refuses every message, urgent ones too."""
        return self._all_closed

    @property
    def sealed(self) -> bool:
        """Whether the mailbox refuses new input (it may still hold some to drain)."""
        return self._closed is not None

    def _check_open(self) -> None:
        if self._closed is not None:
            raise self._closed()

    async def put(self, item: T) -> None:
        """Queue ``item`` in order, waiting while the mailbox is full.

        Senders that had to wait are served first come, first served: a newcomer never
        overtakes them. A waiting sender's item enters the queue the moment a slot frees (the
        consumer moves it in, then wakes the sender), so the order holds even when one pass of
        the consumer frees several slots at once. A sender cancelled while waiting leaves no
        trace.
        """
        await trio.lowlevel.checkpoint_if_cancelled()
        self._check_open()
        if self._waiting or len(self._input) >= self.capacity:
            waiter = _Waiter(item, trio.lowlevel.current_task())
            self._waiting.append(waiter)

            def abort(_: Any) -> trio.lowlevel.Abort:
                self._waiting.remove(waiter)  # not admitted: a woken task cannot be aborted
                return trio.lowlevel.Abort.SUCCEEDED

            await trio.lowlevel.wait_task_rescheduled(abort)
            if not waiter.admitted:
                self._check_open()  # woken by seal() or close(), which always set the error
                raise AssertionError("a waiting sender was woken with no room and no error")
            return
        self._input.append(item)
        self._reader.unpark()
        await trio.lowlevel.cancel_shielded_checkpoint()

    def _admit(self) -> None:
        """Move waiting senders' items into the freed slots, in order, and wake them."""
        waiting, queue = self._waiting, self._input
        while waiting and len(queue) < self.capacity:
            waiter = waiting.popleft()
            waiter.admitted = True
            queue.append(waiter.item)
            trio.lowlevel.reschedule(waiter.task)

    def _release_waiting(self) -> None:
        """Wake every waiting sender without admitting it (it raises the closing error)."""
        waiting = self._waiting
        while waiting:
            trio.lowlevel.reschedule(waiting.popleft().task)

    def check_urgent(self) -> None:
        """Raise the closing error if the mailbox takes no urgent messages any more."""
        if self._all_closed and self._closed is not None:
            raise self._closed()

    def put_urgent(self, item: T) -> None:
        """Queue ``item`` ahead of all input (never waits)."""
        self._urgent.append(item)
        self._reader.unpark()

    def take(self, *, include_input: bool = True) -> T | None:
        """The next urgent item, else (if ``include_input``) the next input item, else None."""
        if self._urgent:
            return self._urgent.popleft()
        return self.take_input() if include_input else None

    def take_input(self) -> T | None:
        """The next input item, but None while an urgent item waits (it goes first)."""
        if self._urgent or not self._input:
            return None
        item = self._input.popleft()
        if self._waiting:
            self._admit()
        return item

    def peek_input(self) -> T | None:
        """The next input item without taking it."""
        return self._input[0] if self._input else None

    async def wait(self) -> None:
        """Sleep until something is put or :meth:`poke` is called."""
        await self._reader.park()

    async def wait_until(self, deadline: float) -> None:
        """Like :meth:`wait`, but wake at ``deadline`` (trio time) at the latest; may also wake
        early (the caller looks again anyway).

        With an :class:`Alarm` (every conversation's mailbox has its orchestrator's), this
        makes no cancel scope per wait: the alarm pokes the mailbox when its deadline comes. A
        conversation's writer waits here after every message it sends; a scope per wait was
        five tracked objects alive across each wait (the garbage collector's young passes kept
        promoting them) and a few microseconds to enter and leave."""
        if deadline <= trio.current_time():
            await trio.lowlevel.checkpoint()
            return
        alarm = self._alarm
        if alarm is None:
            with trio.move_on_at(deadline):
                await self._reader.park()
            return
        if deadline < self._alarm_at:
            self._alarm_at = deadline
            alarm.add(deadline, self)
        await self._reader.park()

    def _ring(self, deadline: float) -> None:
        """The alarm for ``deadline`` went off (ignored if a later wait moved it)."""
        if self._alarm_at == deadline:
            self._alarm_at = math.inf
            self._reader.unpark()

    def poke(self) -> None:
        """Wake the consumer so it re-checks its conditions."""
        self._reader.unpark()

    def seal(self, error: Callable[[], LiveError], *, last: T) -> None:
        """Refuse new input from now on (putting raises ``error()``, also for senders waiting
        for room) but keep what is queued, followed by ``last``, for the consumer to drain."""
        self._closed = error
        self._input.append(last)
        self._release_waiting()
        self._reader.unpark()

    def close(self, error: Callable[[], LiveError]) -> list[T]:
        """Refuse further messages: putting one raises ``error()``. Returns what was still
        queued."""
        self._closed = error
        self._all_closed = True
        left = list(self._urgent) + list(self._input)
        self._urgent.clear()
        self._input.clear()
        self._alarm_at = math.inf  # a pending ring finds nothing to do
        self._release_waiting()
        self._reader.unpark_all()
        return left


@attrs.define(eq=False)
class _Waiter(Generic[T]):
    """A sender waiting for room in a full mailbox, and what it brings."""

    item: T
    task: trio.lowlevel.Task
    #: Its item went into the queue (else it was woken by a seal or close).
    admitted: bool = False


class Alarm:
    """Pokes mailboxes at their deadlines (:meth:`Mailbox.wait_until`): one task and a heap of
    (deadline, mailbox), in place of a cancel scope per wait.

    Why not a scope per wait: trio keeps every deadline it was given in a heap and drops the
    entry of a scope that exited early only when the heap has grown to twice the live ones
    (plus a thousand). A writer waits after every message it sends, with its keepalive deadline
    seconds away, so each wait left its scope (and a tuple) alive for a while: at 80 talking
    conversations the young collections found ~500 such scopes alive each time, promoted them,
    and the oldest generation grew until a full collection (50-70 ms with google-genai loaded)
    stopped the loop every few seconds. Here a mailbox whose deadline did not come closer adds
    nothing; one whose alarm went off early (it had moved later) costs its writer one look.

    An orchestrator owns one and runs :meth:`run` in its nursery for its whole life (asleep
    while no deadline is due)."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Mailbox[Any]]] = []
        self._order = itertools.count()
        #: The current sleep's scope; a deadline earlier than its own moves it.
        self._sleep = trio.CancelScope()

    def __len__(self) -> int:
        """Deadlines registered and not rung yet."""
        return len(self._heap)

    def add(self, deadline: float, mailbox: Mailbox[Any]) -> None:
        """Poke ``mailbox`` at ``deadline`` (it ignores a ring it no longer waits for)."""
        heapq.heappush(self._heap, (deadline, next(self._order), mailbox))
        if deadline < self._sleep.deadline:
            self._sleep.deadline = deadline

    async def run(self) -> None:
        """Ring each deadline as it comes, until cancelled."""
        heap = self._heap
        try:
            while True:
                now = trio.current_time()
                while heap and heap[0][0] <= now:
                    deadline, _, mailbox = heapq.heappop(heap)
                    mailbox._ring(deadline)
                with trio.CancelScope(deadline=heap[0][0] if heap else math.inf) as self._sleep:
                    await trio.sleep_forever()
        finally:
            heap.clear()


@attrs.frozen
class SendInput:
    """One validated input message, and the ``ask`` waiting for its answer, if any."""

    message: dict[str, Any] = attrs.field(repr=False)
    reply: ReplyBuilder | None = None
    #: The caller's name for this input, kept in the ledger (a cluster worker's stream id).
    tag: str | None = None


@attrs.frozen
class SendToolResult:
    """Responses to pending tool calls (urgent: the turn cannot finish without them)."""

    responses: tuple[types.FunctionResponse, ...]


@attrs.frozen
class Stop:
    """End the conversation once what was queued before went out (the mailbox's last item)."""

    grace: float


Command = SendInput | SendToolResult | Stop
