"""The guest run's life: tied to the ``async with``, one per loop, graceful or immediate exit,
errors handed over as themselves."""

from __future__ import annotations

import asyncio
import time

import pytest
import trio
from aio_helpers import TEXT, eventually, fake, fake_text, guest_tasks, run

import liveactors
from liveactors import aio
from liveactors.aio import _guest


def test_one_guest_run_per_loop() -> None:
    async def main() -> None:
        async with aio.open_orchestrator(fake()) as orch:
            with pytest.raises(liveactors.InvalidCommand, match="already runs a liveactors guest"):
                async with aio.open_orchestrator(fake()):
                    pass
            conv = await orch.spawn()  # the first one is undisturbed
            assert (await conv.ask("Hi")).text == "echo #1: Hi"
        assert not _guest._GUESTS
        # Once it has ended, the loop can run another.
        async with aio.open_orchestrator(fake()) as again:
            assert (await (await again.spawn()).ask("Hi")).text == "echo #1: Hi"

    run(main)


def test_no_guest_run_where_trio_runs_already() -> None:
    """A guest run needs a thread without a trio run (trio's run state is per thread)."""

    async def enter() -> None:
        async with aio.open_orchestrator(fake()):
            pass  # pragma: no cover

    async def in_trio() -> None:
        loop = asyncio.new_event_loop()
        try:
            with pytest.raises(liveactors.InvalidCommand, match="trio is already running"):
                loop.run_until_complete(enter())
        finally:
            loop.close()

    trio.run(in_trio)
    assert not _guest._GUESTS


def test_the_block_s_exception_propagates_and_shutdown_is_immediate() -> None:
    class Oops(Exception):
        pass

    oops = Oops("from the block")
    backend = fake_text(response_latency=5)

    async def main() -> None:
        asking: asyncio.Task[liveactors.Reply] | None = None
        started = 0.0
        with pytest.raises(Oops) as raised:
            async with aio.open_orchestrator(backend, grace=10) as orch:
                conv = await orch.spawn(TEXT)
                asking = asyncio.create_task(conv.ask("never answered"))
                await asyncio.sleep(0.1)
                started = time.monotonic()
                raise oops
        assert raised.value is oops  # itself, not wrapped
        assert time.monotonic() - started < 3  # immediate: no grace period
        assert asking is not None
        with pytest.raises(liveactors.ConversationStopped):
            await asking
        assert not _guest._GUESTS

    run(main)
    assert backend.server is not None
    assert [c.close_code for c in backend.server.log.connections] == [1000]


def test_a_graceful_exit_lets_the_answer_in_progress_finish() -> None:
    backend = fake_text(chunks=5, chunk_delay=0.1)

    async def main() -> None:
        async with aio.open_orchestrator(backend) as orch:
            conv = await orch.spawn(TEXT)
            asking = asyncio.create_task(conv.ask("take your time"))
            server = orch.fake_server
            assert server is not None
            await eventually(lambda: bool(server.log.server_messages(kind="modelTurn")))
        reply = await asking
        assert reply.text == "echo #1: take your time"
        assert orch.closing and orch.conversations == []
        # Calls after the end: the errors of a closed orchestrator, never trio's.
        with pytest.raises(liveactors.ConversationStopped):
            await conv.send_text("anyone?")
        with pytest.raises(liveactors.InvalidCommand, match="shut down"):
            await orch.spawn(TEXT)
        await conv.stop()  # nothing to stop: no error
        await conv.wait_closed()
        await orch.aclose()
        stats = orch.statistics()  # the last ones it had
        assert (stats.spawned, stats.closed, stats.turns, stats.conversations) == (1, 1, 1, 0)
        assert conv.statistics().turns == 1
        assert conv.statistics().state is liveactors.ConversationState.CLOSED

    run(main)
    assert backend.server is not None
    assert backend.server.log.answer_counts() == {"take your time": 1}
    assert [c.close_code for c in backend.server.log.connections] == [1000]


def test_aclose_in_the_block() -> None:
    async def main() -> None:
        async with aio.open_orchestrator(fake()) as orch:
            conv = await orch.spawn()
            await orch.aclose(grace=1)
            assert orch.closing and conv.state is liveactors.ConversationState.CLOSED
            with pytest.raises(liveactors.InvalidCommand):
                await orch.spawn()

    run(main)


def test_cancelling_the_block_is_immediate_and_propagates() -> None:
    backend = fake_text(response_latency=10)

    async def block(entered: asyncio.Event) -> None:
        async with aio.open_orchestrator(backend, grace=10) as orch:
            conv = await orch.spawn(TEXT)
            entered.set()
            await conv.ask("waits")

    async def main() -> None:
        entered = asyncio.Event()
        task = asyncio.create_task(block(entered))
        await entered.wait()
        await asyncio.sleep(0.1)
        started = time.monotonic()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert time.monotonic() - started < 3 and not _guest._GUESTS

    run(main)


def test_a_cancellation_during_the_graceful_exit_makes_it_immediate() -> None:
    backend = fake_text(response_latency=10)

    async def block() -> None:
        async with aio.open_orchestrator(backend, grace=20) as orch:
            conv = await orch.spawn(TEXT)
            await conv.send_text("answered in 10 s")
        # The graceful exit would wait for the answer.

    async def main() -> None:
        task = asyncio.create_task(block())
        await asyncio.sleep(0.5)
        assert not task.done()  # waiting for the answer in progress
        started = time.monotonic()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert time.monotonic() - started < 3 and not _guest._GUESTS

    run(main)


def test_startup_errors() -> None:
    async def main() -> None:
        with pytest.raises(liveactors.InvalidCommand, match="backend must be"):
            async with aio.open_orchestrator("gemini"):  # type: ignore[arg-type]
                pass  # pragma: no cover
        with pytest.raises(liveactors.InvalidCommand, match="grace"):
            async with aio.open_orchestrator(fake(), grace=-1):
                pass  # pragma: no cover
        assert not _guest._GUESTS

    run(main)
    with pytest.raises(TypeError):
        aio.FakeBackend(no_such_option=1)


def test_a_guest_run_that_dies_cancels_the_block_and_raises_why() -> None:
    """As in a trio nursery: the orchestrator failing (here a task of its nursery raising) ends
    the block, and leaving it raises that error (the block's cancellation taken back)."""

    async def boom() -> None:
        raise RuntimeError("the orchestrator's nursery failed")

    async def main() -> None:
        with pytest.raises(RuntimeError, match="nursery failed"):
            async with aio.open_orchestrator(fake()) as orch:
                await orch.run_trio_sync(lambda: orch.trio._nursery.start_soon(boom))
                await asyncio.sleep(10)
        task = asyncio.current_task()
        assert task is not None and task.cancelling() == 0
        assert not _guest._GUESTS

    run(main)


def test_the_fake_server_lives_in_the_guest_run() -> None:
    backend = fake()
    assert backend.server is None

    async def main() -> None:
        async with aio.open_orchestrator(backend) as orch:
            assert orch.fake_server is backend.server is not None
            assert guest_tasks(orch) == 0
            await (await orch.spawn()).ask("Hi")

    run(main)
    assert backend.server is not None and backend.server.log.answer_counts() == {"Hi": 1}
