"""Shutdown. Leaving the block normally is graceful: no new work, answers in progress finish
within ``grace``, every socket closes with 1000, handles are saved, no task is left. Leaving it
by an exception or a cancellation — or a cancellation arriving during the graceful shutdown, or
the grace running out — is immediate, and still closes every socket with 1000."""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing
from orch_helpers import TEXT, backend, watch_tasks

from liveactors import (
    Actor,
    ConversationState,
    InvalidCommand,
    MemoryHandleStore,
    RestartPolicy,
    events,
    open_orchestrator,
)
from liveactors.testing import FakeServer, open_fake_server


def close_codes(server: FakeServer) -> list[int | None]:
    return [c.close_code for c in server.log.connections]


def assert_all_closed_1000(server: FakeServer, at: float | None = None) -> None:
    assert server.open_connections == []
    for record in server.log.connections:
        assert (record.close_code, record.cause) == (1000, "client"), record
        if at is not None:
            assert record.closed_at == pytest.approx(at)


async def test_graceful_shutdown_lets_answers_finish_then_closes_with_1000(
    autojump_clock: trio.testing.MockClock,
) -> None:
    store = MemoryHandleStore()
    async with open_fake_server(listen=False, response_latency=2.0) as server:
        with watch_tasks() as tasks:
            async with open_orchestrator(backend(server), handle_store=store, grace=5) as orch:
                convs = [await orch.spawn(TEXT, name=f"c{i}") for i in range(5)]
                for conv in convs:
                    await conv.send_text(f"slow {conv.name}")
                left_at = trio.current_time()
            ended_at = trio.current_time()
            assert tasks.alive_outside(server._nursery) == []
        # Every answer in progress finished, then every socket closed with 1000.
        turns = server.log.model_turns()
        assert [t.outcome for t in turns] == ["completed"] * 5
        assert ended_at - left_at == pytest.approx(2.0)
        assert_all_closed_1000(server)
        for turn, record in zip(turns, server.log.connections, strict=True):
            assert record.closed_at is not None and turn.ended_at is not None
            assert record.closed_at >= turn.ended_at
        assert all(c.state is ConversationState.CLOSED for c in convs)
        # No new work from then on.
        with pytest.raises(InvalidCommand, match="shutting down: spawn"):
            await orch.spawn(TEXT)
        with pytest.raises(InvalidCommand, match="shutting down: spawn_actor"):
            await orch.spawn_actor(Recorder())
        # Handles were saved: the newest one of each session, issued after its answer.
        for conv in convs:
            stored = await store.load(conv.name)
            assert stored is not None
            session = server.log.connections[int(conv.name[1:])].session
            assert session is not None
            assert stored.handle == server.sessions[session].handles[-1]


async def test_the_grace_running_out_closes_with_1000_at_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_fake_server(listen=False, response_latency=100.0) as server:
        with watch_tasks() as tasks:
            async with open_orchestrator(backend(server), grace=3) as orch:
                conv = await orch.spawn(TEXT, name="c")
                await conv.send_text("never answered in time")
                left_at = trio.current_time()
            assert trio.current_time() - left_at == pytest.approx(3.0)
            assert tasks.alive_outside(server._nursery) == []
        assert_all_closed_1000(server, at=left_at + 3.0)
        assert [t.outcome for t in server.log.model_turns()] == ["cut"]


async def test_cancelling_the_enclosing_scope_is_immediate_and_closes_with_1000(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_fake_server(listen=False, response_latency=100.0) as server:
        with watch_tasks() as tasks:
            with trio.move_on_after(10) as scope:
                async with open_orchestrator(backend(server), grace=30) as orch:
                    convs = [await orch.spawn(TEXT, name=f"c{i}") for i in range(3)]
                    await convs[0].send_text("in progress")
                    await trio.sleep_forever()
            assert scope.cancelled_caught
            assert trio.current_time() == pytest.approx(10.0)  # no grace on a cancel
            assert tasks.alive_outside(server._nursery) == []
        assert_all_closed_1000(server, at=10.0)
        assert all(c.state is ConversationState.CLOSED for c in convs)
        assert orch.closing


async def test_a_cancel_during_the_graceful_shutdown_makes_it_immediate(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_fake_server(listen=False, response_latency=100.0) as server:
        with watch_tasks() as tasks:
            with trio.CancelScope() as scope:
                async with open_orchestrator(backend(server), grace=60) as orch:
                    conv = await orch.spawn(TEXT, name="c")
                    await conv.send_text("slow")
                    # The second "cancel": 2 s into the graceful shutdown.
                    scope.deadline = trio.current_time() + 2
            assert scope.cancelled_caught
            assert trio.current_time() == pytest.approx(2.0)
            assert tasks.alive_outside(server._nursery) == []
        assert_all_closed_1000(server, at=2.0)


async def test_an_exception_in_the_block_is_immediate_and_raised_as_itself(
    autojump_clock: trio.testing.MockClock,
) -> None:
    store = MemoryHandleStore()
    async with open_fake_server(listen=False, response_latency=100.0) as server:
        with pytest.raises(KeyError, match="boom"):
            async with open_orchestrator(backend(server), grace=30, handle_store=store) as orch:
                async with orch.subscribe(events.ResumptionUpdate) as sub:
                    conv = await orch.spawn(TEXT, name="c")
                    await sub.__anext__()  # the handle given right after setup
                await conv.send_text("slow")
                raise KeyError("boom")
        assert trio.current_time() == 0.0
        assert_all_closed_1000(server, at=0.0)
        # The handles are saved on this path too.
        stored = await store.load("c")
        assert stored is not None
        assert stored.handle == server.sessions["session-1"].handles[0]


async def test_a_reconnecting_conversation_with_nothing_in_progress_is_not_waited_for(
    autojump_clock: trio.testing.MockClock,
) -> None:
    slow = RestartPolicy(max_restarts=5, backoff_initial=20.0, backoff_max=20.0, jitter=0)
    async with open_fake_server(listen=False) as server:
        async with open_orchestrator(backend(server), restart=slow, grace=30) as orch:
            conv = await orch.spawn(TEXT, name="c")
            async with conv.subscribe(events.Reconnecting) as sub:
                server.faults.drop_now()
                await sub.__anext__()
            left_at = trio.current_time()
        assert trio.current_time() == left_at
        assert len(server.log.connections) == 1  # it did not reconnect just to close
        assert conv.state is ConversationState.CLOSED


async def test_a_reconnecting_conversation_with_a_question_in_flight_finishes_it(
    autojump_clock: trio.testing.MockClock,
) -> None:
    policy = RestartPolicy(max_restarts=5, backoff_initial=1.0, backoff_max=1.0, jitter=0)
    async with open_fake_server(listen=False, response_latency=0.5) as server:
        async with open_orchestrator(backend(server), restart=policy, grace=10) as orch:
            conv = await orch.spawn(TEXT, name="c")
            async with conv.subscribe(events.Reconnecting) as sub:
                await conv.send_text("in flight")
                server.faults.drop_now()
                await sub.__anext__()
        assert server.log.answer_counts() == {"in flight": 1}
        assert [c.close_code for c in server.log.connections] == [1006, 1000]


async def test_a_spawn_still_connecting_at_shutdown_fails_and_its_socket_closes(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_fake_server(listen=False, setup_latency=50.0) as server:
        errors: list[BaseException] = []
        async with (
            trio.open_nursery() as outside,
            open_orchestrator(backend(server), grace=30) as orch,
        ):

            async def spawn(task_status: trio.TaskStatus[None]) -> None:
                task_status.started()
                try:
                    await orch.spawn(TEXT, name="late")
                except InvalidCommand as exc:
                    errors.append(exc)

            await outside.start(spawn)
            await trio.sleep(1)
        assert trio.current_time() == pytest.approx(1.0)
        assert [str(e) for e in errors] == [
            "the orchestrator is shutting down: spawn() accepts no new work"
        ]
        assert close_codes(server) == [1000]
        stats = orch.statistics()
        assert (stats.rejected, stats.spawned, stats.sessions) == (1, 0, 0)


async def test_aclose_shuts_down_while_the_block_still_runs(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_fake_server(listen=False, response_latency=1.0) as server:
        async with open_orchestrator(backend(server)) as orch:
            conv = await orch.spawn(TEXT, name="c")
            await conv.send_text("q")
            await orch.aclose(grace=5)
            assert orch.closing
            assert conv.state is ConversationState.CLOSED
            assert orch.conversations == []
            assert server.log.answer_counts() == {"q": 1}
            with pytest.raises(InvalidCommand, match="shutting down"):
                await orch.spawn(TEXT)
            await orch.aclose()  # again: nothing left to do
        assert close_codes(server) == [1000]


class Recorder(Actor[str]):
    def __init__(self, delay: float = 0.0) -> None:
        super().__init__("recorder")
        self.seen: list[str] = []
        self.stopped = False
        self.delay = delay
        self.watch: Any = None
        self.state_at_stop: ConversationState | None = None

    async def handle(self, message: str) -> None:
        await trio.sleep(self.delay)
        self.seen.append(message)

    async def on_stop(self) -> None:
        self.stopped = True
        if self.watch is not None:
            self.state_at_stop = self.watch.state


async def test_actors_stop_after_the_conversations(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_fake_server(listen=False, response_latency=1.0) as server:
        recorder = Recorder()
        async with open_orchestrator(backend(server)) as orch:
            await orch.spawn_actor(recorder)
            assert orch.statistics().actors == 1
            conv = await orch.spawn(TEXT, name="c")
            recorder.watch = conv
            await conv.send_text("q")
            await recorder.send("queued before the end")
        assert recorder.stopped
        # What it was sent was handled, and it stopped once the conversation had closed.
        assert recorder.seen == ["queued before the end"]
        assert recorder.state_at_stop is ConversationState.CLOSED
        assert server.log.answer_counts() == {"q": 1}
        assert orch.statistics().actors == 0


async def test_an_actor_that_does_not_stop_in_time_is_cancelled(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_fake_server(listen=False) as server:
        slow = Recorder(delay=1000.0)
        async with open_orchestrator(backend(server), grace=4) as orch:
            await orch.spawn_actor(slow)
            await slow.send("forever")
            left_at = trio.current_time()
        assert trio.current_time() - left_at == pytest.approx(4.0)
        assert not slow.stopped
        assert slow.seen == []


async def test_many_conversations_mid_answer_all_close_with_1000(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_fake_server(
        listen=False, response_latency=0.5, chunks=5, chunk_delay=0.2
    ) as server:
        async with open_orchestrator(backend(server), grace=2, connect_rate=50) as orch:
            for i in range(30):
                conv = await orch.spawn(TEXT, name=f"c{i}")
                await conv.send_text(f"q{i}")
        assert_all_closed_1000(server)
        assert len(server.log.connections) == 30
        assert set(server.log.answer_counts().values()) == {1}
        assert len(server.log.answer_counts()) == 30


async def test_input_handed_back_at_shutdown_shows_in_the_orchestrators_statistics(
    autojump_clock: trio.testing.MockClock,
) -> None:
    slow = RestartPolicy(max_restarts=5, backoff_initial=30.0, backoff_max=30.0, jitter=0)
    async with open_fake_server(listen=False) as server:
        async with open_orchestrator(backend(server), restart=slow, grace=5) as orch:
            conv = await orch.spawn(TEXT, name="c")
            other = await orch.spawn(TEXT, name="d")
            await other.ask("answered")
            async with conv.subscribe(events.Reconnecting) as sub:
                server.faults.drop_now(connection=server.log.connections[0].id)
                await sub.__anext__()
            await conv.send_text("queued one")  # accepted while reconnecting (30 s backoff)
            await conv.send_text("queued two")
        # The backoff outlasted the grace: both were handed back, and the orchestrator's
        # statistics (summed over the conversations that ended) say so.
        final = orch.statistics()
        assert final.undelivered == conv.statistics().undelivered == 2
        assert final.turns == 1
        assert server.log.answered() == ["answered"]
