"""The transport and the sans-IO core carry one text turn end to end over in-memory streams."""

from __future__ import annotations

import json

import trio
import trio.testing
import trio_websocket

from liveactors import ConnectionLost, GeminiBackend, MemoryTransport, events
from liveactors._protocol.connection import ConnectionState, LiveConnection
from liveactors._protocol.setup import encode_setup
from liveactors._protocol.tracker import EventTracker


async def test_text_turn_over_memory_transport() -> None:
    seen_headers: list[tuple[bytes, bytes]] = []

    async with trio.open_nursery() as nursery:

        async def handler(stream: trio.abc.Stream) -> None:
            request = await trio_websocket.wrap_server_stream(nursery, stream)  # type: ignore[arg-type]
            seen_headers.extend(request.headers)
            ws = await request.accept()
            setup = json.loads(await ws.get_message())
            assert setup["setup"]["model"] == "models/fake-half-cascade-live"
            await ws.send_message(b'{"setupComplete":{"sessionId":"s1"}}')
            await ws.get_message()
            for chunk in ("Hel", "lo"):
                frame = {"serverContent": {"modelTurn": {"parts": [{"text": chunk}]}}}
                await ws.send_message(json.dumps(frame).encode())
            await ws.send_message(b'{"serverContent":{"turnComplete":true}}')
            await ws.aclose(1011, "Deadline expired before operation could complete.")

        async def dial(request: object) -> trio.abc.Stream:
            client, server = trio.testing.memory_stream_pair()
            nursery.start_soon(handler, server)
            return client

        backend = GeminiBackend(
            api_key="k-123",
            model="fake-half-cascade-live",
            base_url="ws://fake",
            transport=MemoryTransport(dial),
        )
        conn = LiveConnection()
        tracker = EventTracker("c1")
        got: list[events.Event] = []
        async with backend.transport.connect(backend.connect_request()) as link:
            await link.send(
                conn.send_setup(
                    encode_setup({"response_modalities": ["TEXT"]}, "fake-half-cascade-live")
                )
            )
            conn.receive(await link.receive())
            assert conn.state is ConnectionState.READY
            _, text = conn.send({"clientContent": {"turnComplete": True}})
            await link.send(text)
            try:
                while True:
                    got.extend(tracker.events(conn.receive(await link.receive())))
            except ConnectionLost as exc:
                assert exc.code == 1011
                assert exc.reason == "Deadline expired before operation could complete."

    assert (b"x-goog-api-key", b"k-123") in seen_headers
    assert [type(e) for e in got] == [events.TextDelta, events.TextDelta, events.TurnComplete]
    assert "".join(e.text for e in got if isinstance(e, events.TextDelta)) == "Hello"
    assert [e.seq for e in got] == [1, 2, 3]
