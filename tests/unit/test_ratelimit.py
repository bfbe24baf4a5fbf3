"""``TokenBucket`` on trio's MockClock: burst, steady rate, refill cap, FIFO, bad rates."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
import trio
import trio.testing

from liveactors import InvalidCommand
from liveactors._ratelimit import TokenBucket


@pytest.mark.parametrize("rate", [0, -1, -0.5, float("nan"), "2", None, True, [1]])
def test_bad_rates_are_refused(rate: Any) -> None:
    with pytest.raises(InvalidCommand, match="connect_rate must be a positive number"):
        TokenBucket(rate)


@pytest.mark.parametrize("burst", [0, 0.5, -3, float("nan"), "4", True])
def test_bad_bursts_are_refused(burst: Any) -> None:
    with pytest.raises(InvalidCommand, match="burst must be a number >= 1"):
        TokenBucket(5.0, burst=burst)


def test_default_burst_is_the_rate_but_at_least_one() -> None:
    assert TokenBucket(5).burst == 5.0
    assert TokenBucket(0.2).burst == 1.0
    assert TokenBucket(3, burst=7).burst == 7.0


async def times_of(bucket: TokenBucket, n: int) -> list[float]:
    out = []
    for _ in range(n):
        await bucket.acquire()
        out.append(trio.current_time())
    return out


async def test_burst_is_immediate_then_the_steady_rate_applies(
    autojump_clock: trio.testing.MockClock,
) -> None:
    bucket = TokenBucket(rate=4.0, burst=3)
    start = trio.current_time()
    times = [t - start for t in await times_of(bucket, 7)]
    assert times == pytest.approx([0, 0, 0, 0.25, 0.5, 0.75, 1.0])
    assert bucket.granted == 7


async def test_steady_rate_over_many_tokens(autojump_clock: trio.testing.MockClock) -> None:
    bucket = TokenBucket(rate=10.0, burst=1)
    start = trio.current_time()
    times = await times_of(bucket, 51)
    assert times[-1] - start == pytest.approx(5.0)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert gaps == pytest.approx([0.1] * 50)


async def test_idle_time_refills_only_up_to_burst(autojump_clock: trio.testing.MockClock) -> None:
    bucket = TokenBucket(rate=2.0, burst=2)
    await times_of(bucket, 2)  # empty now
    await trio.sleep(100)
    start = trio.current_time()
    times = [t - start for t in await times_of(bucket, 4)]
    assert times == pytest.approx([0, 0, 0.5, 1.0])


async def test_partial_refill_is_credited(autojump_clock: trio.testing.MockClock) -> None:
    bucket = TokenBucket(rate=1.0, burst=1)
    await bucket.acquire()
    await trio.sleep(0.75)
    start = trio.current_time()
    await bucket.acquire()
    assert trio.current_time() - start == pytest.approx(0.25)


async def test_waiters_are_served_in_arrival_order(autojump_clock: trio.testing.MockClock) -> None:
    bucket = TokenBucket(rate=1.0, burst=1)
    await bucket.acquire()
    served: list[tuple[int, float]] = []

    async def waiter(i: int) -> None:
        await bucket.acquire()
        served.append((i, trio.current_time()))

    start = trio.current_time()
    async with trio.open_nursery() as nursery:
        for i in range(6):
            nursery.start_soon(waiter, i)
            # Let it queue before the next one arrives, so arrival order is well defined.
            await trio.testing.wait_all_tasks_blocked()
    assert [i for i, _ in served] == list(range(6))
    assert [t - start for _, t in served] == pytest.approx([1, 2, 3, 4, 5, 6])


async def test_a_cancelled_waiter_takes_no_token(autojump_clock: trio.testing.MockClock) -> None:
    bucket = TokenBucket(rate=1.0, burst=1)
    await bucket.acquire()
    start = trio.current_time()
    with trio.move_on_after(0.5) as scope:
        await bucket.acquire()
    assert scope.cancelled_caught
    assert bucket.granted == 1
    await bucket.acquire()  # the token the cancelled waiter would have had
    assert trio.current_time() - start == pytest.approx(1.0)
    assert bucket.granted == 2


async def test_acquire_without_waiting_still_checkpoints(
    autojump_clock: trio.testing.MockClock,
) -> None:
    bucket = TokenBucket(rate=1.0, burst=5)
    with trio.CancelScope() as scope:
        scope.cancel()
        with pytest.raises(trio.Cancelled):
            await bucket.acquire()
    assert bucket.granted == 0
