"""Durable resumption handles: spawning a known name resumes its session after a restart.

A :class:`HandleStore` maps conversation names to their latest resumable handle and the wall-clock
time it was saved. The service keeps a handle valid for 2 hours after the session last ended;
the orchestrator resumes from a stored handle younger than ``validity`` and otherwise starts
fresh (and a refused handle starts fresh too, so a stale store never breaks a conversation).

* :class:`MemoryHandleStore`: the default; lives as long as the process.
* :class:`SQLiteHandleStore`: a file (created with mode 0600, since handles are credentials to a
  conversation) written off the event loop in a worker thread of its own: one thread at a time,
  taken in call order (trio's limiters are fair), so a load issued after a save sees it; and
  never one of trio's default worker threads, which sync tools may all be holding.

Both also have ``save_many(handles)``, which the orchestrator uses when a store has it: one
batch (one transaction, one worker-thread hop) for every handle that arrived since the last
write. A store of your own only needs the three methods of :class:`HandleStore`; it may raise
when its backend is down: the orchestrator keeps the handles queued and retries (see
``_handle_writer.py``).
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

import attrs
import trio

__all__ = [
    "HANDLE_VALIDITY",
    "HandleStore",
    "MemoryHandleStore",
    "SQLiteHandleStore",
    "StoredHandle",
]

#: How long the Developer API keeps a handle valid after the session ended (docs/protocol.md,
#: "Session resumption").
HANDLE_VALIDITY = 2 * 60 * 60.0


@attrs.frozen
class StoredHandle:
    """A saved handle and when it was saved (seconds since the epoch)."""

    handle: str = attrs.field(repr=False)
    saved_at: float

    def age(self, now: float | None = None) -> float:
        """Seconds since it was saved."""
        return (time.time() if now is None else now) - self.saved_at


class HandleStore(Protocol):
    """Where handles persist. Implementations must be safe to call from the trio thread."""

    async def load(self, name: str) -> StoredHandle | None:
        """The handle saved for ``name``, if any."""
        ...

    async def save(self, name: str, handle: str) -> None:
        """Remember ``handle`` as the latest for ``name``."""
        ...

    async def delete(self, name: str) -> None:
        """Forget ``name`` (its session ended for good)."""
        ...


class MemoryHandleStore:
    """Handles kept in a dict for the life of the process."""

    def __init__(self) -> None:
        self._handles: dict[str, StoredHandle] = {}

    def __repr__(self) -> str:
        return f"<MemoryHandleStore {len(self._handles)} handles>"

    async def load(self, name: str) -> StoredHandle | None:
        """The handle saved for ``name``, if any."""
        await trio.lowlevel.checkpoint()
        return self._handles.get(name)

    async def save(self, name: str, handle: str) -> None:
        """Remember ``handle`` for ``name``."""
        await trio.lowlevel.checkpoint()
        self._handles[name] = StoredHandle(handle, time.time())

    async def save_many(self, handles: Mapping[str, str]) -> None:
        """Remember every ``name -> handle`` of ``handles``."""
        await trio.lowlevel.checkpoint()
        now = time.time()
        for name, handle in handles.items():
            self._handles[name] = StoredHandle(handle, now)

    async def delete(self, name: str) -> None:
        """Forget ``name``."""
        await trio.lowlevel.checkpoint()
        self._handles.pop(name, None)


class SQLiteHandleStore:
    """Handles in a SQLite file (mode 0600); every query runs in a worker thread."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        # Its own limiter, not trio's default one: sync tools run in default worker threads,
        # and forty slow ones would otherwise keep every spawn waiting for its handle. One
        # token: queries are serialised by the connection's lock anyway, and a FIFO limiter
        # makes them run in the order they were issued.
        self._threads = trio.CapacityLimiter(1)

    def __repr__(self) -> str:
        return f"<SQLiteHandleStore {str(self.path)!r}>"

    def _connect(self) -> sqlite3.Connection:
        if self._db is None:
            if not self.path.exists():
                # Create it private before SQLite opens it: handles grant access to sessions.
                fd = os.open(self.path, os.O_CREAT | os.O_RDWR, 0o600)
                os.close(fd)
            os.chmod(self.path, 0o600)
            db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            # WAL + NORMAL survives a crash of the process (not of the machine) and spares an
            # fsync per write; a handle lost to a power cut only means a fresh session.
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute(
                "CREATE TABLE IF NOT EXISTS handles ("
                " name TEXT PRIMARY KEY, handle TEXT NOT NULL, saved_at REAL NOT NULL)"
            )
            self._db = db
        return self._db

    def _load(self, name: str) -> StoredHandle | None:
        with self._lock:
            row = (
                self._connect()
                .execute("SELECT handle, saved_at FROM handles WHERE name = ?", (name,))
                .fetchone()
            )
        return None if row is None else StoredHandle(row[0], row[1])

    def _save(self, name: str, handle: str, saved_at: float) -> None:
        with self._lock:
            self._connect().execute(
                "INSERT INTO handles (name, handle, saved_at) VALUES (?, ?, ?) "
                "ON CONFLICT(name) DO UPDATE SET handle = excluded.handle,"
                " saved_at = excluded.saved_at",
                (name, handle, saved_at),
            )

    def _save_many(self, rows: list[tuple[str, str, float]]) -> None:
        with self._lock:
            db = self._connect()
            db.execute("BEGIN")
            try:
                db.executemany(
                    "INSERT INTO handles (name, handle, saved_at) VALUES (?, ?, ?) "
                    "ON CONFLICT(name) DO UPDATE SET handle = excluded.handle,"
                    " saved_at = excluded.saved_at",
                    rows,
                )
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def _delete(self, name: str) -> None:
        with self._lock:
            self._connect().execute("DELETE FROM handles WHERE name = ?", (name,))

    async def load(self, name: str) -> StoredHandle | None:
        """The handle saved for ``name``, if any."""
        return await trio.to_thread.run_sync(self._load, name, limiter=self._threads)

    async def save(self, name: str, handle: str) -> None:
        """Remember ``handle`` for ``name``."""
        await trio.to_thread.run_sync(self._save, name, handle, time.time(), limiter=self._threads)

    async def save_many(self, handles: Mapping[str, str]) -> None:
        """Remember every ``name -> handle`` of ``handles``, in one transaction."""
        now = time.time()
        rows = [(name, handle, now) for name, handle in handles.items()]
        await trio.to_thread.run_sync(self._save_many, rows, limiter=self._threads)

    async def delete(self, name: str) -> None:
        """Forget ``name``."""
        await trio.to_thread.run_sync(self._delete, name, limiter=self._threads)

    def close(self) -> None:
        """Close the database file."""
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None
