"""When to ping a quiet connection, and when to give it up (no trio, no sockets).

The connection's writer consults this on every pass of its loop and wakes for it when idle, so
keepalive costs no task of its own: a task per conversation was 3 KiB of memory at 10,000
conversations.
"""

from __future__ import annotations

import attrs

from ._errors import ConnectionLost

__all__ = ["Keepalive"]


@attrs.define
class Keepalive:
    """A ping after ``interval`` seconds without a byte from the peer; if nothing at all
    arrives within ``timeout`` seconds of that ping, the connection is dead (a socket that
    died without a FIN, a NAT that forgot it).

    A read does not wake the writer, so it sees a ping answered only when it next looks, at
    the latest when the ping's timeout is up: on a quiet connection that is one ping per
    ``timeout`` seconds, and a connection that dies just after a pong is given up at most
    ``interval + 2 * timeout`` seconds later.
    """

    interval: float
    timeout: float
    #: When the unanswered ping went out, and the peer's read count then.
    _pinged_at: float | None = None
    _reads_then: int = 0
    #: Silence before this proves nothing (the reader was held up, not reading).
    _excused_until: float = float("-inf")

    def due(self, last_received: float, reads: int) -> float:
        """The time of the next keepalive action, given the peer's last bytes and read count."""
        if self._pinged_at is not None and reads != self._reads_then:
            self._pinged_at = None  # something arrived since the ping: it is alive
        if self._pinged_at is None:
            return max(last_received, self._excused_until) + self.interval
        return self._pinged_at + self.timeout

    def act(self, now: float, reads: int) -> None:
        """It is due: record a ping about to be sent, or raise if the last one went unanswered."""
        if self._pinged_at is not None:
            raise ConnectionLost(
                f"no answer to a keepalive ping within {self.timeout:g}s: the connection is dead"
            )
        self._pinged_at, self._reads_then = now, reads

    def excuse(self, now: float) -> None:
        """Nobody was reading the socket until ``now`` (a ``block`` subscriber held the reader):
        no answer could have been seen, so start over rather than give the connection up."""
        self._pinged_at = None
        self._excused_until = now
