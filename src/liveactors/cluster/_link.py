"""One physical connection of a :class:`~._connection.RespConnection`: its transport, its
parser, its FIFO of callers waiting for replies, and the tasks that write, read and watch it.

* **Writing.** A caller appends its bytes to the link's outbox and its waiter to the FIFO of
  callers waiting for a reply, in the same step (so the FIFO's order is the order on the
  wire). If no other caller is writing, it becomes the writer (:meth:`Link.flush`): it lets
  the scheduler run the other tasks that are ready once (their commands join the outbox),
  then sends the whole outbox with one system call, straight to the socket. Whatever the
  socket does not take at once is written by :meth:`Link.write`, shielded from the caller's
  cancellation (a half-written command would leave the connection unusable) and bounded by
  the timeout; commands added meanwhile go with it.
* **Reading.** One reader task per link (:meth:`Link.read`) parses replies
  (``_resp.RespReader``) and resolves the FIFO's head with each. A caller waits parked on
  trio's lowest-level primitive (:class:`Waiter`); one cancelled while it waits leaves its
  waiter in the FIFO: its reply is read and dropped, and the replies after it still find
  their callers. A ``READONLY`` reply (the server was demoted) breaks the link once it is
  delivered.
* **Watching.** A watchdog (:meth:`Link.watchdog`) gives the link up when the reply at the
  FIFO's head is past its deadline (every reply behind a late one waits behind it too).
"""

from __future__ import annotations

from collections import deque
from typing import Any

import trio

from ._resp import INCOMPLETE, ProtocolError, ReadOnlyError, RespReader
from ._socket import BROKEN, Endpoint, Transport

__all__ = ["Link", "Waiter"]


class Waiter:
    """A caller waiting for ``count`` replies (its task, once it parks)."""

    __slots__ = ("count", "deadline", "done", "error", "replies", "task")

    def __init__(self, count: int, deadline: float) -> None:
        self.count = count
        self.deadline = deadline
        self.replies: list[Any] = []
        self.error: BaseException | None = None
        self.done = False
        self.task: trio.lowlevel.Task | None = None

    def finish(self) -> None:
        self.done = True
        task, self.task = self.task, None
        if task is not None:
            trio.lowlevel.reschedule(task)

    async def wait(self) -> None:
        """Until :meth:`finish` (a cancelled caller leaves; its replies are dropped)."""
        if self.done:
            return
        self.task = trio.lowlevel.current_task()

        def abort(_: Any) -> trio.lowlevel.Abort:
            self.task = None
            return trio.lowlevel.Abort.SUCCEEDED

        await trio.lowlevel.wait_task_rescheduled(abort)


class Link:
    """One physical connection: its transport, its parser, its FIFO of waiting callers (see
    the module docstring). ``timeout`` bounds a write that the socket did not take at once."""

    __slots__ = (
        "client_id",
        "endpoint",
        "error",
        "outbox",
        "pending",
        "reader",
        "scope",
        "timeout",
        "transport",
        "watch",
        "writing",
    )

    def __init__(
        self,
        transport: Transport,
        reader: RespReader,
        client_id: int,
        endpoint: Endpoint,
        timeout: float,
    ) -> None:
        self.transport = transport
        self.reader = reader
        self.client_id = client_id
        self.endpoint = endpoint
        self.timeout = timeout
        self.pending: deque[Waiter] = deque()
        self.outbox: list[bytes | memoryview] = []
        self.writing = False
        self.error: BaseException | None = None
        #: The reader task's and the watchdog's.
        self.scope = trio.CancelScope()
        self.watch = trio.CancelScope()

    def fail(self, error: BaseException) -> None:
        """Broken: every waiting caller gets ``error``; the reader task ends and closes it."""
        if self.error is not None:
            return
        self.error = error
        self.outbox.clear()
        pending, self.pending = self.pending, deque()
        for waiter in pending:
            waiter.error = error
            waiter.finish()
        self.scope.cancel()
        self.watch.cancel()

    async def flush(self) -> None:
        """Send the outbox: after one pass of the scheduler, so that the commands the other
        tasks running now call go in the same write (one system call for all); straight to
        the socket when it takes it all, else through :meth:`write`."""
        self.writing = True
        try:
            await trio.lowlevel.cancel_shielded_checkpoint()
            if self.error is not None:
                return
            outbox = self.outbox
            data = outbox[0] if len(outbox) == 1 else b"".join(outbox)
            outbox.clear()
            try:
                sent = self.transport.send_now(data)
            except OSError as exc:
                self.fail(exc)
                return
            if sent == len(data):
                return
            outbox.append(memoryview(data)[sent:] if sent else data)
        finally:
            self.writing = False
        await self.write()

    async def write(self) -> None:
        """Write the outbox, and what is added to it meanwhile, until it is empty; shielded
        (a command half written would break the connection for every caller) and bounded."""
        self.writing = True
        try:
            with trio.CancelScope(shield=True), trio.move_on_after(self.timeout) as bounded:
                while self.outbox and self.error is None:
                    data = self.outbox[0] if len(self.outbox) == 1 else b"".join(self.outbox)
                    self.outbox.clear()
                    await self.transport.send_all(data)
            if bounded.cancelled_caught:
                self.fail(TimeoutError(f"could not write to {self.endpoint} in time"))
        except BROKEN as exc:
            self.fail(exc)
        finally:
            self.writing = False

    async def read(self) -> None:
        """The reader task's loop: each reply to the FIFO's head, until the link breaks (or
        :meth:`fail` ends it)."""
        transport, reader, pending = self.transport, self.reader, self.pending
        streak = 0
        with self.scope:
            try:
                while True:
                    data = await transport.receive()
                    if not data:
                        raise ConnectionError("the server closed the connection")
                    reader.feed(data)
                    while True:
                        reply = reader.get()
                        if reply is INCOMPLETE:
                            break
                        if not pending:
                            raise ProtocolError("a reply that no command asked for")
                        waiter = pending[0]
                        waiter.replies.append(reply)
                        if len(waiter.replies) == waiter.count:
                            pending.popleft()
                            waiter.finish()
                        if isinstance(reply, ReadOnlyError):
                            # Demoted: the next connection asks where the primary is.
                            raise ConnectionError("the server is a replica now")
                    streak += 1
                    if streak == 16:  # data kept coming: let the others run
                        streak = 0
                        await trio.lowlevel.checkpoint()
            except BROKEN as exc:
                self.fail(exc)

    async def watchdog(self) -> None:
        """Give the link up when the reply at the FIFO's head is late (every reply behind it
        waits behind it too)."""
        every = min(1.0, self.timeout / 4)
        with self.watch:
            while True:
                await trio.sleep(every)
                if self.pending and self.pending[0].deadline < trio.current_time():
                    self.fail(TimeoutError(f"no reply from {self.endpoint} in time"))
