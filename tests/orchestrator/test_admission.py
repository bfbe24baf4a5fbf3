"""Admission control: ``max_sessions`` caps live sessions; ``spawn`` waits for a slot."""

from __future__ import annotations

import pytest
import trio
import trio.testing
from orch_helpers import TEXT, backend, most_open_at_once

from liveactors import (
    AdmissionTimeout,
    ConversationState,
    InvalidCommand,
    RestartPolicy,
    SessionRejected,
    events,
    open_orchestrator,
)
from liveactors.testing import open_fake_server


async def test_spawn_waits_for_a_free_slot(autojump_clock: trio.testing.MockClock) -> None:
    async with open_fake_server(listen=False) as server:
        async with open_orchestrator(backend(server), max_sessions=2) as orch:
            a = await orch.spawn(TEXT, name="a")
            await orch.spawn(TEXT, name="b")
            got: list[str] = []

            async def third() -> None:
                conv = await orch.spawn(TEXT, name="c")
                got.append(conv.name)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(third)
                await trio.sleep(10)
                assert got == []
                stats = orch.statistics()
                assert (stats.sessions, stats.waiting) == (2, 1)
                assert len(server.open_connections) == 2
                stopped_at = trio.current_time()
                await a.stop()
            assert got == ["c"]
            assert server.log.connections[2].opened_at == stopped_at
            assert orch.statistics().peak_sessions == 2
        assert most_open_at_once(server.log.connections) == 2


async def test_admission_timeout_raises_a_clear_error(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_fake_server(listen=False) as server:
        async with open_orchestrator(backend(server), max_sessions=1) as orch:
            await orch.spawn(TEXT, name="a")
            start = trio.current_time()
            with pytest.raises(AdmissionTimeout) as caught:
                await orch.spawn(TEXT, name="b", admission_timeout=2.5)
            assert trio.current_time() - start == pytest.approx(2.5)
            message = str(caught.value)
            assert "no session slot became free within 2.5s for 'b'" in message
            assert "all 1 (max_sessions) are taken" in message
            assert isinstance(caught.value, TimeoutError)
            stats = orch.statistics()
            assert (stats.sessions, stats.waiting, stats.rejected) == (1, 0, 1)
            # The name is free again.
            with pytest.raises(KeyError):
                orch.get("b")
            with pytest.raises(AdmissionTimeout):
                await orch.spawn(TEXT, name="b", admission_timeout=0)
        assert len(server.log.connections) == 1


async def test_the_orchestrator_default_admission_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with (
        open_fake_server(listen=False) as server,
        open_orchestrator(backend(server), max_sessions=1, admission_timeout=1.0) as orch,
    ):
        await orch.spawn(TEXT, name="a")
        with pytest.raises(AdmissionTimeout, match="within 1s"):
            await orch.spawn(TEXT, name="b")
        # spawn's own argument wins.
        start = trio.current_time()
        with pytest.raises(AdmissionTimeout, match="within 3s"):
            await orch.spawn(TEXT, name="b", admission_timeout=3)
        assert trio.current_time() - start == pytest.approx(3)


async def test_a_failed_conversation_frees_its_slot(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with (
        open_fake_server(listen=False) as server,
        open_orchestrator(backend(server), max_sessions=1) as orch,
    ):
        a = await orch.spawn(TEXT, name="a")
        server.faults.close_now(1008, "Policy violation")
        with trio.fail_after(1):
            b = await orch.spawn(TEXT, name="b")
        assert a.state is ConversationState.FAILED
        assert (await b.ask("x")).text == "echo #1: x"
        stats = orch.statistics()
        assert (stats.failed, stats.sessions, stats.peak_sessions) == (1, 1, 1)


async def test_a_conversation_that_runs_out_of_restarts_frees_its_slot(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_fake_server(listen=False) as server:
        policy = RestartPolicy(max_restarts=1, backoff_initial=0.1)
        async with open_orchestrator(backend(server), max_sessions=1, restart=policy) as orch:
            a = await orch.spawn(TEXT, name="a")
            server.faults.drop(connection="all")
            server.faults.drop_now()
            with trio.fail_after(5):
                await a.wait_closed()
            server.faults.clear()
            assert a.state is ConversationState.FAILED
            with trio.fail_after(1):
                await orch.spawn(TEXT, name="b")


async def test_a_rejected_spawn_gives_back_exactly_one_slot(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with (
        open_fake_server(listen=False) as server,
        open_orchestrator(backend(server), max_sessions=1) as orch,
    ):
        for _ in range(3):
            server.faults.close(1007, "bad")
            with pytest.raises(SessionRejected):
                await orch.spawn(TEXT)
        await orch.spawn(TEXT, name="a")
        # Still only one slot: the rejected spawns did not add any.
        with pytest.raises(AdmissionTimeout):
            await orch.spawn(TEXT, name="b", admission_timeout=1)
        assert orch.statistics().sessions == 1


async def test_a_cancelled_spawn_gives_back_its_slot_and_name(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_fake_server(listen=False, setup_latency=5.0) as server:
        async with open_orchestrator(backend(server), max_sessions=1) as orch:
            with trio.move_on_after(1):
                await orch.spawn(TEXT, name="a")  # cancelled while connecting
            stats = orch.statistics()
            assert (stats.sessions, stats.rejected, stats.conversations) == (0, 1, 0)
            with trio.move_on_after(1):
                await orch.spawn(TEXT, name="a")
            await orch.spawn(TEXT, name="a")
            assert orch.statistics().sessions == 1
        # Each cancelled connect was closed with 1000 on the way out.
        assert [c.close_code for c in server.log.connections] == [1000, 1000, 1000]


async def test_waiting_spawns_are_admitted_in_order(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_fake_server(listen=False) as server:
        async with open_orchestrator(backend(server), max_sessions=1) as orch:
            first = await orch.spawn(TEXT, name="first")
            order: list[str] = []

            async def spawn_and_stop(name: str) -> None:
                conv = await orch.spawn(TEXT, name=name)
                order.append(name)
                await trio.sleep(1)
                await conv.stop()

            async with trio.open_nursery() as nursery:
                for name in ("w1", "w2", "w3"):
                    nursery.start_soon(spawn_and_stop, name)
                    await trio.sleep(0.1)
                await first.stop()
            assert order == ["w1", "w2", "w3"]
        assert most_open_at_once(server.log.connections) == 1


async def test_reconnects_keep_their_slot(autojump_clock: trio.testing.MockClock) -> None:
    """A conversation reconnecting after a drop holds its slot: a waiting spawn does not
    take it, so the reconnect never pushes the live sessions over the cap."""
    async with open_fake_server(listen=False) as server:
        async with open_orchestrator(backend(server), max_sessions=1) as orch:
            a = await orch.spawn(TEXT, name="a")
            waiting: list[str] = []

            async def spawn_b() -> None:
                await orch.spawn(TEXT, name="b")
                waiting.append("b")

            async with trio.open_nursery() as nursery:
                nursery.start_soon(spawn_b)
                async with a.subscribe(events.Connected) as sub:
                    for _ in range(3):
                        server.faults.drop_now()
                        await sub.__anext__()
                assert (await a.ask("still here")).text == "echo #1: still here"
                assert waiting == []
                await a.stop()
            assert waiting == ["b"]
        assert most_open_at_once(server.log.connections) == 1
        assert orch.statistics().peak_sessions == 1


async def test_many_spawns_never_exceed_the_cap(autojump_clock: trio.testing.MockClock) -> None:
    async with open_fake_server(listen=False, max_connections=5, response_latency=0.3) as server:
        async with open_orchestrator(backend(server), max_sessions=5) as orch:

            async def one(i: int) -> None:
                conv = await orch.spawn(TEXT, name=f"c{i}")
                for j in range(2):
                    assert (await conv.ask(f"c{i} q{j}")).text.endswith(f": c{i} q{j}")
                await conv.stop()

            async with trio.open_nursery() as nursery:
                for i in range(40):
                    nursery.start_soon(one, i)
            stats = orch.statistics()
            assert (stats.spawned, stats.closed, stats.peak_sessions) == (40, 40, 5)
        assert most_open_at_once(server.log.connections) == 5
        assert server.log.notes_of("upgrade_refused") == []
        assert set(server.log.answer_counts().values()) == {1}
        assert len(server.log.answer_counts()) == 80


async def test_without_a_cap_spawns_never_wait(autojump_clock: trio.testing.MockClock) -> None:
    async with (
        open_fake_server(listen=False) as server,
        open_orchestrator(backend(server)) as orch,
    ):
        start = trio.current_time()
        for i in range(20):
            await orch.spawn(TEXT, name=f"c{i}")
        assert trio.current_time() == start
        stats = orch.statistics()
        assert (stats.sessions, stats.peak_sessions, stats.max_sessions) == (20, 20, None)


async def test_spawns_waiting_for_a_slot_fail_when_shutdown_begins(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_fake_server(listen=False) as server:
        errors: list[BaseException] = []
        async with (
            trio.open_nursery() as outside,
            open_orchestrator(backend(server), max_sessions=1) as orch,
        ):
            await orch.spawn(TEXT, name="a")

            async def waiting_spawn(task_status: trio.TaskStatus[None]) -> None:
                task_status.started()
                try:
                    await orch.spawn(TEXT, name="b")
                except InvalidCommand as exc:
                    errors.append(exc)

            await outside.start(waiting_spawn)
            await trio.sleep(1)
            assert orch.statistics().waiting == 1
        assert len(errors) == 1
        assert "shutting down" in str(errors[0])
        assert len(server.log.connections) == 1  # b never connected
