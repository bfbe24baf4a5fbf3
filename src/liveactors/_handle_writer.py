"""The handle writer: resumption handles reach the :class:`~liveactors.HandleStore` in batches,
behind the conversations' backs, and survive the store being down for a while.

* **Batches.** Conversations hand every resumable handle to :meth:`HandleWriter.save` (sync,
  never waits); one task (:meth:`HandleWriter.run`) writes what piled up since its last write
  in one batch: a burst of handles of one name costs one write, the newest wins.
* **Newest first.** :meth:`HandleWriter.load` answers from what is queued or being written
  before it asks the store, so a name stopped and spawned again at once resumes from its newest
  handle whatever the store (a write running in a worker thread included).
* **Store failures are retried, not dropped.** A failed write goes back in the queue (under
  anything newer of the same name) and is retried with a backoff from ``_RETRY_FIRST`` to
  ``_RETRY_MAX`` seconds, logged at ERROR and counted in ``errors``, for as long as the store
  stays down; when it comes back, the newest handle of every name is written. The queue holds
  at most ``max_pending`` names: past that the oldest queued name is dropped (counted in
  ``dropped``) — a bounded loss instead of unbounded memory during a long outage.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Final

import trio

from ._handles import HandleStore, StoredHandle

__all__ = ["HandleWriter"]

log = logging.getLogger("liveactors.orchestrator")

#: First and longest wait before retrying a failed write (doubling in between).
_RETRY_FIRST: Final = 0.5
_RETRY_MAX: Final = 30.0

#: Most names waiting to be written; 10,000 handles are about 10 MB.
MAX_PENDING: Final = 10_000


class HandleWriter:
    """Queues handles for ``store`` and writes them (see the module docstring)."""

    def __init__(self, store: HandleStore, *, max_pending: int = MAX_PENDING) -> None:
        self.store = store
        self.max_pending = max_pending
        #: Waiting to be written: name -> handle (with when it arrived), or None to delete.
        #: Insertion order is arrival order: a name queued again moves to the end.
        self._pending: dict[str, StoredHandle | None] = {}
        #: The batch being written now (load answers from it until it is in the store).
        self._writing: dict[str, StoredHandle | None] = {}
        self._queued = trio.Event()
        self._lock = trio.Lock()
        #: Failed writes (attempts), and names dropped from a full queue.
        self.errors = 0
        self.dropped = 0
        self._down_since: float | None = None

    @property
    def pending(self) -> int:
        """Names waiting to be written (or being written)."""
        return len(self._pending.keys() | self._writing.keys())

    # -- queueing (sync: conversations never wait for the store) -------------------------------

    def save(self, name: str, handle: str) -> None:
        """Queue ``handle`` as the newest of ``name``."""
        self._queue(name, StoredHandle(handle, time.time()))

    def delete(self, name: str) -> None:
        """Queue forgetting ``name``."""
        self._queue(name, None)

    def _queue(self, name: str, value: StoredHandle | None) -> None:
        self._pending.pop(name, None)
        self._pending[name] = value
        self._trim()
        self._queued.set()

    def _trim(self) -> None:
        while len(self._pending) > self.max_pending:
            name = next(iter(self._pending))
            del self._pending[name]
            self.dropped += 1
            log.error(
                "%s: resumption handle dropped, %d are waiting for the handle store already",
                name,
                self.max_pending,
            )

    # -- reading ---------------------------------------------------------------------------------

    async def load(self, name: str) -> StoredHandle | None:
        """The newest handle of ``name``: queued, being written, or else stored."""
        for batch in (self._pending, self._writing):
            if name in batch:
                await trio.lowlevel.checkpoint()
                return batch[name]
        return await self.store.load(name)

    async def resumable(self, name: str, validity: float) -> str | None:
        """The newest handle of ``name`` if it is younger than ``validity`` seconds (what
        ``spawn`` resumes from), else None."""
        stored = await self.load(name)
        if stored is None:
            return None
        age = stored.age()
        if age >= validity:
            log.info(
                "%s: stored handle is %.0fs old (validity %.0fs); starting fresh",
                name,
                age,
                validity,
            )
            return None
        return stored.handle

    # -- writing ---------------------------------------------------------------------------------

    async def run(self) -> None:
        """The writer task: write each batch as it piles up; after a failure, retry with a
        growing backoff until the store takes it."""
        delay = _RETRY_FIRST
        while True:
            if not self._pending:
                await self._queued.wait()
            self._queued = trio.Event()
            if await self.flush():
                delay = _RETRY_FIRST
            else:
                await trio.sleep(delay)
                delay = min(2 * delay, _RETRY_MAX)

    async def flush(self) -> bool:
        """Write everything queued now (one batch; deletions too). False if the store failed:
        the batch stays queued for the writer task to retry."""
        async with self._lock:
            while self._pending:
                self._writing, self._pending = self._pending, {}
                try:
                    await _write(self.store, self._writing)
                except Exception as exc:
                    self._requeue()
                    self._failed(exc)
                    return False
                except BaseException:
                    self._requeue()  # cancelled mid-write: the final flush writes it again
                    raise
                self._writing = {}
                self._recovered()
        return True

    async def drain(self, patience: float) -> None:
        """Write everything queued, retrying for at most ``patience`` seconds (at shutdown); an
        ERROR says how many handles are lost if the store is still down then."""
        delay = _RETRY_FIRST
        with trio.move_on_after(patience):
            while not await self.flush():
                await trio.sleep(delay)
                delay = min(2 * delay, _RETRY_MAX)
        if self.pending:
            log.error(
                "could not save %d resumption handle(s) before shutting down: the handle store "
                "is down; those conversations start fresh sessions when spawned again",
                self.pending,
            )

    def _requeue(self) -> None:
        """Put the batch that failed back in the queue, under what arrived since."""
        failed, self._writing = self._writing, {}
        self._pending = failed | self._pending
        self._trim()

    def _failed(self, exc: Exception) -> None:
        self.errors += 1
        first = self._down_since is None
        if first:
            self._down_since = trio.current_time()
        # The traceback once per outage; after that, one line per retry (at most one every
        # _RETRY_MAX seconds) says it is still down.
        log.error(
            "could not save %d resumption handle(s), retrying: %s: %s",
            len(self._pending),
            type(exc).__name__,
            exc,
            exc_info=exc if first else None,
        )

    def _recovered(self) -> None:
        if self._down_since is not None:
            log.info(
                "the handle store is back after %.1fs; queued handles saved",
                trio.current_time() - self._down_since,
            )
            self._down_since = None


async def _write(store: HandleStore, batch: Mapping[str, StoredHandle | None]) -> None:
    """Save and delete ``batch``: the saves in one call when the store can (``save_many``),
    else one by one. Retrying a batch that half succeeded is harmless: saves overwrite."""
    saves = {name: h.handle for name, h in batch.items() if h is not None}
    if saves:
        save_many = getattr(store, "save_many", None)
        if save_many is not None and getattr(store, "keeps_save_times", False):
            # The store compares save times (newest wins across processes): give it when each
            # handle arrived, not when this batch, perhaps a retry, is written.
            await save_many({name: h for name, h in batch.items() if h is not None})
        elif save_many is not None:
            await save_many(saves)
        else:
            for name, handle in saves.items():
                await store.save(name, handle)
    for name, value in batch.items():
        if value is None:
            await store.delete(name)
