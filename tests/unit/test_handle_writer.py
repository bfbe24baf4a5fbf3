"""The handle writer: batches, newest-first loads, retries while the store is down, a bounded
queue, and a write cancelled half-way is not lost."""

from __future__ import annotations

import logging
from collections.abc import Mapping

import pytest
import trio
import trio.testing

from liveactors import MemoryHandleStore, StoredHandle
from liveactors._handle_writer import HandleWriter


class Store(MemoryHandleStore):
    """A memory store that records its batches, can be down, and can be slow."""

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[dict[str, str]] = []
        self.deletes: list[str] = []
        self.down = False
        self.slow = 0.0

    async def save_many(self, handles: Mapping[str, str]) -> None:
        self.batches.append(dict(handles))
        if self.slow:
            await trio.sleep(self.slow)
        if self.down:
            raise OSError("store unreachable")
        await super().save_many(handles)

    async def delete(self, name: str) -> None:
        self.deletes.append(name)
        if self.down:
            raise OSError("store unreachable")
        await super().delete(name)


async def stored(store: Store, name: str) -> str | None:
    value = await store.load(name)
    return None if value is None else value.handle


async def test_queued_handles_are_written_in_one_batch_newest_first() -> None:
    store = Store()
    writer = HandleWriter(store)
    writer.save("a", "a1")
    writer.save("b", "b1")
    writer.save("a", "a2")
    assert writer.pending == 2
    # Loads answer from the queue before anything reached the store.
    loaded = await writer.load("a")
    assert isinstance(loaded, StoredHandle) and loaded.handle == "a2"
    assert await stored(store, "a") is None
    assert await writer.flush()
    assert store.batches == [{"b": "b1", "a": "a2"}]
    assert (await stored(store, "a"), await stored(store, "b")) == ("a2", "b1")
    assert writer.pending == 0


async def test_a_queued_delete_hides_the_stored_handle() -> None:
    store = Store()
    await store.save("a", "old")
    writer = HandleWriter(store)
    assert (await writer.load("a")) == await store.load("a")
    writer.delete("a")
    assert await writer.load("a") is None
    assert await writer.flush()
    assert store.deletes == ["a"] and await stored(store, "a") is None


async def test_a_load_during_a_write_sees_the_handle_being_written(
    autojump_clock: trio.testing.MockClock,
) -> None:
    store = Store()
    store.slow = 1.0
    writer = HandleWriter(store)
    writer.save("a", "a1")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(writer.flush)
        await trio.sleep(0.5)  # the write is on its way, not in the store yet
        assert writer.pending == 1
        loaded = await writer.load("a")
        assert loaded is not None and loaded.handle == "a1"
    assert await stored(store, "a") == "a1"


async def test_a_failed_write_stays_queued_under_newer_handles(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level("INFO", logger="liveactors.orchestrator")
    store = Store()
    store.down = True
    writer = HandleWriter(store)
    writer.save("a", "a1")
    writer.save("b", "b1")
    assert not await writer.flush()
    assert writer.errors == 1 and writer.pending == 2
    writer.save("a", "a2")  # newer than the failed one: it wins
    assert not await writer.flush()
    assert writer.errors == 2
    records = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(records) == 2
    assert records[0].exc_info is not None and records[1].exc_info is None  # one traceback
    assert "could not save 2 resumption handle(s), retrying: OSError" in records[1].getMessage()
    store.down = False
    assert await writer.flush()
    assert (await stored(store, "a"), await stored(store, "b")) == ("a2", "b1")
    assert writer.pending == 0
    assert "the handle store is back" in caplog.text


async def test_the_writer_task_retries_with_a_growing_backoff(
    autojump_clock: trio.testing.MockClock,
) -> None:
    store = Store()
    store.down = True
    writer = HandleWriter(store)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(writer.run)
        writer.save("a", "a1")
        await trio.sleep(10)
        # Tries at 0, 0.5, 1.5, 3.5 and 7.5 s: backing off, not hammering.
        assert len(store.batches) == writer.errors == 5
        store.down = False
        writer.save("b", "b1")  # queued while waiting to retry: taken along
        await trio.sleep(30)
        assert (await stored(store, "a"), await stored(store, "b")) == ("a1", "b1")
        assert len(store.batches) == 6
        # Back to normal: the next handle is written at once.
        writer.save("a", "a2")
        await trio.sleep(0.01)
        assert await stored(store, "a") == "a2"
        nursery.cancel_scope.cancel()


async def test_the_queue_is_bounded(caplog: pytest.LogCaptureFixture) -> None:
    store = Store()
    store.down = True
    writer = HandleWriter(store, max_pending=2)
    writer.save("a", "a1")
    writer.save("b", "b1")
    assert not await writer.flush()
    writer.save("a", "a2")  # "a" is now the newest: "b" is the oldest
    writer.save("c", "c1")
    assert writer.pending == 2 and writer.dropped == 1
    assert "b: resumption handle dropped" in caplog.text
    store.down = False
    assert await writer.flush()
    assert [await stored(store, n) for n in "abc"] == ["a2", None, "c1"]


async def test_a_write_cancelled_half_way_is_written_later(
    autojump_clock: trio.testing.MockClock,
) -> None:
    store = Store()
    store.slow = 1.0
    writer = HandleWriter(store)
    writer.save("a", "a1")
    with trio.move_on_after(0.5):
        await writer.flush()
    assert await stored(store, "a") is None
    assert writer.pending == 1
    store.slow = 0
    assert await writer.flush()
    assert await stored(store, "a") == "a1"


async def test_drain_retries_then_says_what_is_lost(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    store = Store()
    store.down = True
    writer = HandleWriter(store)
    writer.save("a", "a1")

    async def come_back() -> None:
        await trio.sleep(2)
        store.down = False

    async with trio.open_nursery() as nursery:
        nursery.start_soon(come_back)
        await writer.drain(5)
    assert await stored(store, "a") == "a1"
    store.down = True
    writer.save("a", "a2")
    start = trio.current_time()
    await writer.drain(5)
    assert trio.current_time() - start == pytest.approx(5)
    assert "could not save 1 resumption handle(s) before shutting down" in caplog.text
    assert await stored(store, "a") == "a1"
