"""``Reconnects``: the backoff after a failed connection, giving up, and a stop cutting a
backoff short."""

from __future__ import annotations

import pytest
import trio
from trio.testing import MockClock

from liveactors import ConnectionLost, RestartPolicy, ServiceBusy
from liveactors._reconnect import Backoff, Reconnects

POLICY = RestartPolicy(max_restarts=2, within=60.0, backoff_initial=1.0, jitter=0.0)


def test_failures_back_off_until_the_budget_is_spent_and_progress_restores_it() -> None:
    reconnects = Reconnects("c1", POLICY, rng=lambda: 0.5)
    lost = ConnectionLost("dropped")
    assert reconnects.after(lost, 0.0) == Backoff(1.0, 1)
    assert reconnects.after(lost, 1.0) == Backoff(2.0, 2)
    with pytest.raises(ConnectionLost):
        reconnects.after(lost, 3.0)
    assert reconnects.reconnects == 2
    reconnects.progress()
    assert reconnects.after(lost, 4.0) == Backoff(1.0, 1)


def test_the_concurrency_limit_has_a_budget_of_its_own() -> None:
    reconnects = Reconnects("c1", POLICY, rng=lambda: 0.5)
    for _ in range(5):
        backoff = reconnects.after(ServiceBusy("at capacity"), 0.0)
        assert backoff.delay > 0
    assert (reconnects.busy_retries, reconnects.reconnects) == (5, 0)


async def test_a_stop_cuts_a_backoff_short(autojump_clock: MockClock) -> None:
    reconnects = Reconnects("c1", POLICY, rng=lambda: 0.5)
    reconnects.cut_short(0.0)  # nothing to cut: no backoff in progress
    async with trio.open_nursery() as nursery:
        nursery.start_soon(reconnects.sleep, 30.0)
        await trio.sleep(1.0)
        reconnects.cut_short(trio.current_time() + 2.0)
    assert trio.current_time() == pytest.approx(3.0)
    start = trio.current_time()
    await reconnects.sleep(30.0, until=start + 5.0)
    assert trio.current_time() == pytest.approx(start + 5.0)
