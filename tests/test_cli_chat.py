"""``liveactors chat``: which service it picks, what it asks for, and the WAV it writes."""

from __future__ import annotations

import argparse
import io
import os
import subprocess
import sys
import wave
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

import liveactors.testing
from liveactors import _cli_chat
from liveactors.testing import FakeServer

COMMAND = [sys.executable, "-m", "liveactors", "chat"]
_ENVIRONMENT = (
    "GEMINI_API_KEY",
    "GOOGLE_API_KEY",
    "GOOGLE_CLOUD_PROJECT",
    "GOOGLE_CLOUD_LOCATION",
    "GOOGLE_APPLICATION_CREDENTIALS",
)


def chat(*args: str, stdin: str = "", timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in _ENVIRONMENT}
    return subprocess.run(
        [*COMMAND, *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )


def test_help_names_every_option() -> None:
    done = chat("--help")
    assert done.returncode == 0, done.stderr
    for option in ("--model", "--system", "--audio-out", "--vertex", "--project", "--location"):
        assert option in done.stdout
    assert "gemini-3.8-live" in done.stdout
    assert "GOOGLE_CLOUD_PROJECT" in done.stdout
    assert "Application" in done.stdout


def test_audio_out_writes_the_voice_as_wav(tmp_path: Path) -> None:
    path = tmp_path / "voice.wav"
    done = chat("--audio-out", str(path), stdin="hello there\n")
    assert done.returncode == 0, done.stderr
    assert "echo #1: hello there" in done.stdout  # the transcript of what it said
    with wave.open(str(path), "rb") as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (1, 2, 24_000)
        assert wav.getnframes() > 24_000 // 10
    assert "s of audio to" in done.stderr


def test_audio_out_without_a_turn_is_an_empty_wav(tmp_path: Path) -> None:
    path = tmp_path / "silence.wav"
    done = chat("--audio-out", str(path), stdin="")
    assert done.returncode == 0, done.stderr
    with wave.open(str(path), "rb") as wav:
        assert (wav.getframerate(), wav.getnframes()) == (24_000, 0)


def test_project_needs_vertex() -> None:
    done = chat("--project", "p-1")
    assert done.returncode == 2
    assert "--vertex" in done.stderr


def test_vertex_without_a_project_says_what_is_missing() -> None:
    done = chat("--vertex", stdin="hello\n")
    assert done.returncode == 2
    assert "GOOGLE_CLOUD_PROJECT" in done.stderr


def test_vertex_on_the_embedded_fake() -> None:
    done = chat("--vertex", "--fake", "--location", "us-central1", stdin="hello vertex\n")
    assert done.returncode == 0, done.stderr
    assert "echo #1: hello vertex" in done.stdout


async def test_chat_never_asks_for_text(monkeypatch: pytest.MonkeyPatch) -> None:
    servers: list[FakeServer] = []
    real = liveactors.testing.open_fake_server

    @asynccontextmanager
    async def recording(**options: Any) -> AsyncIterator[FakeServer]:
        async with real(**options) as server:
            servers.append(server)
            yield server

    monkeypatch.setattr(liveactors.testing, "open_fake_server", recording)
    monkeypatch.setattr(sys, "stdin", io.StringIO("hi\n"))
    for name in _ENVIRONMENT:
        monkeypatch.delenv(name, raising=False)
    args = argparse.Namespace(
        model="gemini-3.8-live",
        system="Be brief.",
        audio_out=None,
        vertex=False,
        project=None,
        location=None,
        fake=False,
    )
    assert await _cli_chat._chat(args) == 0
    (server,) = servers
    (setup,) = [m.body for m in server.log.client_messages() if m.kind == "setup"]
    assert "TEXT" not in setup.get("generationConfig", {}).get("responseModalities", [])
    assert "outputAudioTranscription" in setup
    assert setup["systemInstruction"]["parts"] == [{"text": "Be brief."}]
