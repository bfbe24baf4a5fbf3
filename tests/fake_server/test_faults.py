"""Fault injection: every rule, every target, and drops at every protocol point."""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio_websocket

from liveactors.testing import FakeServer, _frames

from .conftest import (
    RawClient,
    audio_chunk,
    audio_setup,
    connect,
    fake,
    kind_of,
    session_ready,
    text_of,
    user_text,
)

SCENARIO_SETUP = audio_setup(
    inputAudioTranscription={},
    outputAudioTranscription={},
    sessionResumption={},
    tools=[{"functionDeclarations": [{"name": "get_weather"}]}],
)


async def _scenario(client: RawClient) -> tuple[list[str], tuple[int, str]]:
    """A conversation that makes the server send every kind of message; stops at the close."""
    kinds: list[str] = []

    async def until(kind: str) -> None:
        while True:
            message = await client.recv()
            kinds.append(kind_of(message))
            if kinds[-1].endswith(kind):
                return

    try:
        await client.send(SCENARIO_SETUP)
        await until("sessionResumptionUpdate")
        await client.send(audio_chunk(0.2))
        await client.send({"realtimeInput": {"audioStreamEnd": True}})
        await until("turnComplete")
        await until("sessionResumptionUpdate")
        await client.send({"realtimeInput": {"text": "call get_weather"}})
        await until("toolCall")
        await client.send({"realtimeInput": {"text": "stop"}})
        await until("turnComplete")
        await until("turnComplete")
        await until("goAway")
    except trio_websocket.ConnectionClosed:
        pass
    return kinds, await client.closed()


async def _run(**options: Any) -> tuple[FakeServer, list[str], tuple[int, str]]:
    async with fake(connection_lifetime=100, goaway_before=50, **options) as server:
        arm = options.pop("arm", None)
        del arm
        return server, *(await _scenario_on(server))


async def _scenario_on(server: FakeServer) -> tuple[list[str], tuple[int, str]]:
    async with connect(server) as client:
        return await _scenario(client)


async def test_the_scenario_covers_every_kind(autojump_clock: trio.abc.Clock) -> None:
    async with fake(connection_lifetime=100, goaway_before=50) as server:
        kinds, close = await _scenario_on(server)
    assert set(kinds) == set(_frames.KINDS)
    assert close == (1011, "Deadline expired before operation could complete.")


@pytest.mark.parametrize("kind", _frames.KINDS)
@pytest.mark.parametrize("where", ["before", "after"])
async def test_drop_at_every_protocol_point(
    autojump_clock: trio.abc.Clock, kind: str, where: str
) -> None:
    async with fake(connection_lifetime=100, goaway_before=50) as server:
        baseline, _ = await _scenario_on(server)
        fault = server.faults.drop(**{where: kind.split(".")[-1]})
        kinds, close = await _scenario_on(server)
    cut = baseline.index(kind) + (1 if where == "after" else 0)
    assert kinds == baseline[:cut]
    assert close == (1006, "")
    assert fault.fired == 1
    record = server.log.connection(2)
    assert (record.close_code, record.cause) == (1006, "fault")
    assert server.log.server_kinds(2) == baseline[:cut]


@pytest.mark.parametrize("nth", [1, 2])
async def test_drop_before_the_nth_message_of_a_kind(
    autojump_clock: trio.abc.Clock, nth: int
) -> None:
    async with fake(connection_lifetime=100, goaway_before=50) as server:
        server.faults.drop(before="turnComplete", nth=nth)
        kinds, _ = await _scenario_on(server)
    assert kinds.count("serverContent.turnComplete") == nth - 1


async def test_drop_after_client_messages() -> None:
    async with fake() as server:
        server.faults.drop(after_client_messages=2)
        async with connect(server) as client:
            await session_ready(client)
            await client.send(user_text("lost"))
            assert await client.closed() == (1006, "")
        assert server.log.client_kinds(1) == ["setup", "clientContent"]
        assert server.log.turns == []  # logged, never acted on


async def test_drop_after_server_messages() -> None:
    async with fake(chunks=3) as server:
        server.faults.drop(after_server_messages=3)
        async with connect(server) as client:
            await session_ready(client)
            await client.send(user_text("hello"))
            assert [kind_of(await client.recv()) for _ in range(2)] == [
                "serverContent.modelTurn"
            ] * 2
            assert await client.closed() == (1006, "")
        assert len(server.log.server_messages(1)) == 3
        assert server.log.turns[0].outcome == "cut"


async def test_drop_at_a_time_and_after_seconds(autojump_clock: trio.abc.Clock) -> None:
    async with fake() as server:
        server.faults.drop(at=trio.current_time() + 7)
        async with connect(server) as client:
            await session_ready(client)
            assert await client.closed() == (1006, "")
        assert trio.current_time() == pytest.approx(7)
        server.faults.drop(after_seconds=3)
        async with connect(server) as client:
            opened = trio.current_time()
            assert await client.closed() == (1006, "")
            assert trio.current_time() - opened == pytest.approx(3)


@pytest.mark.parametrize(
    ("condition", "code", "reason"),
    [
        ({}, 1011, "Internal error encountered."),
        ({"before": "setupComplete"}, 1013, "Try again later."),
        ({"after": "generationComplete"}, 4321, "custom"),
        (
            {"after_client_messages": 2},
            1008,
            "Operation is not implemented, or supported, or enabled.",
        ),
    ],
)
async def test_close_with_any_code_and_reason(
    condition: dict[str, Any], code: int, reason: str
) -> None:
    async with fake() as server:
        server.faults.close(code, reason, **condition)
        async with connect(server) as client:
            try:
                await client.send(user_text("x") if not condition else _setup())
                await client.recv()
                await client.send(user_text("x"))
            except trio_websocket.ConnectionClosed:
                pass
            assert await client.closed() == (code, reason)
        record = server.log.connection(1)
        assert (record.close_code, record.close_reason, record.cause) == (code, reason, "fault")


def _setup() -> dict[str, Any]:
    from .conftest import text_setup

    return text_setup()


async def test_delay_holds_messages_back(autojump_clock: trio.abc.Clock) -> None:
    async with fake() as server:
        fault = server.faults.delay(2.5, kind="turnComplete")
        async with connect(server) as client:
            await session_ready(client)
            await client.send(user_text("x"))
            await client.until("generationComplete")
            start = trio.current_time()
            await client.turn()
            assert trio.current_time() - start == pytest.approx(2.5)
        assert fault.fired == 1
        server.faults.delay(1, times=2)
        async with connect(server) as client:
            start = trio.current_time()
            await session_ready(client)
            await client.send(user_text("x"))
            await client.turn()
            assert trio.current_time() - start == pytest.approx(2)  # setupComplete + 1st chunk


async def test_stall_until_released(autojump_clock: trio.abc.Clock) -> None:
    async with fake(connection_lifetime=None) as server:
        fault = server.faults.stall(kind="modelTurn")
        async with connect(server) as client:
            await session_ready(client)
            await client.send(user_text("x"))
            with trio.move_on_after(100):
                await client.recv()
                raise AssertionError("a stalled message was sent")
            fault.release()
            assert text_of(await client.turn()) == "echo #1: x"
        assert fault.fired >= 1


async def test_go_away_now_then_close(autojump_clock: trio.abc.Clock) -> None:
    async with fake(connection_lifetime=None) as server, connect(server) as client:
        await session_ready(client)
        fault = server.faults.go_away_now(2.5)
        assert await client.recv() == {"goAway": {"timeLeft": "2.500s"}}
        start = trio.current_time()
        assert await client.closed() == (1011, "Deadline expired before operation could complete.")
        assert trio.current_time() - start == pytest.approx(2.5)
        assert fault.fired == 1


async def test_go_away_without_close_and_as_a_rule(autojump_clock: trio.abc.Clock) -> None:
    async with fake(connection_lifetime=None) as server:
        server.faults.go_away(1, close=False, after="turnComplete")
        async with connect(server) as client:
            await session_ready(client)
            await client.send(user_text("x"))
            await client.turn()
            assert await client.recv() == {"goAway": {"timeLeft": "1s"}}
            await trio.sleep(5)
            await client.send(user_text("y"))
            assert text_of(await client.turn()) == "echo #2: y"


async def test_targets_next_id_all_and_open() -> None:
    async with fake() as server:
        async with connect(server) as first:
            await session_ready(first)
            server.faults.drop(after_client_messages=2)  # "next": not the open one
            await first.send(user_text("a"))
            await first.turn()
            async with connect(server) as second:
                await session_ready(second)
                await second.send(user_text("b"))
                assert (await second.closed())[0] == 1006
            server.faults.close_now(1000, "bye", connection=1)
            assert await first.closed() == (1000, "bye")
        server.faults.drop(connection=4, after_client_messages=1)
        async with connect(server) as third, connect(server) as fourth:
            await session_ready(third)
            await fourth.send(_setup())
            assert (await fourth.closed())[0] == 1006
        everywhere = server.faults.close(1013, "busy", connection="all", before="setupComplete")
        for _ in range(2):
            async with connect(server) as client:
                await client.send(_setup())
                assert await client.closed() == (1013, "busy")
        assert everywhere.fired == 2
        everywhere.remove()
        async with connect(server) as a, connect(server) as b:
            await session_ready(a)
            await session_ready(b)
            now = server.faults.drop_now()
            assert (await a.closed())[0] == (await b.closed())[0] == 1006
            await now.wait()
            assert now.fired == 2


async def test_clear_disarms_everything() -> None:
    async with fake() as server:
        server.faults.drop(after_client_messages=1, connection="all")
        stall = server.faults.stall(connection="all")
        server.faults.refuse_upgrades(3)
        server.faults.reject_handles(3)
        server.faults.clear()
        async with connect(server) as client:
            await session_ready(client)
        assert stall.fired == 0


def test_rules_take_one_condition() -> None:
    from liveactors.testing import Faults

    faults = Faults()
    with pytest.raises(ValueError, match="at most one condition"):
        faults.drop(before="toolCall", after_client_messages=1)
    with pytest.raises(ValueError):
        faults.drop(after_client_messages=0)
    with pytest.raises(ValueError):
        faults.go_away(-1)


async def test_counts_start_when_a_rule_binds_to_an_open_connection() -> None:
    async with fake(chunks=1) as server, connect(server) as client:
        await session_ready(client)
        await client.send(user_text("one"))
        await client.turn()
        fault = server.faults.drop(connection=1, after_server_messages=2)
        await client.send(user_text("two"))
        assert kind_of(await client.recv()) == "serverContent.modelTurn"
        assert kind_of(await client.recv()) == "serverContent.generationComplete"
        assert await client.closed() == (1006, "")
        assert fault.fired == 1


async def test_a_rule_can_name_a_top_level_key(autojump_clock: trio.abc.Clock) -> None:
    async with fake(chunks=3, chunk_delay=1.0) as server:
        server.faults.drop(after="serverContent", nth=2)  # any content message
        async with connect(server) as client:
            await session_ready(client)
            await client.send(user_text("x"))
            assert await client.closed() == (1006, "")
        assert server.log.server_kinds(1) == ["setupComplete"] + ["serverContent.modelTurn"] * 2
