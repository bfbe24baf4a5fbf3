"""``liveactors chat``: an interactive chat in the terminal.

Which service it talks to:

* ``--vertex``: Vertex AI (:class:`~liveactors.VertexBackend`), with ``--project`` /
  ``--location`` or ``GOOGLE_CLOUD_PROJECT`` / ``GOOGLE_CLOUD_LOCATION`` and Application Default
  Credentials (or express mode with ``GOOGLE_API_KEY`` and no project or location);
* else, with ``GEMINI_API_KEY`` (or ``GOOGLE_API_KEY``) set, the Gemini Developer API;
* else, or with ``--fake``, the embedded fake server, so it works anywhere (``--fake --vertex``
  runs the fake in Vertex mode).

The default model answers in AUDIO only, so the chat never asks for TEXT: it prints the output
transcription (which liveactors requests by default), or the text of a model that writes, and
``--audio-out FILE.wav`` saves the voice (24 kHz 16-bit mono PCM) as a WAV file.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import wave
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import trio

from . import events as ev
from ._backend import DEFAULT_MODEL, GeminiBackend
from ._backend_api import Backend
from ._connect import MemoryTransport
from ._errors import LiveError
from ._orchestrator import open_orchestrator
from ._vertex import VertexBackend

__all__ = ["add_arguments", "run"]

_EPILOG = """\
which service:
  --vertex     Vertex AI: project and location from --project/--location or
               GOOGLE_CLOUD_PROJECT/GOOGLE_CLOUD_LOCATION, credentials from Application
               Default Credentials (gcloud auth application-default login), or express
               mode with GOOGLE_API_KEY and no project or location
  otherwise    the Gemini Developer API when GEMINI_API_KEY or GOOGLE_API_KEY is set,
               else the embedded fake server (which echoes)
  --fake       the embedded fake server in any case (in Vertex mode with --vertex)

The default model answers in audio: the chat prints what it says (its transcript);
--audio-out saves the voice too. End with Ctrl-D.
"""

#: The voice's format: 24 kHz, 16-bit little-endian, mono PCM.
_OUTPUT_RATE = 24_000
_RATE = re.compile(r"rate=(\d+)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``liveactors chat``."""
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = _EPILOG
    parser.add_argument("--model", default=DEFAULT_MODEL, help=f"model (default {DEFAULT_MODEL})")
    parser.add_argument("--system", default=None, help="system instruction")
    parser.add_argument(
        "--audio-out",
        metavar="FILE.wav",
        type=Path,
        default=None,
        help="also write the model's voice to this WAV file (24 kHz 16-bit mono)",
    )
    parser.add_argument("--vertex", action="store_true", help="use Vertex AI (see below)")
    parser.add_argument(
        "--project", default=None, help="Google Cloud project for --vertex (GOOGLE_CLOUD_PROJECT)"
    )
    parser.add_argument(
        "--location",
        default=None,
        help="Vertex AI location for --vertex, e.g. global, us, us-central1 "
        "(GOOGLE_CLOUD_LOCATION, else global)",
    )
    parser.add_argument(
        "--fake", action="store_true", help="use the embedded fake server even if a key is set"
    )


def run(args: argparse.Namespace) -> int:
    """Chat until end of input (Ctrl-D) or Ctrl-C."""
    if not args.vertex and (args.project or args.location):
        print("liveactors chat: --project and --location need --vertex", file=sys.stderr)
        return 2
    try:
        return trio.run(_chat, args)
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return 130


class _FakeToken:
    """Credentials for the embedded fake's Vertex endpoint: a fixed token that never expires."""

    def __init__(self, token: str) -> None:
        self.token = token

    def refresh(self, request: Any, /) -> None:
        """Nothing to refresh."""


@asynccontextmanager
async def _backend(args: argparse.Namespace) -> AsyncIterator[Backend]:
    key = os.environ.get("GEMINI_API_KEY") or os.environ.get("GOOGLE_API_KEY")
    if args.vertex and not args.fake:
        backend = VertexBackend(project=args.project, location=args.location, model=args.model)
        where = "express mode" if backend.express else f"project {backend.project}"
        print(
            f"[Vertex AI, {where}, location {backend.location}, model {args.model}]",
            file=sys.stderr,
        )
        yield backend
        return
    if key and not args.fake and not args.vertex:
        print(f"[Gemini Developer API, model {args.model}]", file=sys.stderr)
        yield GeminiBackend(model=args.model)
        return
    from .testing import open_fake_server

    async with open_fake_server(
        listen=False, chunks=4, chunk_delay=0.05, vertex=args.vertex
    ) as server:
        print(
            "[embedded fake server: it echoes; set GEMINI_API_KEY, or use --vertex, "
            "for the real service]",
            file=sys.stderr,
        )
        if args.vertex:
            keys = server.options.api_keys
            assert keys, "the fake server accepts any token"
            yield VertexBackend(
                project=args.project or "fake-project",
                location=args.location,
                model=args.model,
                credentials=_FakeToken(min(keys)),
                base_url=server.url,
                transport=MemoryTransport(server.dial),
            )
        else:
            yield server.backend(model=args.model)


class _WavSink:
    """The model's voice, appended to a WAV file as it arrives (or nowhere without a path)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._file: wave.Wave_write | None = None
        self.frames = 0
        self.rate = _OUTPUT_RATE

    def write(self, chunk: ev.AudioChunk) -> None:
        if self.path is None:
            return
        if self._file is None:
            match = _RATE.search(chunk.mime_type)
            self._open(int(match.group(1)) if match else _OUTPUT_RATE)
        assert self._file is not None
        self._file.writeframes(chunk.data)
        self.frames += len(chunk.data) // 2

    def _open(self, rate: int) -> None:
        assert self.path is not None
        self.rate = rate
        self._file = wave.open(str(self.path), "wb")  # noqa: SIM115  # closed in close()
        self._file.setnchannels(1)
        self._file.setsampwidth(2)
        self._file.setframerate(rate)

    def close(self) -> None:
        if self.path is None:
            return
        if self._file is None:
            self._open(_OUTPUT_RATE)  # a valid, empty file: the model said nothing
        assert self._file is not None
        self._file.close()
        print(f"[wrote {self.frames / self.rate:.1f} s of audio to {self.path}]", file=sys.stderr)


async def _chat(args: argparse.Namespace) -> int:
    # No response_modalities: the default model answers only in AUDIO, and its words come as
    # the output transcription that liveactors requests by default.
    config: dict[str, object] = {}
    if args.system:
        config["system_instruction"] = args.system
    try:
        audio = _WavSink(args.audio_out)
    except OSError as exc:
        print(f"cannot write {args.audio_out}: {exc.strerror}", file=sys.stderr)
        return 1
    try:
        async with _backend(args) as backend, open_orchestrator(backend) as orch:
            try:
                conv = await orch.spawn(config, name="chat")
            except LiveError as exc:
                print(f"cannot start the conversation: {exc}", file=sys.stderr)
                return 1
            return await _talk(conv, audio)
    except LiveError as exc:  # a backend that cannot be built (no project, bad location...)
        print(f"liveactors chat: {exc}", file=sys.stderr)
        return 2
    finally:
        audio.close()


async def _talk(conv: Any, audio: _WavSink) -> int:
    kinds = (
        ev.TextDelta,
        ev.OutputTranscript,
        ev.AudioChunk,
        ev.TurnComplete,
        ev.Reconnecting,
        ev.ConversationFailed,
    )
    async with conv.subscribe(*kinds) as sub:
        while True:
            sys.stdout.write("you> ")
            sys.stdout.flush()
            line = await trio.to_thread.run_sync(sys.stdin.readline, abandon_on_cancel=True)
            if not line:
                print()
                return 0
            text = line.strip()
            if not text:
                continue
            await conv.send_text(text)
            sys.stdout.write("model> ")
            async for event in sub:
                if isinstance(event, ev.TextDelta | ev.OutputTranscript):
                    sys.stdout.write(event.text)
                    sys.stdout.flush()
                elif isinstance(event, ev.AudioChunk):
                    audio.write(event)
                elif isinstance(event, ev.Reconnecting):
                    sys.stdout.write(" [reconnecting] ")
                elif isinstance(event, ev.ConversationFailed):
                    print(f"\nthe conversation failed: {event.error}", file=sys.stderr)
                    return 1
                elif isinstance(event, ev.TurnComplete) and not event.interrupted:
                    sys.stdout.write("\n")
                    break
