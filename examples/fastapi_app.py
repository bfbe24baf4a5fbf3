"""A FastAPI app on uvicorn: a WebSocket chat where every client gets its own conversation.

    python examples/fastapi_app.py            # serve, connect two demo clients, print, exit
    python examples/fastapi_app.py --serve    # keep serving on 127.0.0.1:8000; Ctrl-C stops
    uvicorn --factory fastapi_app:create_app  # (from examples/) the app alone, under uvicorn

The orchestrator runs on uvicorn's asyncio loop as a trio *guest run* (``liveactors.aio``),
opened and closed by the app's lifespan: startup opens it, shutdown lets the answers in
progress finish and closes every conversation with 1000. Without ``GEMINI_API_KEY`` the
embedded fake Live API server runs inside the same guest run (``aio.FakeBackend``: in memory,
no network), playing ``liveactors.DEFAULT_MODEL``.

The WebSocket protocol of ``/chat``, one conversation per WebSocket:

* client → server: text frames ``{"type": "text", "text": "..."}`` (a user turn) and
  ``{"type": "audio_end"}`` (the microphone closed); binary frames are 16 kHz 16-bit mono PCM
  (``send_audio``).
* server → client: every event of the conversation as a JSON text frame
  (``liveactors._event_codec.event_to_json``: ``{"type": "OutputTranscript", "text": ...,
  "turn": 1, ...}``), except the model's speech (``AudioChunk``), which goes as binary frames of
  24 kHz 16-bit mono PCM; ``{"type": "error", "message": ...}`` for input it refused.

The model answers by speaking, as every current Live model does; the words of the answer come
as ``OutputTranscript`` events (liveactors asks the service for them by default). A turn cut by
a dropped connection ends with ``TurnComplete`` and ``"reason": "CONNECTION_LOST"``, and the
answer comes again, whole, after the reconnect (the demo clients start the answer over).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from collections.abc import AsyncIterator
from typing import Any

import uvicorn
from fastapi import FastAPI, WebSocket, WebSocketDisconnect
from google.genai import types
from websockets.asyncio.client import connect

import liveactors
from liveactors import aio, events
from liveactors._event_codec import event_to_json

MODEL = os.environ.get("LIVEACTORS_MODEL", liveactors.DEFAULT_MODEL)
CONFIG = types.LiveConnectConfig(
    system_instruction="You are a helpful assistant in a web chat. One short sentence per answer.",
)
#: Upper bound for one answer in the demo clients (the real service answers in a second or two).
TURN_TIMEOUT = 60


def default_backend() -> liveactors.GeminiBackend | aio.FakeBackend:
    """The real service when ``GEMINI_API_KEY`` is set, else the embedded fake server."""
    if os.environ.get("GEMINI_API_KEY"):
        return liveactors.GeminiBackend(model=MODEL)
    return aio.FakeBackend(model=MODEL, listen=False, chunks=3, chunk_delay=0.02)


def create_app(backend: liveactors.GeminiBackend | aio.FakeBackend | None = None) -> FastAPI:
    """The app; its lifespan runs an orchestrator on ``backend`` (default: see above)."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with aio.open_orchestrator(backend or default_backend()) as orch:
            app.state.orch = orch
            yield

    app = FastAPI(lifespan=lifespan)

    @app.websocket("/chat")
    async def chat(websocket: WebSocket) -> None:
        orch: aio.Orchestrator = websocket.app.state.orch
        await websocket.accept()
        try:
            conv = await orch.spawn(CONFIG)
        except liveactors.LiveError as exc:
            await websocket.send_json({"type": "error", "message": str(exc)})
            await websocket.close(1011)
            return
        try:
            async with conv.subscribe() as stream:
                # Whichever side ends first (the client leaves, or the conversation closes
                # because the app shuts down) ends the other.
                reader = asyncio.create_task(receive_input(websocket, conv))
                writer = asyncio.create_task(send_events(websocket, stream))
                try:
                    await asyncio.wait((reader, writer), return_when=asyncio.FIRST_COMPLETED)
                finally:
                    for task in (reader, writer):
                        task.cancel()
                    await asyncio.gather(reader, writer, return_exceptions=True)
        finally:
            await conv.stop()  # a no-op once the orchestrator has shut down

    return app


async def receive_input(websocket: WebSocket, conv: aio.ConversationRef) -> None:
    """Client frames → the conversation, until the client leaves."""
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return
        try:
            if message.get("bytes") is not None:
                await conv.send_audio(message["bytes"])
                continue
            request = json.loads(message.get("text") or "")
            kind = request.get("type") if isinstance(request, dict) else None
            if kind == "text":
                await conv.send_text(request.get("text"))
            elif kind == "audio_end":
                await conv.audio_stream_end()
            else:
                raise ValueError(f"unknown message type {kind!r}")
        except (liveactors.InvalidCommand, ValueError) as exc:  # refused; nothing was sent
            await websocket.send_json({"type": "error", "message": str(exc)})


async def send_events(websocket: WebSocket, stream: aio.Subscription) -> None:
    """The conversation's events → the client, until the conversation closes."""
    with contextlib.suppress(WebSocketDisconnect, OSError):
        async for event in stream:
            if isinstance(event, events.AudioChunk):
                await websocket.send_bytes(event.data)
            else:
                await websocket.send_json(event_to_json(event))
        await websocket.close(1001)  # the app is shutting down


# -- the demo -------------------------------------------------------------------------------------


async def demo_client(url: str, who: str, questions: list[str]) -> list[str]:
    """A browser-like client: asks each question, prints the transcript of each answer."""
    answers = []
    async with connect(url) as websocket:
        for question in questions:
            print(f"[{who}] > {question}")
            await websocket.send(json.dumps({"type": "text", "text": question}))
            words: list[str] = []
            audio = 0
            async with asyncio.timeout(TURN_TIMEOUT):
                async for frame in websocket:
                    if isinstance(frame, bytes):
                        audio += len(frame)
                        continue
                    event: dict[str, Any] = json.loads(frame)
                    if event["type"] == "OutputTranscript":
                        words.append(event["text"])
                    elif event["type"] == "TurnComplete":
                        if event["reason"] == "CONNECTION_LOST":  # the answer comes again
                            words.clear()
                            continue
                        break
                    elif event["type"] == "error":
                        raise RuntimeError(event["message"])
            answers.append("".join(words))
            print(f"[{who}] < {answers[-1]}  ({audio / 48_000:.2f}s of speech)")
    return answers


async def main(argv: list[str]) -> None:
    backend = default_backend()
    if isinstance(backend, aio.FakeBackend):
        print(f"GEMINI_API_KEY is not set: using the embedded fake server ({MODEL})")
    else:
        print(f"using the real Live API with {MODEL}")
    serve = "--serve" in argv
    config = uvicorn.Config(
        create_app(backend), host="127.0.0.1", port=8000 if serve else 0, log_level="warning"
    )
    server = uvicorn.Server(config)
    if serve:
        print("serving on ws://127.0.0.1:8000/chat until Ctrl-C", flush=True)
        await server.serve()
        return
    serving = asyncio.create_task(server.serve())
    while not server.started:
        if serving.done():
            await serving  # it failed to start: raise why
            return
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    url = f"ws://127.0.0.1:{port}/chat"
    print(f"serving on {url}")
    await asyncio.gather(
        demo_client(url, "ada", ["Hi, I am Ada.", "What is my name?"]),
        demo_client(url, "bob", ["Hello from Bob!", "Bye."]),
    )
    server.should_exit = True  # what Ctrl-C does: the lifespan closes the orchestrator
    await serving
    print("served 2 clients, each in its own conversation")
    if isinstance(backend, aio.FakeBackend) and backend.server is not None:
        counts = backend.server.log.answer_counts()
        print(f"every question answered exactly once: {set(counts.values()) == {1}}")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
