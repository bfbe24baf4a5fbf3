"""Voice activity of the user on one connection: when a spoken turn starts and ends.

Automatic mode (the default) decides from the audio: a loud chunk starts an activity (and may
interrupt the model); the activity ends on ``audioStreamEnd`` or after ``gap`` seconds (trio
clock) without a loud chunk. Manual mode (``automaticActivityDetection.disabled``) follows the
client's ``activityStart`` / ``activityEnd``, and all audio in between counts.
"""

from __future__ import annotations

import math

import attrs

__all__ = ["VoiceActivity"]


@attrs.define
class VoiceActivity:
    """The user's current spoken turn, if any."""

    #: Server-side detection (False: the client marks activity explicitly).
    auto: bool = True
    #: Silence that ends an activity, in seconds (automatic mode).
    gap: float = 0.5
    #: Loudness (absolute 16-bit sample value) that counts as speech.
    threshold: int = 100
    active: bool = False
    #: Seconds of speech (automatic) or of audio (manual) in the current activity.
    speech_seconds: float = 0.0
    last_speech_at: float = -math.inf
    #: Client message index of the message that started the activity.
    start_index: int = 0

    def start(self, now: float, index: int) -> None:
        """An activity begins with message ``index``."""
        self.active = True
        self.speech_seconds = 0.0
        self.last_speech_at = now
        self.start_index = index

    def end(self) -> float:
        """The activity is over; returns its speech seconds."""
        seconds = self.speech_seconds
        self.active = False
        self.speech_seconds = 0.0
        return seconds

    @property
    def deadline(self) -> float:
        """When silence ends the current activity (infinity when nothing is pending)."""
        if self.auto and self.active:
            return self.last_speech_at + self.gap
        return math.inf
