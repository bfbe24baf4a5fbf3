"""Cancellation and structured concurrency: cancelling the orchestrator or one conversation —
while connecting, during setup, during backoff, mid-tool-call, mid-handoff — leaves no task
behind (checked with trio instrumentation and a walk of the task tree), and closes every socket
that was open with 1000. ``stop()`` and leaving ``open_orchestrator`` are graceful."""

from __future__ import annotations

from functools import partial
from typing import Any, ClassVar

import pytest
import trio
from google.genai import types
from trio.testing import MockClock

import liveactors
from liveactors import events
from liveactors._models import FAKE_TEXT_MODEL
from liveactors.testing import FakeServer

from .conftest import (
    SLOW_RESTART,
    TEXT,
    TaskWatch,
    close_codes,
    conversation,
    conversation_tasks,
    drain,
    fake,
    function,
    recording,
    tools_config,
    watch_tasks,
)


def buffered(sub: liveactors.Subscription) -> list[events.Event]:
    out = []
    while (event := sub.receive_nowait()) is not None:
        out.append(event)
    return out


def check_no_leak(watch: TaskWatch) -> None:
    assert watch.spawned, "the instrument saw no task at all"
    assert watch.alive() == []


def check_closed_normally(server: FakeServer, *ids: int) -> None:
    """Every connection (or those ``ids``) is closed, by the client, with 1000."""
    records = [c for c in server.log.connections if not ids or c.id in ids]
    assert records
    for record in records:
        assert not record.open, record
        assert (record.close_code, record.cause) == (1000, "client"), record


async def test_cancel_orchestrator_while_connecting(autojump_clock: MockClock) -> None:
    """Cancelled before the WebSocket upgrade even started: the stream is closed, no task
    survives."""
    async with fake() as server, watch_tasks(server) as watch:
        dialed: list[trio.abc.Stream] = []

        async def slow_dial(request: liveactors.ConnectRequest) -> trio.abc.Stream:
            stream = await server.dial(request)
            dialed.append(stream)
            try:
                await trio.sleep(60)  # a slow network
            except trio.Cancelled:
                await trio.aclose_forcefully(stream)
                raise
            return stream

        backend = server.backend(
            model=FAKE_TEXT_MODEL, transport=liveactors.MemoryTransport(slow_dial)
        )
        with trio.move_on_after(5) as scope:
            async with liveactors.open_orchestrator(backend) as orch:
                await orch.spawn(TEXT, name="c1")
        assert scope.cancelled_caught
        assert trio.current_time() == pytest.approx(5.0)
        check_no_leak(watch)
        assert len(dialed) == 1
        # The upgrade never happened: no WebSocket connection, nothing left open.
        await trio.sleep(1)
        assert server.log.connections == []
        assert server.open_connections == []


@pytest.mark.parametrize("how", ["stall", "setup_latency"])
async def test_cancel_orchestrator_during_setup(how: str, autojump_clock: MockClock) -> None:
    options = {"setup_latency": 30.0} if how == "setup_latency" else {}
    async with fake(**options) as server, watch_tasks(server) as watch:
        if how == "stall":
            server.faults.stall(kind="setupComplete")
        backend = server.backend(model=FAKE_TEXT_MODEL)
        with trio.move_on_after(5) as scope:
            async with liveactors.open_orchestrator(backend) as orch:
                await orch.spawn(TEXT, name="c1")
        assert scope.cancelled_caught
        check_no_leak(watch)
        # A stalled fake logs the client's close once it may write again.
        server.faults.clear()
        await trio.sleep(1)
        [record] = server.log.connections
        assert server.log.client_kinds(record.id) == ["setup"]
        check_closed_normally(server)


async def test_cancel_one_spawn_during_setup(autojump_clock: MockClock) -> None:
    """Cancelling the spawn cancels that conversation only; its name is free again."""
    async with (
        fake() as server,
        watch_tasks(server) as watch,
        conversation(server, name="other") as (orch, other),
    ):
        stall = server.faults.stall(kind="setupComplete")
        with trio.move_on_after(5) as scope:
            await orch.spawn(TEXT, name="c1")
        assert scope.cancelled_caught
        stall.remove()  # a stalled fake logs the client's close once it may write again
        await trio.sleep(1)
        assert [c.name for c in orch.conversations] == ["other"]
        # Only "other" still has tasks: the cancelled conversation left none.
        assert sum(n.endswith("Orchestrator._run") for n in conversation_tasks(orch)) == 1
        check_closed_normally(server, 2)
        # The other conversation is undisturbed, and the name can be used again.
        assert (await other.ask("hi")).text == "echo #1: hi"
        again = await orch.spawn(TEXT, name="c1")
        assert (await again.ask("hello")).text == "echo #1: hello"
        await again.stop()
        await other.stop()
        await trio.sleep(1)  # stop() returns once closed; the tasks end right after
        assert conversation_tasks(orch) == []
    check_no_leak(watch)


async def test_cancel_during_backoff(autojump_clock: MockClock) -> None:
    async with fake() as server, watch_tasks(server) as watch:
        with trio.CancelScope() as scope:
            async with (
                conversation(server, restart=SLOW_RESTART) as (orch, conv),
                recording(conv.subscribe, events.Reconnecting) as rec,
            ):
                # A subscription that outlives the orchestrator, to see the last events.
                subscription = conv.subscribe(buffer=1000)
                sub = await subscription.__aenter__()
                await conv.ask("before")
                server.faults.drop_now()
                reconnecting = await rec.wait_for_event(events.Reconnecting)
                assert reconnecting.delay == 30.0
                await trio.sleep(10)  # the conversation sleeps between attempts
                assert conv.state is liveactors.ConversationState.RECONNECTING
                assert len(conversation_tasks(orch)) >= 1
                scope.cancel()
                await trio.sleep_forever()
        check_no_leak(watch)
        rest = await drain(sub)
        await subscription.__aexit__(None, None, None)
        assert isinstance(rest[-1], events.ConversationClosed)
        assert not any(isinstance(e, events.ConversationFailed) for e in rest)
        assert conv.state is liveactors.ConversationState.CLOSED
        # No reconnect was attempted; the dropped connection is the only one.
        assert close_codes(server) == [1006]
        with pytest.raises(liveactors.ConversationStopped):
            await conv.send_text("too late")


class Slow(liveactors.Conversation):
    started: ClassVar[int] = 0
    cancelled: ClassVar[int] = 0

    async def on_tool_call(self, call: types.FunctionCall) -> Any:
        type(self).started += 1
        try:
            await trio.sleep(1000)
        except trio.Cancelled:
            type(self).cancelled += 1
            raise
        return "never"


async def test_cancel_during_a_tool_call(autojump_clock: MockClock) -> None:
    Slow.started = Slow.cancelled = 0
    config = tools_config(function("slow"))
    async with fake() as server, watch_tasks(server) as watch:
        with trio.move_on_after(20) as scope:
            async with (
                conversation(server, config, actor=Slow) as (_, conv),
                recording(conv.subscribe, events.ToolCall) as rec,
            ):
                await conv.send_text("call slow")
                await rec.wait_for_event(events.ToolCall)
                await trio.sleep_forever()
        assert scope.cancelled_caught
        assert (Slow.started, Slow.cancelled) == (1, 1)
        check_no_leak(watch)
        check_closed_normally(server)
        assert server.log.client_messages(kind="toolResponse") == []


async def test_cancel_mid_handoff_while_connecting_again(autojump_clock: MockClock) -> None:
    async with fake() as server, watch_tasks(server) as watch:
        with trio.move_on_after(30) as scope:
            async with (
                conversation(server) as (_, conv),
                recording(conv.subscribe, events.GoAway) as rec,
            ):
                await conv.ask("one")
                await trio.sleep(1)
                server.faults.stall(kind="setupComplete")  # the next connection hangs in setup
                server.faults.go_away_now(time_left=20)
                await rec.wait_for_event(events.GoAway)
                await server.log.wait_for(lambda: len(server.log.connections) == 2)
                assert conv.state is liveactors.ConversationState.RECONNECTING
                await trio.sleep_forever()
        assert scope.cancelled_caught
        check_no_leak(watch)
        server.faults.clear()
        await trio.sleep(1)
        # The old socket was closed for the handoff and the new one on cancellation: both 1000.
        check_closed_normally(server)
        assert server.log.connections[1].resumed_from is not None


async def test_cancel_mid_handoff_while_the_turn_finishes(autojump_clock: MockClock) -> None:
    async with fake(chunks=10, chunk_delay=1.0) as server, watch_tasks(server) as watch:
        with trio.move_on_after(4) as scope:
            async with conversation(server) as (_, conv):
                await conv.send_text("long")
                await trio.sleep(1)
                # The handoff waits for the answer to finish: the conversation holds input.
                async with conv.subscribe(events.GoAway) as sub:
                    server.faults.go_away_now(time_left=60)
                    await sub.__anext__()
                await conv.send_text("held")
                await trio.sleep_forever()
        assert scope.cancelled_caught
        check_no_leak(watch)
        check_closed_normally(server)
        assert len(server.log.connections) == 1
        assert [m.kind for m in server.log.client_messages()] == ["setup", "clientContent"]


async def test_cancel_many_conversations_in_different_states(autojump_clock: MockClock) -> None:
    config = tools_config(function("slow"))
    async with fake() as server, watch_tasks(server) as watch:
        backend = server.backend(model=FAKE_TEXT_MODEL)
        with trio.move_on_after(60) as scope:
            async with liveactors.open_orchestrator(backend, restart=SLOW_RESTART) as orch:
                idle = await orch.spawn(TEXT, name="idle")
                busy = await orch.spawn(config, name="busy", actor=Slow)
                waiting = await orch.spawn(TEXT, name="waiting")
                await busy.send_text("call slow")
                await idle.ask("hi")
                server.faults.drop_now(connection=3)
                server.faults.stall(kind="setupComplete")
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(partial(orch.spawn, TEXT, name="stuck"))  # in setup
                    await trio.sleep(5)
                    assert waiting.state is liveactors.ConversationState.RECONNECTING
                    await trio.sleep_forever()
        assert scope.cancelled_caught
        check_no_leak(watch)
        server.faults.clear()
        await trio.sleep(1)
        for ref in (idle, busy, waiting):
            assert ref.state is liveactors.ConversationState.CLOSED
        for record in server.log.connections:
            assert not record.open
            assert record.close_code == (1006 if record.id == 3 else 1000), record


# -- graceful ends --------------------------------------------------------------------------


async def test_stop_closes_with_1000_and_closed_is_last(autojump_clock: MockClock) -> None:
    async with (
        fake() as server,
        watch_tasks(server) as watch,
        conversation(server) as (orch, conv),
    ):
        async with conv.subscribe() as sub:
            await conv.ask("hi")
            await conv.stop()
            got = await drain(sub)
        assert isinstance(got[-1], events.ConversationClosed)
        assert sum(isinstance(e, events.ConversationClosed) for e in got) == 1
        assert conv.state is liveactors.ConversationState.CLOSED
        check_closed_normally(server)
        # The orchestrator runs on; the conversation left nothing behind.
        await trio.sleep(1)
        assert conversation_tasks(orch) == []
        assert orch.conversations == []
        with pytest.raises(KeyError):
            orch.get("c1")
    check_no_leak(watch)


async def test_stop_grace_lets_the_answer_finish(autojump_clock: MockClock) -> None:
    async with fake(chunks=5, chunk_delay=1.0) as server, conversation(server) as (_, conv):
        replies: list[liveactors.Reply] = []
        async with trio.open_nursery() as nursery:

            async def ask() -> None:
                replies.append(await conv.ask("take your time"))

            nursery.start_soon(ask)
            await trio.sleep(0.5)
            start = trio.current_time()
            await conv.stop(grace=10)
            # It took the answer's time, not the grace.
            assert 3.5 <= trio.current_time() - start < 10
        [reply] = replies
        assert reply.text == "echo #1: take your time"
        assert not reply.interrupted
        assert server.log.model_turns()[0].completed
        check_closed_normally(server)


async def test_stop_grace_expires(autojump_clock: MockClock) -> None:
    async with fake(chunks=10, chunk_delay=1.0) as server, conversation(server) as (_, conv):
        errors: list[Exception] = []
        async with trio.open_nursery() as nursery:

            async def ask() -> None:
                try:
                    await conv.ask("a very long story")
                except liveactors.ConversationStopped as exc:
                    errors.append(exc)

            nursery.start_soon(ask)
            await trio.sleep(0.5)
            start = trio.current_time()
            await conv.stop(grace=2)
            assert trio.current_time() - start == pytest.approx(2.0)
        # The question could not be answered in time: ask() says so.
        [error] = errors
        assert "closed" in str(error)
        check_closed_normally(server)
        assert server.log.model_turns()[0].outcome == "cut"


async def test_stop_while_reconnecting(autojump_clock: MockClock) -> None:
    async with (
        fake() as server,
        watch_tasks(server) as watch,
        conversation(server, restart=SLOW_RESTART) as (orch, conv),
        recording(conv.subscribe, events.Reconnecting) as rec,
    ):
        server.faults.drop_now()
        await rec.wait_for_event(events.Reconnecting)
        await conv.send_text("queued during the backoff")
        with trio.fail_after(40):
            await conv.stop(grace=60)
        assert conv.state is liveactors.ConversationState.CLOSED
        # What was accepted went out on the new connection and was answered before closing.
        assert server.log.answered() == ["queued during the backoff"]
        assert close_codes(server) == [1006, 1000]
        await trio.sleep(1)
        assert conversation_tasks(orch) == []
    check_no_leak(watch)


async def test_leaving_the_orchestrator_is_graceful(autojump_clock: MockClock) -> None:
    async with fake(chunks=4, chunk_delay=1.0) as server, watch_tasks(server) as watch:
        backend = server.backend(model=FAKE_TEXT_MODEL)
        async with liveactors.open_orchestrator(backend, grace=10) as orch:
            a = await orch.spawn(TEXT, name="a")
            b = await orch.spawn(TEXT, name="b")
            sub_cm = a.subscribe(buffer=1000)
            sub = await sub_cm.__aenter__()
            await a.send_text("first")
            await b.send_text("second")
            await trio.sleep(0.5)
        # Both answers in progress finished before the sockets closed with 1000.
        assert sorted(server.log.answered()) == ["first", "second"]
        assert all(t.completed for t in server.log.model_turns())
        check_closed_normally(server)
        got = await drain(sub)
        await sub_cm.__aexit__(None, None, None)
        assert isinstance(got[-1], events.ConversationClosed)
        assert any(isinstance(e, events.TurnComplete) for e in got)
        assert a.state is b.state is liveactors.ConversationState.CLOSED
        with pytest.raises(liveactors.ConversationStopped):
            await a.send_text("after")
        check_no_leak(watch)


async def test_conversation_tasks_live_in_the_orchestrator_nursery(
    autojump_clock: MockClock,
) -> None:
    """While it runs, a conversation's tasks (its supervisor and its connection's reader; the
    writer runs in the supervisor's own task, the transport starts none) are all below the
    orchestrator's nursery, none elsewhere."""
    async with (
        fake() as server,
        watch_tasks(server) as watch,
        conversation(server) as (orch, conv),
    ):
        await conv.ask("hi")
        below = conversation_tasks(orch)
        assert len(below) >= 2
        alive = watch.alive()
        assert set(below) <= set(alive)
        # Whatever else is alive is the orchestrator's own housekeeping or the test's
        # context managers, not the conversation's.
        assert not any("_supervisor" in name for name in set(alive) - set(below))
