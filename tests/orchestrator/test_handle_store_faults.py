"""Handles stay newest and safe whatever the store does: a name stopped and spawned again at once
resumes from its newest handle (while the write is still on its way), a store that is down is
retried until it takes the newest handles, and slow sync tools do not starve the store's threads."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing
from orch_helpers import TEXT, backend

import liveactors
from liveactors import MemoryHandleStore, SQLiteHandleStore, StoredHandle, events, open_orchestrator
from liveactors.testing import FakeServer, open_fake_server


def latest_handle(server: FakeServer, session: str = "session-1") -> str:
    return server.sessions[session].handles[-1]


# -- stop, then spawn the name again at once ---------------------------------------------------


class SlowMemoryStore(MemoryHandleStore):
    """Every write takes a second (a store on a slow disk or across a network)."""

    async def save_many(self, handles: Mapping[str, str]) -> None:
        await trio.sleep(1)
        await super().save_many(handles)


class SlowSQLiteStore(SQLiteHandleStore):
    """The worker thread of a write starts late (a busy machine): a load issued after it can
    reach the database first."""

    def _save_many(self, rows: list[tuple[str, str, float]]) -> None:
        time.sleep(0.3)
        super()._save_many(rows)


async def stop_and_respawn(server: FakeServer, store: Any) -> None:
    async with open_orchestrator(backend(server), handle_store=store) as orch:
        conv = await orch.spawn(TEXT, name="c")
        assert (await conv.ask("one")).text == "echo #1: one"
        newest = latest_handle(server)
        await orch.stop("c")
        async with orch.subscribe(events.Connected, conversation="c") as sub:
            conv = await orch.spawn(TEXT, name="c")
            connected = sub.receive_nowait()
        assert isinstance(connected, events.Connected) and connected.resumed
        assert (await conv.ask("two")).text == "echo #2: two"
    assert server.log.connections[1].resumed_from == newest


async def test_a_respawn_right_after_stop_resumes_from_the_handle_still_being_written(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_fake_server(listen=False) as server:
        await stop_and_respawn(server, SlowMemoryStore())


async def test_a_respawn_right_after_stop_resumes_with_sqlite_too(tmp_path: Path) -> None:
    store = SlowSQLiteStore(tmp_path / "handles.db")
    try:
        async with open_fake_server(listen=False) as server:
            await stop_and_respawn(server, store)
        stored = await store.load("c")
        assert stored is not None and stored.handle == latest_handle(server)
    finally:
        store.close()


# -- a store that is down ----------------------------------------------------------------------


class FlakyStore:
    """A store with only the protocol's methods that fails while ``down``."""

    def __init__(self) -> None:
        self.inner = MemoryHandleStore()
        self.down = False
        self.attempts = 0

    async def load(self, name: str) -> StoredHandle | None:
        return await self.inner.load(name)

    async def save(self, name: str, handle: str) -> None:
        self.attempts += 1
        if self.down:
            raise OSError("the handle store is unreachable")
        await self.inner.save(name, handle)

    async def delete(self, name: str) -> None:
        if self.down:
            raise OSError("the handle store is unreachable")
        await self.inner.delete(name)


async def test_handles_are_retried_while_the_store_is_down(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    store = FlakyStore()
    store.down = True
    async with (
        open_fake_server(listen=False) as server,
        open_orchestrator(backend(server), handle_store=store) as orch,
    ):
        conv = await orch.spawn(TEXT, name="c")
        for question in ("one", "two", "three"):
            assert (await conv.ask(question)).text.endswith(question)
        await trio.sleep(60)  # a minute of outage: retried, with a backoff
        assert await store.load("c") is None
        during = orch.statistics()
        assert during.handle_store_errors >= 3
        assert store.attempts < 60  # backing off, not hammering
        assert during.handles_pending == 1
        errors = [r for r in caplog.records if r.levelno == logging.ERROR]
        assert errors and "could not save" in errors[0].getMessage()
        assert errors[0].exc_info is not None  # the traceback, once
        # The store comes back: the newest handle is written without anyone asking.
        store.down = False
        await trio.sleep(60)
        stored = await store.load("c")
        assert stored is not None and stored.handle == latest_handle(server)
        assert orch.statistics().handles_pending == 0
        # Meanwhile the conversation never noticed.
        assert (await conv.ask("four")).text == "echo #4: four"


async def test_a_store_down_at_shutdown_is_retried_for_a_while_then_reported(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    store = FlakyStore()
    store.down = True

    async def recover_later() -> None:
        await trio.sleep(3)
        store.down = False

    async with open_fake_server(listen=False) as server:
        async with (
            trio.open_nursery() as nursery,
            open_orchestrator(backend(server), handle_store=store) as orch,
        ):
            await (await orch.spawn(TEXT, name="c")).ask("one")
            nursery.start_soon(recover_later)
        # Shutdown kept trying until the store came back.
        stored = await store.load("c")
        assert stored is not None and stored.handle == latest_handle(server)
        # Down for good: shutdown gives up after a while and says what was lost.
        store.down = True
        start = trio.current_time()
        async with open_orchestrator(backend(server), handle_store=store) as orch:
            await (await orch.spawn(TEXT, name="d")).ask("one")
        assert trio.current_time() - start < 30
        assert "could not save 1 resumption handle(s) before shutting down" in caplog.text


# -- sync tools do not starve the store --------------------------------------------------------

CALL = 'call slow_tool {"x": "1"}'
TOOLS = {
    "response_modalities": ["TEXT"],
    "tools": [
        {
            "function_declarations": [
                {
                    "name": "slow_tool",
                    "description": "the slow_tool function",
                    "parameters": {"type": "OBJECT", "properties": {"x": {"type": "STRING"}}},
                }
            ]
        }
    ],
}


async def test_slow_sync_tools_do_not_starve_spawns_handle_load(tmp_path: Path) -> None:
    release = threading.Event()

    def slow_tool(x: str) -> str:
        release.wait(30)
        return x

    class SlowTools(liveactors.Conversation):
        functions = {"slow_tool": slow_tool}

    store = SQLiteHandleStore(tmp_path / "handles.db")
    default = trio.to_thread.current_default_thread_limiter()
    try:
        async with (
            open_fake_server(listen=False, connection_lifetime=None) as server,
            open_orchestrator(backend(server), handle_store=store) as orch,
        ):
            await (await orch.spawn(TEXT, name="c")).ask("one")
            await orch.stop("c")
            newest = latest_handle(server)
            # More tool calls than default worker threads (each spawn loads a handle: spawn
            # them all before any tool runs).
            tools = int(default.total_tokens) + 2
            convs = [
                await orch.spawn(TOOLS, name=f"tool-{i}", actor=SlowTools) for i in range(tools)
            ]
            for conv in convs:
                await conv.send_text(CALL)
            with trio.fail_after(10):
                while default.borrowed_tokens < default.total_tokens:  # noqa: ASYNC110 (threads)
                    await trio.sleep(0.01)
            # Every default worker thread is busy in a tool: the store's are not.
            with trio.fail_after(5):
                conv = await orch.spawn(TEXT, name="c")
            release.set()
            assert (await conv.ask("two")).text == "echo #2: two"
        _, again = [r for r in server.log.connections if r.session == "session-1"]
        assert again.resumed_from == newest
    finally:
        release.set()
        store.close()
