"""Keepalive: a connection that goes silent without closing is noticed and replaced; a quiet but
healthy one is left alone."""

from __future__ import annotations

import trio
import trio.testing
from trio.testing import MockClock

import liveactors
from liveactors import ConnectRequest, MemoryTransport, events
from liveactors._models import FAKE_TEXT_MODEL
from liveactors.testing import FakeServer, open_fake_server

TEXT = {"response_modalities": ["TEXT"]}


class Blackhole(trio.abc.Stream):
    """A stream that, once ``dead``, swallows what is sent and never delivers anything: a
    socket that died without a FIN."""

    def __init__(self, inner: trio.abc.Stream) -> None:
        self.inner = inner
        self.dead = False
        #: How long a send takes once dead (a slow link keeps the writer busy).
        self.dead_send = 0.0

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        if self.dead:
            await trio.sleep(self.dead_send)
            return
        await self.inner.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self.inner.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        data = await self.inner.receive_some(max_bytes)
        if self.dead:
            await trio.sleep_forever()
        return data

    async def aclose(self) -> None:
        await self.inner.aclose()


def backend_with_blackholes(
    server: FakeServer, streams: list[Blackhole]
) -> liveactors.GeminiBackend:
    async def dial(request: ConnectRequest) -> trio.abc.Stream:
        stream = Blackhole(await server.dial(request))
        streams.append(stream)
        return stream

    return server.backend(model=FAKE_TEXT_MODEL, transport=MemoryTransport(dial))


async def test_a_connection_that_went_silent_is_replaced(autojump_clock: MockClock) -> None:
    streams: list[Blackhole] = []
    async with open_fake_server(listen=False, connection_lifetime=None) as server:
        backend = backend_with_blackholes(server, streams)
        assert (backend.keepalive, backend.keepalive_timeout) == (30.0, 90.0)
        async with liveactors.open_orchestrator(backend) as orch:
            conv = await orch.spawn(TEXT, name="c")
            async with conv.subscribe(events.Reconnecting, events.Connected) as sub:
                assert (await conv.ask("before")).text == "echo #1: before"
                silent_at = trio.current_time()
                streams[0].dead = True
                reconnecting = await sub.__anext__()
                assert isinstance(reconnecting, events.Reconnecting)
                assert "keepalive" in reconnecting.reason
                # Noticed one ping interval plus the ping's timeout after going silent (then
                # closing the dead socket waits out its close timeout, 2 s).
                assert 120.0 <= trio.current_time() - silent_at <= 122.5
                assert isinstance(await sub.__anext__(), events.Connected)
            assert (await conv.ask("after")).text == "echo #2: after"


async def test_a_busy_writer_still_notices_a_dead_connection(autojump_clock: MockClock) -> None:
    # A producer keeps the mailbox full and every send "succeeds" into a link that will never
    # answer: the writer never idles, and must still ping and give the connection up.
    streams: list[Blackhole] = []
    async with open_fake_server(listen=False, connection_lifetime=None) as server:
        backend = backend_with_blackholes(server, streams)
        async with liveactors.open_orchestrator(backend) as orch:
            conv = await orch.spawn(TEXT, name="c")
            assert (await conv.ask("before")).text == "echo #1: before"
            silent_at = trio.current_time()
            streams[0].dead, streams[0].dead_send = True, 0.05

            async def flood() -> None:
                while True:
                    await conv.send_realtime_text("la")  # waits only when the mailbox is full

            async with (
                conv.subscribe(events.Reconnecting) as sub,
                trio.open_nursery() as nursery,
            ):
                nursery.start_soon(flood)
                with trio.fail_after(300):
                    reconnecting = await sub.__anext__()
                nursery.cancel_scope.cancel()
            assert isinstance(reconnecting, events.Reconnecting)
            assert "keepalive" in reconnecting.reason
            assert 120.0 <= trio.current_time() - silent_at <= 122.5
            await orch.stop("c", grace=0)


async def test_a_subscriber_holding_the_reader_is_not_a_dead_connection(
    autojump_clock: MockClock,
) -> None:
    # A block subscriber that stops reading holds the conversation's reader, so nothing is read
    # from the socket, pongs included: that is backpressure, not a dead peer.
    async with open_fake_server(listen=False, connection_lifetime=None, chunks=10) as server:
        backend = server.backend(model=FAKE_TEXT_MODEL)
        async with liveactors.open_orchestrator(backend) as orch:
            conv = await orch.spawn(TEXT, name="c")
            async with conv.subscribe(buffer=1) as stalled:
                await conv.send_text("a long answer")
                await trio.sleep(600)  # the reader waits for room all this time
                assert conv.statistics().reconnects == 0
                async for event in stalled:  # reading again releases it
                    if isinstance(event, events.TurnComplete):
                        break
            assert (await conv.ask("still there?")).text == "echo #2: still there?"
            stats = conv.statistics()
    assert (stats.connections, stats.reconnects) == (1, 0)


async def test_a_quiet_healthy_connection_is_kept(autojump_clock: MockClock) -> None:
    async with open_fake_server(listen=False, connection_lifetime=None) as server:
        backend = server.backend(model=FAKE_TEXT_MODEL)
        async with liveactors.open_orchestrator(backend) as orch:
            conv = await orch.spawn(TEXT, name="c")
            await trio.sleep(3600)  # an hour of silence: pinged every 90 s, answered each time
            assert (await conv.ask("still there?")).text == "echo #1: still there?"
            stats = conv.statistics()
    assert (stats.connections, stats.reconnects) == (1, 0)
    assert len(server.log.connections) == 1


async def test_keepalive_can_be_turned_off(autojump_clock: MockClock) -> None:
    streams: list[Blackhole] = []
    async with open_fake_server(listen=False, connection_lifetime=None) as server:
        backend = backend_with_blackholes(server, streams)
        backend.keepalive = None
        async with liveactors.open_orchestrator(backend) as orch:
            conv = await orch.spawn(TEXT, name="c")
            streams[0].dead = True
            await trio.sleep(3600)
            assert conv.statistics().reconnects == 0  # nobody noticed: that is what off means
            await orch.stop("c", grace=0)
