"""Helpers for the fake-server tests: a bare trio-websocket Live client, and message shapes.

Most protocol tests speak TEXT, which only the old half-cascade generation writes: :func:`fake`
therefore runs the server on the "2.5" profile, where the unknown :data:`TEXT_MODEL` answers in
text. Tests of the current generation pass ``model_profile="3.8"`` (or use :func:`current`).
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any

import trio
import trio_websocket

from liveactors._transport import ConnectRequest
from liveactors.testing import FakeServer

V1BETA = "/ws/google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateContent"
CONSTRAINED = (
    "/ws/google.ai.generativelanguage.v1alpha.GenerativeService.BidiGenerateContentConstrained"
)
#: A name the model table does not know: on profile "2.5" it answers in TEXT.
TEXT_MODEL = "models/gemini-test-text"
#: A 2.5 native-audio model of the table (AUDIO only, the older framing).
AUDIO_MODEL = "models/gemini-2.5-flash-native-audio-preview-12-2025"
#: The current model.
CURRENT_MODEL = "models/gemini-3.8-live"
VERTEX_PATH = "/ws/google.cloud.aiplatform.v1beta1.LlmBidiService/BidiGenerateContent"
VERTEX_MODEL = "projects/p/locations/us-central1/publishers/google/models/gemini-3.8-live"
BEARER = [(b"authorization", b"Bearer test-key")]
KEY_HEADER = [(b"x-goog-api-key", b"test-key")]


def text_setup(**extra: Any) -> dict[str, Any]:
    """A TEXT-modality setup message."""
    setup: dict[str, Any] = {
        "model": TEXT_MODEL,
        "generationConfig": {"responseModalities": ["TEXT"]},
    }
    setup.update(extra)
    return {"setup": setup}


def audio_setup(**extra: Any) -> dict[str, Any]:
    """An AUDIO-modality setup message on a native-audio model."""
    setup: dict[str, Any] = {
        "model": AUDIO_MODEL,
        "generationConfig": {"responseModalities": ["AUDIO"]},
    }
    setup.update(extra)
    return {"setup": setup}


def current_setup(model: str = CURRENT_MODEL, **extra: Any) -> dict[str, Any]:
    """A setup on the current model (AUDIO, the default) with output transcription."""
    setup: dict[str, Any] = {"model": model, "outputAudioTranscription": {}}
    setup.update(extra)
    return {"setup": setup}


def user_text(text: str, turn_complete: bool = True) -> dict[str, Any]:
    return {
        "clientContent": {
            "turns": [{"role": "user", "parts": [{"text": text}]}],
            "turnComplete": turn_complete,
        }
    }


def pcm(seconds: float, *, loud: bool = True, rate: int = 16000) -> bytes:
    """16-bit PCM: a square wave (speech for the fake's VAD) or zeros (silence)."""
    samples = int(seconds * rate)
    if not loud:
        return bytes(2 * samples)
    return b"".join(
        (4000 if (i // 40) % 2 else -4000).to_bytes(2, "little", signed=True)
        for i in range(samples)
    )


def audio_chunk(
    seconds: float = 0.1, *, loud: bool = True, urlsafe: bool = False
) -> dict[str, Any]:
    data = pcm(seconds, loud=loud)
    encoded = base64.urlsafe_b64encode(data) if urlsafe else base64.b64encode(data)
    return {
        "realtimeInput": {"audio": {"mimeType": "audio/pcm;rate=16000", "data": encoded.decode()}}
    }


def kind_of(message: Mapping[str, Any]) -> str:
    """The fake server's kind name for a server message (``empty`` for a bare ``{}``)."""
    key = next((k for k in message if k != "usageMetadata"), "empty")
    if key == "serverContent":
        return f"serverContent.{next(iter(message[key]))}"
    return key


class RawClient:
    """A bare Live API client: JSON in, JSON out, no cleverness."""

    def __init__(self, ws: trio_websocket.WebSocketConnection) -> None:
        self.ws = ws
        self.received: list[dict[str, Any]] = []
        self.frame_types: list[type] = []

    async def send(self, message: Mapping[str, Any] | str) -> None:
        await self.ws.send_message(message if isinstance(message, str) else json.dumps(message))

    async def recv(self) -> dict[str, Any]:
        raw = await self.ws.get_message()
        self.frame_types.append(type(raw))
        message: dict[str, Any] = json.loads(raw)
        self.received.append(message)
        return message

    async def recv_kind(self) -> str:
        return kind_of(await self.recv())

    async def until(self, kind: str) -> list[dict[str, Any]]:
        """Messages up to and including the first of ``kind`` (full kind or its last part)."""
        got = []
        while True:
            message = await self.recv()
            got.append(message)
            k = kind_of(message)
            if k == kind or k.endswith("." + kind):
                return got

    async def turn(self) -> list[dict[str, Any]]:
        """Messages up to and including turnComplete."""
        return await self.until("turnComplete")

    async def setup(self, message: Mapping[str, Any] | None = None) -> dict[str, Any]:
        await self.send(message or text_setup())
        return await self.recv()

    async def closed(self) -> tuple[int, str]:
        """Read until the connection closes; (code, reason), 1006 without a close frame."""
        try:
            while True:
                await self.recv()
        except trio_websocket.ConnectionClosed as exc:
            reason = exc.reason
            if reason is None:
                return 1006, ""
            return int(reason.code), reason.reason or ""


def text_of(messages: list[dict[str, Any]]) -> str:
    """Concatenated model text of a turn."""
    return "".join(
        part.get("text", "")
        for m in messages
        for part in m.get("serverContent", {}).get("modelTurn", {}).get("parts", [])
    )


def transcript_of(messages: list[dict[str, Any]], which: str = "outputTranscription") -> str:
    return "".join(m.get("serverContent", {}).get(which, {}).get("text", "") for m in messages)


@asynccontextmanager
async def connect(
    server: FakeServer,
    *,
    path: str = V1BETA,
    headers: list[tuple[bytes, bytes]] | None = None,
    tcp: bool = False,
) -> AsyncIterator[RawClient]:
    """A raw client connected to ``server`` (in memory unless ``tcp``).

    A refused upgrade raises ``trio_websocket.ConnectionRejected`` (not wrapped in a group).
    """
    try:
        async with trio.open_nursery() as nursery:
            if tcp:
                assert server.port is not None
                stream: trio.abc.Stream = await trio.open_tcp_stream("127.0.0.1", server.port)
            else:
                stream = await server.dial(ConnectRequest(url="ws://fake" + path))
            ws = await trio_websocket.wrap_client_stream(
                nursery,
                stream,  # type: ignore[arg-type]
                "fake",
                path,
                extra_headers=KEY_HEADER if headers is None else headers,
                max_message_size=16 * 2**20,
            )
            try:
                yield RawClient(ws)
            finally:
                with trio.CancelScope(shield=True), trio.move_on_after(2):
                    await ws.aclose()
                nursery.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        rejected = group.subgroup(trio_websocket.ConnectionRejected)
        if rejected is None or rejected.exceptions != group.exceptions:
            raise
        raise rejected.exceptions[0] from None


async def session_ready(client: RawClient, setup: Mapping[str, Any] | None = None) -> str:
    """Send setup, expect setupComplete; the session id."""
    reply = await client.setup(setup)
    assert "setupComplete" in reply, reply
    return str(reply["setupComplete"]["sessionId"])


Predicate = Callable[[], object]


@asynccontextmanager
async def fake(**options: Any) -> AsyncIterator[FakeServer]:
    """An in-memory fake server (unless ``listen=True``) that must log no internal error;
    profile "2.5" unless given (see the module docstring)."""
    from liveactors.testing import open_fake_server

    options.setdefault("listen", False)
    options.setdefault("model_profile", "2.5")
    async with open_fake_server(**options) as server:
        yield server
        assert not server.log.errors, server.log.errors[0].detail


def current(**options: Any) -> Any:
    """:func:`fake` on the current generation (profile "3.8")."""
    options.setdefault("model_profile", "3.8")
    return fake(**options)


def transcript(messages: list[dict[str, Any]]) -> str:
    """The output transcription of a turn (3.x: it rides in the audio messages)."""
    return transcript_of(messages)


def audio_parts(message: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The ``inlineData`` parts of one model message."""
    parts = message.get("serverContent", {}).get("modelTurn", {}).get("parts", [])
    return [p["inlineData"] for p in parts if "inlineData" in p]
