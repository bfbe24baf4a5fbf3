"""The record writer of an owned conversation: commits the journal's batches (events, state,
handle) with the COMMIT script, one at a time and in order, under the lease's fencing token.

A batch that fails for want of Redis is retried until the lease runs out here; a batch the
record refuses (it carries a newer fence) ends the conversation here (:class:`LeaseLost`).
Each batch is numbered, so one sent again after its reply was lost is not applied twice.
After a lease ran out here, :meth:`RecordWriter.write_late` still writes what was recorded,
if no other worker took the conversation meanwhile.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Final

import trio

from .._errors import LeaseLost
from . import _scripts
from ._journal import Batch
from ._json import dumps
from ._redis import ClusterUnavailable

if TYPE_CHECKING:
    from ._owned import Owned

__all__ = ["RETAIN", "RecordWriter"]

log = logging.getLogger("liveactors.cluster")

#: How long a finished conversation's record and events stay readable.
RETAIN: Final = 3600


class RecordWriter:
    """Writes ``owned``'s journal to its record (see the module docstring)."""

    def __init__(self, owned: Owned) -> None:
        self.owned = owned
        #: Set when the writer finished a batch or went idle (what a flush waits on).
        self._progress = trio.Event()
        self._writing = False
        #: Batches committed under this lease (a retried batch keeps its number).
        self._batches = 0
        #: The batches taken and not written yet, oldest first: the script's arguments, and the
        #: secrets (the handle) they hold, which an error must never show.
        self._unwritten: list[tuple[list[Any], list[str]]] = []

    async def run(self) -> None:
        """Commit each batch the journal has, as it comes, until cancelled."""
        journal = self.owned.journal
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

    async def flush(self) -> None:
        """Until everything recorded is written (or the lease is gone)."""
        journal = self.owned.journal
        assert journal is not None
        if journal.pending:
            journal.poke()  # lazy events too: now
        while not self.owned.lost and (journal.pending or self._writing):
            self._progress = trio.Event()
            await self._progress.wait()

    async def _commit(self, batch: Batch) -> None:
        """Write ``batch`` (after any earlier one not written yet), retrying while Redis is
        unreachable, until the lease runs out here."""
        owned = self.owned
        self._queue(batch)
        delay = 0.05
        while self._unwritten:
            if not owned.may_act():
                raise LeaseLost(f"{owned.name}: the lease ran out before the record was written")
            try:
                await self._write(self._unwritten[0])
            except ClusterUnavailable as exc:
                log.warning("%s: %s; retrying", owned.name, exc)
                await trio.sleep(delay)
                delay = min(1.0, delay * 2)

    async def _write(self, batch: tuple[list[Any], list[str]]) -> None:
        """One COMMIT; raises :class:`LeaseLost` when the record carries a newer owner."""
        owned = self.owned
        args, secrets = batch
        written = await owned.worker.redis.script(
            f"write the record of {owned.name!r}",
            _scripts.COMMIT,
            owned.keys.all(),
            args,
            secrets=secrets,
        )
        if not written:
            self._unwritten.clear()
            raise LeaseLost(f"{owned.name}: another worker owns the conversation now")
        self._unwritten.pop(0)

    async def write_late(self, patience: float) -> None:
        """After the lease ran out here: write what was recorded, if no other worker took
        the conversation meanwhile (the fence says), retrying for ``patience`` seconds. An
        answer given while Redis was unreachable is then not asked again by the next owner."""
        journal = self.owned.journal
        if self.owned.taken or journal is None:
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
        owned = self.owned
        state = dict(batch.state)
        if batch.final is not None:
            state["retain"] = RETAIN
        self._batches += 1
        # (Compact JSON, which the script reads with cjson: nothing in the state is a float
        # that is not finite.)
        args: list[Any] = [owned.fence, owned.worker.events_cap, dumps(state), self._batches]
        for entry in batch.events:
            args.extend(entry)
        self._unwritten.append((args, [batch.handle] if batch.handle is not None else []))
