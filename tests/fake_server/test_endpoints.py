"""Endpoints and authentication: which upgrades are accepted, and how bad credentials fail."""

from __future__ import annotations

import pytest
import trio
import trio_websocket

from liveactors.testing import TEST_AUTH_TOKEN

from .conftest import (
    BEARER,
    CONSTRAINED,
    KEY_HEADER,
    V1BETA,
    VERTEX_MODEL,
    VERTEX_PATH,
    connect,
    current,
    current_setup,
    fake,
    session_ready,
    text_setup,
)


@pytest.mark.parametrize(
    "path",
    [
        V1BETA,
        "/ws/google.ai.generativelanguage.v1.GenerativeService.BidiGenerateContent",
        "/ws/google.ai.generativelanguage.v1alpha.GenerativeService.BidiGenerateContent",
        "//ws/google.ai.generativelanguage.v1.GenerativeService.BidiGenerateContent",
        "///ws//google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateContent",
    ],
)
async def test_accepted_paths(path: str) -> None:
    async with fake() as server, connect(server, path=path) as client:
        await session_ready(client)
        record = server.log.last_connection
        assert record.method == "BidiGenerateContent"
        assert record.path.startswith("/ws/google.ai.generativelanguage.")


@pytest.mark.parametrize(
    "path",
    [
        "/ws/google.ai.generativelanguage.v2.GenerativeService.BidiGenerateContent",
        "/ws/google.ai.generativelanguage.v1beta.GenerativeService.GenerateContent",
        "/v1beta/models",
        "/",
    ],
)
async def test_wrong_paths_are_http_404(path: str) -> None:
    async with fake() as server:
        with pytest.raises(trio_websocket.ConnectionRejected) as info:
            async with connect(server, path=path):
                pass
        assert info.value.status_code == 404
        assert b"NOT_FOUND" in (info.value.body or b"")
        assert server.log.connections == []
        assert server.log.notes_of("upgrade_refused")[0].detail.startswith("404 ")


async def test_key_in_query() -> None:
    async with (
        fake() as server,
        connect(server, path=V1BETA + "?key=test-key", headers=[]) as client,
    ):
        await session_ready(client)


async def test_ephemeral_token_by_header_or_query() -> None:
    async with fake() as server:
        token = TEST_AUTH_TOKEN.encode()
        async with connect(
            server, path=CONSTRAINED, headers=[(b"authorization", b"Token " + token)]
        ) as c:
            await session_ready(c)
        async with connect(
            server, path=CONSTRAINED + "?access_token=" + TEST_AUTH_TOKEN, headers=[]
        ) as c:
            await session_ready(c)
        assert [c.method for c in server.log.connections] == ["BidiGenerateContentConstrained"] * 2
        # The API key is not a token.
        async with connect(server, path=CONSTRAINED) as c:
            await c.send(text_setup())
            code, reason = await c.closed()
        assert code == 1007 and "auth token" in reason.lower()


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ([], "API key missing. Please pass a valid API key."),
        ([(b"x-goog-api-key", b"wrong")], "API key not valid. Please pass a valid API key."),
    ],
)
async def test_bad_keys_close_1007_after_the_first_message(
    headers: list[tuple[bytes, bytes]], reason: str
) -> None:
    async with fake() as server, connect(server, headers=headers) as client:
        await client.send(text_setup())
        assert await client.closed() == (1007, reason)
        assert client.received == []
        assert server.log.last_connection.cause == "auth"


@pytest.mark.parametrize("status", [401, 403])
async def test_bad_keys_can_be_refused_at_the_upgrade(status: int) -> None:
    async with fake(auth_failure=status) as server:
        with pytest.raises(trio_websocket.ConnectionRejected) as info:
            async with connect(server, headers=[(b"x-goog-api-key", b"wrong")]):
                pass
        assert info.value.status_code == status


async def test_accepted_keys_are_configurable() -> None:
    async with fake(api_keys=["alpha", "beta"]) as server:
        async with connect(server, headers=[(b"x-goog-api-key", b"beta")]) as client:
            await session_ready(client)
        async with connect(server) as client:
            await client.send(text_setup())
            assert (await client.closed())[0] == 1007
    async with (
        fake(api_keys=None) as server,
        connect(server, headers=[(b"x-goog-api-key", b"anything")]) as client,
    ):
        await session_ready(client)


async def test_upgrades_refused_with_429_then_accepted() -> None:
    async with fake() as server:
        fault = server.faults.refuse_upgrades(2)
        for _ in range(2):
            with pytest.raises(trio_websocket.ConnectionRejected) as info:
                async with connect(server):
                    pass
            assert info.value.status_code == 429
            assert b"RESOURCE_EXHAUSTED" in (info.value.body or b"")
        assert fault.fired == 2
        async with connect(server) as client:
            await session_ready(client)


async def test_max_connections() -> None:
    async with fake(max_connections=1) as server, connect(server) as first:
        await session_ready(first)
        with pytest.raises(trio_websocket.ConnectionRejected) as info:
            async with connect(server):
                pass
        assert info.value.status_code == 429


@pytest.mark.parametrize(
    ("headers", "model"),
    [
        (BEARER, VERTEX_MODEL),
        # Express mode: an API key, and the model without project and location.
        (KEY_HEADER, "publishers/google/models/gemini-3.8-live"),
    ],
)
async def test_vertex_path_with_bearer_token_or_express_key(
    headers: list[tuple[bytes, bytes]], model: str
) -> None:
    async with current(vertex=True) as server:
        async with connect(server, path=VERTEX_PATH, headers=headers) as c:
            await session_ready(c, current_setup(model))
        record = server.log.last_connection
        assert (record.vertex, record.model, record.api_version) == (
            True,
            "gemini-3.8-live",
            "v1beta1",
        )
    async with fake() as server:
        with pytest.raises(trio_websocket.ConnectionRejected):
            async with connect(server, path=VERTEX_PATH):
                pass


@pytest.mark.parametrize(
    ("path", "model", "reason"),
    [
        (
            VERTEX_PATH,
            "models/gemini-3.8-live",
            "Publisher model `models/gemini-3.8-live` was not found or your project does "
            "not have access to it.",
        ),
        (
            V1BETA,
            VERTEX_MODEL,
            f"{VERTEX_MODEL} is not found for API version v1beta, or is not supported for "
            "bidiGenerateContent",
        ),
    ],
)
async def test_each_endpoint_wants_its_own_model_spelling(
    path: str, model: str, reason: str
) -> None:
    async with (
        current(vertex=True) as server,
        connect(server, path=path, headers=BEARER + KEY_HEADER) as c,
    ):
        await c.send(current_setup(model))
        assert await c.closed() == (1008, reason[:123])


async def test_a_client_that_never_finishes_the_handshake_is_dropped(
    autojump_clock: trio.abc.Clock,
) -> None:
    from liveactors._transport import ConnectRequest

    async with fake(handshake_timeout=5) as server:
        stream = await server.dial(ConnectRequest(url="ws://fake"))
        await stream.send_all(b"GET / HTTP/1.1\r\n")
        with trio.fail_after(10):
            assert await stream.receive_some() == b""
