"""aio subscriptions: async iterators fed from trio subscriptions, with their policies."""

from __future__ import annotations

import asyncio

import pytest
import trio
from aio_helpers import TEXT, eventually, fake_text, guest_tasks, run

import liveactors
from liveactors import aio, events


def test_leaving_the_block_unsubscribes() -> None:
    async def main() -> None:
        async with aio.open_orchestrator(fake_text()) as orch:
            conv = await orch.spawn(TEXT)
            async with conv.subscribe() as stream, orch.subscribe(events.TurnComplete) as ends:
                assert conv.statistics().subscribers == 1
                assert orch.statistics().subscribers == 2
                assert guest_tasks(orch) == 2  # one pump each
                await conv.send_text("Hi")
                end = await anext(ends)
                assert isinstance(end, events.TurnComplete) and end.conversation == conv.name
            assert orch.statistics().subscribers == 0 and guest_tasks(orch) == 0
            # What was handed over stays readable, then the iteration ends.
            rest = [type(event).__name__ async for event in stream]
            assert "TurnComplete" in rest
            context = conv.subscribe()
            async with context:
                with pytest.raises(liveactors.InvalidCommand, match="entered already"):
                    await context.__aenter__()
            # aclose() on the iterator unsubscribes too.
            async with conv.subscribe() as stream:
                await stream.aclose()
                assert stream.ended and orch.statistics().subscribers == 0
                assert [event async for event in stream] == []

    run(main)


def test_the_iteration_ends_with_the_conversation() -> None:
    async def main() -> None:
        async with aio.open_orchestrator(fake_text()) as orch:
            conv = await orch.spawn(TEXT)
            async with conv.subscribe() as stream:
                await conv.send_text("Hi")
                await conv.stop()
                seen = [type(event).__name__ async for event in stream]
            assert seen[-1] == "ConversationClosed" and "TurnComplete" in seen

    run(main)


def test_the_same_events_as_a_trio_subscriber() -> None:
    """A trio subscriber in the guest and an aio one see the very same events, in order."""

    async def main() -> None:
        async with aio.open_orchestrator(fake_text(chunks=20)) as orch:
            conv = await orch.spawn(TEXT)
            from_trio: list[events.Event] = []

            async def trio_reader(task_status: trio.TaskStatus[None]) -> None:
                async with conv.trio.subscribe() as sub:
                    task_status.started()
                    async for event in sub:
                        from_trio.append(event)

            async def start_trio_reader() -> None:
                await orch._guest.nursery.start(trio_reader)

            await orch.run_trio(start_trio_reader)
            async with conv.subscribe() as stream:
                for question in ("the first question", "the second", "the third"):
                    await conv.ask(question)
                await conv.stop()
                from_aio = [event async for event in stream]
            await eventually(lambda: bool(from_trio) and from_trio[-1] is from_aio[-1])
            # (The trio subscriber, there first, may have seen the spawn's last events too.)
            since = [e for e in from_trio if e.seq >= from_aio[0].seq]
            assert from_aio == since and len(from_aio) > 60
            assert [e.seq for e in from_aio] == sorted(e.seq for e in from_aio)

    run(main)


def test_block_slows_the_conversation_down() -> None:
    """``block``: a reader that does not read holds the conversation back (the trio buffer and
    the handoff are full); reading lets it go on."""

    async def main() -> None:
        async with aio.open_orchestrator(fake_text(chunks=20)) as orch:
            conv = await orch.spawn(TEXT)
            async with conv.subscribe(buffer=2) as stream:
                asking = asyncio.create_task(conv.ask("long answer"))
                # 2 in the trio buffer, 2 handed over: the conversation waits.
                await eventually(lambda: stream.statistics().buffered == 4)
                await asyncio.sleep(0.3)
                assert not asking.done() and stream.statistics().buffered == 4
                read = 0
                while not asking.done():
                    await anext(stream)
                    read += 1
                reply = await asking
                assert reply.text == "echo #1: long answer" and read > 15
                assert stream.statistics().dropped == 0

    run(main)


def test_drop_oldest_never_waits() -> None:
    async def main() -> None:
        async with aio.open_orchestrator(fake_text(chunks=30)) as orch:
            conv = await orch.spawn(TEXT)
            async with conv.subscribe(buffer=3, overflow="drop_oldest") as stream:
                reply = await conv.ask("nobody reads")  # completes although nobody reads
                assert reply.text == "echo #1: nobody reads"
                stats = stream.statistics()
                assert stats.dropped > 0 and stats.overflow == "drop_oldest"
                assert conv.statistics().events_dropped == stats.dropped
                await conv.stop()
                kept = [event async for event in stream]
            # The handoff's three oldest, the newest three, and the closing events (the last
            # events of a conversation reach every subscriber).
            assert len(kept) < 12 and isinstance(kept[-1], events.ConversationClosed)

    run(main)


def test_error_ends_the_iteration_with_subscriber_overflow() -> None:
    async def main() -> None:
        async with aio.open_orchestrator(fake_text(chunks=30)) as orch:
            conv = await orch.spawn(TEXT)
            async with conv.subscribe(buffer=2, overflow="error") as stream:
                await conv.ask("too much")
                got = []
                with pytest.raises(liveactors.SubscriberOverflow):
                    async for event in stream:
                        got.append(event)
                assert len(got) == 4  # what it held: the handoff and the trio buffer
                with pytest.raises(liveactors.SubscriberOverflow):
                    stream.receive_nowait()

    run(main)


def test_a_subscription_to_a_name_follows_it() -> None:
    async def main() -> None:
        async with (
            aio.open_orchestrator(fake_text()) as orch,
            orch.subscribe(events.Connected, conversation="bot") as stream,
        ):
            first = await orch.spawn(TEXT, name="bot")
            await first.stop()
            second = await orch.spawn(TEXT, name="bot")
            assert second != first
            connected = [await anext(stream), await anext(stream)]
            assert [e.conversation for e in connected] == ["bot", "bot"]
            assert stream.receive_nowait() is None

    run(main)


def test_subscriptions_end_when_the_orchestrator_shuts_down() -> None:
    async def main() -> None:
        reader: asyncio.Task[list[str]] | None = None
        async with aio.open_orchestrator(fake_text()) as orch:
            conv = await orch.spawn(TEXT)

            async def read() -> list[str]:
                async with orch.subscribe() as stream:
                    await conv.send_text("Hi")
                    return [type(event).__name__ async for event in stream]

            reader = asyncio.create_task(read())
            await eventually(lambda: orch.statistics().turns == 1)
        seen = await reader
        assert "TurnComplete" in seen and seen[-1] == "ConversationClosed"

    run(main)
