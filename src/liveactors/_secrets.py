"""Secrets that must never show in an exception's text or a log record.

Credentials (API keys, tokens) and a conversation's resumption handles are replaced by
``<redacted>`` wherever the transport turns what a peer said into an error, and in the log of a
trio-websocket server in the same process (the fake one), which logs close reasons verbatim.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

__all__ = ["MIN_SECRET", "REDACTED", "SECRET_FILTER", "Secrets", "longest_first", "redact"]

REDACTED = "<redacted>"

#: A string shorter than this is never treated as a secret: redacting it would mangle text.
MIN_SECRET = 4


class Secrets:
    """Strings that must never show in an exception's text or a log record: a conversation's
    resumption handles (a close reason may quote the handle it refuses).

    Shared and growing: a conversation keeps one, adds each handle as it arrives, and passes it
    on every :class:`~liveactors.ConnectRequest` (``secrets=``). A link reads it when a close
    arrives, so a handle learnt in the middle of a connection is hidden as well as the one it
    resumed with.
    Only the newest ``keep`` are kept: a conversation gets a handle per turn, and a service
    echoes the handle in use, not one from hours ago. (Credentials in a request's headers are
    redacted without being listed here.)
    """

    __slots__ = ("_items", "_keep")

    def __init__(self, initial: Iterable[str | None] = (), *, keep: int = 16) -> None:
        self._keep = keep
        self._items: dict[str, None] = {}  # insertion-ordered set, oldest first
        for secret in initial:
            self.add(secret)

    def __repr__(self) -> str:
        return f"<Secrets: {len(self._items)} hidden>"

    def __iter__(self) -> Iterator[str]:
        return iter(tuple(self._items))

    def __len__(self) -> int:
        return len(self._items)

    def add(self, secret: str | None) -> None:
        """Hide ``secret`` from now on (None, or a string too short to be one, is ignored)."""
        if not secret or len(secret) < MIN_SECRET:
            return
        self._items.pop(secret, None)
        self._items[secret] = None
        while len(self._items) > self._keep:
            del self._items[next(iter(self._items))]

    def redact(self, text: str) -> str:
        """``text`` with every secret replaced by ``<redacted>``."""
        return redact(text, longest_first(self._items))


def longest_first(secrets: Iterable[str]) -> tuple[str, ...]:
    # Longest first, so a bare token inside "Token <token>" (or a handle that is the prefix of
    # a newer one) is replaced as a whole.
    return tuple(sorted(set(secrets), key=len, reverse=True))


def redact(text: str, secrets: tuple[str, ...]) -> str:
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


class SecretFilter(logging.Filter):
    """Redacts the secrets of open connections from trio-websocket's log records (a server in
    the same process, such as the fake one, logs close reasons, which may echo anything)."""

    def __init__(self) -> None:
        super().__init__()
        self.active: Counter[str] = Counter()
        #: The growing registries of open connections (read at each record: they change).
        self.registries: Counter[Secrets] = Counter()
        self._installed = False

    def filter(self, record: logging.LogRecord) -> bool:
        if self.active or self.registries:
            found = set(self.active)
            for registry in self.registries:
                found.update(registry)
            try:
                message = record.getMessage()
            except Exception:  # a malformed record is the handler's business, not ours
                return True
            redacted = redact(message, longest_first(found))
            if redacted is not message:
                record.msg, record.args = redacted, None
        return True

    @contextmanager
    def watching(self, credentials: tuple[str, ...], registry: Secrets | None) -> Iterator[None]:
        """Hide ``credentials`` and what ``registry`` holds while a connection is open.

        The filter goes onto trio-websocket's logger the first time it is needed, not at
        import: only a trio-websocket server in the same process (the fake one) logs there.
        """
        if not self._installed:
            logging.getLogger("trio-websocket").addFilter(self)
            self._installed = True
        self.active.update(credentials)
        if registry is not None:
            self.registries[registry] += 1
        try:
            yield
        finally:
            self.active.subtract(credentials)
            self.active += Counter()  # drop the zero counts
            if registry is not None:
                self.registries[registry] -= 1
                self.registries += Counter()


#: The one filter of the process (installed on first use).
SECRET_FILTER = SecretFilter()
