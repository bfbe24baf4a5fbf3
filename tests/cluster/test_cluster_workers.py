"""Several workers sharing one Valkey server and one (in-memory) fake Live server, in one trio
run: draining hands conversations over at a resumable point, a worker that lost its lease
stops acting at once (fencing), and the per-worker and cluster-wide session caps hold.

Leases are short (1.5 s, renewed every 0.5 s) so every test takes a few seconds at most; the
sockets to Valkey are real, so the clock is too.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import coredis
import pytest
import trio
from cluster_helpers import ValkeyServer

import liveactors
from liveactors import events as ev
from liveactors.cluster import ClusterClient, RemoteConversation, Worker, open_client, open_worker
from liveactors.testing import FakeServer, Pause, Say, TurnContext, open_fake_server

LEASE = 1.5
FAST: dict[str, Any] = {"lease": LEASE, "renew": 0.5, "poll": 0.1}


def slow_when_asked(ctx: TurnContext) -> Any:
    """Echo, but spread over a second or so when the question says "slow"."""
    text = f"echo #{ctx.turn}: {ctx.user_text}"
    if "slow" not in ctx.user_text:
        return text
    steps: list[Any] = []
    for word in text.split():
        steps += [Say(word + " "), Pause(0.1)]
    return steps


@asynccontextmanager
async def started(
    server: FakeServer, valkey: ValkeyServer, prefix: str, worker_id: str, **options: Any
) -> AsyncIterator[Worker]:
    async with open_worker(
        server.backend(), valkey.url, worker_id=worker_id, prefix=prefix, **{**FAST, **options}
    ) as worker:
        yield worker


@asynccontextmanager
async def shared(
    valkey: ValkeyServer, prefix: str, **server_options: Any
) -> AsyncIterator[tuple[FakeServer, ClusterClient, coredis.Redis[str]]]:
    async with (
        open_fake_server(listen=False, **server_options) as server,
        open_client(valkey.url, prefix=prefix, timeout=5) as client,
        coredis.Redis.from_url(valkey.url, decode_responses=True) as redis,
    ):
        yield server, client, redis


async def all_events(conv: RemoteConversation) -> list[ev.Event]:
    last = (await conv.state()).seq
    out: list[ev.Event] = []
    async with conv.subscribe(from_seq=1) as sub:
        async for event in sub:
            out.append(event)
            if event.seq >= last:
                break
    return out


async def wait_until(predicate: Any, seconds: float, what: str) -> float:
    """Poll ``predicate`` (sync or async) until true; returns the time it took."""
    start = trio.current_time()
    with trio.move_on_after(seconds):
        while True:
            value = predicate()
            if hasattr(value, "__await__"):
                value = await value
            if value:
                return trio.current_time() - start
            await trio.sleep(0.02)
    raise AssertionError(f"not within {seconds}s: {what}")


# -- draining -------------------------------------------------------------------------------------


async def test_drain_hands_conversations_to_another_worker_resumed(
    valkey_server: ValkeyServer, prefix: str
) -> None:
    names = ["c0", "c1", "c2"]
    async with shared(valkey_server, prefix, responder=slow_when_asked) as (server, client, _):
        with trio.fail_after(20):
            async with started(server, valkey_server, prefix, "w-a") as a:
                convs = [await client.spawn(name=n) for n in names]
                for conv in convs:
                    assert (await conv.state()).owner == "w-a"
                    assert f"{conv.name} before" in (await conv.ask(f"{conv.name} before")).text

                async with started(server, valkey_server, prefix, "w-b") as b:
                    assert not b.owned
                    replies: dict[str, str] = {}

                    async def ask(conv: RemoteConversation, question: str) -> None:
                        replies[question] = (await conv.ask(question)).text

                    async with trio.open_nursery() as nursery:
                        # An answer in progress when the drain begins (it finishes on A) ...
                        nursery.start_soon(ask, convs[0], "c0 slow during")
                        await server.log.wait_for(
                            lambda: any(
                                t.user_text == "c0 slow during" and t.reply
                                for t in server.log.turns
                            )
                        )
                        # ... and questions asked while the conversations move.
                        nursery.start_soon(ask, convs[1], "c1 while moving")
                        await a.drain()
                        nursery.start_soon(ask, convs[2], "c2 after the drain")
                    assert not a.owned
                    for conv in convs:
                        await wait_until(
                            lambda conv=conv: _owner_is(conv, "w-b"), 3 * LEASE, "moved to B"
                        )
                        assert f"{conv.name} after" in (await conv.ask(f"{conv.name} after")).text
                    assert set(b.owned) == set(names)
                    for question, text in replies.items():
                        assert question in text, (question, text)

                    all_questions = [f"{n} before" for n in names] + [f"{n} after" for n in names]
                    all_questions += list(replies)
                    assert server.log.answer_counts() == {q: 1 for q in all_questions}
                    # The answer in progress finished on A: nothing was cut and asked again.
                    assert server.log.model_turns(outcome="cut") == []
                    assert server.log.model_turns(outcome="interrupted") == []

                    for conv in convs:
                        events = await all_events(conv)
                        assert [e.seq for e in events] == list(range(1, len(events) + 1))
                        turns = [e.turn for e in events]
                        assert turns == sorted(turns)
                        connected = [e for e in events if isinstance(e, ev.Connected)]
                        assert len(connected) == 2
                        assert not connected[0].resumed and connected[1].resumed
                        # Nothing that ends the conversation was written by the drain.
                        assert not any(
                            isinstance(e, ev.ConversationClosed | ev.ConversationFailed)
                            for e in events
                        )

        # One session per conversation, each resumed once by B's connection.
        assert len(server.log.sessions) == len(names)
        for session in server.log.sessions:
            connections = server.log.session_connections(session)
            assert len(connections) == 2
            assert connections[0].resumed_from is None
            assert connections[1].resumed_from is not None
        assert not server.log.errors


async def _owner_is(conv: RemoteConversation, worker: str) -> bool:
    state = await conv.state()
    return state.state == "running" and state.owner == worker


async def test_a_drained_worker_takes_no_new_work(valkey_server: ValkeyServer, prefix: str) -> None:
    async with shared(valkey_server, prefix) as (server, client, _):
        with trio.fail_after(15):
            async with started(server, valkey_server, prefix, "w-a") as a:
                await a.drain()
                conv = await client.spawn(name="late", ready_timeout=None)
                await trio.sleep(0.5)  # several claim polls
                assert (await conv.state()).state == "pending"
                async with started(server, valkey_server, prefix, "w-b"):
                    await wait_until(lambda: _owner_is(conv, "w-b"), 3, "claimed by B")
                    assert "late" in (await conv.ask("late")).text
                assert a.claimed == 0


# -- fencing --------------------------------------------------------------------------------------

#: Take the conversation over as a newer owner would (the effect of the claim and adopt
#: scripts for worker "intruder"), keeping its lease alive for a minute; returns the length of
#: the event stream at that instant. KEYS: fence, owners, leases, meta, events. ARGV: name.
TAKE_OVER = """
local f = redis.call('INCR', KEYS[1])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('HSET', KEYS[2], ARGV[1], 'intruder ' .. f)
redis.call('ZADD', KEYS[3], now + 60000, ARGV[1])
redis.call('HSET', KEYS[4], 'fence', f, 'owner', 'intruder')
return redis.call('XLEN', KEYS[5])
"""


def _client_frames(server: FakeServer, connections: set[int]) -> int:
    return sum(1 for m in server.log.received if m.connection in connections)


async def _take_over(redis: coredis.Redis[str], prefix: str, name: str) -> int:
    c, k = f"{prefix}:{{cluster}}:", f"{prefix}:{{{name}}}:"
    keys = [c + "fence", c + "owners", c + "leases", k + "meta", k + "ev"]
    length = await redis.eval(TAKE_OVER, keys=keys, args=[name])
    assert isinstance(length, int)
    return length


@pytest.mark.parametrize("mid_answer", [False, True], ids=["idle", "mid-answer"])
async def test_a_worker_that_lost_its_lease_stops_acting_at_once(
    valkey_server: ValkeyServer, prefix: str, mid_answer: bool
) -> None:
    async with shared(valkey_server, prefix, responder=slow_when_asked) as (server, client, redis):
        with trio.fail_after(20):
            async with started(server, valkey_server, prefix, "w-a") as a:
                conv = await client.spawn(name="f")
                assert "warm up" in (await conv.ask("warm up")).text
                mine = {c.id for c in server.log.connections}
                if mid_answer:
                    await conv.send_text("slow answer cut by the takeover")
                    await server.log.wait_for(
                        lambda: any(t.reply for t in server.log.turns if "takeover" in t.user_text)
                    )
                else:
                    await trio.sleep(0.2)  # the handle after the turn is written

                # Another owner takes the conversation over.
                events_then = await _take_over(redis, prefix, "f")
                taken_at = trio.current_time()

                # The worker lets go within a renewal (a refused write is noticed sooner).
                took = await wait_until(lambda: "f" not in a.owned, LEASE, "A let go")
                assert took < LEASE
                if not mid_answer:
                    assert a.lost == 1  # its renewal reported the lease lost
                await wait_until(lambda: not a.orchestrator.conversations, 0.5, "it ended here")
                frames = _client_frames(server, mine)
                connections = len(server.log.connections)
                if mid_answer:
                    # The model went on answering A after the takeover: A had events to
                    # write, and its writes were refused.
                    assert any(
                        m.time > taken_at for m in server.log.sent if m.connection in mine
                    ), "no frame reached A after the takeover: the test proves nothing"
                k = f"{prefix}:{{f}}:"
                assert await redis.xlen(k + "ev") == events_then
                assert (await redis.hgetall(k + "meta"))["owner"] == "intruder"

                # New input goes to the stream; A runs none of it, for longer than a lease.
                await conv.send_text("after the takeover")
                await trio.sleep(LEASE + 0.5)
                assert _client_frames(server, mine) == frames
                assert len(server.log.connections) == connections
                assert not any(c.open for c in server.log.connections if c.id in mine)
                assert await redis.xlen(k + "ev") == events_then
                assert "after the takeover" not in server.log.answer_counts()
                assert "f" not in a.owned and a.claimed == 1
                assert (await conv.state()).owner == "intruder"
                await redis.delete([k + "meta"])  # so the worker's exit has nothing to drain


async def test_a_lost_lease_is_a_warning_not_an_error(
    valkey_server: ValkeyServer, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Losing a lease is an expected event of a cluster, however the worker learns of it (here:
    its write of the answer in progress is refused): one warning, no error, no traceback."""
    async with shared(valkey_server, prefix, responder=slow_when_asked) as (server, client, redis):
        with trio.fail_after(20):
            async with started(server, valkey_server, prefix, "w-a") as a:
                conv = await client.spawn(name="f")
                await conv.send_text("slow answer cut by the takeover")
                await server.log.wait_for(
                    lambda: any(t.reply for t in server.log.turns if "takeover" in t.user_text)
                )
                await _take_over(redis, prefix, "f")
                await wait_until(lambda: "f" not in a.owned, LEASE, "A let go")
                await redis.delete([f"{prefix}:{{f}}:meta"])
    cluster_logs = [r for r in caplog.records if r.name == "liveactors.cluster"]
    assert [r.getMessage() for r in cluster_logs if r.levelno >= logging.ERROR] == []
    assert any("lease lost" in r.getMessage() for r in cluster_logs), [
        r.getMessage() for r in cluster_logs
    ]


async def test_a_lease_that_vanished_is_resumed_without_losing_or_doubling_anything(
    valkey_server: ValkeyServer, prefix: str
) -> None:
    async with shared(valkey_server, prefix) as (server, client, redis):
        with trio.fail_after(20):
            async with started(server, valkey_server, prefix, "w-a") as a:
                conv = await client.spawn(name="v")
                assert "one" in (await conv.ask("one")).text
                # The owners entry goes (as if the lease had been given away): A's next
                # renewal finds the lease not its own and stops; once it expires, a worker
                # resumes the conversation under a newer fence.
                await redis.hdel(f"{prefix}:{{cluster}}:owners", ["v"])
                await wait_until(lambda: a.lost >= 1, LEASE, "A noticed the loss")
                assert "two" in (await conv.ask("two")).text
                assert (await conv.state()).owner == "w-a"
                assert a.claimed == 2
        assert server.log.answer_counts() == {"one": 1, "two": 1}
        assert len(server.log.sessions) == 1
        assert server.log.connections[-1].resumed_from is not None


async def test_a_second_claim_of_a_running_conversation_loses_nothing(
    valkey_server: ValkeyServer, prefix: str
) -> None:
    """A worker may claim a conversation it still holds: its own lease ran out while it was
    winding the conversation down (a stalled event loop), or the entry was queued again (an
    offer racing a claim; here: by hand). Whatever happens then, the conversation must go on
    answering, under exactly one owner, and keep its place in the lease set."""
    async with shared(valkey_server, prefix) as (server, client, redis):
        with trio.fail_after(20):
            async with started(server, valkey_server, prefix, "w-a") as a:
                conv = await client.spawn(name="twice")
                assert "one" in (await conv.ask("one")).text
                await redis.zadd(f"{prefix}:{{cluster}}:leases", {"twice": 0})  # queued again
                await wait_until(lambda: a.claimed == 2, 2, "claimed again")
                await trio.sleep(LEASE)
                with trio.fail_after(5):
                    assert "two" in (await conv.ask("two")).text
                assert list(a.owned) == ["twice"]
                assert await client.conversations() == ["twice"]
                assert (await conv.state()).owner == "w-a"
        assert server.log.answer_counts() == {"one": 1, "two": 1}


# -- capacity -------------------------------------------------------------------------------------


async def test_a_worker_takes_at_most_max_sessions(
    valkey_server: ValkeyServer, prefix: str
) -> None:
    async with shared(valkey_server, prefix) as (server, client, _):
        with trio.fail_after(20):
            async with started(server, valkey_server, prefix, "w-a", max_sessions=2) as a:
                first = await client.spawn(name="m1")
                second = await client.spawn(name="m2")
                third = await client.spawn(name="m3", ready_timeout=None)
                with pytest.raises(liveactors.AdmissionTimeout):
                    await client.spawn(name="m4", ready_timeout=0.3)
                await trio.sleep(0.5)  # several claim polls
                assert len(a.owned) == 2
                assert (await third.state()).state == "pending"
                assert (await third.state()).owner is None
                assert sorted(await client.conversations()) == ["m1", "m2", "m3", "m4"]

                await first.stop()
                await wait_until(lambda: _owner_is(third, "w-a"), 3, "m3 claimed")
                assert "third" in (await third.ask("third")).text
                assert len(a.owned) == 2
                assert (await client.get("m4").state()).state == "pending"
                await second.stop()
                await wait_until(lambda: _owner_is(client.get("m4"), "w-a"), 3, "m4 claimed")


async def test_the_cluster_cap_holds_across_workers(
    valkey_server: ValkeyServer, prefix: str
) -> None:
    cap = {"cluster_max_sessions": 2}
    async with shared(valkey_server, prefix) as (server, client, _):
        with trio.fail_after(20):
            async with (
                started(server, valkey_server, prefix, "w-a", **cap) as a,
                started(server, valkey_server, prefix, "w-b", **cap) as b,
            ):
                convs = [await client.spawn(name=f"k{i}", ready_timeout=None) for i in range(4)]

                async def states() -> list[str]:
                    return [(await conv.state()).state for conv in convs]

                await wait_until(
                    lambda: _count(states(), "running", 2), 3, "two conversations running"
                )
                await trio.sleep(0.6)  # several claim polls of both workers
                assert sorted(await states()) == ["pending", "pending", "running", "running"]
                assert len(a.owned) + len(b.owned) == 2

                running = [c for c, s in zip(convs, await states(), strict=True) if s == "running"]
                await running[0].stop()
                await wait_until(lambda: _count(states(), "running", 2), 3, "a third one runs")
                await trio.sleep(0.3)
                assert sorted(await states()) == ["pending", "running", "running", "stopped"]
                assert len(a.owned) + len(b.owned) == 2


async def _count(states: Any, state: str, n: int) -> bool:
    return list(await states).count(state) == n
