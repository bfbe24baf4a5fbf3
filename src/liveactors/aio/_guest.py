"""The trio guest run on a running asyncio loop, and how asyncio code calls into it.

Theory of operation. ``trio.lowlevel.start_guest_run`` unrolls trio's scheduler into callbacks
on the asyncio loop: every trio task runs on the loop's own thread, between asyncio callbacks;
only trio's wait for I/O runs in a helper thread, which hands each wake-up back to the loop with
``call_soon_threadsafe``. Both sides therefore share one thread, and the bridge is:

* **trio → asyncio**: trio code settles asyncio futures directly (``set_result`` from a trio
  task is a call on the loop's thread, like any callback's).
* **asyncio → trio**: asyncio code calls trio's *synchronous* functions directly, which a
  guest run allows once ``start_guest_run`` has returned: the run's state belongs to the
  thread, and a task made runnable from outside a tick (``nursery.start_soon``,
  ``CancelScope.cancel``, ``Event.set``) makes trio wake up and tick. A :class:`_Call` starts
  a task in the guest's *calls nursery* (in a context copied from the guest's, not from the
  asyncio task's), which awaits the trio operation inside a cancel scope of its own and
  settles the call's future with the value or the exception, unchanged. (Going through
  ``TrioToken.run_sync_soon`` instead costs a tick more per call and buys nothing on the
  loop's own thread.)
* **Cancellation**: an asyncio task cancelled while awaiting a call cancels the call's scope,
  waits until the trio side has finished (so the operation is over when ``CancelledError``
  propagates), then re-raises ``CancelledError``.
* **Shutdown**: calls still running when the run ends are cancelled on the trio side and raise
  the refusal their caller chose (a :class:`~liveactors.LiveError`), never ``trio.Cancelled``.

One guest run per loop: :class:`Guest` registers itself against its loop and refuses a second
one. Its main function opens the calls nursery, then the caller's ``setup`` context (which
yields from inside the cancel scope it is given), and waits for the exit event: set, it leaves
``setup`` normally (graceful); the scope cancelled, it leaves by ``Cancelled`` (immediate). A
run that ends while nobody asked it to cancels the asyncio task that entered it (as a trio
nursery cancels its body when a child fails), and the exit raises what ended it.
"""

from __future__ import annotations

import asyncio
import contextvars
import weakref
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any, Final, Generic, TypeVar

import outcome
import trio

from .._errors import InvalidCommand, LiveError
from .._exception_groups import sole_exception

__all__ = ["Guest", "settle", "wait_out"]

T = TypeVar("T")
V = TypeVar("V")

#: The guest run of each loop (one at most).
_GUESTS: Final[weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Guest[Any]]] = (
    weakref.WeakKeyDictionary()
)

_UNSET: Final = object()


def settle(future: asyncio.Future[V], value: V) -> None:
    """Resolve ``future`` unless it is done already (its waiter may have been cancelled)."""
    if not future.done():
        future.set_result(value)


def _fail(future: asyncio.Future[Any], error: BaseException) -> None:
    if not future.done():
        future.set_exception(error)


async def wait_out(future: asyncio.Future[Any]) -> None:
    """Wait until ``future`` is done even if cancelled meanwhile; a cancellation is re-raised
    afterwards. For waits that bound trio-side cleanup, which is always prompt."""
    cancelled = False
    while not future.done():
        try:
            await asyncio.shield(future)
        except asyncio.CancelledError:
            if future.done():
                break
            cancelled = True
    if cancelled:
        raise asyncio.CancelledError


class _Call:
    """One asyncio → trio call: ``fn()`` awaited in a trio task under ``scope``."""

    __slots__ = ("done", "finished", "fn", "future", "refusal", "scope")

    def __init__(
        self,
        fn: Callable[[], Awaitable[Any]],
        future: asyncio.Future[Any],
        refusal: Callable[[], LiveError],
    ) -> None:
        self.fn = fn
        self.future = future
        self.refusal = refusal
        self.scope = trio.CancelScope()
        #: The trio side has finished (whatever the outcome).
        self.done = False
        #: Made when the asyncio caller is cancelled: resolved once the trio side finished.
        self.finished: asyncio.Future[None] | None = None


class Guest(Generic[T]):
    """A trio guest run on one asyncio loop, running ``setup(scope)`` (a trio async context
    manager) until :meth:`close`. ``setup`` yields the value :meth:`wait_ready` returns from
    inside ``scope``, which an immediate shutdown cancels: it decides what the cancellation
    reaches first (the orchestrator, not the fake server it talks to)."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        setup: Callable[[trio.CancelScope], AbstractAsyncContextManager[T]],
        what: str = "liveactors.aio.open_orchestrator",
    ) -> None:
        self.loop = loop
        self._setup = setup
        self._what = what
        #: The context the calls' tasks copy (the guest's, not an asyncio task's).
        self._context = contextvars.Context()
        self._calls: trio.Nursery | None = None
        self._scope = trio.CancelScope()
        self._exit = trio.Event()
        self._ready: asyncio.Future[None] = loop.create_future()
        self._done: asyncio.Future[None] = loop.create_future()
        self._outcome: outcome.Outcome[None] | None = None
        self._value: T | None = None
        #: No new calls are taken (the run is ending or ended).
        self.closed = False
        #: Shutdown was asked for (so the run ending is no surprise).
        self.exiting = False
        #: The run ended by itself while the asyncio body ran (see the module docstring).
        self.crashed = False
        self._host_task: asyncio.Task[Any] | None = None
        #: Called in trio once ``setup`` has exited, before the run ends (last snapshots).
        self.at_exit: list[Callable[[], None]] = []

    # -- lifecycle (asyncio side) ---------------------------------------------------------

    def start(self) -> None:
        """Start the guest run on the loop (refused if the loop has one already)."""
        loop = self.loop
        other = _GUESTS.get(loop)
        if other is not None:
            raise InvalidCommand(
                f"{self._what}: this asyncio loop already runs a liveactors guest run "
                f"({other._what} is still open); open one per loop and share it"
            )
        try:
            trio.lowlevel.start_guest_run(
                self._main,
                run_sync_soon_threadsafe=loop.call_soon_threadsafe,
                run_sync_soon_not_threadsafe=loop.call_soon,
                done_callback=self._on_done,
                host_uses_signal_set_wakeup_fd=True,
            )
        except RuntimeError as exc:  # trio runs in this thread already (trio.run, or another loop)
            raise InvalidCommand(
                f"{self._what}: trio is already running in this thread ({exc}); a guest run "
                "needs a thread without one"
            ) from None
        _GUESTS[loop] = self

    async def wait_ready(self) -> T:
        """Wait until ``setup`` is entered; raises what ended the run if it ended first."""
        await asyncio.wait((self._ready, self._done), return_when=asyncio.FIRST_COMPLETED)
        if not self._ready.done():
            error = self.error()
            raise error if error is not None else InvalidCommand(f"{self._what} did not start")
        self._host_task = asyncio.current_task()
        assert self._value is not None
        return self._value

    async def close(self, *, immediate: bool) -> None:
        """End the run (gracefully unless ``immediate``) and wait until it has ended; a
        cancellation meanwhile makes it immediate (and is re-raised once the run ended)."""
        self.exiting = True
        if immediate:
            self.cancel(self._scope)
        else:
            self._exit.set()
        cancelled = False
        while not self._done.done():
            try:
                await asyncio.shield(self._done)
            except asyncio.CancelledError:
                if self._done.done():
                    break
                cancelled = True
                self.cancel(self._scope)
        if cancelled:
            raise asyncio.CancelledError

    def error(self) -> BaseException | None:
        """What ended the run, if it ended by an exception (single-member groups unwrapped)."""
        if isinstance(self._outcome, outcome.Error):
            return sole_exception(self._outcome.error)
        return None

    def uncancel_host(self) -> None:
        """Take back the cancellation a crash sent the host task (see ``crashed``)."""
        if self._host_task is not None and self._host_task.cancelling():
            self._host_task.uncancel()

    # -- the run (trio side) --------------------------------------------------------------

    async def _main(self) -> None:
        self._context = contextvars.copy_context()
        try:
            async with trio.open_nursery() as calls:
                self._calls = calls
                try:
                    async with self._setup(self._scope) as value:
                        self._value = value
                        settle(self._ready, None)
                        await self._exit.wait()
                finally:
                    self.closed = True
                    for hook in self.at_exit:
                        hook()
                    calls.cancel_scope.cancel()
        except BaseExceptionGroup as group:
            # The calls never raise into the nursery: a group wraps what ``setup`` raised.
            sole = sole_exception(group)
            if sole is group:
                raise
            raise sole from None

    def _on_done(self, result: outcome.Outcome[None]) -> None:
        """The run ended (called on the loop's thread)."""
        self._outcome = result
        self.closed = True
        if _GUESTS.get(self.loop) is self:
            del _GUESTS[self.loop]
        settle(self._done, None)
        if not self.exiting and self._host_task is not None and not self._host_task.done():
            self.crashed = True
            self._host_task.cancel(f"the {self._what} guest run ended")

    # -- calls (asyncio → trio) -----------------------------------------------------------

    @property
    def nursery(self) -> trio.Nursery:
        """The calls nursery (trio side only): for tasks that outlive one call."""
        assert self._calls is not None
        return self._calls

    def cancel(self, scope: trio.CancelScope) -> None:
        """Cancel ``scope`` from asyncio (at once if it is not entered yet; harmless once the
        run has ended)."""
        scope.cancel()

    async def call(self, fn: Callable[[], Awaitable[V]], refusal: Callable[[], LiveError]) -> V:
        """Await ``fn()`` in a trio task of the guest and return its value (or raise its
        exception); ``refusal()`` is raised instead when the run is over or ends first."""
        if self.closed:
            raise refusal()
        future: asyncio.Future[V] = self.loop.create_future()
        call = _Call(fn, future, refusal)
        try:
            self._context.run(self.nursery.start_soon, self._run, call)
        except RuntimeError:  # pragma: no cover - the nursery closed: closed is set first
            raise refusal() from None
        try:
            return await future
        except asyncio.CancelledError:
            if not call.done:
                call.finished = self.loop.create_future()
                call.scope.cancel()
                await wait_out(call.finished)
            raise

    async def _run(self, call: _Call) -> None:
        value: Any = _UNSET
        try:
            with call.scope:
                value = await call.fn()
        except trio.Cancelled:
            _fail(call.future, call.refusal())  # the run is ending
            raise
        except Exception as exc:
            _fail(call.future, exc)
        except BaseException:
            _fail(call.future, call.refusal())
            raise
        else:
            if value is not _UNSET:
                settle(call.future, value)
            # else: cancelled by its caller, whose future is cancelled already
        finally:
            self._finish(call)

    @staticmethod
    def _finish(call: _Call) -> None:
        call.done = True
        if call.finished is not None:
            settle(call.finished, None)
