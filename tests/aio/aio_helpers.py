"""Helpers for the liveactors.aio tests."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest

from liveactors import aio
from liveactors._models import FAKE_TEXT_MODEL

T = TypeVar("T")

#: The fake-only text model: short, countable answers (``TextDelta`` events).
TEXT_MODEL = FAKE_TEXT_MODEL
TEXT = {"response_modalities": ["TEXT"]}


def run(main: Callable[[], Awaitable[T]], timeout: float = 30, loop: str = "asyncio") -> T:
    """Run ``main()`` on a fresh event loop (asyncio's, or ``"uvloop"``), failing after
    ``timeout`` seconds."""

    async def bounded() -> T:
        async with asyncio.timeout(timeout):
            return await main()

    factory = None
    if loop == "uvloop":
        uvloop = pytest.importorskip("uvloop")
        factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(bounded())


#: The event loops the tests that take ``loop`` run on (uvloop: what ``uvicorn[standard]``
#: installs and picks; skipped when it is not installed).
LOOPS = ["asyncio", "uvloop"]


def fake(**options: Any) -> aio.FakeBackend:
    """An in-memory fake server playing the default model."""
    return aio.FakeBackend(listen=False, **options)


def fake_text(**options: Any) -> aio.FakeBackend:
    """An in-memory fake server, the orchestrator on the fake text model (spawn with TEXT)."""
    return aio.FakeBackend(listen=False, model=TEXT_MODEL, **options)


def guest_tasks(orch: aio.Orchestrator) -> int:
    """Tasks alive in the guest's calls nursery (call tasks and subscription pumps)."""
    return len(orch._guest.nursery.child_tasks)


async def eventually(check: Callable[[], bool], seconds: float = 10) -> None:
    """Wait until ``check()`` holds (polled: it reads state no event announces)."""
    async with asyncio.timeout(seconds):
        while not check():  # noqa: ASYNC110
            await asyncio.sleep(0.005)
