"""Transport test helpers: a backend whose every dial is served in memory by a handler."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import pytest
import trio
import trio.testing

from liveactors import ConnectRequest, GeminiBackend, MemoryTransport

#: Looks like a real key; long and distinctive so a leak is easy to spot anywhere.
KEY = "AIzaSyD-SECRET-test-key-0123456789abcdef"

StreamHandler = Callable[[trio.abc.Stream, trio.Nursery], Awaitable[None]]
MemoryBackend = Callable[..., AbstractAsyncContextManager[GeminiBackend]]


@asynccontextmanager
async def _memory_backend(
    handler: StreamHandler, *, api_key: str = KEY, **options: Any
) -> AsyncIterator[GeminiBackend]:
    """A backend whose every connection is served by ``handler(server_stream, nursery)``."""
    async with trio.open_nursery() as nursery:

        async def dial(request: ConnectRequest) -> trio.abc.Stream:
            client, server = trio.testing.memory_stream_pair()
            nursery.start_soon(handler, server, nursery)
            return client

        backend = GeminiBackend(
            api_key=api_key, base_url="ws://fake", transport=MemoryTransport(dial), **options
        )
        yield backend
        nursery.cancel_scope.cancel()


@pytest.fixture
def memory_backend() -> MemoryBackend:
    return _memory_backend
