"""The messages of some Redis channels, on a connection of their own: :class:`RespSubscriber`.

It is read by the task that iterates it. After a failure it connects and subscribes again
(with a growing delay), telling its owner (``on_subscribed``: messages published meanwhile are
lost) and reporting each failure (``on_error``). A quiet connection that died without a word
is noticed by TCP keepalive (``_socket.py``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

import trio

from ._handshake import Login, handshake
from ._resp import INCOMPLETE, RespError, RespReader, pack
from ._socket import BROKEN, RECEIVE, Endpoint, Transport, open_stream

__all__ = ["RespSubscriber"]


class RespSubscriber:
    """The messages of some channels, as ``(channel, data)``, on a connection of its own
    (see the module docstring). Read it from one task at a time."""

    def __init__(
        self,
        locate: Callable[[], Awaitable[Endpoint]],
        login: Login,
        channels: Sequence[str],
        *,
        timeout: float,
        primary: bool = False,
        on_subscribed: Callable[[], None] = lambda: None,
        on_error: Callable[[Exception], None] = lambda exc: None,
    ) -> None:
        if not channels:
            raise ValueError("subscribe to at least one channel")
        self._locate = locate
        self._login = login
        self._primary = primary
        self.channels = tuple(channels)
        self.timeout = timeout
        self._on_subscribed = on_subscribed
        self._on_error = on_error
        self._transport: Transport | None = None
        self._reader = RespReader()
        self._delay = 0.1

    def __aiter__(self) -> RespSubscriber:
        return self

    async def __anext__(self) -> tuple[str, bytes]:
        while True:
            if self._transport is None:
                try:
                    await self._subscribe()
                except Exception as exc:  # unreachable, refused, timed out: again, later
                    self._on_error(exc)
                    await trio.sleep(self._delay)
                    self._delay = min(2.0, self._delay * 2)
                    continue
                self._delay = 0.1
                self._on_subscribed()
            try:
                return await self._receive()
            except (*BROKEN, RespError) as exc:
                await self.aclose()
                self._on_error(exc)
                await trio.sleep(self._delay)

    async def aclose(self) -> None:
        transport, self._transport = self._transport, None
        if transport is not None:
            await transport.aclose()

    async def _subscribe(self) -> None:
        try:
            with trio.fail_after(self.timeout):
                stream = await open_stream(await self._locate())
                try:
                    reader = RespReader()
                    await handshake(stream, reader, self._login, primary=self._primary)
                    await stream.send_all(pack(("SUBSCRIBE", *self.channels)))
                    confirmed = 0
                    while confirmed < len(self.channels):
                        reply = reader.get()
                        if reply is INCOMPLETE:
                            data = await stream.receive_some(RECEIVE)
                            if not data:
                                raise ConnectionError("the server closed the connection")
                            reader.feed(data)
                        elif isinstance(reply, RespError):
                            raise reply
                        elif reply[0] == b"subscribe":
                            confirmed += 1
                except BaseException:
                    await trio.aclose_forcefully(stream)
                    raise
        except trio.TooSlowError:
            raise TimeoutError("could not subscribe in time") from None
        self._transport, self._reader = Transport(stream), reader

    async def _receive(self) -> tuple[str, bytes]:
        transport, reader = self._transport, self._reader
        assert transport is not None
        while True:
            reply = reader.get()
            if reply is INCOMPLETE:
                data = await transport.receive()
                if not data:
                    raise ConnectionError("the server closed the connection")
                reader.feed(data)
                continue
            if isinstance(reply, RespError):
                raise reply
            if reply[0] == b"message":
                return reply[1].decode(), reply[2]
