"""Durable handles: spawning a known name resumes its session from the stored handle while the
handle is younger than ``handle_validity``, else starts fresh; a refused handle starts fresh."""

from __future__ import annotations

import json
import os
import stat
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing
from orch_helpers import TEXT, backend

from liveactors import (
    ConversationState,
    MemoryHandleStore,
    SQLiteHandleStore,
    StoredHandle,
    events,
    open_orchestrator,
)
from liveactors.testing import FakeServer, open_fake_server

HERE = Path(__file__).parent


def latest_handle(server: FakeServer, session: str = "session-1") -> str:
    return server.sessions[session].handles[-1]


class CountingStore:
    """A store with only the three methods of the ``HandleStore`` protocol (no ``save_many``),
    counting the calls."""

    def __init__(self, fail: bool = False) -> None:
        self.inner = MemoryHandleStore()
        self.saves: list[tuple[str, str]] = []
        self.deletes: list[str] = []
        self.fail = fail

    async def load(self, name: str) -> StoredHandle | None:
        return await self.inner.load(name)

    async def save(self, name: str, handle: str) -> None:
        self.saves.append((name, handle))
        if self.fail:
            raise OSError("disk full")
        await self.inner.save(name, handle)

    async def delete(self, name: str) -> None:
        self.deletes.append(name)
        await self.inner.delete(name)


async def test_spawning_a_known_name_resumes_its_session(
    autojump_clock: trio.testing.MockClock,
) -> None:
    store = MemoryHandleStore()
    async with open_fake_server(listen=False) as server:
        async with open_orchestrator(backend(server), handle_store=store) as orch:
            conv = await orch.spawn(TEXT, name="c")
            assert (await conv.ask("one")).text == "echo #1: one"
            await orch.stop("c")
        stored = await store.load("c")
        assert stored is not None and stored.handle == latest_handle(server)
        # Another orchestrator (think: after a restart) with the same store.
        async with open_orchestrator(backend(server), handle_store=store) as orch:
            async with orch.subscribe(events.Connected) as sub:
                conv = await orch.spawn(TEXT, name="c")
                connected = await sub.__anext__()
            assert connected.resumed  # type: ignore[attr-defined]
            assert (await conv.ask("two")).text == "echo #2: two"
        second = server.log.connections[1]
        assert second.resumed_from == stored.handle
        assert second.session == "session-1"
        assert server.log.answered() == ["one", "two"]


async def test_a_handle_older_than_its_validity_starts_fresh(
    autojump_clock: trio.testing.MockClock,
) -> None:
    store = MemoryHandleStore()
    async with open_fake_server(listen=False) as server:
        async with open_orchestrator(backend(server), handle_store=store) as orch:
            conv = await orch.spawn(TEXT, name="c")
            await conv.ask("one")
        stored = await store.load("c")
        assert stored is not None
        # Stored 61 s ago, validity 60 s: too old to use (the store's clock is wall time).
        store._handles["c"] = StoredHandle(stored.handle, time.time() - 61)
        async with open_orchestrator(
            backend(server), handle_store=store, handle_validity=60
        ) as orch:
            conv = await orch.spawn(TEXT, name="c")
            assert (await conv.ask("two")).text == "echo #1: two"
        assert server.log.connections[1].resumed_from is None
        assert server.log.connections[1].session == "session-2"
        # Stored 59 s ago: still good.
        fresh = await store.load("c")
        assert fresh is not None
        store._handles["c"] = StoredHandle(fresh.handle, time.time() - 59)
        async with open_orchestrator(
            backend(server), handle_store=store, handle_validity=60
        ) as orch:
            conv = await orch.spawn(TEXT, name="c")
            assert (await conv.ask("three")).text == "echo #2: three"
        assert server.log.connections[2].resumed_from == fresh.handle


async def test_the_default_validity_is_two_hours(autojump_clock: trio.testing.MockClock) -> None:
    store = MemoryHandleStore()
    async with open_fake_server(listen=False, handle_validity=10**6) as server:
        async with open_orchestrator(backend(server), handle_store=store) as orch:
            await (await orch.spawn(TEXT, name="old")).ask("x")
            await (await orch.spawn(TEXT, name="young")).ask("y")
        for name, age in (("old", 7201), ("young", 7199)):
            stored = await store.load(name)
            assert stored is not None
            store._handles[name] = StoredHandle(stored.handle, time.time() - age)
        async with open_orchestrator(backend(server), handle_store=store) as orch:
            await orch.spawn(TEXT, name="old")
            await orch.spawn(TEXT, name="young")
        assert [c.resumed_from is not None for c in server.log.connections[2:]] == [False, True]


async def test_a_refused_handle_starts_fresh_and_restores_the_history(
    autojump_clock: trio.testing.MockClock,
) -> None:
    store = MemoryHandleStore()
    async with open_fake_server(listen=False) as server:
        async with open_orchestrator(backend(server), handle_store=store) as orch:
            conv = await orch.spawn(TEXT, name="c")
            await conv.ask("one")
            await conv.ask("two")
            async with conv.subscribe(events.HistoryRestored, events.Connected) as sub:
                server.faults.reject_handles()  # the service lost the session (1008)
                server.faults.drop_now()
                seen = [await sub.__anext__(), await sub.__anext__()]
            assert [type(e) for e in seen] == [events.Connected, events.HistoryRestored]
            assert not seen[0].resumed  # type: ignore[attr-defined]
            assert seen[1].turns == 4  # type: ignore[attr-defined]  # two questions, two answers
            assert (await conv.ask("three")).text.endswith(": three")
            assert conv.state is ConversationState.READY
        records = server.log.connections
        assert [(r.close_code, r.session) for r in records[:2]] == [
            (1006, "session-1"),
            (1008, None),
        ]
        assert records[2].session == "session-2" and records[2].resumed_from is None
        history = [e.content for e in server.sessions["session-2"].state.history]
        texts = [p.get("text") for c in history for p in c["parts"]]
        assert texts[:4] == ["one", "echo #1: one", "two", "echo #2: two"]
        assert server.log.answer_counts() == {"one": 1, "two": 1, "three": 1}
        # The store now holds the new session's handle.
        stored = await store.load("c")
        assert stored is not None and stored.handle == latest_handle(server, "session-2")


async def test_a_stored_handle_the_service_refuses_at_spawn_starts_fresh(
    autojump_clock: trio.testing.MockClock,
) -> None:
    store = MemoryHandleStore()
    await store.save("c", "rh-from-another-server")
    async with open_fake_server(listen=False) as server:
        async with open_orchestrator(backend(server), handle_store=store) as orch:
            conv = await orch.spawn(TEXT, name="c")
            assert (await conv.ask("hi")).text == "echo #1: hi"
            stats = orch.statistics()
            assert (stats.spawned, stats.rejected) == (1, 0)
        first, second = server.log.connections
        [setup] = server.log.client_messages(first.id, kind="setup")
        assert setup.body["sessionResumption"]["handle"] == "rh-from-another-server"
        assert (first.close_code, first.session) == (1008, None)
        assert (second.resumed_from, second.session) == (None, "session-1")
        stored = await store.load("c")
        assert stored is not None and stored.handle == latest_handle(server)


async def test_stop_with_forget_deletes_the_handle(autojump_clock: trio.testing.MockClock) -> None:
    store = MemoryHandleStore()
    async with open_fake_server(listen=False) as server:
        async with open_orchestrator(backend(server), handle_store=store) as orch:
            await (await orch.spawn(TEXT, name="c")).ask("one")
            await orch.stop("c", forget=True)
            assert await store.load("c") is None
            conv = await orch.spawn(TEXT, name="c")
            assert (await conv.ask("two")).text == "echo #1: two"
            await orch.stop("c")
            assert await store.load("c") is not None
            await orch.stop("c", forget=True)  # not running: only the handle goes
            assert await store.load("c") is None
        assert await store.load("c") is None
        assert [c.resumed_from for c in server.log.connections] == [None, None]


async def test_a_store_with_only_the_protocol_methods_works(
    autojump_clock: trio.testing.MockClock,
) -> None:
    store: Any = CountingStore()
    async with open_fake_server(listen=False) as server:
        async with open_orchestrator(backend(server), handle_store=store) as orch:
            conv = await orch.spawn(TEXT, name="c")
            for i in range(3):
                await conv.ask(f"q{i}")
        handles = server.sessions["session-1"].handles
        saved = [h for _, h in store.saves]
        # Every handle that arrived was saved (a burst may coalesce), the latest last, and it
        # was saved once more when the conversation ended.
        assert set(saved) <= set(handles)
        assert saved[-2:] == [handles[-1], handles[-1]]
        assert {n for n, _ in store.saves} == {"c"}


async def test_a_failing_store_does_not_hurt_the_conversations(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    store: Any = CountingStore(fail=True)
    async with (
        open_fake_server(listen=False) as server,
        open_orchestrator(backend(server), handle_store=store) as orch,
    ):
        conv = await orch.spawn(TEXT, name="c")
        assert (await conv.ask("q")).text == "echo #1: q"
    assert store.saves
    assert "could not save" in caplog.text


async def test_handles_are_written_in_batches(autojump_clock: trio.testing.MockClock) -> None:
    calls: list[dict[str, str]] = []

    class Batching(MemoryHandleStore):
        async def save_many(self, handles: Mapping[str, str]) -> None:
            calls.append(dict(handles))
            await trio.sleep(0.1)  # a write takes a while: handles pile up meanwhile
            await super().save_many(handles)

    store = Batching()
    async with (
        open_fake_server(listen=False) as server,
        open_orchestrator(backend(server), handle_store=store) as orch,
    ):
        convs = [await orch.spawn(TEXT, name=f"c{i}") for i in range(20)]
        async with trio.open_nursery() as nursery:
            for conv in convs:
                nursery.start_soon(conv.ask, "q")
    # 20 conversations answering at once, then ending: 40 handles in a handful of writes.
    assert sum(len(c) for c in calls) <= 40
    assert len(calls) <= 4, [len(c) for c in calls]
    for i in range(20):
        stored = await store.load(f"c{i}")
        assert stored is not None
        assert stored.handle == latest_handle(server, f"session-{i + 1}")


# -- SQLite, on the real clock (its writes run in worker threads) -----------------------------


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


async def test_sqlite_store_resumes_across_orchestrators(tmp_path: Path) -> None:
    db = tmp_path / "handles.db"
    async with open_fake_server(listen=False) as server:
        store = SQLiteHandleStore(db)
        try:
            async with open_orchestrator(backend(server), handle_store=store) as orch:
                conv = await orch.spawn(TEXT, name="c")
                assert (await conv.ask("one")).text == "echo #1: one"
        finally:
            store.close()
        assert mode(db) == 0o600
        reopened = SQLiteHandleStore(db)
        try:
            async with open_orchestrator(backend(server), handle_store=reopened) as orch:
                conv = await orch.spawn(TEXT, name="c")
                assert (await conv.ask("two")).text == "echo #2: two"
        finally:
            reopened.close()
        assert server.log.connections[1].resumed_from == server.sessions["session-1"].handles[1]


async def test_sqlite_save_many_is_one_transaction(tmp_path: Path) -> None:
    store = SQLiteHandleStore(tmp_path / "h.db")
    try:
        await store.save_many({"a": "h1", "b": "h2"})
        await store.save_many({"a": "h3"})
        a, b = await store.load("a"), await store.load("b")
        assert a is not None and b is not None
        assert (a.handle, b.handle) == ("h3", "h2")
        with pytest.raises(Exception, match="NOT NULL"):
            await store.save_many({"c": "ok", "d": None})  # type: ignore[dict-item]
        assert await store.load("c") is None  # rolled back with "d"
        await store.save_many({})
    finally:
        store.close()


async def test_sqlite_process_restart_resumes_the_session(tmp_path: Path) -> None:
    """Two processes, one after the other, spawn the same name with the same SQLite file;
    the fake server runs here, on loopback, the whole time."""
    db = tmp_path / "handles.db"
    script = str(HERE / "restart_client.py")

    async def run_client(question: str) -> dict[str, Any]:
        with trio.fail_after(60):
            done = await trio.run_process(
                [sys.executable, script, server.url, str(db), "alice", question],
                capture_stdout=True,
                capture_stderr=True,
                check=False,
            )
        assert done.returncode == 0, done.stderr.decode()
        result: dict[str, Any] = json.loads(done.stdout.decode().strip().splitlines()[-1])
        return result

    async with open_fake_server() as server:
        first = await run_client("hello")
        assert first["text"] == "echo #1: hello"
        assert first["resumed"] is False
        assert mode(db) == 0o600
        first_handle = first["stored"]
        assert first_handle == latest_handle(server)

        second = await run_client("again")
        # The second process resumed the first one's session: same session, the echo turn
        # counter went on.
        assert second["resumed"] is True
        assert second["text"] == "echo #2: again"
        records = server.log.connections
        assert len(records) == 2
        assert records[1].resumed_from == first_handle
        assert records[0].session == records[1].session == "session-1"
        assert [r.close_code for r in records] == [1000, 1000]
        assert server.log.answered() == ["hello", "again"]
        assert second["stored"] == latest_handle(server)
        assert mode(db) == 0o600


# -- the handle saved when a conversation stops covers its last answer -------------------------


async def test_orchestrator_stop_saves_the_handle_that_covers_the_last_answer(
    autojump_clock: trio.testing.MockClock,
) -> None:
    store = MemoryHandleStore()
    async with (
        open_fake_server(listen=False, response_latency=1.0) as server,
        open_orchestrator(backend(server), handle_store=store) as orch,
    ):
        server.faults.delay(0.1, kind="sessionResumptionUpdate")  # handles lag behind
        conv = await orch.spawn(TEXT, name="c")
        await conv.send_text("first")
        await orch.stop("c")  # the answer is still coming
        stored = await store.load("c")
        assert stored is not None and stored.handle == latest_handle(server)
        conv = await orch.spawn(TEXT, name="c")
        assert (await conv.ask("second")).text == "echo #2: second"


@pytest.mark.parametrize("handle_mode", ["per_turn", "once"])
async def test_a_graceful_stop_waits_for_a_covering_handle_only_when_one_comes(
    handle_mode: str, autojump_clock: trio.testing.MockClock
) -> None:
    async with (
        open_fake_server(listen=False, handle_mode=handle_mode) as server,
        open_orchestrator(backend(server), grace=30) as orch,
    ):
        conv = await orch.spawn(TEXT, name="c")
        await conv.ask("q")
        start = trio.current_time()
        await orch.stop("c")
        # Per-turn handles follow the answer at once; with one handle per connection the
        # stop waits only a moment (not the whole grace) for one that never comes.
        assert trio.current_time() - start <= 0.25 + 1e-9


async def test_conversation_stop_saves_the_handle_that_covers_the_last_answer(
    autojump_clock: trio.testing.MockClock,
) -> None:
    store = MemoryHandleStore()
    async with (
        open_fake_server(listen=False, response_latency=1.0) as server,
        open_orchestrator(backend(server), handle_store=store) as orch,
    ):
        # Handles lag 0.1 s behind (the real service's follow turnComplete within
        # milliseconds; the lag makes the race this test is about deterministic).
        server.faults.delay(0.1, kind="sessionResumptionUpdate")
        conv = await orch.spawn(TEXT, name="c")
        await conv.send_text("first")
        await conv.stop()  # ConversationRef.stop: straight to the supervisor
        conv = await orch.spawn(TEXT, name="c")
        # Resumed from the handle issued after "first" was answered: nothing is lost.
        assert (await conv.ask("second")).text == "echo #2: second"
