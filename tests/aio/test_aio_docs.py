"""docs/asyncio.md's programs run as printed, against the fake server (``GeminiBackend()``
replaced by an in-memory ``aio.FakeBackend``)."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from aio_helpers import eventually, run
from websockets.asyncio.client import connect

import liveactors
from liveactors import aio

PAGE = Path(__file__).resolve().parents[2] / "docs" / "asyncio.md"
BLOCKS = re.findall(r"^```python\n(.*?)^```", PAGE.read_text(encoding="utf-8"), re.M | re.S)


@pytest.fixture
def fake_gemini(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(liveactors, "GeminiBackend", lambda: aio.FakeBackend(listen=False))


def test_the_first_program(fake_gemini: None, capsys: pytest.CaptureFixture[str]) -> None:
    code = BLOCKS[0]
    assert code.rstrip().endswith("asyncio.run(main())")
    exec(compile(code, "asyncio.md", "exec"), {"__name__": "asyncio_md"})
    assert capsys.readouterr().out == "echo #1: Hello\necho #2: And again?\n"


def test_the_fastapi_app(fake_gemini: None) -> None:
    namespace: dict[str, Any] = {"__name__": "asyncio_md"}
    exec(compile(BLOCKS[1], "asyncio.md", "exec"), namespace)

    async def main() -> None:
        server = uvicorn.Server(
            uvicorn.Config(namespace["app"], host="127.0.0.1", port=0, log_level="warning")
        )
        serving = asyncio.create_task(server.serve())
        await eventually(lambda: server.started or serving.done())
        port = server.servers[0].sockets[0].getsockname()[1]
        async with connect(f"ws://127.0.0.1:{port}/chat") as websocket:
            await websocket.send("Hello")
            words = []
            async for frame in websocket:
                if isinstance(frame, str):
                    event = json.loads(frame)
                    if event["type"] == "OutputTranscript":
                        words.append(event["text"])
                    elif event["type"] == "TurnComplete":
                        break
            assert "".join(words) == "echo #1: Hello"
        server.should_exit = True
        await serving

    run(main)


def test_the_testing_snippet() -> None:
    body = "\n".join("    " + line for line in BLOCKS[-1].splitlines())
    code = f"async def main():\n{body}\n"
    namespace: dict[str, Any] = {"aio": aio}
    exec(compile(code, "asyncio.md", "exec"), namespace)
    run(namespace["main"])
