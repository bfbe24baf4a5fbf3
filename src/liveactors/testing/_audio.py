"""Audio for the deterministic model: precomputed output frames, and a tiny energy-based VAD.

Output audio is a quiet 400 Hz tone at 24 kHz, 16-bit little-endian mono PCM (the service's
output format). A 400 Hz period is exactly 60 samples, so every chunk whose length is a whole
number of periods is bit-identical: its complete JSON frame, base64 included, is built once and
reused, which keeps an AUDIO turn as cheap to serve as a TEXT one.

The fake cannot recognise speech, so input audio is judged by loudness alone: a chunk with any
sample at or above the threshold is speech, anything quieter is silence. Its transcription is a
deterministic label of how much speech there was, like ``"<audio 1.20s>"``.
"""

from __future__ import annotations

import base64
import math
import re
import sys
from array import array
from typing import Final

from ._frames import Frame
from ._wire import json_string

__all__ = [
    "INPUT_RATE",
    "OUTPUT_MIME",
    "OUTPUT_RATE",
    "audio_frame",
    "audio_label",
    "audio_message",
    "loudest_sample",
    "rate_of",
    "tone",
]

OUTPUT_RATE: Final = 24_000
INPUT_RATE: Final = 16_000
OUTPUT_MIME: Final = "audio/pcm;rate=24000"
_PERIOD: Final = 60  # samples of one 400 Hz cycle at 24 kHz
_AMPLITUDE: Final = 3000

_RATE = re.compile(r"rate=(\d+)")
_frames: dict[int, Frame] = {}
_parts: dict[tuple[int, int], bytes] = {}


def tone(samples: int) -> bytes:
    """``samples`` samples of the output tone (16-bit little-endian)."""
    cycle = [round(_AMPLITUDE * math.sin(2 * math.pi * i / _PERIOD)) for i in range(_PERIOD)]
    pcm = array("h", (cycle[i % _PERIOD] for i in range(samples)))
    if sys.byteorder == "big":
        pcm.byteswap()
    return pcm.tobytes()


def audio_frame(seconds: float) -> Frame:
    """The complete ``modelTurn`` frame of one output audio chunk of about ``seconds``."""
    samples = max(_PERIOD, round(seconds * OUTPUT_RATE / _PERIOD) * _PERIOD)
    frame = _frames.get(samples)
    if frame is None:
        data = base64.b64encode(tone(samples)).decode("ascii")
        body = (
            '{"serverContent":{"modelTurn":{"role":"model","parts":[{"inlineData":'
            f'{{"mimeType":"{OUTPUT_MIME}","data":"{data}"}}}}]}}}}}}'
        )
        frame = ("serverContent.modelTurn", body.encode("ascii"))
        _frames[samples] = frame
    return frame


def audio_message(seconds: float, parts: int, transcript: str | None) -> Frame:
    """One ``serverContent`` the way the current models send speech: ``parts`` audio parts of
    about ``seconds`` each in one ``modelTurn``, and the transcript of that speech in the same
    message (https://ai.google.dev/gemini-api/docs/models/gemini-3.1-flash-live-preview: "a
    single server event can contain multiple content parts simultaneously")."""
    samples = max(_PERIOD, round(seconds * OUTPUT_RATE / _PERIOD) * _PERIOD)
    body = _parts.get((samples, parts))
    if body is None:
        data = base64.b64encode(tone(samples)).decode("ascii")
        part = f'{{"inlineData":{{"mimeType":"{OUTPUT_MIME}","data":"{data}"}}}}'
        body = (
            '{"serverContent":{"modelTurn":{"role":"model","parts":['
            + ",".join([part] * parts)
            + "]}"
        ).encode("ascii")
        _parts[(samples, parts)] = body
    if transcript is None:
        if parts == 1:
            return audio_frame(seconds)
        return "serverContent.modelTurn", body + b"}}"
    return "serverContent.modelTurn", (
        body + b',"outputTranscription":{"text":' + json_string(transcript) + b"}}}"
    )


def frame_seconds(seconds: float) -> float:
    """The exact duration :func:`audio_frame` produces for ``seconds``."""
    samples = max(_PERIOD, round(seconds * OUTPUT_RATE / _PERIOD) * _PERIOD)
    return samples / OUTPUT_RATE


def rate_of(mime_type: str | None) -> int:
    """The sample rate declared in ``audio/pcm;rate=N`` (16 kHz when absent)."""
    if mime_type:
        match = _RATE.search(mime_type)
        if match and int(match.group(1)) > 0:
            return int(match.group(1))
    return INPUT_RATE


def loudest_sample(pcm: bytes) -> int:
    """The largest absolute sample value of 16-bit little-endian PCM (0 for no samples)."""
    usable = len(pcm) - len(pcm) % 2
    if usable <= 0:
        return 0
    samples = array("h")
    samples.frombytes(pcm[:usable])
    if sys.byteorder == "big":
        samples.byteswap()
    return max(max(samples), -min(samples))


def audio_label(seconds: float) -> str:
    """The deterministic "transcription" of ``seconds`` of user speech."""
    return f"<audio {seconds:.2f}s>"
