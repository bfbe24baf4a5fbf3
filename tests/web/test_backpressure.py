"""A client that does not keep up: bounded memory, oldest audio dropped first, drops reported."""

from __future__ import annotations

import json
import socket

import trio
import trio_websocket

from .conftest import eventually, serving


async def test_a_client_that_never_reads_holds_only_the_buffer() -> None:
    # One answer of 50 pieces, each 3 x 0.2 s of 24 kHz audio: 1.4 MB of voice.
    fake = {"chunks": 50, "audio_chunk_seconds": 0.2}
    async with serving(fake=fake, audio_buffer=96_000, event_buffer=32) as app:
        host, port = "127.0.0.1", int(app.url.rsplit(":", 1)[1])
        sock = trio.socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a small window
        await sock.connect((host, port))
        async with trio.open_nursery() as nursery:
            ws = await trio_websocket.wrap_client_stream(
                nursery,
                trio.SocketStream(sock),
                host,
                "/ws",
                message_queue_size=1,  # the client library stops reading too
                receive_buffer_size=4096,
            )
            assert json.loads(await ws.get_message())["type"] == "session"
            await ws.send_message(json.dumps({"type": "text", "text": "x" * 200}))
            # The conversation is not held back by its reader: the whole answer arrives
            # while nothing is read.
            conv = app.orch.conversations[0]
            await eventually(lambda: conv.statistics().turns >= 1)
            await trio.sleep(0.2)
            (stats,) = [s["outbox"] for s in app.endpoint.statistics().values()]
            assert stats.peak_audio_bytes <= 96_000
            assert stats.peak_events <= 32
            assert stats.dropped_audio_chunks > 0
            assert stats.dropped_audio_bytes > 1_000_000  # most of it: it never fit anywhere

            # Now read: the drops are reported before what follows them, and the answer
            # ends as it should.
            reports = []
            with trio.fail_after(5):
                while True:
                    frame = await ws.get_message()
                    if isinstance(frame, bytes):
                        continue
                    message = json.loads(frame)
                    if message["type"] == "dropped":
                        reports.append(message)
                    if message["type"] == "TurnComplete":
                        break
            assert reports, "the client is told what it lost"
            final = app.endpoint.statistics()[conv.name]["outbox"]
            assert reports[-1] == {
                "type": "dropped",
                "audio_chunks": final.dropped_audio_chunks,
                "audio_bytes": final.dropped_audio_bytes,
                "events": final.dropped_events,
            }
            await ws.aclose()
            nursery.cancel_scope.cancel()
