"""A WAV of speech-like sound for Chromium's fake microphone.

The fake Live server hears speech by loudness alone (a 16-bit sample at or above 100) and ends a
spoken turn after 0.5 s without it (``liveactors/testing/_vad.py``). So: a voiced "utterance" —
a gliding pitch with a dozen harmonics under a syllable-rate envelope, as loud as a close
microphone — then silence (digital zeros) long enough to end the turn. Chromium loops the file,
so the page "speaks" again every ``period`` seconds. Voice-like rather than a pure tone so that
the browser's noise suppression, on as in any voice chat, keeps it.
"""

from __future__ import annotations

import math
import struct
import wave
from pathlib import Path

RATE = 48_000


def utterance(seconds: float, *, rate: int = RATE, peak: float = 0.35) -> list[float]:
    samples = []
    phase = 0.0
    n = round(seconds * rate)
    for i in range(n):
        t = i / rate
        f0 = 130 + 50 * t / seconds  # a rising pitch, 130 to 180 Hz
        phase += 2 * math.pi * f0 / rate
        voiced = sum(math.sin(k * phase) / k for k in range(1, 13))
        syllables = 0.55 + 0.45 * math.cos(2 * math.pi * 4 * t)  # 4 syllables a second
        edges = min(1.0, t / 0.03, (seconds - t) / 0.03)  # no clicks
        samples.append(peak * 0.6 * voiced * syllables * edges)
    return samples


def write_speech_wav(path: Path, *, speech: float = 1.0, period: float = 4.0) -> Path:
    """``speech`` seconds of voice, then silence until ``period``, as 48 kHz 16-bit mono."""
    voice = utterance(speech)
    pcm = [max(-32768, min(32767, round(s * 32767))) for s in voice]
    pcm += [0] * (round(period * RATE) - len(pcm))
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE)
        out.writeframes(struct.pack(f"<{len(pcm)}h", *pcm))
    return path
