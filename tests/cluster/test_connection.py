"""The lean Redis client against a real Valkey: the pipelined connection (``_connection.py``),
the subscriber, and what ``Redis`` builds on them for one server (the stream router, blocking
reads apart from the commands).

What matters most here: many tasks share one connection and each gets its own reply, even
when one of them is cancelled; a connection that breaks or stalls fails its callers with
``ConnectionError`` and the next call connects again; nothing is retried except a script the
server did not have; any number of event subscriptions cost one connection and never hold up
the commands (the pool starvation that coredis had); a subscriber that does not read holds
back only itself.
"""

from __future__ import annotations

import secrets
import ssl
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.lowlevel
import trustme
from cluster_helpers import ValkeyServer, find_binary, free_port, redis_command

from liveactors import events as ev
from liveactors.cluster import ClusterUnavailable, open_client
from liveactors.cluster._connection import RespConnection, open_connection
from liveactors.cluster._handshake import Login
from liveactors.cluster._redis import FOLLOW_BUFFER, Redis
from liveactors.cluster._resp import AuthenticationError, RespError
from liveactors.cluster._socket import Endpoint
from liveactors.cluster._subscriber import RespSubscriber
from liveactors.cluster._target import RedisTarget


def _at(port: int, **options: Any) -> Any:
    endpoint = Endpoint("127.0.0.1", port, **options)

    async def locate() -> Endpoint:
        return endpoint

    return locate


@asynccontextmanager
async def _connection(
    server: ValkeyServer, *, per_reply: float = 5.0, **login: Any
) -> AsyncIterator[RespConnection]:
    options: dict[str, Any] = {"password": server.password, **login}
    async with open_connection(_at(server.port), Login(**options), timeout=per_reply) as conn:
        yield conn


async def _admin(server: ValkeyServer, *args: str | int) -> Any:
    """One command on a connection of its own (a thread: the test's loop keeps running)."""
    return await trio.to_thread.run_sync(lambda: redis_command(server.port, server.password, *args))


# -- the pipelined connection -------------------------------------------------------------------


async def test_commands_replies_and_error_replies(valkey_server: ValkeyServer, prefix: str) -> None:
    async with _connection(valkey_server) as conn:
        assert conn.client_id is None  # connects on first use
        assert await conn.execute("PING") == b"PONG"
        assert isinstance(conn.client_id, int)
        key = f"{prefix}:h"
        assert await conn.execute("HSET", key, "a", "é", "b", b"\x00\xff", "n", 7) == 3
        assert await conn.execute("HGETALL", key) == [
            b"a",
            "é".encode(),
            b"b",
            b"\x00\xff",
            b"n",
            b"7",
        ]
        assert await conn.execute("HGET", key, "missing") is None
        with pytest.raises(RespError) as caught:
            await conn.execute("NOSUCHCOMMAND", "x")
        assert caught.value.code == "ERR"
        with pytest.raises(RespError, match="WRONGTYPE"):
            await conn.execute("LPUSH", key, "x")
        # An error reply leaves the connection as it was.
        identity = conn.client_id
        replies = await conn.pipeline([["HGET", key, "n"], ["INCR", key], ["ECHO", "after"]])
        assert replies[0] == b"7" and isinstance(replies[1], RespError) and replies[2] == b"after"
        assert conn.client_id == identity


async def test_concurrent_callers_each_get_their_own_reply(valkey_server: ValkeyServer) -> None:
    got: dict[int, Any] = {}
    async with _connection(valkey_server) as conn:

        async def call(n: int) -> None:
            for round_ in range(5):
                if n % 7 == 0:
                    replies = await conn.pipeline([["ECHO", f"{n}-{round_}"], ["ECHO", "x" * n]])
                    assert replies == [f"{n}-{round_}".encode(), b"x" * n]
                else:
                    got[n] = await conn.execute("ECHO", f"{n}-{round_}")
                    assert got[n] == f"{n}-{round_}".encode()
                await trio.lowlevel.checkpoint()

        async with trio.open_nursery() as nursery:
            for n in range(200):
                nursery.start_soon(call, n)
        identity = conn.client_id
        assert await conn.execute("ECHO", "last") == b"last"
        assert conn.client_id == identity  # one connection for all of them


async def test_a_cancelled_caller_does_not_shift_the_replies(
    valkey_server: ValkeyServer, prefix: str
) -> None:
    """A caller cancelled while its command runs leaves its reply to be read and dropped: the
    callers after it get theirs, not its."""
    key = f"{prefix}:list"
    async with _connection(valkey_server) as conn:
        await conn.connect()
        with trio.move_on_after(0.1) as scope:
            await conn.execute("BLPOP", key, 0.5, reply_within=5)  # blocks 0.5 s
        assert scope.cancelled_caught
        started = trio.current_time()
        # Behind the BLPOP on the wire: its reply (nil) comes first, and is not this one's.
        assert await conn.execute("ECHO", "mine") == b"mine"
        assert trio.current_time() - started > 0.2
        # A cancelled LPOP whose reply is a value: dropped too.
        await conn.execute("RPUSH", key, "v1", "v2")
        with trio.CancelScope() as cancelled:
            cancelled.cancel()
            await conn.execute("LPOP", key)
        # (It was sent before the cancellation was seen: a cancelled call may have run.)
        assert await conn.execute("LLEN", key) == 1
        assert await conn.execute("ECHO", "again") == b"again"


async def test_a_broken_connection_fails_its_callers_and_the_next_call_reconnects(
    valkey_server: ValkeyServer, prefix: str
) -> None:
    async with _connection(valkey_server) as conn:
        first = await conn.connect()
        failures: list[BaseException] = []

        async def waiting() -> None:
            try:
                await conn.execute("BLPOP", f"{prefix}:never", 5, reply_within=10)
            except ConnectionError as exc:
                failures.append(exc)

        async with trio.open_nursery() as nursery:
            for _ in range(3):
                nursery.start_soon(waiting)
            await trio.sleep(0.2)
            await _admin(valkey_server, "CLIENT", "KILL", "ID", first)
        assert len(failures) == 3
        assert all("broke" in str(f) for f in failures)
        # The next call connects again.
        assert await conn.execute("PING") == b"PONG"
        assert conn.client_id not in (None, first)


async def test_a_late_reply_gives_the_connection_up(
    valkey_server: ValkeyServer, prefix: str
) -> None:
    """A reply later than its deadline: every reply behind it is late too, so the connection
    is given up (its callers get ConnectionError) and the next call makes a new one."""
    async with _connection(valkey_server, per_reply=0.4) as conn:
        first = await conn.connect()
        started = trio.current_time()
        with pytest.raises(ConnectionError) as caught:
            await conn.execute("BLPOP", f"{prefix}:never", 5)  # no time given: 0.4 s
        assert isinstance(caught.value.__cause__, TimeoutError)
        assert trio.current_time() - started < 2.0
        assert await conn.execute("PING") == b"PONG"
        assert conn.client_id != first
        # A command that says it blocks gets the time it asks for.
        assert await conn.execute("BLPOP", f"{prefix}:never", 0.6, reply_within=2) is None


async def test_evalsha_loads_a_script_the_server_lacks(
    valkey_server: ValkeyServer, prefix: str
) -> None:
    source = f"-- {secrets.token_hex(4)}\nreturn redis.call('INCR', KEYS[1])"
    key = f"{prefix}:counter"
    async with _connection(valkey_server) as conn:
        assert await conn.evalsha(source, [key], []) == 1
        assert await conn.evalsha(source, [key], []) == 2
        await conn.execute("SCRIPT", "FLUSH")
        assert await conn.evalsha(source, [key], []) == 3  # NOSCRIPT: loaded, run once
        with pytest.raises(RespError):  # an error inside the script is not retried
            await conn.evalsha("return redis.call('NOSUCH')", [], [])
        assert await conn.execute("GET", key) == b"3"


async def test_login_database_and_name(valkey_server: ValkeyServer, prefix: str) -> None:
    key = f"{prefix}:where"
    async with _connection(valkey_server, db=3, name="lean-test") as conn:
        await conn.execute("SET", key, "db3")
        assert await conn.execute("CLIENT", "GETNAME") == b"lean-test"
    assert await _admin(valkey_server, "GET", key) is None  # not in db 0
    async with _connection(valkey_server, db=3) as conn:
        assert await conn.execute("GET", key) == b"db3"
    wrong = Login(password="not-" + valkey_server.password)
    async with open_connection(_at(valkey_server.port), wrong, timeout=5) as conn:
        with pytest.raises(AuthenticationError, match="WRONGPASS"):
            await conn.execute("PING")
    async with open_connection(_at(valkey_server.port), Login(), timeout=5) as conn:
        with pytest.raises(AuthenticationError, match="NOAUTH"):
            await conn.execute("PING")
    nobody = _at(free_port())
    async with open_connection(nobody, Login(), timeout=5) as conn:
        with pytest.raises(OSError):
            await conn.execute("PING")


async def test_callers_that_arrive_while_it_connects_share_the_attempt(
    valkey_server: ValkeyServer,
) -> None:
    attempts = 0
    endpoint = Endpoint("127.0.0.1", valkey_server.port)

    async def locate() -> Endpoint:
        nonlocal attempts
        attempts += 1
        await trio.sleep(0.05)
        return endpoint

    login = Login(password=valkey_server.password)
    async with open_connection(locate, login, timeout=5) as conn, trio.open_nursery() as nursery:
        for _ in range(20):
            nursery.start_soon(conn.execute, "PING")
    assert attempts == 1


# -- Unix sockets and TLS -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def unix_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """A server listening on a Unix socket only: (its path, its password)."""
    binary = find_binary()
    if binary is None:
        pytest.skip("no valkey-server or redis-server")
    directory = tmp_path_factory.mktemp("unix")
    path, password = str(directory / "valkey.sock"), secrets.token_urlsafe(12)
    options = {"port": "0", "unixsocket": path, "dir": str(directory), "save": ""}
    options |= {"appendonly": "no", "requirepass": password, "daemonize": "no"}
    arguments = [binary]
    for option, value in options.items():
        arguments += [f"--{option}", value]
    process = subprocess.Popen(arguments, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while not Path(path).exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        yield path, password
    finally:
        process.terminate()
        process.wait(5)


async def test_a_unix_socket(unix_server: tuple[str, str], prefix: str) -> None:
    path, password = unix_server
    target = RedisTarget(f"unix://:{password}@{path}?db=2", prefix=prefix, timeout=5)
    async with target.open() as redis:
        assert await redis.ping() == "PONG"
        await redis.zadd("add", f"{prefix}:z", {"a": 1})
        assert await redis.zrange("range", f"{prefix}:z") == ["a"]


async def _tls_proxy(
    server_context: ssl.SSLContext, backend: int, task_status: trio.TaskStatus[int]
) -> None:
    """TLS in front of ``backend`` (the test binary has no TLS of its own)."""

    async def relay(source: trio.abc.Stream, sink: trio.abc.Stream) -> None:
        try:
            while data := await source.receive_some(65536):
                await sink.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass

    async def handle(client: trio.SocketStream) -> None:
        secure = trio.SSLStream(client, server_context, server_side=True)
        try:
            upstream = await trio.open_tcp_stream("127.0.0.1", backend)
        except OSError:
            await trio.aclose_forcefully(secure)
            return
        async with secure, upstream, trio.open_nursery() as nursery:
            nursery.start_soon(relay, secure, upstream)
            nursery.start_soon(relay, upstream, secure)

    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    task_status.started(listeners[0].socket.getsockname()[1])
    await trio.serve_listeners(handle, listeners)


async def test_tls_is_verified_by_default(valkey_server: ValkeyServer, prefix: str) -> None:
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_context)
    async with trio.open_nursery() as nursery:
        port = await nursery.start(_tls_proxy, server_context, valkey_server.port)
        url = f"rediss://:{valkey_server.password}@127.0.0.1:{port}/0"
        trusted = ssl.create_default_context()
        ca.configure_trust(trusted)
        async with RedisTarget(url, prefix=prefix, ssl_context=trusted, timeout=5).open() as redis:
            assert await redis.ping() == "PONG"
            await redis.publish("publish", f"{prefix}:c", "through TLS")
            assert await redis.hget("hget", f"{prefix}:none", "f") is None
        # The system's CAs do not know this one: refused, and the password is not shown.
        async with RedisTarget(url, prefix=prefix, timeout=5).open() as redis:
            with pytest.raises(ClusterUnavailable, match="CERTIFICATE_VERIFY_FAILED") as caught:
                await redis.ping()
        assert valkey_server.password not in str(caught.value)
        # Unless the URL opts out.
        lax = url.replace("/0", "/0?ssl_cert_reqs=none")
        async with RedisTarget(lax, prefix=prefix, timeout=5).open() as redis:
            assert await redis.ping() == "PONG"
        nursery.cancel_scope.cancel()


# -- channels -------------------------------------------------------------------------------------


async def test_a_subscriber_hears_and_subscribes_again_after_a_failure(
    valkey_server: ValkeyServer, prefix: str
) -> None:
    channels = [f"{prefix}:one", f"{prefix}:two"]
    subscribed = 0
    errors: list[Exception] = []
    ready = trio.Event()

    def on_subscribed() -> None:
        nonlocal subscribed
        subscribed += 1
        ready.set()

    login = Login(password=valkey_server.password, name="subscriber-test")
    subscriber = RespSubscriber(
        _at(valkey_server.port),
        login,
        channels,
        timeout=5,
        on_subscribed=on_subscribed,
        on_error=errors.append,
    )
    heard: list[tuple[str, bytes]] = []
    counted = trio.Event()

    async def hearing(count: int) -> None:
        nonlocal counted
        while len(heard) < count:
            counted = trio.Event()
            await counted.wait()

    async with _connection(valkey_server) as conn, trio.open_nursery() as nursery:

        async def listen() -> None:
            async for message in subscriber:
                heard.append(message)
                counted.set()

        nursery.start_soon(listen)
        with trio.fail_after(5):
            await ready.wait()
        await conn.execute("PUBLISH", channels[0], "a")
        await conn.execute("PUBLISH", channels[1], b"\x00raw")
        await conn.execute("PUBLISH", f"{prefix}:other", "not ours")
        with trio.fail_after(5):
            await hearing(2)
        # Its connection dies: it says so, and subscribes again by itself.
        ready = trio.Event()
        await conn.execute("CLIENT", "KILL", "TYPE", "pubsub")
        with trio.fail_after(5):
            await ready.wait()
        await conn.execute("PUBLISH", channels[0], "after")
        with trio.fail_after(5):
            await hearing(3)
        nursery.cancel_scope.cancel()
    await subscriber.aclose()
    assert heard == [(channels[0], b"a"), (channels[1], b"\x00raw"), (channels[0], b"after")]
    assert subscribed == 2 and len(errors) == 1


# -- Redis on one server: blocking reads apart from the commands ---------------------------------


@asynccontextmanager
async def _redis(server: ValkeyServer, prefix: str) -> AsyncIterator[Redis]:
    async with RedisTarget(server.url, prefix=prefix, timeout=5).open() as redis:
        yield redis


async def _append(redis: Redis, key: str, first: int, last: int) -> None:
    """Entries ``<n>-1`` for n in first..last (as the journal writes events)."""
    script = "for i = tonumber(ARGV[1]), tonumber(ARGV[2]) do " + (
        "redis.call('XADD', KEYS[1], i .. '-1', 'n', i) end"
    )
    await redis.script("append", script, [key], [first, last])


async def test_many_followers_cost_one_connection_and_never_hold_up_commands(
    valkey_server: ValkeyServer, prefix: str
) -> None:
    """The bug coredis had: each subscription's blocking read held one of 64 pooled
    connections, so beyond ~60 every other command waited up to the block."""
    async with _redis(valkey_server, prefix) as redis:
        before = await _admin(valkey_server, "INFO", "clients")
        heard = trio.Event()
        async with trio.open_nursery() as nursery:

            async def idle(n: int) -> None:
                async with redis.follow("follow", f"{prefix}:s{n}", "0-0") as feed:
                    await feed.read()
                heard.set()

            for n in range(300):
                nursery.start_soon(idle, n)
            await trio.sleep(0.5)
            slowest = 0.0
            for _ in range(20):
                started = trio.current_time()
                assert await redis.ping() == "PONG"
                slowest = max(slowest, trio.current_time() - started)
            assert slowest < 0.2, slowest
            # 300 followers, one blocking read: the command connection and the router's.
            after = await _admin(valkey_server, "INFO", "clients")
            assert _clients(after) - _clients(before) <= 2
            # Each hears its own stream at once.
            started = trio.current_time()
            await _append(redis, f"{prefix}:s123", 1, 1)
            with trio.fail_after(1):
                await heard.wait()
            nursery.cancel_scope.cancel()


def _clients(info: str) -> int:
    for line in info.splitlines():
        if line.startswith("connected_clients:"):
            return int(line.partition(":")[2])
    raise AssertionError(info)


async def test_a_new_follower_is_read_at_once(valkey_server: ValkeyServer, prefix: str) -> None:
    """The router blocks for seconds on the streams it follows; one that comes meanwhile
    interrupts the read, so its first entry is not late by a block."""
    async with _redis(valkey_server, prefix) as redis:
        async with redis.follow("first", f"{prefix}:a", "0-0"):
            await trio.sleep(0.3)  # the router blocks on a
            async with redis.follow("second", f"{prefix}:b", "0-0") as feed:
                await trio.sleep(0.05)
                await _append(redis, f"{prefix}:b", 1, 2)
                started = trio.current_time()
                with trio.fail_after(2):
                    entries = await feed.read()
                assert trio.current_time() - started < 1.0
        assert [entry_id for entry_id, _ in entries] == ["1-1", "2-1"]
        assert entries[0][1] == {"n": b"1"}


async def test_followers_of_one_stream_from_different_points(
    valkey_server: ValkeyServer, prefix: str
) -> None:
    key = f"{prefix}:shared"
    async with _redis(valkey_server, prefix) as redis:
        await _append(redis, key, 1, 10)

        async def collect(after: str, until: int) -> list[int]:
            seen: list[int] = []
            async with redis.follow("follow", key, after) as feed:
                while not seen or seen[-1] < until:
                    seen += [int(entry_id.partition("-")[0]) for entry_id, _ in await feed.read()]
            return seen

        results: dict[str, list[int]] = {}

        async def run(after: str) -> None:
            results[after] = await collect(after, 20)

        async with trio.open_nursery() as nursery:
            for after in ("0-0", "5-1", "10-1"):
                nursery.start_soon(run, after)
            await trio.sleep(0.2)
            await _append(redis, key, 11, 20)
        assert results["0-0"] == list(range(1, 21))
        assert results["5-1"] == list(range(6, 21))
        assert results["10-1"] == list(range(11, 21))


async def test_a_follower_that_does_not_read_holds_back_only_itself(
    valkey_server: ValkeyServer, prefix: str
) -> None:
    slow_key, quick_key = f"{prefix}:slow", f"{prefix}:quick"
    total = 3 * FOLLOW_BUFFER
    async with (
        _redis(valkey_server, prefix) as redis,
        redis.follow("slow", slow_key, "0-0") as slow,
        redis.follow("quick", quick_key, "0-0") as quick,
    ):
        await _append(redis, slow_key, 1, total)
        for n in range(1, 6):
            await _append(redis, quick_key, n, n)
            with trio.fail_after(1):
                assert [entry_id for entry_id, _ in await quick.read()] == [f"{n}-1"]
        # The slow one took what its buffer holds, and no more.
        assert len(slow.buffer) <= FOLLOW_BUFFER  # type: ignore[attr-defined]
        seen: list[int] = []
        with trio.fail_after(5):
            while len(seen) < total:
                seen += [int(entry_id.partition("-")[0]) for entry_id, _ in await slow.read()]
        assert seen == list(range(1, total + 1))


async def test_a_failed_read_reaches_each_follower_and_they_carry_on(
    valkey_server: ValkeyServer, prefix: str
) -> None:
    key = f"{prefix}:events"
    async with _redis(valkey_server, prefix) as redis:
        async with redis.follow("read the events of 'x'", key, "0-0") as feed:
            await trio.sleep(0.2)  # the router blocks on the stream
            router = redis._router  # type: ignore[attr-defined]
            await _admin(valkey_server, "CLIENT", "KILL", "ID", router.connection.client_id)
            with trio.fail_after(2), pytest.raises(ClusterUnavailable) as caught:
                await feed.read()
            assert "could not read the events of 'x'" in str(caught.value)
            assert valkey_server.password not in str(caught.value)
            await _append(redis, key, 1, 3)
            with trio.fail_after(5):
                entries = await feed.read()
        assert [entry_id for entry_id, _ in entries] == ["1-1", "2-1", "3-1"]


async def test_a_blocking_xread_does_not_take_the_command_connection(
    valkey_server: ValkeyServer, prefix: str
) -> None:
    async with _redis(valkey_server, prefix) as redis, trio.open_nursery() as nursery:
        done = trio.Event()

        async def block() -> None:
            reply = await redis.xread("xread", {f"{prefix}:empty": "0-0"}, block=800)
            assert reply == {}
            done.set()

        nursery.start_soon(block)
        await trio.sleep(0.1)
        started = trio.current_time()
        assert await redis.ping() == "PONG"
        assert trio.current_time() - started < 0.3
        with trio.fail_after(3):
            await done.wait()


async def test_many_idle_subscriptions_do_not_slow_a_client(
    valkey_server: ValkeyServer, prefix: str
) -> None:
    """The issue's repro: one client, hundreds of idle ``subscribe()`` (no worker: no events);
    ``state()`` and new input stay prompt."""
    async with open_client(valkey_server.url, prefix=prefix, timeout=2) as client:
        conv = await client.spawn(name="a", ready_timeout=None)
        async with trio.open_nursery() as nursery:

            async def idle() -> None:
                async with conv.subscribe() as sub:
                    await sub.next_entry()

            for _ in range(200):
                nursery.start_soon(idle)
            await trio.sleep(0.5)
            for _ in range(5):
                started = trio.current_time()
                await conv.state()
                await conv.send_text("hello")
                assert trio.current_time() - started < 0.3
            nursery.cancel_scope.cancel()


async def test_open_keeps_its_contract_on_one_server(valkey_server: ValkeyServer) -> None:
    """One client for the block; the block's own error and a cancellation come out as they
    are; a server that is not there is ClusterUnavailable naming the operation."""
    target = RedisTarget(valkey_server.url, timeout=5)
    async with target.open() as redis:
        assert await redis.ping() == "PONG"
    with pytest.raises(KeyError, match="mine"):
        async with target.open() as redis:
            await redis.ping()
            raise KeyError("mine")
    with trio.move_on_after(0.2) as scope:
        async with target.open() as redis:
            await redis.ping()
            await trio.sleep_forever()
    assert scope.cancelled_caught
    nobody = RedisTarget(f"redis://:{valkey_server.password}@127.0.0.1:{free_port()}", timeout=2)
    async with nobody.open() as redis:
        with pytest.raises(ClusterUnavailable, match="could not ping the server") as caught:
            await redis.ping()
    assert valkey_server.password not in f"{caught.value}{caught.value!r}"


# -- input through notices (the worker's side of SUBMIT) -----------------------------------------


@asynccontextmanager
async def _one_worker(server: ValkeyServer, prefix: str) -> AsyncIterator[Any]:
    from liveactors.cluster import open_worker
    from liveactors.testing import open_fake_server

    async with (
        open_fake_server(listen=False) as fake,
        open_worker(
            fake.backend(), server.url, worker_id="w-n", prefix=prefix, lease=3, renew=1, poll=30
        ) as worker,
        open_client(server.url, prefix=prefix, timeout=5) as client,
    ):
        with trio.fail_after(30):
            yield fake, worker, client


async def test_input_a_notice_cannot_carry_is_read_from_the_stream(
    valkey_server: ValkeyServer, prefix: str
) -> None:
    """The owner takes each command from its notice while the notices follow on from each
    other; a command too long for a notice, or one whose notice was lost, is read from the
    stream, in its place (the pump's poll is minutes away here: notices do it all)."""
    long = "long " + "x" * 70_000
    async with _one_worker(valkey_server, prefix) as (fake, _, client):
        conv = await client.spawn(name="a", ready_timeout=10)
        assert (await conv.ask("one")).text.endswith("one")
        await conv.send_text(long)
        assert (await conv.ask("two")).text.endswith("two")
        # A notice that is lost: the owner's subscription is cut while input arrives.
        await _admin(valkey_server, "CLIENT", "KILL", "TYPE", "pubsub")
        await conv.send_text("three")
        assert (await conv.ask("four")).text.endswith("four")
        await conv.stop()
    # Every input reached the model once, in order (one sent right before the next question
    # may be interrupted by it: the fake answers the last turn).
    assert [t.user_text for t in fake.log.turns] == ["one", long, "two", "three", "four"]


async def test_input_whose_notice_never_came_is_read_by_the_worker_poll(
    valkey_server: ValkeyServer, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A notice can be lost without the subscription breaking (Pub/Sub delivers at most once):
    a pump that waited ``POLL`` seconds for one reads the stream anyway, found by the worker's
    poll (no timer per wait). Here every notice for "lost" is dropped, and ``POLL`` is 0.4 s."""
    from liveactors.cluster import _owned, _pump

    monkeypatch.setattr(_pump, "POLL", 0.4)
    offer = _owned.Owned.offer

    def drop_lost(self: _owned.Owned, prev: str, entry_id: str, raw: bytes) -> None:
        if b'"lost"' not in raw:
            offer(self, prev, entry_id, raw)

    monkeypatch.setattr(_owned.Owned, "offer", drop_lost)
    async with _one_worker(valkey_server, prefix) as (fake, _, client):
        conv = await client.spawn(name="p", ready_timeout=10)
        assert (await conv.ask("first")).text.endswith("first")
        started = trio.current_time()
        async with conv.subscribe(ev.TurnComplete) as sub:
            await conv.send_text("lost")
            with trio.fail_after(5):
                await sub.__anext__()
        waited = trio.current_time() - started
        # Taken by a poll (a notice takes milliseconds): once the pump had waited POLL since
        # it took "first", found within POLL / 2 by the worker's poll.
        assert 0.1 <= waited < 1.5, waited
        await conv.stop()
    assert [t.user_text for t in fake.log.turns] == ["first", "lost"]
