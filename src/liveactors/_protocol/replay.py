"""Client messages the service may not have consumed yet, kept for replay after a reconnect.

Each entry is a message sent since the last point the service confirmed. With transparent
resumption the service says which ones it consumed (``lastConsumedClientMessageIndex``, counted
per connection, setup = 0); the buffer drops those. Entries are re-indexed as they are replayed
on a new connection, because the numbering restarts there. The buffer is not changed until the
new connection confirms, so a connection that fails mid-replay can be retried from the same
buffer.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import attrs

__all__ = ["ReplayBuffer", "ReplayEntry"]


@attrs.define
class ReplayEntry:
    """One client message and the index it was last sent with (0 = not sent on this link)."""

    message: dict[str, Any] = attrs.field(repr=False)
    #: Client index on the connection it was last sent on.
    index: int
    #: Which connection (1, 2, ...) it was last sent on.
    connection: int


@attrs.define
class ReplayBuffer:
    """Ordered record of unconfirmed client messages."""

    entries: list[ReplayEntry] = attrs.field(factory=list)

    def __len__(self) -> int:
        return len(self.entries)

    def __iter__(self) -> Iterator[ReplayEntry]:
        return iter(self.entries)

    def sent(self, message: dict[str, Any], index: int, connection: int) -> None:
        """Record a message just sent with ``index`` on ``connection``."""
        self.entries.append(ReplayEntry(message, index, connection))

    def resent(self, entry: ReplayEntry, index: int, connection: int) -> None:
        """Record that ``entry`` was replayed with a new index on a new connection."""
        entry.index = index
        entry.connection = connection

    def consumed_through(self, index: int, connection: int) -> int:
        """Drop entries that ``connection`` consumed up to ``index``; returns how many."""
        keep = [e for e in self.entries if not (e.connection == connection and e.index <= index)]
        dropped = len(self.entries) - len(keep)
        self.entries = keep
        return dropped

    def clear(self) -> None:
        """Everything so far is confirmed."""
        self.entries.clear()

    def messages(self) -> list[dict[str, Any]]:
        """The unconfirmed messages, oldest first."""
        return [e.message for e in self.entries]
