"""Limits: connection lifetime with goAway, session time, the context window."""

from __future__ import annotations

import pytest
import trio

from .conftest import connect, fake, session_ready, text_of, text_setup, user_text


async def test_goaway_then_deadline_close(autojump_clock: trio.abc.Clock) -> None:
    async with fake(connection_lifetime=600, goaway_before=10) as server, connect(server) as client:
        await session_ready(client)
        message = await client.recv()
        assert message == {"goAway": {"timeLeft": "10s"}}
        assert trio.current_time() == pytest.approx(590)
        assert await client.closed() == (1011, "Deadline expired before operation could complete.")
        assert trio.current_time() == pytest.approx(600)
        record = server.log.connection(1)
        assert (record.cause, record.close_code) == ("lifetime", 1011)


async def test_time_scale_shrinks_every_protocol_duration(autojump_clock: trio.abc.Clock) -> None:
    async with fake(time_scale=0.01) as server, connect(server) as client:
        await session_ready(client)
        assert await client.recv() == {"goAway": {"timeLeft": "0.100s"}}
        assert trio.current_time() == pytest.approx(5.9)
        assert (await client.closed())[0] == 1011
        assert trio.current_time() == pytest.approx(6.0)


async def test_lifetime_runs_from_the_upgrade_even_without_setup(
    autojump_clock: trio.abc.Clock,
) -> None:
    async with fake(connection_lifetime=3, goaway_before=1) as server, connect(server) as client:
        assert await client.recv() == {"goAway": {"timeLeft": "1s"}}
        assert (await client.closed())[0] == 1011


async def test_no_goaway_when_goaway_before_is_zero_and_a_vertex_like_close(
    autojump_clock: trio.abc.Clock,
) -> None:
    async with (
        fake(connection_lifetime=5, goaway_before=0, lifetime_close=(1000, "")) as server,
        connect(server) as client,
    ):
        await session_ready(client)
        assert await client.closed() == (1000, "")
        assert "goAway" not in server.log.server_kinds(1)


async def test_unlimited_lifetime(autojump_clock: trio.abc.Clock) -> None:
    async with (
        fake(connection_lifetime=None, audio_session_limit=None) as server,
        connect(server) as client,
    ):
        await session_ready(client)
        with trio.move_on_after(100_000):
            await client.recv()
            raise AssertionError("a message arrived on an idle unlimited connection")


async def test_the_audio_session_limit_counts_connected_time_across_resumptions(
    autojump_clock: trio.abc.Clock,
) -> None:
    options = {"connection_lifetime": None, "time_scale": 0.01}  # audio limit: 9 s
    async with fake(**options) as server:
        async with connect(server) as a:
            await session_ready(a, text_setup(sessionResumption={}))
            handle = (await a.recv())["sessionResumptionUpdate"]["newHandle"]
            await trio.sleep(5)
        async with connect(server) as b:
            start = trio.current_time()
            await session_ready(b, text_setup(sessionResumption={"handle": handle}))
            assert await b.closed() == (1011, "Deadline expired before operation could complete.")
            assert trio.current_time() - start == pytest.approx(4)
        assert server.log.connection(2).cause == "session_limit"
        async with connect(server) as c:  # the session is over: its handles are void
            await c.send(text_setup(sessionResumption={"handle": handle}))
            assert await c.closed() == (1008, "BidiGenerateContent session not found")


async def test_video_shortens_the_session_limit(autojump_clock: trio.abc.Clock) -> None:
    async with (
        fake(connection_lifetime=None, time_scale=0.01) as server,
        connect(server) as client,
    ):  # 1.2 s
        await session_ready(client)
        await trio.sleep(1)
        await client.send({"realtimeInput": {"video": {"mimeType": "image/jpeg", "data": "/9j/"}}})
        assert (await client.closed())[0] == 1011
        assert trio.current_time() == pytest.approx(1.2)


async def test_compression_lifts_the_session_limits(autojump_clock: trio.abc.Clock) -> None:
    async with fake(connection_lifetime=None, time_scale=0.01) as server, connect(server) as client:
        await session_ready(client, text_setup(contextWindowCompression={"slidingWindow": {}}))
        await client.send({"realtimeInput": {"video": {"mimeType": "image/jpeg", "data": "/9j/"}}})
        with trio.move_on_after(1000):
            await client.recv()
            raise AssertionError("closed despite compression")


async def test_context_window_overflow_without_compression(autojump_clock: trio.abc.Clock) -> None:
    async with fake(context_window=100) as server, connect(server) as client:
        await session_ready(client)
        await client.send(user_text("x" * 300))  # 75 tokens
        await client.turn()
        await client.send(user_text("y" * 300))
        code, reason = await client.closed()
        assert code == 1007
        assert reason.startswith("The input token count (") and reason.endswith("allowed (100).")
        assert server.log.connection(1).cause == "context_window"


async def test_sliding_window_compression_trims_at_a_user_turn() -> None:
    setup = text_setup(
        contextWindowCompression={"triggerTokens": 100, "slidingWindow": {"targetTokens": 60}}
    )
    async with fake() as server, connect(server) as client:
        await session_ready(client, setup)
        for n in range(1, 6):
            await client.send(user_text(f"{n}" * 80))  # 20 tokens each, and 20+ for the echo
            assert text_of(await client.turn()).startswith(f"echo #{n}: ")
        state = server.sessions["session-1"].state
        assert state.compressions >= 1
        assert state.total_tokens <= 100
        assert state.history[0].role == "user"
        assert server.log.notes_of("compression")
