"""examples/fastapi_app.py under a real uvicorn on loopback: two browser-like WebSocket
clients at once, a connection dropped mid-reply under each, both conversations carrying on, and
the fake server's log saying every question was answered exactly once."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import struct
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import uvicorn
from aio_helpers import LOOPS, eventually, run
from websockets.asyncio.client import ClientConnection, connect

from liveactors import aio

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "fastapi_app.py"


def _example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("fastapi_app", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("fastapi_app", module)
    spec.loader.exec_module(module)
    return module


fastapi_app = _example()


@asynccontextmanager
async def serving(backend: aio.FakeBackend) -> AsyncIterator[tuple[str, aio.Orchestrator]]:
    """The example app under uvicorn on a free loopback port: its /chat URL and the
    orchestrator its lifespan opened. Leaving stops uvicorn (and so the lifespan)."""
    app = fastapi_app.create_app(backend)
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    await eventually(lambda: server.started or task.done())
    if task.done():
        await task  # raises why it did not start
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"ws://127.0.0.1:{port}/chat", app.state.orch
    finally:
        server.should_exit = True
        await task


class Client:
    """A browser-like client of /chat: what it received, turn by turn."""

    def __init__(self, websocket: ClientConnection) -> None:
        self.websocket = websocket
        self.cut: list[str] = []  # transcripts of answers cut by a dropped connection
        self.audio = 0

    async def ask(self, question: str) -> str:
        await self.websocket.send(json.dumps({"type": "text", "text": question}))
        return await self.answer()

    async def answer(self) -> str:
        async with asyncio.timeout(20):
            return await self._answer()

    async def _answer(self) -> str:
        words: list[str] = []
        async for frame in self.websocket:
            if isinstance(frame, bytes):
                self.audio += len(frame)
                continue
            event: dict[str, Any] = json.loads(frame)
            if event["type"] == "OutputTranscript":
                words.append(event["text"])
            elif event["type"] == "TurnComplete":
                if event["reason"] == "CONNECTION_LOST":
                    self.cut.append("".join(words))
                    words.clear()
                    continue
                return "".join(words)
            elif event["type"] == "error":
                return f"error: {event['message']}"
        raise AssertionError("the server closed the WebSocket")

    async def next_json(self, accept: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        async with asyncio.timeout(20):
            async for frame in self.websocket:
                if isinstance(frame, str):
                    event: dict[str, Any] = json.loads(frame)
                    if accept(event):
                        return event
        raise AssertionError("the server closed the WebSocket")


QUESTIONS = {
    "ada": ["Hi, I am Ada.", "What is my name?", "Thanks, Ada out."],
    "bob": ["Hello from Bob!", "How are you?", "Bye."],
}


@pytest.mark.parametrize("loop", LOOPS)
def test_two_clients_and_a_drop_mid_reply_under_each(loop: str) -> None:
    backend = aio.FakeBackend(listen=False, chunks=4, chunk_delay=0.05)

    async def main() -> None:
        async with serving(backend) as (url, orch):
            server = orch.fake_server
            assert server is not None
            async with connect(url) as ws_ada, connect(url) as ws_bob:
                clients = {"ada": Client(ws_ada), "bob": Client(ws_bob)}
                await eventually(lambda: len(server.open_connections) == 2)
                # Each of the two connections open now drops after the 2nd message of speech
                # it sends from here on: in the middle of the first answer.
                fault = server.faults.drop(
                    connection="open", after="serverContent.modelTurn", nth=2
                )

                async def converse(who: str) -> list[str]:
                    return [await clients[who].ask(q) for q in QUESTIONS[who]]

                replies = await asyncio.gather(*map(converse, QUESTIONS))
                answers = dict(zip(QUESTIONS, replies, strict=True))
                assert fault.fired == 2
                for who, questions in QUESTIONS.items():
                    expected = [f"echo #{n}: {q}" for n, q in enumerate(questions, 1)]
                    assert answers[who] == expected
                    # The first answer was cut after part of it had reached the client.
                    [cut] = clients[who].cut
                    assert cut and expected[0].startswith(cut) and cut != expected[0]
                    assert clients[who].audio > 0  # the speech came as binary frames
                assert {s.state.value for s in orch.conversations} == {"ready"}
                assert orch.statistics().reconnects == 2

        # Every question answered exactly once, both cut turns answered again in full.
        assert server.log.answer_counts() == {q: 1 for qs in QUESTIONS.values() for q in qs}
        assert len(server.log.model_turns(outcome="cut")) == 2
        causes = sorted(str(c.cause) for c in server.log.connections)
        assert causes == ["client", "client", "fault", "fault"]  # the clients left cleanly
        assert server.log.errors == []

    run(main, timeout=60, loop=loop)


def test_audio_input_and_refused_input() -> None:
    backend = aio.FakeBackend(listen=False)
    speech = struct.pack("<h", 8000) * 8000  # 0.5 s at 16 kHz

    async def main() -> None:
        async with serving(backend) as (url, _), connect(url) as websocket:
            client = Client(websocket)
            for start in range(0, len(speech), 3200):  # 100 ms chunks
                await websocket.send(speech[start : start + 3200])
            await websocket.send(json.dumps({"type": "audio_end"}))
            assert await client.answer() == "echo #1: <audio 0.50s>"
            # Refused input: an error frame, and the conversation carries on.
            assert (await client.ask(42)).startswith("error: text must be a str")  # type: ignore[arg-type]
            await websocket.send(json.dumps({"type": "dance"}))
            error = await client.next_json(lambda e: e["type"] == "error")
            assert "unknown message type 'dance'" in error["message"]
            assert await client.ask("Still there?") == "echo #2: Still there?"

    run(main, timeout=60)


def test_shutting_the_app_down_closes_the_websockets() -> None:
    """uvicorn's shutdown: the lifespan closes the orchestrator gracefully; the conversations
    close with 1000 and the clients' WebSockets end."""
    backend = aio.FakeBackend(listen=False)

    async def main() -> None:
        async with serving(backend) as (url, orch):
            websocket = await connect(url)
            client = Client(websocket)
            assert await client.ask("Hi") == "echo #1: Hi"
        # uvicorn is down, the orchestrator closed.
        assert orch.closing
        await websocket.wait_closed()

    run(main, timeout=60)
    assert backend.server is not None
    assert [c.close_code for c in backend.server.log.connections] == [1000]
