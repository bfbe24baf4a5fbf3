"""A few checks over real loopback sockets (real clock, short lifetimes)."""

from __future__ import annotations

import json

import trio
import trio_websocket

from .conftest import V1BETA, connect, fake, session_ready, text_of, text_setup, user_text


async def test_lifetime_goaway_and_close_over_tcp() -> None:
    async with (
        fake(listen=True, connection_lifetime=0.3, goaway_before=0.1) as server,
        connect(server, tcp=True) as client,
    ):
        await session_ready(client)
        assert await client.recv() == {"goAway": {"timeLeft": "0.100s"}}
        assert await client.closed() == (1011, "Deadline expired before operation could complete.")


async def test_a_drop_over_tcp_has_no_close_frame() -> None:
    async with fake(listen=True) as server:
        server.faults.drop(before="turnComplete")
        async with connect(server, tcp=True) as client:
            await session_ready(client)
            await client.send(user_text("x"))
            assert await client.closed() == (1006, "")


async def test_tls_drop_and_close() -> None:
    async with fake(listen=True, tls=True) as server:
        context = server.client_ssl_context
        url = server.url + V1BETA
        headers = [(b"x-goog-api-key", b"test-key")]
        async with trio_websocket.open_websocket_url(
            url, ssl_context=context, extra_headers=headers
        ) as ws:
            await ws.send_message(json.dumps(text_setup()))
            assert "setupComplete" in json.loads(await ws.get_message())
            server.faults.drop_now()
            try:
                while True:
                    await ws.get_message()
            except trio_websocket.ConnectionClosed as exc:
                assert exc.reason is not None and exc.reason.code == 1006


async def test_many_concurrent_conversations_are_each_answered_once() -> None:
    async with fake(listen=True, chunks=3) as server:

        async def converse(n: int) -> None:
            async with connect(server, tcp=True) as client:
                await session_ready(client)
                for turn in (1, 2):
                    await client.send(user_text(f"c{n} t{turn}"))
                    assert text_of(await client.turn()) == f"echo #{turn}: c{n} t{turn}"

        async with trio.open_nursery() as nursery:
            for n in range(40):
                nursery.start_soon(converse, n)
        counts = server.log.answer_counts()
        assert len(counts) == 80 and set(counts.values()) == {1}
        assert len(server.log.sessions) == 40
