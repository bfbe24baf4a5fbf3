"""The actor over real loopback sockets, in real time (no MockClock): tools, barge-in, events
across a handoff, and cancellation with no task left behind. Each test lasts about a second."""

from __future__ import annotations

from typing import Any

import trio
from google.genai import types

import liveactors
from liveactors import events
from liveactors._models import FAKE_TEXT_MODEL

from .conftest import (
    TEXT,
    check_seq,
    conversation,
    fake,
    function,
    recording,
    tools_config,
    watch_tasks,
)


class Weather(liveactors.Conversation):
    runs = 0

    async def on_tool_call(self, call: types.FunctionCall) -> Any:
        type(self).runs += 1
        await trio.sleep(0.05)
        return {"forecast": f"sunny in {(call.args or {})['city']}"}


async def test_tools_barge_in_and_stop_over_tcp() -> None:
    Weather.runs = 0
    config = tools_config(function("get_weather", city="string"))
    async with (
        fake(listen=True, chunks=4, chunk_delay=0.1) as server,
        watch_tasks(server) as watch,
    ):
        async with (
            conversation(server, config, actor=Weather) as (_, conv),
            recording(conv.subscribe) as rec,
        ):
            assert server.port is not None
            reply = await conv.ask('call get_weather {"city": "Rome"}')
            assert reply.text == 'echo #1: get_weather -> {"output":{"forecast":"sunny in Rome"}}'
            assert Weather.runs == 1
            # A barge-in over a real socket.
            await conv.send_text("tell me more")
            await rec.wait_for(lambda: any(e.turn == 2 for e in rec.of(events.TextDelta)))
            await conv.send_realtime_text("enough")
            await rec.wait_for(lambda: len(rec.of(events.TurnComplete)) == 3)
            await conv.stop()
            await rec.wait_for(lambda: rec.done.is_set())
        assert watch.alive() == []
    done = rec.of(events.TurnComplete)
    assert [(e.turn, e.interrupted) for e in done] == [(1, False), (2, True), (3, False)]
    check_seq(rec.events, first=rec.events[0].seq)
    assert isinstance(rec.events[-1], events.ConversationClosed)
    assert [(c.close_code, c.cause) for c in server.log.connections] == [(1000, "client")]


async def test_events_stay_gap_free_across_handoffs_over_tcp() -> None:
    # 0.4 s connections with a goAway 0.1 s before the end.
    async with (
        fake(listen=True, connection_lifetime=0.4, goaway_before=0.1) as server,
        watch_tasks(server) as watch,
    ):
        backend = server.backend(model=FAKE_TEXT_MODEL)
        async with (
            liveactors.open_orchestrator(backend) as orch,
            # Never waits and, with this buffer, never drops (checked below).
            orch.subscribe(conversation="c1", buffer=10_000, overflow="drop_oldest") as sub,
            trio.open_nursery() as nursery,
        ):
            got: list[events.Event] = []

            async def record() -> None:
                async for event in sub:
                    got.append(event)

            nursery.start_soon(record)
            conv = await orch.spawn(TEXT, name="c1")
            asked = []
            with trio.move_on_after(1.2):
                while True:
                    asked.append(f"q{len(asked)}")
                    await conv.ask(asked[-1])
            assert conv.statistics().handoffs >= 2
            await trio.sleep(0.05)
            assert sub.statistics().dropped == 0
            nursery.cancel_scope.cancel()
        assert watch.alive() == []
    check_seq(got)
    connected = [e for e in got if isinstance(e, events.Connected)]
    assert len(connected) >= 3
    assert all(e.resumed for e in connected[1:])
    turns = [e.turn for e in got if isinstance(e, events.TurnComplete)]
    assert turns == list(range(1, len(turns) + 1))
    counts = server.log.answer_counts()
    # Every question asked and answered before the end was answered exactly once.
    assert all(counts[q] == 1 for q in asked[:-1]), counts


async def test_cancel_during_setup_over_tcp() -> None:
    async with fake(listen=True, setup_latency=5.0) as server, watch_tasks(server) as watch:
        backend = server.backend(model=FAKE_TEXT_MODEL)
        with trio.move_on_after(0.2) as scope:
            async with liveactors.open_orchestrator(backend) as orch:
                await orch.spawn(TEXT, name="c1")
        assert scope.cancelled_caught
        assert watch.spawned and watch.alive() == []
        with trio.fail_after(2):
            await server.log.wait_for(lambda: not server.log.connections[-1].open)
        [record] = server.log.connections
        assert (record.close_code, record.cause) == (1000, "client")
