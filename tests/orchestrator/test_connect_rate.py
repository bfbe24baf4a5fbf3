"""``connect_rate``: one token bucket spreads every connect — first connects, reconnects after
drops, GoAway handoffs — so that a mass drop does not stampede the service."""

from __future__ import annotations

import itertools

import pytest
import trio
import trio.testing
from orch_helpers import TEXT, backend, check_rate, most_in_window

from liveactors import RestartPolicy, events, open_orchestrator
from liveactors.testing import open_fake_server

#: Quick backoff, so reconnects pile up at the bucket rather than in backoff.
FAST = RestartPolicy(max_restarts=10, backoff_initial=0.01, backoff_max=0.05, jitter=0.2)


def opened(server: object, start: int = 0) -> list[float]:
    return [c.opened_at for c in server.log.connections[start:]]  # type: ignore[attr-defined]


async def test_spawns_are_spaced_at_the_rate(autojump_clock: trio.testing.MockClock) -> None:
    async with (
        open_fake_server(listen=False) as server,
        open_orchestrator(backend(server), connect_rate=10) as orch,
    ):
        start = trio.current_time()
        async with trio.open_nursery() as nursery:
            for _i in range(30):
                nursery.start_soon(orch.spawn, TEXT)
        times = opened(server)
        assert len(times) == 30
        gaps = [b - a for a, b in itertools.pairwise(sorted(times))]
        assert min(gaps) >= 0.1 - 1e-9
        assert trio.current_time() - start == pytest.approx(2.9)
        check_rate(times, rate=10)
        assert orch.statistics().connects == 30


async def test_a_mass_drop_reconnects_at_no_more_than_the_rate(
    autojump_clock: trio.testing.MockClock,
) -> None:
    rate, n = 20.0, 60
    async with (
        open_fake_server(listen=False) as server,
        open_orchestrator(backend(server), connect_rate=rate, restart=FAST) as orch,
    ):
        convs = []
        for i in range(n):
            convs.append(await orch.spawn(TEXT, name=f"c{i}"))
        for conv in convs:
            await conv.ask(f"before {conv.name}")
        await trio.sleep(10)  # the bucket fills up again (to its burst of 1)
        blip = len(server.log.connections)
        dropped_at = trio.current_time()
        async with orch.subscribe(events.Connected) as sub:
            server.faults.drop_now()  # every connection at once: a network blip
            for _ in range(n):
                await sub.__anext__()
        times = opened(server, blip)
        assert len(times) == n
        # Never faster than the rate, in any window...
        gaps = [b - a for a, b in itertools.pairwise(sorted(times))]
        assert min(gaps) >= 1 / rate - 1e-9
        check_rate(times, rate=rate)
        assert most_in_window(times, 1.0) <= rate + 1
        # ... and no slower than needed: all back within n / rate (plus the first backoff).
        assert max(times) - dropped_at <= n / rate + 0.1
        for conv in convs:
            assert (await conv.ask(f"after {conv.name}")).text.endswith(f"after {conv.name}")
        assert set(server.log.answer_counts().values()) == {1}
        assert orch.statistics().reconnects == n


async def test_goaway_handoffs_take_tokens_too(autojump_clock: trio.testing.MockClock) -> None:
    rate, n = 5.0, 10
    async with (
        open_fake_server(listen=False) as server,
        open_orchestrator(backend(server), connect_rate=rate) as orch,
    ):
        for i in range(n):
            await orch.spawn(TEXT, name=f"c{i}")
        await trio.sleep(5)
        first = len(server.log.connections)
        async with orch.subscribe(events.Connected) as sub:
            server.faults.go_away_now(30.0)
            for _ in range(n):
                await sub.__anext__()
        times = opened(server, first)
        assert len(times) == n
        check_rate(times, rate=rate)
        assert orch.statistics().handoffs == n


async def test_a_burst_lets_that_many_through_at_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with (
        open_fake_server(listen=False) as server,
        open_orchestrator(backend(server), connect_rate=2, connect_burst=4) as orch,
    ):
        start = trio.current_time()
        async with trio.open_nursery() as nursery:
            for _ in range(8):
                nursery.start_soon(orch.spawn, TEXT)
        times = [t - start for t in opened(server)]
        assert sorted(times) == pytest.approx([0, 0, 0, 0, 0.5, 1.0, 1.5, 2.0])
        check_rate(times, rate=2, burst=4)


async def test_without_a_rate_connects_are_not_delayed(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with (
        open_fake_server(listen=False) as server,
        open_orchestrator(backend(server)) as orch,
    ):
        start = trio.current_time()
        for _ in range(10):
            await orch.spawn(TEXT)
        assert opened(server) == [start] * 10
