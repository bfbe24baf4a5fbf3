"""Handle stores: in memory and SQLite (private file, durable across processes)."""

from __future__ import annotations

import json
import os
import stat
import sys
import time
from pathlib import Path

import pytest
import trio

from liveactors import MemoryHandleStore, SQLiteHandleStore, StoredHandle
from liveactors._handles import HANDLE_VALIDITY, HandleStore

SECRET = "rh-TOP-SECRET-0123456789"


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> HandleStore:
    if request.param == "memory":
        return MemoryHandleStore()
    sqlite = SQLiteHandleStore(tmp_path / "handles.db")
    request.addfinalizer(sqlite.close)
    return sqlite


def test_handle_validity_is_two_hours() -> None:
    assert HANDLE_VALIDITY == 7200.0


async def test_load_of_an_unknown_name_is_none(store: HandleStore) -> None:
    assert await store.load("nobody") is None


async def test_save_then_load(store: HandleStore) -> None:
    before = time.time()
    await store.save("c1", SECRET)
    loaded = await store.load("c1")
    assert loaded is not None
    assert loaded.handle == SECRET
    assert before - 1 <= loaded.saved_at <= time.time() + 1
    assert 0 <= loaded.age() < 5


async def test_save_replaces_the_previous_handle(store: HandleStore) -> None:
    await store.save("c1", "first")
    first = await store.load("c1")
    await trio.sleep(0.01)
    await store.save("c1", "second")
    second = await store.load("c1")
    assert first is not None and second is not None
    assert second.handle == "second"
    assert second.saved_at >= first.saved_at


async def test_names_are_independent(store: HandleStore) -> None:
    await store.save("c1", "h1")
    await store.save("c2", "h2")
    await store.delete("c1")
    assert await store.load("c1") is None
    loaded = await store.load("c2")
    assert loaded is not None and loaded.handle == "h2"


async def test_delete_of_an_unknown_name_is_fine(store: HandleStore) -> None:
    await store.delete("nobody")
    assert await store.load("nobody") is None


async def test_handles_never_show_in_reprs(store: HandleStore) -> None:
    await store.save("c1", SECRET)
    loaded = await store.load("c1")
    assert SECRET not in repr(store)
    assert SECRET not in repr(loaded)
    assert SECRET not in str(loaded)


async def test_memory_store_operations_checkpoint() -> None:
    store = MemoryHandleStore()
    with trio.CancelScope() as scope:
        scope.cancel()
        with pytest.raises(trio.Cancelled):
            await store.save("c1", "h")
    assert await store.load("c1") is None
    assert repr(store) == "<MemoryHandleStore 0 handles>"


def test_stored_handle_age() -> None:
    stored = StoredHandle("h", saved_at=1000.0)
    assert stored.age(now=1060.5) == 60.5
    assert repr(stored) == "StoredHandle(saved_at=1000.0)"


# -- SQLite specifics -------------------------------------------------------------------------


async def test_sqlite_file_is_private_even_with_a_permissive_umask(tmp_path: Path) -> None:
    path = tmp_path / "h.db"
    old = os.umask(0)
    try:
        store = SQLiteHandleStore(path)
        await store.save("c1", SECRET)
    finally:
        os.umask(old)
    try:
        assert mode(path) == 0o600
        # The write-ahead log holds the same secrets: it must be just as private.
        sidecars = sorted(n for n in os.listdir(tmp_path) if n.startswith("h.db-"))
        assert sidecars == ["h.db-shm", "h.db-wal"]
        for name in sidecars:
            assert mode(tmp_path / name) == 0o600, name
    finally:
        store.close()


async def test_sqlite_tightens_an_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "h.db"
    os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o644))
    os.chmod(path, 0o644)
    store = SQLiteHandleStore(path)
    try:
        assert await store.load("c1") is None
        assert mode(path) == 0o600
    finally:
        store.close()


async def test_sqlite_store_can_be_closed_and_used_again(tmp_path: Path) -> None:
    store = SQLiteHandleStore(str(tmp_path / "h.db"))
    await store.save("c1", "h1")
    store.close()
    store.close()  # twice is fine
    loaded = await store.load("c1")  # reopens
    assert loaded is not None and loaded.handle == "h1"
    store.close()
    assert repr(store) == f"<SQLiteHandleStore {str(tmp_path / 'h.db')!r}>"


async def test_sqlite_concurrent_saves_keep_one_row_per_name(tmp_path: Path) -> None:
    store = SQLiteHandleStore(tmp_path / "h.db")
    try:
        async with trio.open_nursery() as nursery:
            for i in range(20):
                nursery.start_soon(store.save, f"c{i % 4}", f"h{i}")
        for n in range(4):
            loaded = await store.load(f"c{n}")
            assert loaded is not None and loaded.handle.startswith("h")
        rows = store._connect().execute("SELECT COUNT(*) FROM handles").fetchone()
        assert rows == (4,)
    finally:
        store.close()


_CHILD = """
import json, sys, trio
from liveactors import SQLiteHandleStore

async def main():
    store = SQLiteHandleStore(sys.argv[1])
    loaded = await store.load("parent")
    await store.save("child", "from-the-child")
    await store.save("parent", "rewritten-by-child")
    await store.delete("doomed")
    store.close()
    print(json.dumps(None if loaded is None else [loaded.handle, loaded.saved_at]))

trio.run(main)
"""


async def test_sqlite_handles_survive_into_another_process(tmp_path: Path) -> None:
    path = tmp_path / "h.db"
    store = SQLiteHandleStore(path)
    await store.save("parent", SECRET)
    await store.save("doomed", "gone soon")
    saved = await store.load("parent")
    store.close()
    assert saved is not None

    result = await trio.run_process(
        [sys.executable, "-c", _CHILD, str(path)], capture_stdout=True, capture_stderr=True
    )
    assert json.loads(result.stdout) == [SECRET, saved.saved_at]

    reopened = SQLiteHandleStore(path)
    try:
        child = await reopened.load("child")
        parent = await reopened.load("parent")
        assert child is not None and child.handle == "from-the-child"
        assert parent is not None and parent.handle == "rewritten-by-child"
        assert await reopened.load("doomed") is None
    finally:
        reopened.close()
    assert mode(path) == 0o600


async def test_sqlite_store_has_its_own_worker_threads(tmp_path: Path) -> None:
    """Sync tools run in trio's default worker threads: with all of them busy, the store
    still loads and saves (it has a thread limiter of its own)."""
    store = SQLiteHandleStore(tmp_path / "handles.db")
    default = trio.to_thread.current_default_thread_limiter()
    borrowers = [object() for _ in range(int(default.total_tokens))]
    for borrower in borrowers:
        default.acquire_on_behalf_of_nowait(borrower)
    try:
        with trio.fail_after(5):
            await store.save("c1", SECRET)
            loaded = await store.load("c1")
        assert loaded is not None and loaded.handle == SECRET
    finally:
        for borrower in borrowers:
            default.release_on_behalf_of(borrower)
        store.close()
