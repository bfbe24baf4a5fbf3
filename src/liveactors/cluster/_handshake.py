"""What a fresh Redis connection says before its first command (``AUTH``, ``SELECT``,
``CLIENT SETNAME``, ``CLIENT ID``, ``ROLE``, in one write), and asking the sentinels where the
primary is now.

Every connection of the lean client logs in through :func:`handshake`; with Sentinel, each new
one first asks :func:`ask_sentinels`, so a failover is followed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import attrs
import trio

from ._resp import INCOMPLETE, Arg, RespError, RespReader, pack_many
from ._socket import BROKEN, RECEIVE, Endpoint, open_stream

__all__ = ["Login", "ask_sentinels", "handshake"]


@attrs.frozen
class Login:
    """What a connection says before its first command: the user and password (``AUTH``),
    the database (``SELECT``) and its name (``CLIENT SETNAME``)."""

    username: str | None = None
    password: str | None = attrs.field(default=None, repr=False)
    db: int = 0
    name: str | None = None


async def _exchange(
    stream: trio.abc.Stream, reader: RespReader, commands: Sequence[Sequence[Arg]]
) -> list[Any]:
    """Send ``commands`` in one write and read their replies (errors in place)."""
    await stream.send_all(pack_many(commands))
    replies: list[Any] = []
    while len(replies) < len(commands):
        reply = reader.get()
        if reply is INCOMPLETE:
            data = await stream.receive_some(RECEIVE)
            if not data:
                raise ConnectionError("the server closed the connection")
            reader.feed(data)
        else:
            replies.append(reply)
    return replies


async def handshake(
    stream: trio.abc.Stream, reader: RespReader, login: Login, *, primary: bool = False
) -> int:
    """Log in on a fresh connection; returns its client id. ``primary``: refuse a server that
    is not a primary (``ConnectionError``)."""
    commands: list[list[Arg]] = []
    if login.password is not None:
        auth: list[Arg] = ["AUTH", login.password]
        if login.username:
            auth.insert(1, login.username)
        commands.append(auth)
    if login.db:
        commands.append(["SELECT", login.db])
    if login.name:
        commands.append(["CLIENT", "SETNAME", login.name])
    commands.append(["CLIENT", "ID"])
    if primary:
        commands.append(["ROLE"])
    replies = await _exchange(stream, reader, commands)
    for reply in replies:
        if isinstance(reply, RespError):
            raise reply
    if primary:
        role = replies[-1][0].decode() if replies[-1] else "?"
        if role != "master":
            raise ConnectionError(f"the server is not the primary (its role: {role})")
        replies.pop()
    return int(replies[-1])


async def ask_sentinels(
    sentinels: Sequence[Endpoint], service: str, login: Login, *, each: float
) -> tuple[str, int]:
    """Where the primary ``service`` is now, as the first sentinel that knows says
    (``SENTINEL GET-MASTER-ADDR-BY-NAME``), giving each at most ``each`` seconds;
    ``ConnectionError`` naming each one's failure when none does."""
    failures: list[str] = []
    for sentinel in sentinels:
        replies: list[Any] | None = None
        with trio.move_on_after(each):
            try:
                replies = await _ask_sentinel(sentinel, service, login)
            except BROKEN as exc:
                failures.append(f"{sentinel}: {type(exc).__name__}: {exc}")
                continue
        if replies is None:
            failures.append(f"{sentinel}: no answer in time")
            continue
        error = next((r for r in replies if isinstance(r, RespError)), None)
        if error is not None:
            failures.append(f"{sentinel}: {type(error).__name__}: {error}")
        elif not replies[-1]:
            failures.append(f"{sentinel}: it knows no primary named {service!r}")
        else:
            host, port = replies[-1]
            return host.decode(), int(port)
    raise ConnectionError(f"no sentinel gave the primary {service!r}: " + "; ".join(failures))


async def _ask_sentinel(sentinel: Endpoint, service: str, login: Login) -> list[Any]:
    stream = await open_stream(sentinel)
    try:
        commands: list[list[Arg]] = []
        if login.password is not None:
            auth: list[Arg] = ["AUTH", login.password]
            if login.username:
                auth.insert(1, login.username)
            commands.append(auth)
        commands.append(["SENTINEL", "GET-MASTER-ADDR-BY-NAME", service])
        return await _exchange(stream, RespReader(), commands)
    finally:
        await trio.aclose_forcefully(stream)
