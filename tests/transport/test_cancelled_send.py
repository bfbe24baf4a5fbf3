"""A cancelled send never leaves half a frame on the wire followed by more bytes.

The peer reads frames by their length: after a frame cut short, whatever came next (another
frame, the close frame) would be read as the rest of its payload. So a send cancelled once its
frame may have started breaks the link: nothing more is written on it, the peer sees the
connection drop (1006), and the supervisor replaces it. A cancellation that comes before the
first byte leaves the link as it was.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

import attrs
import pytest
import trio
import trio.testing
import trio_websocket

from liveactors import ConnectionLost, ConnectRequest, GeminiBackend, MemoryTransport

MemoryBackend = Callable[..., AbstractAsyncContextManager[GeminiBackend]]  # see conftest.py

#: Bytes per write, and the pause after each: a 10 KiB/s uplink.
CHUNK = 1024
PAUSE = 0.1


@attrs.define
class Write:
    """One ``send_all`` call: how many bytes it was given and how many went out."""

    size: int
    sent: int = 0


@attrs.define(eq=False)
class SlowStream(trio.abc.Stream):
    """The client end of an in-memory stream whose large writes trickle out ``CHUNK`` bytes at
    a time (small ones, like the upgrade request, go at once); records every write."""

    inner: trio.abc.Stream
    writes: list[Write] = attrs.field(factory=list)
    closed: bool = False

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        write = Write(len(data))
        self.writes.append(write)
        view = memoryview(data)
        for start in range(0, len(view), CHUNK):
            piece = view[start : start + CHUNK]
            await self.inner.send_all(piece)
            write.sent += len(piece)
            if write.sent < write.size:
                await trio.sleep(PAUSE)

    async def wait_send_all_might_not_block(self) -> None:
        await self.inner.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        return await self.inner.receive_some(max_bytes)

    async def aclose(self) -> None:
        self.closed = True
        await self.inner.aclose()

    def more_after_a_cut(self) -> bool:
        """Whether any write began after one that did not finish: half a frame followed by
        more bytes, which the peer cannot tell apart from the cut frame's payload."""
        cut = False
        for write in self.writes:
            if cut:
                return True
            cut = write.sent < write.size
        return False


@attrs.define
class Peer:
    """The server side: accepts the upgrade and records the messages and the close it sees."""

    messages: list[str | bytes] = attrs.field(factory=list)
    close_code: int | None = None
    done: trio.Event = attrs.field(factory=trio.Event)

    async def serve(self, stream: trio.abc.Stream, nursery: trio.Nursery) -> None:
        ws = await (await trio_websocket.wrap_server_stream(nursery, stream)).accept()
        try:
            while True:
                self.messages.append(await ws.get_message())
        except trio_websocket.ConnectionClosed as exc:
            self.close_code = exc.reason.code if exc.reason else None
        finally:
            self.done.set()


async def _open(nursery: trio.Nursery, peer: Peer) -> tuple[MemoryTransport, list[SlowStream]]:
    streams: list[SlowStream] = []

    async def dial(request: ConnectRequest) -> trio.abc.Stream:
        client, server = trio.testing.memory_stream_pair()
        nursery.start_soon(peer.serve, server, nursery)
        stream = SlowStream(client)
        streams.append(stream)
        return stream

    return MemoryTransport(dial), streams


REQUEST = ConnectRequest("ws://fake/ws")
#: 64 KiB of text: 6.4 s at 10 KiB/s.
BIG = "x" * 64 * 1024


async def test_a_send_cancelled_mid_frame_breaks_the_link(autojump_clock: object) -> None:
    peer = Peer()
    async with trio.open_nursery() as nursery:
        transport, streams = await _open(nursery, peer)
        async with transport.connect(REQUEST) as link:
            with trio.move_on_after(1.0) as scope:
                await link.send(BIG)
            assert scope.cancelled_caught
            [stream] = streams
            assert 0 < stream.writes[-1].sent < stream.writes[-1].size  # cut mid-frame
            # Nothing more may follow those bytes: the link is broken, in both directions.
            assert link.close_info is not None and link.close_info.code == 1006
            with pytest.raises(ConnectionLost):
                await link.send("after")
            with pytest.raises(ConnectionLost):
                await link.receive()
        # Leaving closed the stream without a close frame (it would follow the cut frame).
        assert stream.closed
        assert not stream.more_after_a_cut()
        with trio.fail_after(5):
            await peer.done.wait()
        nursery.cancel_scope.cancel()
    assert peer.messages == []
    assert peer.close_code == 1006


async def test_a_send_cancelled_before_its_first_byte_leaves_the_link_intact(
    autojump_clock: object,
) -> None:
    peer = Peer()
    async with trio.open_nursery() as nursery:
        transport, streams = await _open(nursery, peer)
        async with transport.connect(REQUEST) as link:
            with trio.CancelScope() as scope:
                scope.cancel()
                await link.send("never")
            assert scope.cancelled_caught
            await link.send("hello")
            await link.send(BIG)  # slow, but whole
            assert link.close_info is None
        with trio.fail_after(5):
            await peer.done.wait()
        nursery.cancel_scope.cancel()
    [stream] = streams
    assert all(write.sent == write.size for write in stream.writes)
    assert peer.messages == ["hello", BIG]
    assert peer.close_code == 1000
