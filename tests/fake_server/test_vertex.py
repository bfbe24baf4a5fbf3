"""Vertex AI mode: the LlmBidiService path, its closes and names, and live avatars."""

from __future__ import annotations

import base64
import struct
from typing import Any

import pytest
import trio

from .conftest import (
    BEARER,
    KEY_HEADER,
    VERTEX_MODEL,
    VERTEX_PATH,
    RawClient,
    connect,
    current,
    current_setup,
    kind_of,
    session_ready,
    transcript_of,
    user_text,
)


def vertex(**options: Any) -> Any:
    options.setdefault("vertex", True)
    return current(**options)


def vertex_connect(server: Any, headers: list[tuple[bytes, bytes]] = BEARER) -> Any:
    return connect(server, path=VERTEX_PATH, headers=headers)


def boxes(data: bytes) -> list[tuple[str, bytes]]:
    """Top-level ISO BMFF boxes: (type, payload)."""
    out = []
    while data:
        (size,) = struct.unpack(">I", data[:4])
        assert 8 <= size <= len(data)
        out.append((data[4:8].decode("ascii"), data[8:size]))
        data = data[size:]
    return out


def video_parts(message: dict[str, Any]) -> list[bytes]:
    parts = message["serverContent"]["modelTurn"]["parts"]
    assert all(p["inlineData"]["mimeType"] == "video/mp4" for p in parts)
    return [base64.b64decode(p["inlineData"]["data"]) for p in parts]


AVATAR = current_setup(
    VERTEX_MODEL,
    generationConfig={"responseModalities": ["VIDEO"]},
    avatarConfig={"avatarName": "Kira", "videoBitrateBps": 80_000},
)


async def test_an_avatar_answers_in_fragmented_mp4() -> None:
    async with vertex(chunks=3) as server, vertex_connect(server) as client:
        await session_ready(client, AVATAR)
        for question in ("hello", "again"):
            await client.send(user_text(question))
            messages = await client.turn()
            assert [kind_of(m) for m in messages][-2:] == [
                "serverContent.generationComplete",
                "serverContent.turnComplete",
            ]
            segments = [video_parts(m) for m in messages[:-2]]
            # An initialization segment first in every answer, then one fragment per chunk.
            assert [len(s) for s in segments] == [2, 1, 1]
            init, *fragments = [b for s in segments for b in s]
            assert [kind for kind, _ in boxes(init)] == ["ftyp", "moov"]
            moov = dict(boxes(init))["moov"]
            assert [kind for kind, _ in boxes(moov)] == ["mvhd", "mvex"]
            for sequence, fragment in enumerate(fragments, 1):
                (moof, moof_body), (mdat, payload) = boxes(fragment)
                assert (moof, mdat) == ("moof", "mdat")
                mfhd = dict(boxes(moof_body))["mfhd"]
                assert struct.unpack(">I", mfhd[4:8]) == (sequence,)
                assert len(payload) == 3_000  # 0.3 s at 80 kbit/s
            assert transcript_of(messages).startswith("echo #")
        last = messages[-1]
        assert last["usageMetadata"]["candidatesTokensDetails"][0]["modality"] == "VIDEO"


@pytest.mark.parametrize(
    ("path", "setup"),
    [
        # The Developer API refuses avatars.
        (None, current_setup(avatarConfig={"avatarName": "Kira"})),
        (
            None,
            current_setup(
                generationConfig={"responseModalities": ["VIDEO"]},
                avatarConfig={"avatarName": "Kira"},
            ),
        ),
        # VIDEO without an avatar, or on a model without avatars.
        (
            VERTEX_PATH,
            current_setup(VERTEX_MODEL, generationConfig={"responseModalities": ["VIDEO"]}),
        ),
        (
            VERTEX_PATH,
            {
                "setup": {
                    "model": VERTEX_MODEL.replace(
                        "gemini-3.8-live", "gemini-3.1-flash-live-preview"
                    ),
                    "generationConfig": {"responseModalities": ["VIDEO"]},
                    "avatarConfig": {"avatarName": "Kira"},
                }
            },
        ),
    ],
)
async def test_avatars_are_refused_outside_vertex(path: str | None, setup: dict[str, Any]) -> None:
    async with vertex() as server:
        client_context = connect(server) if path is None else vertex_connect(server)
        async with client_context as client:
            await client.send(setup)
            assert (await client.closed())[0] == 1007


async def test_the_vertex_lifetime_ends_with_1000_cancelled(autojump_clock: trio.abc.Clock) -> None:
    async with vertex(connection_lifetime=600, goaway_before=30) as server:
        async with vertex_connect(server) as client:
            await session_ready(client, current_setup(VERTEX_MODEL))
            assert await client.recv() == {"goAway": {"timeLeft": "30s"}}
            assert await client.closed() == (1000, "The operation was cancelled.")
            assert trio.current_time() == pytest.approx(600)
        # The Developer path of the same server keeps its own close.
        async with connect(server) as client:
            await session_ready(client, current_setup())
            await client.recv()
            assert (await client.closed())[0] == 1011
    options = {"connection_lifetime": 5, "goaway_before": 0, "lifetime_close": (1011, "x")}
    async with vertex(**options) as server, vertex_connect(server) as client:
        await session_ready(client, current_setup(VERTEX_MODEL))
        assert await client.closed() == (1011, "x")


async def test_usage_has_vertex_names_on_the_vertex_path() -> None:
    async with vertex() as server:
        async with vertex_connect(server, KEY_HEADER) as client:
            await session_ready(client, current_setup("publishers/google/models/gemini-3.8-live"))
            await client.send(user_text("hi"))
            usage = (await client.turn())[-1]["usageMetadata"]
            assert "candidatesTokenCount" in usage and "responseTokenCount" not in usage
            assert usage["candidatesTokensDetails"][0]["modality"] == "AUDIO"
        async with connect(server) as client:
            await session_ready(client, current_setup())
            await client.send(user_text("hi"))
            usage = (await client.turn())[-1]["usageMetadata"]
            assert "responseTokenCount" in usage and "candidatesTokenCount" not in usage


async def _call(client: RawClient) -> dict[str, Any]:
    call: dict[str, Any] = (await client.until("toolCall"))[-1]["toolCall"]["functionCalls"][0]
    return call


async def test_a_function_response_without_id_is_matched_by_name_on_vertex() -> None:
    tools = [{"functionDeclarations": [{"name": "get_weather", "behavior": "BLOCKING"}]}]
    response = {
        "toolResponse": {
            "functionResponses": [{"name": "get_weather", "response": {"output": "sunny"}}]
        }
    }
    async with vertex() as server:
        async with vertex_connect(server) as client:
            await session_ready(client, current_setup(VERTEX_MODEL, tools=tools))
            await client.send(user_text("call get_weather"))
            call = await _call(client)
            await client.send(response)
            assert (
                transcript_of(await client.turn()) == 'echo #1: get_weather -> {"output":"sunny"}'
            )
            logged = server.sessions["session-1"].state.history[-2].content["parts"][0]
            assert logged["functionResponse"]["id"] == call["id"]
        # The Developer API needs the id: without one the response answers nothing.
        async with connect(server) as client:
            await session_ready(client, current_setup(tools=tools))
            await client.send(user_text("call get_weather"))
            await _call(client)
            await client.send(response)
            await server.log.wait_for(lambda: server.log.notes_of("ignored_tool_response"))
