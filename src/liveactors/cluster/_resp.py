"""RESP2, the protocol of Redis and Valkey, without any I/O: commands packed into bytes, replies
parsed out of the bytes received (by hiredis, the C parser redis-py uses).

Replies are what hiredis makes of them: bulk and status strings as ``bytes`` (never decoded
here: a stream field may hold raw bytes), integers as ``int``, nil as ``None``, arrays as
``list``. An error reply is a :class:`RespError` (a subclass for the codes the cluster acts
on): :meth:`RespReader.get` returns it, so a pipeline's errors stay in their places, and the
connection raises it for the command it answers. :func:`text` decodes a reply (UTF-8, nested
lists too) where the caller expects text.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any, Final, TypeAlias

import hiredis

__all__ = [
    "INCOMPLETE",
    "Arg",
    "AuthenticationError",
    "NoScriptError",
    "ProtocolError",
    "ReadOnlyError",
    "RespError",
    "RespReader",
    "StreamEntry",
    "pack",
    "pack_many",
    "script_sha",
    "stream_entries",
    "stream_id",
    "text",
]

#: What a command's arguments may be (``bool`` and ``None`` are refused: say what you mean).
Arg: TypeAlias = str | bytes | int | float
#: One stream entry: its id and its fields (names decoded, values as stored).
StreamEntry: TypeAlias = tuple[str, dict[str, bytes]]


class RespError(Exception):
    """An error reply from the server: ``code`` is its first word (``ERR``, ``NOSCRIPT``,
    ``WRONGPASS``, ``MOVED``, ...), ``message`` the whole text."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
        self.code = message.partition(" ")[0]


class NoScriptError(RespError):
    """``NOSCRIPT``: the server does not have the script (it did not run)."""


class AuthenticationError(RespError):
    """``WRONGPASS`` / ``NOAUTH``: the login was refused, or one is needed."""


class ReadOnlyError(RespError):
    """``READONLY``: the server is a replica (a failover demoted it)."""


class ProtocolError(ConnectionError):
    """The bytes received are not RESP: the connection cannot be trusted any more."""


_ERRORS: Final[dict[str, type[RespError]]] = {
    "NOSCRIPT": NoScriptError,
    "WRONGPASS": AuthenticationError,
    "NOAUTH": AuthenticationError,
    "READONLY": ReadOnlyError,
}


def _error(message: str) -> RespError:
    return _ERRORS.get(message.partition(" ")[0], RespError)(message)


class _Incomplete:
    def __repr__(self) -> str:
        return "INCOMPLETE"


#: What :meth:`RespReader.get` returns while no whole reply has been received.
INCOMPLETE: Final[Any] = _Incomplete()


class RespReader:
    """Parses the replies out of the bytes :meth:`feed` is given, in order."""

    __slots__ = ("_reader",)

    def __init__(self) -> None:
        self._reader = hiredis.Reader(
            notEnoughData=INCOMPLETE, replyError=_error, protocolError=ProtocolError
        )

    def feed(self, data: bytes | bytearray) -> None:
        self._reader.feed(data)  # type: ignore[arg-type]  # any buffer will do

    def get(self) -> Any:
        """The next whole reply, or :data:`INCOMPLETE`; :class:`ProtocolError` if the bytes
        are not RESP."""
        return self._reader.gets()

    def has_data(self) -> bool:
        """Bytes are buffered (part of a reply, or replies not taken yet)."""
        return bool(self._reader.has_data())


def pack(args: Sequence[Arg]) -> bytes:
    """One command as RESP: an array of bulk strings (``str`` as UTF-8, numbers in decimal)."""
    if not args:
        raise ValueError("a command needs at least its name")
    if isinstance(args, list):
        args = tuple(args)
    return hiredis.pack_command(args)  # type: ignore[arg-type, no-any-return]


def pack_many(commands: Sequence[Sequence[Arg]]) -> bytes:
    """Several commands, one after another (a pipeline)."""
    return b"".join(pack(args) for args in commands)


def script_sha(source: str) -> str:
    """The SHA1 the server names ``source`` by (``EVALSHA``, ``SCRIPT LOAD``)."""
    sha = _SHAS.get(source)
    if sha is None:
        if len(_SHAS) >= 256:
            _SHAS.clear()
        sha = _SHAS[source] = hashlib.sha1(source.encode()).hexdigest()
    return sha


_SHAS: dict[str, str] = {}


def text(reply: Any) -> Any:
    """``reply`` with every bulk string decoded as UTF-8 (lists too, nested); other values
    (integers, nil, errors) as they are."""
    if isinstance(reply, bytes):
        return reply.decode()
    if isinstance(reply, list):
        return [text(item) for item in reply]
    return reply


def stream_id(entry_id: str) -> tuple[int, int]:
    """A stream id (``<ms>-<seq>``) as numbers, to compare."""
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def stream_entries(reply: Any) -> list[StreamEntry]:
    """The entries of an ``XRANGE`` reply (or of one stream of an ``XREAD`` reply)."""
    out: list[StreamEntry] = []
    for entry_id, flat in reply or ():
        fields: dict[str, bytes] = {}
        if flat:
            it = iter(flat)
            for name in it:
                fields[name.decode()] = next(it)
        out.append((entry_id.decode(), fields))
    return out
