"""Audio in, audio out, with input and output transcription.

    python examples/audio_io.py [question.wav [answer.wav]]

Reads a WAV file (16-bit PCM; mono, or the first channel is used; any rate from 8 to 48 kHz),
streams it to the model in 100 ms chunks with ``send_audio``, ends the stream with
``audio_stream_end`` (the microphone closed), and writes the model's spoken answer — 24 kHz
16-bit mono PCM — to ``answer.wav``. What you said and what the model said come back as
``InputTranscript`` and ``OutputTranscript`` events: input transcription is asked for in the
config, output transcription liveactors asks for by default.

Without a WAV file it generates ``question.wav``: 1.5 s of speech-like sound (a voiced tone
with syllable-like bursts). The fake server's VAD hears it as speech and transcribes it as a
label like ``<audio 1.20s>`` (it cannot recognise words); the real service needs real speech
to answer, so pass a recording when ``GEMINI_API_KEY`` is set.
"""

from __future__ import annotations

import math
import os
import re
import struct
import sys
import tempfile
import wave
from pathlib import Path

import trio
from google.genai import types

import liveactors
from liveactors import events
from liveactors.testing import open_fake_server

#: gemini-3.8-live by default: it answers in AUDIO, as every current Live model does.
MODEL = os.environ.get("LIVEACTORS_MODEL", liveactors.DEFAULT_MODEL)
INPUT_RATE = 16_000
CHUNK_SECONDS = 0.1
ANSWER_TIMEOUT = 60


# -- WAV files (blocking file I/O: these run in a worker thread) --------------------------------


def speech_like(seconds: float, rate: int = INPUT_RATE) -> bytes:
    """Voiced sound shaped like speech: a wavering pitch with harmonics, in syllable bursts."""
    samples = []
    for i in range(int(seconds * rate)):
        t = i / rate
        pitch = 140 + 30 * math.sin(2 * math.pi * 0.7 * t)
        phase = 2 * math.pi * pitch * t
        voice = math.sin(phase) + 0.5 * math.sin(2 * phase) + 0.25 * math.sin(3 * phase)
        syllables = max(0.0, math.sin(2 * math.pi * 4 * t)) ** 0.5  # ~4 syllables a second
        samples.append(int(6000 * syllables * voice))
    return struct.pack(f"<{len(samples)}h", *samples)


def write_wav(path: Path, pcm: bytes, rate: int) -> None:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(pcm)


def read_wav(path: Path) -> tuple[bytes, int]:
    """16-bit PCM of the first channel, and its sample rate."""
    with wave.open(str(path), "rb") as wav:
        if wav.getsampwidth() != 2:
            raise SystemExit(f"{path}: need 16-bit PCM, got {8 * wav.getsampwidth()}-bit")
        channels, rate = wav.getnchannels(), wav.getframerate()
        pcm = wav.readframes(wav.getnframes())
    if channels > 1:  # keep the first channel
        frame = 2 * channels
        pcm = b"".join(pcm[i : i + 2] for i in range(0, len(pcm), frame))
    return pcm, rate


# -- the conversation ---------------------------------------------------------------------------


async def talk(
    backend: liveactors.GeminiBackend, question: Path, answer: Path, *, realtime: bool
) -> None:
    pcm, rate = await trio.to_thread.run_sync(read_wav, question)
    print(f"read {question}: {len(pcm) / 2 / rate:.2f}s of {rate} Hz audio")
    # AUDIO is the model's only answer; the transcription of its speech (OutputTranscript)
    # is on by default. The transcription of what the user says has to be asked for.
    config = types.LiveConnectConfig(
        input_audio_transcription=types.AudioTranscriptionConfig(),
    )
    async with liveactors.open_orchestrator(backend) as orch:
        conv = await orch.spawn(config, name="audio")
        said, heard, audio = [], [], bytearray()
        out_rate = 24_000
        async with conv.subscribe() as stream:
            # Stream the recording in 100 ms chunks (3,200 bytes at 16 kHz). A microphone
            # delivers audio in real time; a file can go faster, but the real service's
            # voice activity detection works best at the pace of speech.
            chunk = int(rate * CHUNK_SECONDS) * 2
            chunks = 0
            for start in range(0, len(pcm), chunk):
                await conv.send_audio(pcm[start : start + chunk], rate=rate)
                chunks += 1
                if realtime:
                    await trio.sleep(CHUNK_SECONDS)
            await conv.audio_stream_end()  # mic closed: the turn ends, the model answers
            print(f"sent {chunks} chunks and audio_stream_end")

            with trio.fail_after(ANSWER_TIMEOUT):
                async for event in stream:
                    if isinstance(event, events.InputTranscript):
                        said.append(event.text)
                    elif isinstance(event, events.OutputTranscript):
                        heard.append(event.text)
                    elif isinstance(event, events.AudioChunk):
                        audio += event.data
                        match = re.search(r"rate=(\d+)", event.mime_type)
                        out_rate = int(match.group(1)) if match else out_rate
                    elif isinstance(event, events.Interrupted):
                        # Barge-in or a lost connection: a player flushes its queue here.
                        audio.clear()
                        heard.clear()
                    elif (
                        isinstance(event, events.TurnComplete)
                        and event.reason != "CONNECTION_LOST"  # else the answer comes again
                    ):
                        break
        await conv.stop()

    print(f"you said: {''.join(said).strip() or '(no transcript)'}")
    print(f"model said: {''.join(heard).strip() or '(no transcript)'}")
    await trio.to_thread.run_sync(write_wav, answer, bytes(audio), out_rate)
    print(f"wrote {answer}: {len(audio) / 2 / out_rate:.2f}s of {out_rate} Hz audio")


async def main(argv: list[str]) -> None:
    answer = Path(argv[1] if len(argv) > 1 else "answer.wav")
    with tempfile.TemporaryDirectory() as tmp:
        if argv:
            question = Path(argv[0])
        else:
            question = Path(tmp, "question.wav")
            pcm = speech_like(1.5) + bytes(2 * INPUT_RATE // 2)  # then 0.5 s of silence
            await trio.to_thread.run_sync(write_wav, question, pcm, INPUT_RATE)
            print(f"generated {question.name}: 1.5s of speech-like sound, 0.5s of silence")
        if os.environ.get("GEMINI_API_KEY"):
            print(f"using the real Live API with {MODEL}")
            await talk(liveactors.GeminiBackend(model=MODEL), question, answer, realtime=True)
        else:
            print(f"GEMINI_API_KEY is not set: using the embedded fake server ({MODEL})")
            async with open_fake_server(listen=False, chunks=6) as server:
                backend = server.backend(model=MODEL)
                await talk(backend, question, answer, realtime=False)


if __name__ == "__main__":
    trio.run(main, sys.argv[1:])
