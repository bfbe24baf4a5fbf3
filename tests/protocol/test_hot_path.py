"""The per-frame path stays cheap: streaming output never builds a pydantic object.

Not a timing test: it checks *what* runs. Audio, text and transcription chunks arrive many times
a second per conversation; they must go frame -> dict -> event without pydantic validation.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pydantic
import pytest

from liveactors import events as ev
from liveactors._protocol import tracker as tracker_module
from liveactors._protocol.connection import LiveConnection
from liveactors._protocol.tracker import EventTracker

PCM_100MS_24K = bytes(range(256)) * 18 + b"\x00" * 192  # 4800 bytes = 100 ms at 24 kHz


def _audio_frame() -> bytes:
    data = base64.b64encode(PCM_100MS_24K).decode()
    part = {"inlineData": {"mimeType": "audio/pcm;rate=24000", "data": data}}
    return json.dumps({"serverContent": {"modelTurn": {"role": "model", "parts": [part]}}}).encode()


STREAMING_FRAMES = {
    "audio": _audio_frame(),
    "text": b'{"serverContent":{"modelTurn":{"role":"model","parts":[{"text":"Hello"}]}}}',
    "output-transcript": b'{"serverContent":{"outputTranscription":{"text":"Hello"}}}',
    "input-transcript": b'{"serverContent":{"inputTranscription":{"text":"Hi"}}}',
    "generation-complete": b'{"serverContent":{"generationComplete":true}}',
    "interrupted": b'{"serverContent":{"interrupted":true}}',
    "resumption": b'{"sessionResumptionUpdate":{"newHandle":"h","resumable":true}}',
    "go-away": b'{"goAway":{"timeLeft":"10s"}}',
}


@pytest.fixture
def no_pydantic(monkeypatch: pytest.MonkeyPatch) -> None:
    def forbidden(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("pydantic object built on the streaming path")

    monkeypatch.setattr(pydantic.BaseModel, "model_validate", classmethod(forbidden))
    monkeypatch.setattr(pydantic.BaseModel, "__init__", forbidden)
    monkeypatch.setattr(tracker_module, "validate", forbidden)


@pytest.mark.parametrize("name", list(STREAMING_FRAMES))
def test_streaming_frames_build_no_pydantic_objects(name: str, no_pydantic: None) -> None:
    conn = LiveConnection()
    conn.send_setup({"setup": {"model": "models/m"}})
    conn.receive(b'{"setupComplete":{}}')
    tracker = EventTracker("c1")
    events = tracker.events(conn.receive(STREAMING_FRAMES[name]))
    assert len(events) == 1
    if name == "audio":
        (chunk,) = events
        assert isinstance(chunk, ev.AudioChunk)
        assert chunk.data == PCM_100MS_24K
        assert chunk.mime_type == "audio/pcm;rate=24000"


def test_the_guard_does_catch_pydantic(no_pydantic: None) -> None:
    tracker = EventTracker("c1")
    with pytest.raises(AssertionError, match="pydantic"):
        tracker.events({"toolCall": {"functionCalls": [{"id": "a", "name": "f"}]}})
