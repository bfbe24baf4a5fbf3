"""``Bus`` / ``Subscription``: routing, filters, the three overflow policies, force, ends."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
import trio
import trio.testing

from liveactors import InvalidCommand, SubscriberOverflow, SubscriptionStatistics, events
from liveactors._bus import Bus, Subscription

_seq: dict[str, itertools.count[int]] = {}


def text(conversation: str = "a", body: str = "x") -> events.TextDelta:
    seq = next(_seq.setdefault(conversation, itertools.count(1)))
    return events.TextDelta(conversation=conversation, seq=seq, turn=1, text=body)


def done(conversation: str = "a") -> events.TurnComplete:
    seq = next(_seq.setdefault(conversation, itertools.count(1)))
    return events.TurnComplete(conversation=conversation, seq=seq, turn=1)


def closed(conversation: str = "a") -> events.ConversationClosed:
    seq = next(_seq.setdefault(conversation, itertools.count(1)))
    return events.ConversationClosed(conversation=conversation, seq=seq, turn=1)


def drain(sub: Subscription) -> list[events.Event]:
    out = []
    while (event := sub.receive_nowait()) is not None:
        out.append(event)
    return out


async def collect(sub: Subscription) -> list[events.Event]:
    return [event async for event in sub]


# -- routing and filters ----------------------------------------------------------------------


def test_events_reach_their_conversation_and_everywhere_subscribers_only() -> None:
    bus = Bus()
    sub_a = bus.subscribe(conversation="a")
    sub_b = bus.subscribe(conversation="b")
    everywhere = bus.subscribe()
    ea, eb = text("a"), text("b")
    assert bus.publish_nowait(ea) is None
    assert bus.publish_nowait(eb) is None
    assert drain(sub_a) == [ea]
    assert drain(sub_b) == [eb]
    assert drain(everywhere) == [ea, eb]
    assert bus.subscribers("a") == 2
    assert bus.subscribers("nobody") == 1


def test_publishing_with_no_subscribers_is_fine() -> None:
    bus = Bus()
    assert bus.publish_nowait(text("ghost")) is None


def test_type_filters_include_subclasses_and_several_types() -> None:
    bus = Bus()
    only_text = bus.subscribe((events.TextDelta,), conversation="a")
    text_or_done = bus.subscribe((events.TextDelta, events.TurnComplete))
    every_event = bus.subscribe((events.Event,))
    t, d, c = text(), done(), closed()
    for event in (t, d, c):
        bus.publish_nowait(event)
    assert drain(only_text) == [t]
    assert drain(text_or_done) == [t, d]
    assert drain(every_event) == [t, d, c]


def test_filtered_out_events_do_not_use_buffer_room() -> None:
    bus = Bus()
    sub = bus.subscribe((events.TurnComplete,), buffer=1, overflow="error")
    for _ in range(5):
        bus.publish_nowait(text())
    d = done()
    bus.publish_nowait(d)
    assert not sub.ended
    assert drain(sub) == [d]


def test_several_subscribers_of_one_conversation_each_get_everything() -> None:
    bus = Bus()
    subs = [bus.subscribe(conversation="a") for _ in range(3)]
    sent = [text() for _ in range(4)]
    for event in sent:
        bus.publish_nowait(event)
    for sub in subs:
        assert drain(sub) == sent


# -- bad arguments ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"overflow": "drop_newest"}, "overflow must be one of block, drop_oldest, error"),
        ({"overflow": None}, "overflow must be one of"),
        ({"buffer": 0}, "buffer must be an int >= 1"),
        ({"buffer": -3}, "buffer must be an int >= 1"),
        ({"buffer": 2.5}, "buffer must be an int >= 1"),
        ({"buffer": True}, "buffer must be an int >= 1"),
        ({"buffer": "8"}, "buffer must be an int >= 1"),
        ({"types": (int,)}, "can only subscribe to event classes"),
        ({"types": (events.TextDelta, "TurnComplete")}, "can only subscribe to event classes"),
        ({"types": (text(),)}, "can only subscribe to event classes"),
        ({"conversation": 7}, "conversation must be a conversation name"),
        ({"conversation": object()}, "conversation must be a conversation name"),
    ],
)
def test_bad_arguments_are_refused(kwargs: dict[str, Any], message: str) -> None:
    bus = Bus()
    with pytest.raises(InvalidCommand, match=message):
        bus.subscribe(**kwargs)
    assert bus.subscribers("a") == 0
    assert not bus._everywhere and not bus._by_conversation


# -- block ------------------------------------------------------------------------------------


async def test_block_makes_the_publisher_wait_for_room() -> None:
    bus = Bus()
    sub = bus.subscribe(conversation="a", buffer=2, overflow="block")
    first = [text() for _ in range(2)]
    for event in first:
        assert bus.publish_nowait(event) is None
    late = text()
    blocked = bus.publish_nowait(late)
    assert blocked == [sub]
    assert sub.statistics().buffered == 2  # not buffered past the limit

    published = trio.Event()

    async def publisher() -> None:
        await bus.publish(text())
        published.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(publisher)
        await trio.testing.wait_all_tasks_blocked()
        assert not published.is_set()
        assert sub.receive_nowait() == first[0]
        await trio.testing.wait_all_tasks_blocked()
        assert published.is_set()
    assert sub.statistics().dropped == 0


async def test_block_keeps_every_event_in_order() -> None:
    bus = Bus()
    sub = bus.subscribe(conversation="a", buffer=3, overflow="block")
    sent = [text(body=str(i)) for i in range(50)]
    received: list[events.Event] = []

    async def consumer() -> None:
        async for event in sub:
            received.append(event)
            if len(received) == len(sent):
                return

    async with trio.open_nursery() as nursery:
        nursery.start_soon(consumer)
        for event in sent:
            await bus.publish(event)
    assert received == sent
    stats = sub.statistics()
    assert (stats.delivered, stats.dropped, stats.buffered) == (50, 0, 0)


async def test_a_blocked_publisher_is_released_when_the_subscriber_leaves() -> None:
    bus = Bus()
    sub = bus.subscribe(conversation="a", buffer=1, overflow="block")
    other = bus.subscribe(conversation="a", buffer=10, overflow="block")
    bus.publish_nowait(text())
    async with trio.open_nursery() as nursery:
        nursery.start_soon(bus.publish, text())
        await trio.testing.wait_all_tasks_blocked()
        bus.unsubscribe(sub)  # the publisher must not wait for it any longer
    assert bus.subscribers("a") == 1
    assert len(drain(other)) == 2  # the other subscriber got both
    assert sub.statistics().buffered == 1  # what it held stays readable


async def test_several_waiting_publishers_are_released_one_per_free_slot() -> None:
    bus = Bus()
    sub = bus.subscribe(buffer=1, overflow="block")
    bus.publish_nowait(text("a"))
    finished: list[str] = []

    async def publisher(name: str) -> None:
        await bus.publish(text(name))
        finished.append(name)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(publisher, "b")
        await trio.testing.wait_all_tasks_blocked()
        nursery.start_soon(publisher, "c")
        await trio.testing.wait_all_tasks_blocked()
        assert finished == []
        sub.receive_nowait()
        await trio.testing.wait_all_tasks_blocked()
        assert len(finished) == 1
        sub.receive_nowait()
        await trio.testing.wait_all_tasks_blocked()
        assert len(finished) == 2
    assert sorted(finished) == ["b", "c"]


# -- drop_oldest ------------------------------------------------------------------------------


async def test_drop_oldest_discards_and_counts_and_never_waits() -> None:
    bus = Bus()
    sub = bus.subscribe(conversation="a", buffer=3, overflow="drop_oldest")
    sent = [text(body=str(i)) for i in range(10)]
    for event in sent:
        assert bus.publish_nowait(event) is None
    stats = sub.statistics()
    assert stats == SubscriptionStatistics(
        delivered=0, dropped=7, buffered=3, buffer=3, overflow="drop_oldest"
    )
    assert drain(sub) == sent[-3:]
    assert sub.statistics().delivered == 3
    assert not sub.ended


async def test_drop_oldest_publish_returns_at_once(autojump_clock: trio.testing.MockClock) -> None:
    bus = Bus()
    bus.subscribe(conversation="a", buffer=1, overflow="drop_oldest")
    start = trio.current_time()
    with trio.fail_after(1):
        for _ in range(5):
            await bus.publish(text())
    assert trio.current_time() == start


# -- error ------------------------------------------------------------------------------------


async def test_error_ends_the_subscription_after_the_buffered_events() -> None:
    bus = Bus()
    sub = bus.subscribe(conversation="a", buffer=2, overflow="error")
    kept = [text(), text()]
    for event in kept:
        bus.publish_nowait(event)
    overflowing = text()
    assert bus.publish_nowait(overflowing) is None  # the publisher never waits
    assert sub.ended
    assert bus.subscribers("a") == 0  # no further events are routed to it
    bus.publish_nowait(text())
    received = []
    with pytest.raises(SubscriberOverflow) as info:
        async for event in sub:
            received.append(event)
    assert received == kept
    message = str(info.value)
    assert "buffer of 2 events was full" in message
    assert f"TextDelta seq={overflowing.seq} of 'a'" in message
    assert sub.statistics().dropped == 1
    # It keeps saying so.
    with pytest.raises(SubscriberOverflow):
        await sub.__anext__()
    with pytest.raises(SubscriberOverflow):
        sub.receive_nowait()


async def test_error_reaches_a_consumer_that_was_waiting() -> None:
    bus = Bus()
    sub = bus.subscribe(buffer=1, overflow="error")
    got: list[Any] = []

    async def consumer() -> None:
        try:
            async for event in sub:
                got.append(event)
        except SubscriberOverflow:
            got.append("overflow")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(consumer)
        await trio.testing.wait_all_tasks_blocked()
        e1, e2, e3 = text(), text(), text()
        bus.publish_nowait(e1)  # buffered; the consumer is woken but has not run yet
        bus.publish_nowait(e2)  # no room: the subscription ends with an error
        bus.publish_nowait(e3)  # no longer routed to it
    assert got == [e1, "overflow"]


# -- force and ends ---------------------------------------------------------------------------


@pytest.mark.parametrize("overflow", ["block", "drop_oldest", "error"])
def test_force_delivers_past_a_full_buffer(overflow: Any) -> None:
    bus = Bus()
    sub = bus.subscribe(conversation="a", buffer=1, overflow=overflow)
    first = text()
    bus.publish_nowait(first)
    last = closed()
    assert bus.publish_nowait(last, force=True) is None
    assert not sub.ended
    assert drain(sub) == [first, last]
    assert sub.statistics().dropped == 0


async def test_end_conversation_ends_its_subscriptions_after_buffered_events() -> None:
    bus = Bus()
    sub_a = bus.subscribe(conversation="a")
    sub_b = bus.subscribe(conversation="b")
    everywhere = bus.subscribe()
    sent = [text("a"), closed("a")]
    for event in sent:
        bus.publish_nowait(event)
    bus.end_conversation("a")
    assert await collect(sub_a) == sent  # ends cleanly, no error
    assert sub_a.ended
    assert not sub_b.ended and not everywhere.ended
    assert bus.subscribers("a") == 1  # only the orchestrator-wide one remains
    later = text("b")
    bus.publish_nowait(later)
    assert drain(sub_b) == [later]
    assert drain(everywhere) == [*sent, later]


async def test_end_conversation_releases_a_blocked_publisher() -> None:
    bus = Bus()
    bus.subscribe(conversation="a", buffer=1, overflow="block")
    bus.publish_nowait(text())
    async with trio.open_nursery() as nursery:
        nursery.start_soon(bus.publish, text())
        await trio.testing.wait_all_tasks_blocked()
        bus.end_conversation("a")


async def test_end_conversation_wakes_a_waiting_consumer() -> None:
    bus = Bus()
    sub = bus.subscribe(conversation="a")
    result: list[list[events.Event]] = []

    async def consumer() -> None:
        result.append(await collect(sub))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(consumer)
        await trio.testing.wait_all_tasks_blocked()
        bus.end_conversation("a")
    assert result == [[]]


async def test_unsubscribe_keeps_buffered_events_readable_and_is_idempotent() -> None:
    bus = Bus()
    sub = bus.subscribe(conversation="a")
    sent = [text(), text()]
    for event in sent:
        bus.publish_nowait(event)
    bus.unsubscribe(sub)
    bus.unsubscribe(sub)
    bus.publish_nowait(text())
    assert await collect(sub) == sent
    assert sub.receive_nowait() is None
    assert bus.subscribers("a") == 0
    assert bus.subscription_count("a") == 0 and bus.subscriptions() == []


async def test_waiting_for_an_event_can_be_cancelled_without_losing_one() -> None:
    bus = Bus()
    sub = bus.subscribe(conversation="a")
    with trio.move_on_after(0.01):
        await sub.__anext__()
    event = text()
    bus.publish_nowait(event)
    assert await sub.__anext__() == event
    assert sub.statistics().delivered == 1


def test_statistics_and_repr() -> None:
    bus = Bus()
    sub = bus.subscribe(conversation="a", buffer=4, overflow="drop_oldest")
    for _ in range(6):
        bus.publish_nowait(text())
    sub.receive_nowait()
    assert sub.statistics() == SubscriptionStatistics(
        delivered=1, dropped=2, buffered=3, buffer=4, overflow="drop_oldest"
    )
    assert repr(sub) == "<Subscription a buffered=3 dropped=2>"
    assert repr(bus.subscribe()) == "<Subscription * buffered=0 dropped=0>"


def test_dropped_counts_of_a_conversation_outlive_its_subscribers() -> None:
    bus = Bus()
    leaving = bus.subscribe(conversation="a", buffer=1, overflow="drop_oldest")
    staying = bus.subscribe(conversation="a", buffer=2, overflow="drop_oldest")
    other = bus.subscribe(conversation="b", buffer=1, overflow="drop_oldest")
    for _ in range(4):
        bus.publish_nowait(text("a"))
        bus.publish_nowait(text("b"))
    assert (leaving.dropped, staying.dropped, other.dropped) == (3, 2, 3)
    bus.unsubscribe(leaving)
    assert bus.dropped("a") == 5  # the 3 of the subscriber that left still count
    assert bus.dropped("b") == 3
    assert bus.dropped("nobody") == 0


def test_subscription_counts_and_the_list_of_subscriptions() -> None:
    bus = Bus()
    assert (bus.subscription_count(), bus.subscriptions()) == (0, [])
    a1, a2 = bus.subscribe(conversation="a"), bus.subscribe(conversation="a")
    b = bus.subscribe(conversation="b")
    everywhere = bus.subscribe()
    # One conversation's own subscriptions (not the orchestrator-wide ones); or all of them.
    assert (bus.subscription_count("a"), bus.subscription_count("b")) == (2, 1)
    assert bus.subscription_count("nobody") == 0
    assert bus.subscription_count() == 4
    assert bus.subscriptions() == [everywhere, a1, a2, b]
    bus.end_conversation("a")
    assert bus.subscription_count() == 2
    assert bus.subscriptions() == [everywhere, b]


async def test_a_following_subscription_outlives_its_conversation() -> None:
    bus = Bus()
    follows = bus.subscribe(conversation="a", follow=True)
    ends = bus.subscribe(conversation="a")
    first = [text("a"), closed("a")]
    for event in first:
        bus.publish_nowait(event)
    bus.end_conversation("a")
    assert ends.ended and await collect(ends) == first
    assert not follows.ended and follows.follows
    assert bus.subscription_count("a") == 1
    # The next conversation of the name: same subscription.
    _seq.pop("a", None)
    again = text("a")
    bus.publish_nowait(again)
    assert drain(follows) == [*first, again]
    bus.unsubscribe(follows)
    assert await collect(follows) == []
    assert bus.subscription_count() == 0
