"""``Mailbox``: order, backpressure, the urgent lane, close, cancellation, fairness."""

from __future__ import annotations

import pytest
import trio
import trio.testing

import liveactors
from liveactors import ConversationStopped, LiveError
from liveactors._mailbox import Alarm, Mailbox
from liveactors.testing import open_fake_server


def stopped() -> LiveError:
    return ConversationStopped("mailbox closed")


async def take_all(mb: Mailbox[int], count: int) -> list[int]:
    """Take ``count`` input items, letting waiting senders run whenever none is there."""
    got: list[int] = []
    while len(got) < count:
        item = mb.take_input()
        if item is None:
            await trio.testing.wait_all_tasks_blocked()
            continue
        got.append(item)
    return got


async def test_input_comes_out_in_order() -> None:
    mb: Mailbox[int] = Mailbox(10)
    for i in range(10):
        await mb.put(i)
    assert len(mb) == 10
    assert [mb.take() for _ in range(10)] == list(range(10))
    assert mb.take() is None
    assert len(mb) == 0


async def test_urgent_items_skip_the_queue_in_their_own_order() -> None:
    mb: Mailbox[str] = Mailbox(10)
    await mb.put("in1")
    await mb.put("in2")
    mb.put_urgent("u1")
    mb.put_urgent("u2")
    assert len(mb) == 2  # only input counts towards capacity
    assert [mb.take() for _ in range(4)] == ["u1", "u2", "in1", "in2"]


async def test_take_without_input_only_returns_urgent_items() -> None:
    mb: Mailbox[str] = Mailbox(10)
    await mb.put("held")
    assert mb.take(include_input=False) is None
    mb.put_urgent("tool")
    assert mb.take(include_input=False) == "tool"
    assert mb.take(include_input=False) is None
    assert mb.peek_input() == "held"
    assert len(mb) == 1
    assert mb.take() == "held"
    assert mb.peek_input() is None


async def test_urgent_lane_is_not_bounded() -> None:
    mb: Mailbox[int] = Mailbox(1)
    await mb.put(0)
    for i in range(100):
        mb.put_urgent(i)  # never waits, even with the input side full
    assert mb.take() == 0  # urgent first
    assert len(mb) == 1


async def test_a_full_mailbox_makes_put_wait_until_a_take() -> None:
    mb: Mailbox[int] = Mailbox(2)
    await mb.put(1)
    await mb.put(2)
    done = trio.Event()

    async def third() -> None:
        await mb.put(3)
        done.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(third)
        await trio.testing.wait_all_tasks_blocked()
        assert not done.is_set()
        assert len(mb) == 2
        assert mb.take() == 1
        await trio.testing.wait_all_tasks_blocked()
        assert done.is_set()
    assert [mb.take(), mb.take(), mb.take()] == [2, 3, None]


async def test_waiting_senders_are_served_first_come_first_served() -> None:
    mb: Mailbox[int] = Mailbox(1)
    await mb.put(0)
    async with trio.open_nursery() as nursery:
        for i in range(1, 6):
            nursery.start_soon(mb.put, i)
            await trio.testing.wait_all_tasks_blocked()  # i is now waiting, in arrival order
        got = await take_all(mb, 6)
    assert got == [0, 1, 2, 3, 4, 5]


@pytest.mark.parametrize("attempt", range(10))
async def test_slots_freed_in_one_pass_admit_waiting_senders_in_order(attempt: int) -> None:
    """Regression: the writer takes several queued inputs at once (to send them in one
    write); each take woke a waiting sender and the woken senders then appended in whatever
    order trio ran them (it shuffles the tasks it wakes together)."""
    mb: Mailbox[int] = Mailbox(4)
    for i in range(4):
        await mb.put(i)
    async with trio.open_nursery() as nursery:
        for i in range(4, 10):
            nursery.start_soon(mb.put, i)
            await trio.testing.wait_all_tasks_blocked()
        taken = [mb.take_input() for _ in range(4)]  # no pass through the scheduler between
        taken += await take_all(mb, 6)
    assert taken == list(range(10))


async def test_take_input_leaves_input_behind_an_urgent_item() -> None:
    mb: Mailbox[str] = Mailbox(4)
    await mb.put("in")
    mb.put_urgent("urgent")
    assert mb.take_input() is None
    assert mb.take() == "urgent"
    assert mb.take_input() == "in"
    assert mb.take_input() is None


async def test_a_newcomer_does_not_take_the_slot_freed_for_a_waiting_sender(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Regression: ``take`` woke the waiting sender, but a sender arriving before it ran
    found the free slot and overtook it (and could do so forever)."""
    mb: Mailbox[str] = Mailbox(1)
    await mb.put("x")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(mb.put, "first")
        await trio.testing.wait_all_tasks_blocked()
        assert mb.take() == "x"  # wakes "first" but it has not run yet
        with trio.move_on_after(1) as scope:
            await mb.put("second")  # must queue behind "first", so it waits...
        assert scope.cancelled_caught  # ...and nobody takes, so it gives up
    assert mb.take() == "first"
    assert mb.take() is None


async def test_cancelled_while_waiting_leaves_nothing_behind(
    autojump_clock: trio.testing.MockClock,
) -> None:
    mb: Mailbox[int] = Mailbox(1)
    await mb.put(1)
    with trio.move_on_after(5) as scope:
        await mb.put(2)
    assert scope.cancelled_caught
    assert len(mb) == 1
    # The mailbox still works normally afterwards: no stale waiter or reservation.
    assert mb.take() == 1
    await mb.put(3)
    assert mb.take() == 3
    assert mb.take() is None


async def test_a_cancelled_waiter_does_not_hold_up_the_next_one() -> None:
    mb: Mailbox[str] = Mailbox(1)
    await mb.put("x")
    async with trio.open_nursery() as nursery:
        scope = trio.CancelScope()

        async def cancellable() -> None:
            with scope:
                await mb.put("cancelled")

        nursery.start_soon(cancellable)
        await trio.testing.wait_all_tasks_blocked()
        nursery.start_soon(mb.put, "next")
        await trio.testing.wait_all_tasks_blocked()
        scope.cancel()
        await trio.testing.wait_all_tasks_blocked()
        assert mb.take() == "x"
        await trio.testing.wait_all_tasks_blocked()
    assert mb.take() == "next"
    assert mb.take() is None


async def test_put_in_a_cancelled_scope_queues_nothing() -> None:
    mb: Mailbox[int] = Mailbox(5)
    with trio.CancelScope() as scope:
        scope.cancel()
        with pytest.raises(trio.Cancelled):
            await mb.put(1)
    assert len(mb) == 0


async def test_put_is_a_checkpoint_even_with_room() -> None:
    mb: Mailbox[int] = Mailbox(5)
    with trio.testing.assert_checkpoints():
        await mb.put(1)


async def test_wait_returns_on_put_urgent_put_and_poke() -> None:
    mb: Mailbox[str] = Mailbox(5)
    woken: list[str] = []

    async def consumer() -> None:
        for _ in range(3):
            await mb.wait()
            item = mb.take()
            woken.append(item if item is not None else "poked")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(consumer)
        await trio.testing.wait_all_tasks_blocked()
        await mb.put("a")
        await trio.testing.wait_all_tasks_blocked()
        mb.put_urgent("u")
        await trio.testing.wait_all_tasks_blocked()
        mb.poke()
    assert woken == ["a", "u", "poked"]


async def test_close_returns_leftovers_urgent_first_and_refuses_more() -> None:
    mb: Mailbox[str] = Mailbox(5)
    await mb.put("a")
    await mb.put("b")
    mb.put_urgent("u")
    assert not mb.closed
    left = mb.close(stopped)
    assert left == ["u", "a", "b"]
    assert mb.closed
    assert len(mb) == 0
    assert mb.take() is None
    with pytest.raises(ConversationStopped, match="mailbox closed"):
        await mb.put("c")
    assert mb.take() is None


async def test_close_raises_the_given_error_fresh_each_time() -> None:
    mb: Mailbox[int] = Mailbox(1)
    mb.close(stopped)
    errors = []
    for i in range(2):
        with pytest.raises(ConversationStopped) as info:
            await mb.put(i)
        errors.append(info.value)
    assert errors[0] is not errors[1]


async def test_close_releases_waiting_senders_with_the_error() -> None:
    mb: Mailbox[int] = Mailbox(1)
    await mb.put(0)
    outcomes: list[str] = []

    async def sender(i: int) -> None:
        try:
            await mb.put(i)
        except ConversationStopped:
            outcomes.append(f"refused {i}")
        else:
            outcomes.append(f"queued {i}")

    async with trio.open_nursery() as nursery:
        for i in (1, 2):
            nursery.start_soon(sender, i)
        await trio.testing.wait_all_tasks_blocked()
        assert mb.close(stopped) == [0]
    assert sorted(outcomes) == ["refused 1", "refused 2"]
    assert len(mb) == 0


async def test_close_wakes_the_consumer() -> None:
    mb: Mailbox[int] = Mailbox(1)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(mb.wait)
        await trio.testing.wait_all_tasks_blocked()
        mb.close(stopped)
    # Reaching here means the waiting consumer was woken (else the nursery would hang).


async def test_wait_until_wakes_at_the_deadline_by_the_alarm(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """With an alarm, a timed wait is rung by the alarm's task (no cancel scope of its own):
    at the deadline, or earlier by a put."""
    alarm = Alarm()
    mb: Mailbox[int] = Mailbox(4, alarm)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(alarm.run)
        start = trio.current_time()
        await mb.wait_until(start + 5)
        assert trio.current_time() - start == pytest.approx(5)
        assert len(alarm) == 0

        async def put_later() -> None:
            await trio.sleep(1)
            await mb.put(1)

        nursery.start_soon(put_later)
        start = trio.current_time()
        await mb.wait_until(start + 30)
        assert trio.current_time() - start == pytest.approx(1)
        assert mb.take() == 1
        nursery.cancel_scope.cancel()  # the alarm runs until its owner ends it


async def test_repeated_waits_for_one_deadline_register_it_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A writer waits after every message with the same keepalive deadline: that must not
    grow the alarm's heap."""
    alarm = Alarm()
    mb: Mailbox[int] = Mailbox(4, alarm)
    deadline = trio.current_time() + 30
    async with trio.open_nursery() as nursery:
        nursery.start_soon(alarm.run)
        for i in range(100):
            nursery.start_soon(mb.put, i)
            await mb.wait_until(deadline)
            assert mb.take() == i
        assert len(alarm) == 1
        await mb.wait_until(deadline)  # nothing put: the alarm rings at the deadline
        assert trio.current_time() == pytest.approx(deadline)
        assert len(alarm) == 0
        nursery.cancel_scope.cancel()


async def test_wait_until_without_an_alarm_uses_a_deadline_of_its_own(
    autojump_clock: trio.testing.MockClock,
) -> None:
    mb: Mailbox[int] = Mailbox(4)
    start = trio.current_time()
    await mb.wait_until(start + 5)
    assert trio.current_time() - start == pytest.approx(5)


async def test_the_orchestrator_runs_the_alarm_and_ends_it(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Structured: the alarm is a task of the orchestrator's nursery, gone when it closes."""
    async with open_fake_server(listen=False) as server:
        async with liveactors.open_orchestrator(server.backend()) as orch:
            conv = await orch.spawn({"response_modalities": ["AUDIO"]}, name="c")
            await conv.send_text("hello")
            names = [task.name for task in orch._nursery.child_tasks]
            assert any(name.endswith("Alarm.run") for name in names), names
            await trio.sleep(60)  # keepalive deadlines come and go by the alarm
        # Leaving the block returned (a task outliving it would have kept it open forever).
        assert not orch._nursery.child_tasks
