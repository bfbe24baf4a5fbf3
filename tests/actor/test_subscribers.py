"""Subscribers: any number, each seeing everything (or the types it asked for), each with its
own bounded buffer and overflow policy; none of them leaving ever disturbs the conversation."""

from __future__ import annotations

import pytest
import trio
from trio.testing import MockClock

import liveactors
from liveactors import events
from liveactors._models import FAKE_TEXT_MODEL

from .conftest import TEXT, check_seq, conversation, drain, fake


def buffered(sub: liveactors.Subscription) -> list[events.Event]:
    out = []
    while (event := sub.receive_nowait()) is not None:
        out.append(event)
    return out


async def test_every_subscriber_sees_every_event(autojump_clock: MockClock) -> None:
    async with (
        fake() as server,
        conversation(server) as (orch, conv),
        conv.subscribe() as a,
        conv.subscribe() as b,
        conv.subscribe(buffer=1000, overflow="drop_oldest") as c,
        orch.subscribe() as everywhere,
    ):
        await conv.ask("one")
        await conv.ask("two")
        await conv.stop()
        seen = [await drain(a), await drain(b), await drain(c)]
        wide = buffered(everywhere)
    assert seen[0] == seen[1] == seen[2] == wide
    check_seq(seen[0], first=seen[0][0].seq)
    assert isinstance(seen[0][-1], events.ConversationClosed)
    assert sum(isinstance(e, events.TurnComplete) for e in seen[0]) == 2


async def test_type_filters(autojump_clock: MockClock) -> None:
    async with (
        fake(chunks=3) as server,
        conversation(server) as (orch, conv),
        conv.subscribe(events.TextDelta, events.TurnComplete) as some,
        conv.subscribe(events.Event) as everything,
        orch.subscribe(events.TurnComplete, conversation="c1") as turns,
    ):
        await conv.ask("hi")
        await conv.stop()
        got = await drain(some)
        all_events = await drain(everything)
        turn_events = buffered(turns)
    assert [type(e) for e in got] == [events.TextDelta] * 3 + [events.TurnComplete]
    assert "".join(e.text for e in got if isinstance(e, events.TextDelta)) == "echo #1: hi"
    assert got == [e for e in all_events if isinstance(e, events.TextDelta | events.TurnComplete)]
    assert turn_events == [e for e in all_events if isinstance(e, events.TurnComplete)]
    # The filtered subscription still ended with the conversation.
    assert not any(isinstance(e, events.ConversationClosed) for e in got)


async def test_subscription_ends_after_conversation_closed(autojump_clock: MockClock) -> None:
    async with fake() as server, conversation(server) as (_, conv):
        async with conv.subscribe() as sub:
            await conv.stop()
            got = await drain(sub)
        assert isinstance(got[-1], events.ConversationClosed)
        # Subscribing to a closed conversation gives an empty, ended subscription.
        async with conv.subscribe() as late:
            assert await drain(late) == []


async def test_orchestrator_subscription_to_one_conversation(autojump_clock: MockClock) -> None:
    async with fake() as server:
        backend = server.backend(model=FAKE_TEXT_MODEL)
        async with (
            liveactors.open_orchestrator(backend) as orch,
            orch.subscribe(events.TurnComplete, conversation="b") as only_b,
            orch.subscribe(events.TurnComplete) as both,
        ):
            a = await orch.spawn(TEXT, name="a")
            b = await orch.spawn(TEXT, name="b")
            await a.ask("x")
            await b.ask("y")
            await a.ask("z")
            got_b = buffered(only_b)
            got_both = buffered(both)
    assert [(e.conversation, e.turn) for e in got_b] == [("b", 1)]
    assert [(e.conversation, e.turn) for e in got_both] == [("a", 1), ("b", 1), ("a", 2)]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"overflow": "lossy"}, "overflow must be one of"),
        ({"buffer": 0}, "buffer must be an int >= 1"),
        ({"buffer": 2.5}, "buffer must be an int"),
    ],
)
async def test_bad_subscription_arguments(
    kwargs: dict[str, object], message: str, autojump_clock: MockClock
) -> None:
    async with fake() as server, conversation(server) as (orch, conv):
        with pytest.raises(liveactors.InvalidCommand, match=message):
            async with conv.subscribe(**kwargs):  # type: ignore[arg-type]
                pass
        with pytest.raises(liveactors.InvalidCommand, match=message):
            async with orch.subscribe(**kwargs):  # type: ignore[arg-type]
                pass
        with pytest.raises(liveactors.InvalidCommand, match="event classes"):
            async with conv.subscribe(str):  # type: ignore[arg-type]
                pass
        assert (await conv.ask("fine")).text == "echo #1: fine"


# -- overflow: block ------------------------------------------------------------------------


async def test_block_slows_the_conversation_and_loses_nothing(autojump_clock: MockClock) -> None:
    async with fake(chunks=4) as server, conversation(server) as (_, conv):
        async with conv.subscribe(buffer=2, overflow="block") as slow:
            replies: list[liveactors.Reply] = []

            async def ask() -> None:
                replies.append(await conv.ask("hello"))

            async with trio.open_nursery() as nursery:
                nursery.start_soon(ask)
                await trio.sleep(30)
                # The conversation waits for the full subscriber: it stopped reading, so the
                # answer is stuck although the server sent it all.
                assert not replies
                stuck = conv.statistics().messages_in
                assert server.log.model_turns()[0].completed
                assert stuck < len(server.log.server_messages())
                assert slow.statistics().buffered == 2
                await trio.sleep(30)
                assert conv.statistics().messages_in == stuck
                # Reading lets everything through.
                got = []
                async for event in slow:
                    got.append(event)
                    if isinstance(event, events.TurnComplete):
                        break
            assert replies[0].text == "echo #1: hello"
        check_seq(got, first=got[0].seq)
        deltas = [e.text for e in got if isinstance(e, events.TextDelta)]
        assert len(deltas) == 4
        assert "".join(deltas) == "echo #1: hello"
        assert slow.statistics().dropped == 0
        assert conv.statistics().events_dropped == 0


async def test_block_subscriber_leaving_releases_the_conversation(
    autojump_clock: MockClock,
) -> None:
    async with (
        fake() as server,
        conversation(server) as (_, conv),
        conv.subscribe(buffer=1000) as watcher,
    ):
        replies: list[liveactors.Reply] = []
        async with trio.open_nursery() as nursery:

            async def stuck_subscriber(task_status: trio.TaskStatus[trio.CancelScope]) -> None:
                with trio.CancelScope() as scope:
                    async with conv.subscribe(buffer=1, overflow="block"):
                        task_status.started(scope)
                        await trio.sleep_forever()

            scope = await nursery.start(stuck_subscriber)

            async def ask() -> None:
                replies.append(await conv.ask("hello"))

            nursery.start_soon(ask)
            await trio.sleep(60)
            assert not replies  # blocked on the subscriber that never reads
            scope.cancel()  # it leaves
            await trio.sleep(1)
            assert replies and replies[0].text == "echo #1: hello"
        assert conv.state is liveactors.ConversationState.READY
        assert (await conv.ask("again")).text == "echo #2: again"
        await conv.stop()
        got = await drain(watcher)
    # The other subscriber saw everything, in order.
    check_seq(got, first=got[0].seq)
    assert [e.turn for e in got if isinstance(e, events.TurnComplete)] == [1, 2]


async def test_subscriber_leaving_by_break_never_disturbs(autojump_clock: MockClock) -> None:
    async with fake() as server, conversation(server) as (_, conv):
        for i in range(3):
            async with conv.subscribe(buffer=1) as sub:
                await conv.send_text(f"q{i}")
                async for event in sub:
                    if isinstance(event, events.TextDelta):
                        break
            # The conversation answers in full although its subscriber left half-way.
            await server.log.wait_for(lambda i=i: len(server.log.answered()) == i + 1)
        reply = await conv.ask("last")
        assert reply.text == "echo #4: last"
        assert conv.statistics().subscribers == 0
        assert server.log.answered() == ["q0", "q1", "q2", "last"]


# -- overflow: drop_oldest ------------------------------------------------------------------


async def test_drop_oldest_drops_and_counts(autojump_clock: MockClock) -> None:
    async with (
        fake(chunks=4) as server,
        conversation(server) as (_, conv),
        conv.subscribe(buffer=1000) as everything,
        conv.subscribe(buffer=3, overflow="drop_oldest") as lossy,
    ):
        # The conversation never waits for it.
        reply = await conv.ask("hello")
        assert reply.text == "echo #1: hello"
        await trio.sleep(1)
        all_events = buffered(everything)
        stats = lossy.statistics()
        assert stats.overflow == "drop_oldest"
        assert stats.buffer == 3
        assert stats.buffered == 3
        assert stats.delivered == 0
        assert stats.dropped == len(all_events) - 3
        assert conv.statistics().events_dropped == stats.dropped
        # What is left are the newest events.
        kept = buffered(lossy)
        assert kept == all_events[-3:]
        assert lossy.statistics().delivered == 3
        assert lossy.statistics().buffered == 0
        # Read promptly, nothing more is dropped.
        await conv.send_text("again")
        got = [await lossy.__anext__() for _ in range(3)]
        assert lossy.statistics().dropped == stats.dropped
        assert got[0].seq == kept[-1].seq + 1


async def test_drop_oldest_counts_across_subscribers(autojump_clock: MockClock) -> None:
    async with (
        fake() as server,
        conversation(server) as (_, conv),
        conv.subscribe(buffer=2, overflow="drop_oldest") as a,
        conv.subscribe(buffer=4, overflow="drop_oldest") as b,
    ):
        await conv.ask("x")
        await trio.sleep(1)
        assert a.statistics().dropped == b.statistics().dropped + 2
        assert conv.statistics().events_dropped == a.statistics().dropped + b.statistics().dropped


async def test_events_dropped_is_cumulative(autojump_clock: MockClock) -> None:
    async with fake() as server, conversation(server) as (_, conv):
        async with conv.subscribe(buffer=2, overflow="drop_oldest") as lossy:
            await conv.ask("x")
            await trio.sleep(1)
            dropped = lossy.statistics().dropped
            assert dropped > 0
            assert conv.statistics().events_dropped == dropped
        async with conv.subscribe(buffer=1, overflow="error") as strict:
            await conv.ask("y")
            with pytest.raises(liveactors.SubscriberOverflow):
                await drain(strict)
        # A statistics counter never goes down, and the error subscriber's drop counts too.
        assert conv.statistics().events_dropped == dropped + strict.statistics().dropped


# -- overflow: error ------------------------------------------------------------------------


async def test_error_raises_after_the_buffered_events(autojump_clock: MockClock) -> None:
    async with (
        fake(chunks=4) as server,
        conversation(server) as (_, conv),
        conv.subscribe(buffer=1000) as everything,
    ):
        async with conv.subscribe(buffer=3, overflow="error") as strict:
            reply = await conv.ask("hello")  # the conversation never waits for it
            assert reply.text == "echo #1: hello"
            got = []
            with pytest.raises(liveactors.SubscriberOverflow, match="buffer of 3 events") as err:
                async for event in strict:
                    got.append(event)
            all_events = buffered(everything)
            assert got == all_events[:3]
            assert f"seq={all_events[3].seq}" in str(err.value)
            assert isinstance(err.value, liveactors.LiveError)
            stats = strict.statistics()
            assert (stats.delivered, stats.buffered, stats.dropped) == (3, 0, 1)
            assert stats.overflow == "error"
            # It stays failed; the conversation goes on.
            with pytest.raises(liveactors.SubscriberOverflow):
                await strict.__anext__()
            with pytest.raises(liveactors.SubscriberOverflow):
                strict.receive_nowait()
        assert (await conv.ask("again")).text == "echo #2: again"
        assert conv.state is liveactors.ConversationState.READY


async def test_error_subscriber_that_keeps_up_never_fails(autojump_clock: MockClock) -> None:
    async with fake(chunks=5) as server, conversation(server) as (_, conv):
        # Events of one server message are published together: the buffer must hold those.
        async with conv.subscribe(buffer=8, overflow="error") as strict:
            got: list[events.Event] = []

            async def read() -> None:
                async for event in strict:
                    got.append(event)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(read)
                await conv.ask("a")
                await conv.ask("b")
                await conv.stop()
        check_seq(got, first=got[0].seq)
        assert isinstance(got[-1], events.ConversationClosed)
        assert strict.statistics().dropped == 0


async def test_stop_is_not_held_up_by_a_subscriber_that_never_reads(
    autojump_clock: MockClock,
) -> None:
    """A ``block`` subscriber that never reads cannot keep the conversation open past
    ``grace``, and it still learns the end: ConversationClosed goes past a full buffer."""
    async with fake() as server, conversation(server) as (_, conv):
        async with conv.subscribe(buffer=1, overflow="block") as sub:
            await conv.send_text("x")
            await trio.sleep(5)
            start = trio.current_time()
            await conv.stop(grace=3.0)
            assert trio.current_time() - start == pytest.approx(3.0)
            got = await drain(sub)
        assert isinstance(got[-1], events.ConversationClosed)
        assert server.log.connections[-1].close_code == 1000


@pytest.mark.parametrize("end", ["stop", "handoff"])
async def test_block_subscriber_behind_misses_nothing(end: str, autojump_clock: MockClock) -> None:
    async with (
        fake(chunks=3, chunk_delay=1.0) as server,
        conversation(server) as (_, conv),
        conv.subscribe(buffer=1, overflow="block") as sub,
        trio.open_nursery() as nursery,
    ):
        got: list[events.Event] = []
        paused, resume = trio.Event(), trio.Event()

        async def recorder() -> None:
            async for event in sub:
                got.append(event)
                if isinstance(event, events.Usage) and not resume.is_set():
                    # Fall behind: TurnComplete fills the buffer, the resumption update that
                    # follows it waits for room while the connection ends.
                    paused.set()
                    await resume.wait()

        nursery.start_soon(recorder)
        await conv.send_text("first")
        await trio.sleep(0.5)
        if end == "handoff":
            server.faults.go_away_now(time_left=30)
        await paused.wait()
        await trio.sleep(1)
        if end == "handoff":
            assert any(isinstance(e, events.GoAway) for e in got)
            await conv.send_text("second")  # held; wakes the writer, which can switch now
        else:
            nursery.start_soon(conv.stop)  # grace: 5 s
        await trio.sleep(2)
        resume.set()
        await trio.sleep(20)
        if end == "handoff":
            assert conv.statistics().handoffs == 1
            await conv.stop()
    assert isinstance(got[-1], events.ConversationClosed)
    check_seq(got, first=got[0].seq)


async def test_block_subscriber_reading_only_after_the_end_misses_nothing(
    autojump_clock: MockClock,
) -> None:
    async with fake() as server, conversation(server) as (_, conv):
        async with conv.subscribe(buffer=1, overflow="block") as sub:
            await conv.send_text("x")
            await trio.sleep(5)
            await conv.stop(grace=3.0)
            got = await drain(sub)
        assert isinstance(got[-1], events.ConversationClosed)
        check_seq(got, first=got[0].seq)
