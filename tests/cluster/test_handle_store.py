"""RedisHandleStore against a real Valkey server: round trips, newest wins atomically (also
under concurrent writers), the TTL, names that need escaping, secrecy, and trio."""

from __future__ import annotations

import logging
import random
import time

import coredis
import pytest
import sniffio
import trio
import trio.lowlevel
from cluster_helpers import ValkeyServer

from liveactors import HandleStore
from liveactors._handles import HANDLE_VALIDITY
from liveactors.cluster import ClusterUnavailable, RedisHandleStore

HANDLE = "handle-0123456789abcdef"


async def pttl(valkey_server: ValkeyServer, key: str) -> int:
    """The key's time to live in ms, asked straight of the server."""
    async with coredis.Redis.from_url(valkey_server.url, decode_responses=True) as client:
        return await client.pttl(key)


async def test_it_is_a_handle_store_and_runs_under_trio(store: RedisHandleStore) -> None:
    assert sniffio.current_async_library() == "trio"
    typed: HandleStore = store
    assert await typed.load("nobody") is None


async def test_a_saved_handle_loads_back_with_its_time(store: RedisHandleStore) -> None:
    before = time.time()
    await store.save("c", HANDLE)
    stored = await store.load("c")
    assert stored is not None
    assert stored.handle == HANDLE
    assert before <= stored.saved_at <= time.time()
    await store.save_many({"a": "handle-a", "b": "handle-b", "c": "handle-c2"})
    assert [(await store.load(n)).handle for n in "abc"] == ["handle-a", "handle-b", "handle-c2"]  # type: ignore[union-attr]
    await store.save_many({})


async def test_a_deleted_handle_is_gone_and_an_older_save_cannot_bring_it_back(
    store: RedisHandleStore,
) -> None:
    await store.save("c", HANDLE, saved_at=100.0)
    await store.delete("c", deleted_at=200.0)
    assert await store.load("c") is None
    await store.save("c", "stale-handle", saved_at=150.0)
    assert await store.load("c") is None
    await store.save("c", "newer-handle", saved_at=250.0)
    stored = await store.load("c")
    assert stored is not None and stored.handle == "newer-handle"
    await store.delete("never-saved")
    assert await store.load("never-saved") is None


async def test_an_older_write_arriving_after_a_newer_one_loses(store: RedisHandleStore) -> None:
    await store.save("c", "newer", saved_at=2000.0)
    await store.save("c", "older", saved_at=1000.0)
    await store.save_many({"c": "older-batch", "d": "d1"}, saved_at=1500.0)
    stored = await store.load("c")
    assert stored is not None and (stored.handle, stored.saved_at) == ("newer", 2000.0)
    other = await store.load("d")
    assert other is not None and other.handle == "d1"  # the rest of the batch went in


async def test_concurrent_writers_leave_the_newest_handle(
    valkey_server: ValkeyServer, prefix: str
) -> None:
    # Several stores (think: processes), each on its own connections, race on one name.
    stores = [RedisHandleStore(valkey_server.url, prefix=prefix) for _ in range(4)]
    stamps = list(range(1, 61))
    random.Random(12).shuffle(stamps)

    async def write(stamp: int) -> None:
        await trio.sleep(random.random() / 100)
        await stores[stamp % len(stores)].save("c", f"handle-{stamp}", saved_at=float(stamp))

    async with trio.open_nursery() as nursery:
        for stamp in stamps:
            nursery.start_soon(write, stamp)
    stored = await stores[0].load("c")
    assert stored is not None and (stored.handle, stored.saved_at) == ("handle-60", 60.0)


async def test_the_key_expires_with_the_handle_validity(
    valkey_server: ValkeyServer, store: RedisHandleStore, prefix: str
) -> None:
    assert store.validity == HANDLE_VALIDITY
    await store.save("c", HANDLE)
    ttl = await pttl(valkey_server, store.key("c"))
    assert HANDLE_VALIDITY * 1000 - 5000 < ttl <= HANDLE_VALIDITY * 1000

    short = RedisHandleStore(valkey_server.url, prefix=prefix, validity=0.2)
    await short.save("brief", HANDLE)
    assert await short.load("brief") is not None
    await trio.sleep(0.4)
    assert await short.load("brief") is None


@pytest.mark.parametrize(
    "name",
    ["a{b}c", "}", "{", "{}", "%7B", "100%", "with spaces:and:colons", "日本語", "x" * 300],
)
async def test_names_with_special_characters(store: RedisHandleStore, name: str) -> None:
    await store.save(name, f"handle-of-{name}")
    stored = await store.load(name)
    assert stored is not None and stored.handle == f"handle-of-{name}"
    # The hash tag is the whole (escaped) name: one slot per conversation in a Redis Cluster.
    key = store.key(name)
    tag = key[key.index("{") + 1 : key.index("}", key.index("{"))]
    assert tag.replace("%7B", "{").replace("%7D", "}").replace("%25", "%") == name
    assert key == f"{store.prefix}:{{{tag}}}:handle"


async def test_names_that_escape_alike_stay_apart(store: RedisHandleStore) -> None:
    await store.save("{", "handle-brace")
    await store.save("%7B", "handle-percent")
    assert (await store.load("{")).handle == "handle-brace"  # type: ignore[union-attr]
    assert (await store.load("%7B")).handle == "handle-percent"  # type: ignore[union-attr]


async def test_prefixes_keep_stores_apart(valkey_server: ValkeyServer, prefix: str) -> None:
    one = RedisHandleStore(valkey_server.url, prefix=prefix + "-one")
    two = RedisHandleStore(valkey_server.url, prefix=prefix + "-two")
    await one.save("c", HANDLE)
    assert await two.load("c") is None
    assert one.key("c").startswith(prefix + "-one:")


def test_the_password_is_never_in_a_repr(valkey_server: ValkeyServer) -> None:
    password = valkey_server.password
    for url in (
        valkey_server.url,
        f"rediss://user:{password}@example.com:6380/2",
        f"redis://example.com?password={password}",
        f"unix://:{password}@/run/valkey.sock",
    ):
        store = RedisHandleStore(url)
        assert password not in repr(store) and password not in store.url
        assert "<redacted>" in store.url
    assert "user:<redacted>@example.com:6380/2" in repr(RedisHandleStore(
        f"rediss://user:{password}@example.com:6380/2"
    ))  # fmt: skip


async def test_failures_are_clear_and_keep_secrets(
    valkey_server: ValkeyServer, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "not-the-password-" + valkey_server.password
    refused = RedisHandleStore(f"redis://:{wrong}@127.0.0.1:{valkey_server.port}/0", prefix=prefix)
    with pytest.raises(ClusterUnavailable) as caught:
        await refused.save_many({"c": HANDLE})
    text = str(caught.value)
    assert "could not save 1 handle(s)" in text and "Authentication" in text, text
    assert wrong not in text and HANDLE not in text
    assert caught.value.__cause__ is None and caught.value.__suppress_context__

    with socket_nobody_listens() as port:
        down = RedisHandleStore(
            f"redis://:{valkey_server.password}@127.0.0.1:{port}/0", prefix=prefix, timeout=2
        )
        with pytest.raises(ClusterUnavailable) as caught:
            await down.load("c")
    text = str(caught.value)
    assert "could not load the handle of 'c'" in text and f"127.0.0.1:{port}" in text, text
    assert valkey_server.password not in text

    # Nothing logged anywhere (coredis included) shows the password or a handle.
    good = RedisHandleStore(valkey_server.url, prefix=prefix)
    await good.save("c", HANDLE)
    await good.load("c")
    for record in caplog.records:
        message = record.getMessage()
        for secret in (valkey_server.password, wrong, HANDLE):
            assert secret not in message, (record.name, message)


class socket_nobody_listens:
    """A port on 127.0.0.1 that refuses connections (bound, never listening)."""

    def __enter__(self) -> int:
        import socket

        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        return int(self._sock.getsockname()[1])

    def __exit__(self, *exc: object) -> None:
        self._sock.close()


async def test_a_cancelled_call_is_cancelled_not_an_error(store: RedisHandleStore) -> None:
    with trio.move_on_after(0) as scope:
        await store.load("c")
    assert scope.cancelled_caught
    with trio.CancelScope() as scope:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(store.save, "c", HANDLE)
            await trio.lowlevel.checkpoint()
            scope.cancel()
    assert scope.cancelled_caught


@pytest.mark.parametrize(
    ("url", "options"),
    [
        ("http://localhost", {}),
        ("redis://localhost", {"prefix": "a{b}"}),
        ("redis://localhost", {"prefix": ""}),
        ("redis://localhost", {"validity": 0}),
        ("redis://localhost", {"validity": float("inf")}),
        ("redis://localhost", {"timeout": -1.0}),
    ],
)
def test_bad_arguments_are_refused(url: str, options: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        RedisHandleStore(url, **options)  # type: ignore[arg-type]


async def test_a_stale_batch_retried_late_does_not_beat_a_newer_handle(
    store: RedisHandleStore,
) -> None:
    """The orchestrator's writer hands the store each handle with the time it arrived: a batch
    retried after an outage, written after another process saved a newer handle, loses."""
    from liveactors._handle_writer import _write
    from liveactors._handles import StoredHandle

    arrived = time.time() - 30.0
    await store.save("shared", "newer-from-another-worker", saved_at=arrived + 10.0)
    await _write(store, {"shared": StoredHandle("stale-from-a-retry", arrived)})
    loaded = await store.load("shared")
    assert loaded is not None
    assert loaded.handle == "newer-from-another-worker"
    # A batch whose handle really is the newest still wins.
    await _write(store, {"shared": StoredHandle("newest", arrived + 20.0)})
    newest = await store.load("shared")
    assert newest is not None and newest.handle == "newest"
    assert newest.saved_at == pytest.approx(arrived + 20.0)
