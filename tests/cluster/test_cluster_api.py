"""The cluster's client API end to end: a real Valkey server, an in-process worker running
conversations on the in-memory fake Live server, and a client in the same trio run (so coredis
on trio is exercised by every test here).

What a client may rely on: ``spawn`` returns a running conversation (or raises before anything
is written), a command returns once it is on the durable input stream (and only if it could be
sent), events are read gap-free from any ``seq``, the durable input does not grow without
bound, a Redis outage is one clear error, and no password or handle ever shows.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import attrs
import coredis
import pytest
import trio
from cluster_helpers import ValkeyServer, free_port

import liveactors
from liveactors import events as ev
from liveactors.cluster import (
    ClusterClient,
    ClusterUnavailable,
    RemoteConversation,
    Worker,
    open_client,
    open_worker,
)
from liveactors.testing import CloseConnection, FakeServer, TurnContext, open_fake_server

#: Short leases so that every test is quick (real sockets: no mock clock).
FAST: dict[str, Any] = {"lease": 1.5, "renew": 0.5, "poll": 0.1}


@attrs.frozen
class Cluster:
    server: FakeServer
    worker: Worker
    client: ClusterClient
    redis: coredis.Redis[str]
    prefix: str

    def key(self, name: str, what: str) -> str:
        """``<prefix>:{<name>}:<what>`` (the documented key layout)."""
        return f"{self.prefix}:{{{name}}}:{what}"

    async def xlen(self, name: str, what: str = "in") -> int:
        return int(await self.redis.xlen(self.key(name, what)))

    async def added(self, name: str) -> int:
        """Entries ever added to the input stream (trimming does not lower it)."""
        if not await self.redis.exists([self.key(name, "in")]):
            return 0
        info = await self.redis.xinfo_stream(self.key(name, "in"))
        return int(info["entries-added"])


@asynccontextmanager
async def cluster(
    valkey: ValkeyServer, prefix: str, **worker_options: Any
) -> AsyncIterator[Cluster]:
    """A fake Live server, one worker on it, a client and a raw Redis client."""
    options = {**FAST, **worker_options}
    async with (
        open_fake_server(listen=False) as server,
        open_worker(server.backend(), valkey.url, worker_id="w-1", prefix=prefix, **options) as w,
        open_client(valkey.url, prefix=prefix, timeout=5) as client,
        coredis.Redis.from_url(valkey.url, decode_responses=True) as redis,
    ):
        with trio.fail_after(30):
            yield Cluster(server, w, client, redis, prefix)


async def all_events(conv: RemoteConversation, *, from_seq: int = 1) -> list[ev.Event]:
    """Every event from ``from_seq`` up to the last one written now."""
    last = (await conv.state()).seq
    out: list[ev.Event] = []
    if last < from_seq:
        return out
    async with conv.subscribe(from_seq=from_seq) as sub:
        async for event in sub:
            out.append(event)
            if event.seq >= last:
                break
    return out


async def eventually(read: Any, expected: Any, seconds: float) -> None:
    """Until ``await read()`` returns ``expected`` (AssertionError after ``seconds``)."""
    value = None
    with trio.move_on_after(seconds):
        while True:
            value = await read()
            if value == expected:
                return
            await trio.sleep(0.02)
    raise AssertionError(f"still {value!r}, not {expected!r}, after {seconds}s")


def assert_gap_free(events: list[ev.Event], first: int = 1) -> None:
    assert [e.seq for e in events] == list(range(first, first + len(events)))


# -- spawn, ask, stop -----------------------------------------------------------------------------


async def test_spawn_ask_stop(valkey_server: ValkeyServer, prefix: str) -> None:
    async with cluster(valkey_server, prefix) as c:
        conv = await c.client.spawn(name="a")
        state = await conv.state()
        assert (state.name, state.state, state.owner) == ("a", "running", "w-1")
        assert state.seq >= 1  # Connected, at least
        assert await c.client.conversations() == ["a"]

        reply = await conv.ask("hello there")
        assert "hello there" in reply.text
        reply = await conv.ask("second question")
        assert "second question" in reply.text
        assert reply.turn == 2

        await conv.stop()
        state = await conv.state()
        assert (state.state, state.owner) == ("stopped", None)
        # The worker gives the lease back just after writing the end.
        await eventually(lambda: c.client.conversations(), [], 2)
        assert c.server.log.answer_counts() == {"hello there": 1, "second question": 1}
        events = await all_events(conv)
        assert isinstance(events[0], ev.Connected)
        assert isinstance(events[-1], ev.ConversationClosed)


async def test_spawning_a_running_name_is_refused(valkey_server: ValkeyServer, prefix: str) -> None:
    async with cluster(valkey_server, prefix) as c:
        conv = await c.client.spawn(name="a")
        before = await c.redis.hgetall(c.key("a", "meta"))
        with pytest.raises(liveactors.InvalidCommand, match="'a'"):
            await c.client.spawn({"system_instruction": "other"}, name="a")
        after = await c.redis.hgetall(c.key("a", "meta"))
        # The refused spawn touched nothing: same record, same config, same owner.
        assert (after["created"], after["config"]) == (before["created"], before["config"])
        assert (after["state"], after["owner"]) == ("running", "w-1")
        assert (await c.client.config_of("a")).system_instruction is None
        assert "spawned twice" in (await conv.ask("spawned twice")).text


async def test_a_config_the_model_refuses_is_refused_before_anything_is_written(
    valkey_server: ValkeyServer, prefix: str
) -> None:
    async with cluster(valkey_server, prefix) as c:
        with pytest.raises(liveactors.InvalidConfig, match="response_modalities"):
            await c.client.spawn({"response_modalities": ["TEXT"]}, name="bad")
        with pytest.raises(liveactors.InvalidCommand):
            await c.client.spawn({"no_such_field": 1}, name="bad")
        assert await c.redis.exists([c.key("bad", "meta")]) == 0
        assert not await c.redis.keys(f"{prefix}:{{bad}}*")
        assert await c.client.conversations() == []
        with pytest.raises(KeyError):
            await c.client.get("bad").state()
        # The name is free: a good config spawns under it.
        conv = await c.client.spawn(name="bad")
        assert (await conv.state()).state == "running"


async def test_commands_with_bad_arguments_are_refused_and_write_nothing(
    valkey_server: ValkeyServer, prefix: str
) -> None:
    async with cluster(valkey_server, prefix) as c:
        conv = await c.client.spawn(name="a")
        await conv.send_text("accepted")
        length = await c.added("a")
        assert length >= 1
        bad: list[Callable[[], Awaitable[Any]]] = [
            lambda: conv.send_text(42),  # type: ignore[arg-type]
            lambda: conv.send_text("\ud800"),
            lambda: conv.send_text("x", turn_complete="yes"),  # type: ignore[arg-type]
            lambda: conv.send_content(42),
            lambda: conv.send_content([{"role": "system", "parts": [{"text": "x"}]}]),
            lambda: conv.send_audio(b""),
            lambda: conv.send_audio("pcm"),  # type: ignore[arg-type]
            lambda: conv.send_audio(b"\x00\x00", rate=1),
            lambda: conv.send_audio(b"\x00" * (5 * 1024 * 1024)),
            lambda: conv.send_video(b""),
            lambda: conv.send_video(b"\xff\xd8", mime_type="jpeg"),
            lambda: conv.send_realtime_text(""),
            lambda: conv.send_tool_response([]),
            lambda: conv.send_tool_response([{"name": "f", "response": {"x": 1}}]),  # no id
            # Automatic VAD (the default): the manual markers mean nothing.
            lambda: conv.activity_start(),
            lambda: conv.activity_end(),
            lambda: conv.stop(grace=-1),
            lambda: conv.stop(grace=True),
        ]
        for i, command in enumerate(bad):
            with pytest.raises(liveactors.InvalidCommand):
                await command()
            assert await c.added("a") == length, f"bad command #{i} reached the stream"
        with pytest.raises(liveactors.InvalidCommand):
            async with conv.subscribe(from_seq=0):
                pass
        assert (await conv.state()).state == "running"
        # Good commands of every kind are accepted (each one entry).
        await conv.send_realtime_text("realtime")
        await conv.send_audio(b"\x01\x00" * 160)
        await conv.audio_stream_end()
        assert await c.added("a") == length + 3
        await conv.stop(grace=0.5)  # the tiny audio stream may never be answered
        assert (await conv.state()).state == "stopped"


async def test_a_command_after_stop_raises_conversation_stopped(
    valkey_server: ValkeyServer, prefix: str
) -> None:
    async with cluster(valkey_server, prefix) as c:
        conv = await c.client.spawn(name="a")
        await conv.stop()
        assert (await conv.state()).state == "stopped"
        with pytest.raises(liveactors.ConversationStopped, match="'a'"):
            await conv.send_text("too late")
        with pytest.raises(liveactors.ConversationStopped):
            await conv.ask("too late")
        await conv.stop()  # stopping a stopped conversation is a no-op
        assert "too late" not in c.server.log.answer_counts()


async def test_an_unknown_name_raises_key_error(valkey_server: ValkeyServer, prefix: str) -> None:
    async with cluster(valkey_server, prefix) as c:
        ghost = c.client.get("ghost")
        with pytest.raises(KeyError):
            await ghost.state()
        with pytest.raises(KeyError):
            await ghost.send_text("hello")
        with pytest.raises(KeyError):
            await c.client.config_of("ghost")
        # Nothing was created by asking.
        assert not await c.redis.keys(f"{prefix}:{{ghost}}*")


async def test_a_spawn_whose_first_connect_fails_raises_and_the_conversation_failed(
    valkey_server: ValkeyServer, prefix: str
) -> None:
    """As a local spawn: the error of the first connect is raised (here the service refuses
    the worker's API key), and the record says the conversation failed, and why."""
    async with (
        open_fake_server(listen=False) as server,
        open_worker(
            server.backend(api_key="not-a-valid-key"), valkey_server.url, prefix=prefix, **FAST
        ),
        open_client(valkey_server.url, prefix=prefix, timeout=5) as client,
    ):
        with trio.fail_after(10):
            with pytest.raises(liveactors.SessionRejected):
                await client.spawn(name="a")
            conv = client.get("a")
            assert (await conv.state()).state == "failed"
            async with conv.subscribe(from_seq=1) as sub:
                events = [e async for e in sub]
            assert [type(e) for e in events[-2:]] == [ev.ConversationFailed, ev.ConversationClosed]
            assert isinstance(events[-2].error, liveactors.SessionRejected)  # type: ignore[attr-defined]


async def test_a_conversation_that_fails_after_it_started_is_failed(
    valkey_server: ValkeyServer, prefix: str
) -> None:
    def responder(ctx: TurnContext) -> Any:
        if "fail" in ctx.user_text:
            return CloseConnection(1008, "Policy violation.")  # not retryable
        return f"echo: {ctx.user_text}"

    async with (
        open_fake_server(listen=False, responder=responder) as server,
        open_worker(server.backend(), valkey_server.url, prefix=prefix, **FAST),
        open_client(valkey_server.url, prefix=prefix, timeout=5) as client,
    ):
        with trio.fail_after(10):
            conv = await client.spawn(name="a")
            with pytest.raises(liveactors.SessionRejected):
                await conv.ask("please fail")
            async with conv.subscribe(from_seq=1) as sub:
                events = [e async for e in sub]
            assert [type(e) for e in events[-2:]] == [ev.ConversationFailed, ev.ConversationClosed]
            assert (await conv.state()).state == "failed"
            with pytest.raises(liveactors.ConversationStopped, match="failed"):
                await conv.send_text("too late")


async def test_stopping_a_conversation_no_worker_took_yet_ends_it_at_once(
    valkey_server: ValkeyServer, prefix: str
) -> None:
    """Nothing was sent, so nothing waits for an answer: the stop needs no worker (and no
    model session) to finish."""
    async with (
        open_fake_server(listen=False) as server,
        open_client(valkey_server.url, prefix=prefix, timeout=5) as client,
    ):
        conv = await client.spawn(name="queued", ready_timeout=None)
        assert (await conv.state()).state == "pending"
        with trio.fail_after(3):
            await conv.stop()
        assert (await conv.state()).state == "stopped"
        assert await client.conversations() == []
        async with open_worker(server.backend(), valkey_server.url, prefix=prefix, **FAST):
            await trio.sleep(0.5)
        assert server.log.connections == []


# -- events ---------------------------------------------------------------------------------------


async def test_subscribe_replays_every_event_gap_free_and_ends_after_close(
    valkey_server: ValkeyServer, prefix: str
) -> None:
    async with cluster(valkey_server, prefix) as c:
        conv = await c.client.spawn(name="a")
        for question in ("one", "two", "three"):
            await conv.ask(question)
        await conv.stop()
        last = (await conv.state()).seq

        # From 1: everything, in order, and the iteration ends by itself after the close.
        with trio.fail_after(5):
            async with conv.subscribe(from_seq=1) as sub:
                events = [e async for e in sub]
        assert_gap_free(events)
        assert events[-1].seq == last
        assert isinstance(events[0], ev.Connected)
        assert isinstance(events[-1], ev.ConversationClosed)
        assert sum(type(e) is ev.TurnComplete for e in events) == 3

        # From k: starts exactly at k.
        k = last // 2
        with trio.fail_after(5):
            async with conv.subscribe(from_seq=k) as sub:
                tail = [e async for e in sub]
        assert_gap_free(tail, k)
        assert [(type(e), e.seq) for e in tail] == [(type(e), e.seq) for e in events[k - 1 :]]

        # Filtered by type: only those, still ending after the close.
        with trio.fail_after(5):
            async with conv.subscribe(ev.TurnComplete, ev.ConversationClosed, from_seq=1) as sub:
                kinds = [type(e) async for e in sub]
        assert kinds == [ev.TurnComplete] * 3 + [ev.ConversationClosed]


async def test_a_live_subscription_sees_new_events_as_they_are_written(
    valkey_server: ValkeyServer, prefix: str
) -> None:
    async with cluster(valkey_server, prefix) as c:
        conv = await c.client.spawn(name="a")
        start = (await conv.state()).seq
        async with conv.subscribe() as sub:  # from now
            await conv.send_text("streamed")
            seen: list[ev.Event] = []
            async for event in sub:
                seen.append(event)
                if type(event) is ev.TurnComplete:
                    break
        assert seen[0].seq > start  # nothing from before the subscription
        assert_gap_free(seen, seen[0].seq)
        text = "".join(e.text for e in seen if isinstance(e, ev.OutputTranscript))
        assert "streamed" in text


async def test_reading_events_the_stream_no_longer_keeps_raises_naming_the_gap(
    valkey_server: ValkeyServer, prefix: str
) -> None:
    # A cap well above one turn's events (an ask reads its own turn), far below the run's.
    async with cluster(valkey_server, prefix, events_cap=40) as c:
        conv = await c.client.spawn(name="a")
        # Enough events that whole stream nodes are trimmed (MAXLEN ~ trims by node).

        async def first_kept() -> int:
            entries = await c.redis.xrange(c.key("a", "ev"), "-", "+", count=1)
            return int(str(entries[0].identifier).partition("-")[0])

        while await first_kept() == 1:
            await conv.ask("fill the stream")
        kept_from = await first_kept()
        last = (await conv.state()).seq
        assert 1 < kept_from <= last
        with pytest.raises(liveactors.InvalidCommand, match=r"from seq 1 to \d+ are gone"):
            async with conv.subscribe(from_seq=1) as sub:
                await sub.__anext__()
        # What is kept can be read, gap-free.
        kept = await all_events(conv, from_seq=kept_from)
        assert_gap_free(kept, kept_from)
        assert kept[-1].seq >= last


async def test_remote_events_are_the_local_events(valkey_server: ValkeyServer, prefix: str) -> None:
    async with cluster(valkey_server, prefix) as c:
        local: list[ev.Event] = []
        async with c.worker.orchestrator.subscribe(conversation="a", buffer=4096) as sub:

            async def collect() -> None:
                async for event in sub:
                    local.append(event)
                    if isinstance(event, ev.ConversationClosed):
                        return

            async with trio.open_nursery() as nursery:
                nursery.start_soon(collect)
                conv = await c.client.spawn(name="a")
                await conv.ask("first")
                await conv.ask("second")
                await conv.stop()
        async with conv.subscribe(from_seq=1) as remote_sub:
            remote = [e async for e in remote_sub]

        def key(e: ev.Event) -> tuple[Any, ...]:
            return (type(e).__name__, e.seq, e.turn, getattr(e, "text", None))

        assert [key(e) for e in remote] == [key(e) for e in local]
        assert {type(e) for e in remote} >= {ev.Connected, ev.TurnComplete, ev.OutputTranscript}


# -- the durable input ----------------------------------------------------------------------------


async def test_a_command_is_on_the_input_stream_when_it_returns(
    valkey_server: ValkeyServer, prefix: str
) -> None:
    async with cluster(valkey_server, prefix) as c:
        conv = await c.client.spawn(name="a")
        before = await c.added("a")
        await conv.send_text("durable")
        assert await c.added("a") == before + 1
        info = await c.redis.xinfo_stream(c.key("a", "in"))
        last = info["last-entry"]
        assert last is not None and "durable" in str(last.field_values)


async def test_the_input_stream_is_trimmed_as_handles_cover_it(
    valkey_server: ValkeyServer, prefix: str
) -> None:
    async with cluster(valkey_server, prefix) as c:
        conv = await c.client.spawn(name="a")
        lengths = []
        for n in range(50):
            await conv.ask(f"question {n}")
            lengths.append(await c.xlen("a"))
        # Give the worker the moment it needs to write the last handle and trim.
        await eventually(lambda: c.xlen("a"), 0, 5)
        assert max(lengths) <= 3, lengths
        assert c.server.log.answer_counts() == {f"question {n}": 1 for n in range(50)}
        # Answers of covered exchanges go with the input they answered.
        assert await c.redis.hlen(c.key("a", "ans")) <= 2


# -- Redis unavailable ----------------------------------------------------------------------------


async def test_no_redis_is_a_prompt_cluster_unavailable_without_the_password() -> None:
    password = "s3cret-Pa55word-xyz"
    url = f"redis://:{password}@127.0.0.1:{free_port()}/0"
    started = trio.current_time()
    with trio.fail_after(10):
        async with open_client(url, prefix="nowhere", timeout=1) as client:
            assert password not in repr(client)
            with pytest.raises(ClusterUnavailable) as spawned:
                await client.spawn(name="a")
            with pytest.raises(ClusterUnavailable) as sent:
                await client.get("a").send_text("hello")
            with pytest.raises(ClusterUnavailable) as read:
                await client.get("a").state()
    assert trio.current_time() - started < 8
    for caught, operation in ((spawned, "create 'a'"), (sent, "send input to 'a'"), (read, "a")):
        message = str(caught.value)
        assert operation in message
        assert password not in message
        assert "<redacted>" in message or "127.0.0.1" in message
        assert password not in repr(caught.value)
        assert isinstance(caught.value, liveactors.LiveError)


async def test_a_worker_without_redis_runs_on_and_never_logs_the_password(
    caplog: pytest.LogCaptureFixture,
) -> None:
    password = "an0ther-Secret-pw"
    url = f"redis://:{password}@127.0.0.1:{free_port()}/0"
    with trio.fail_after(10):
        async with (
            open_fake_server(listen=False) as server,
            open_worker(server.backend(), url, redis_timeout=1, **FAST) as worker,
        ):
            assert password not in repr(worker)
            await trio.sleep(0.3)  # a few renewals and claims fail
    warnings = [r.getMessage() for r in caplog.records if r.name == "liveactors.cluster"]
    assert warnings and all("could not" in w for w in warnings)
    assert password not in caplog.text


# -- secrets --------------------------------------------------------------------------------------


async def test_no_password_or_handle_in_logs_or_reprs(
    valkey_server: ValkeyServer, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with cluster(valkey_server, prefix) as c:
        conv = await c.client.spawn(name="a")
        await conv.ask("one")
        await conv.ask("two")
        state = await conv.state()
        reprs = [repr(x) for x in (c.client, c.worker, conv, state, c.client.redis)]
        reprs.append(repr(c.client.redis.target))
        await conv.stop()
        reprs.append(repr(await conv.state()))
        handles = [h for s in c.server.sessions.values() for h in s.handles]
    assert handles, "the fake server issued no handle"
    text = caplog.text + "\n".join(reprs)
    assert "liveactors" in caplog.text  # the run did log
    assert valkey_server.password not in text
    for handle in handles:
        assert handle not in text, handle
