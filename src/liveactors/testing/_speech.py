"""Spoken input on one connection: voice activity, barge-in by speech, transcription.

Automatic VAD judges loudness (``_audio.loudest_sample``): a loud chunk starts an activity, the
silence gap or ``audioStreamEnd`` ends it; manual VAD follows ``activityStart`` /
``activityEnd``. When an activity starts while the model is busy, speech barges in: at once on
the older models, ``barge_in_delay`` later on the 3.8 generation ("polite" barge-in: the Vertex
AI 3.8 guide; ~640 ms observed), which the connection's timer carries out.

With ``voice_activity=True`` the server reports ``voiceActivity{type: ACTIVITY_START |
ACTIVITY_END, audioOffset}`` (google-genai ``types.VoiceActivity``), the offset counting the
connection's input audio. A transcription-only model (gemini-3.5-transcribe-live) sends
``interimInputTranscription`` while the user speaks, then the final ``inputTranscription`` and a
``turnComplete``, and never a model turn.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

import trio

from . import _frames as frames
from ._audio import audio_label, loudest_sample, rate_of
from ._bargein import barge_in
from ._tokens import audio_tokens, usage_metadata
from ._wire import b64_standard

if TYPE_CHECKING:
    from ._session import Connection

__all__ = ["activity_start", "end_activity", "on_audio"]

#: Seconds of speech between two interim transcriptions.
INTERIM_EVERY: Final = 0.2


async def on_audio(conn: Connection, blob: Mapping[str, Any]) -> None:
    """One ``realtimeInput.audio`` chunk."""
    pcm = b64_standard(str(blob.get("data", "")))[1]
    seconds = len(pcm) / 2 / rate_of(blob.get("mimeType"))
    offset = conn.audio_received
    conn.audio_received += seconds
    vad = conn.vad
    if not vad.auto:
        if vad.active:
            vad.speech_seconds += seconds
            await _interim(conn)
        return
    if loudest_sample(pcm) < vad.threshold:
        return  # silence: the timer ends the activity once the gap has passed
    now = trio.current_time()
    if not vad.active:
        vad.start(now, conn.index)
        conn.wake_timer()
        await _speech_started(conn, offset)
    vad.speech_seconds += seconds
    vad.last_speech_at = now
    conn.speech_end_offset = conn.audio_received
    await _interim(conn)


async def activity_start(conn: Connection) -> None:
    """``activityStart`` (manual VAD)."""
    if not conn.vad.active:
        conn.vad.start(trio.current_time(), conn.index)
        await _speech_started(conn, conn.audio_received)


async def _speech_started(conn: Connection, offset: float) -> None:
    conn.next_interim = 0.0
    if conn.options.voice_activity:
        await conn.send(frames.voice_activity("ACTIVITY_START", offset))
    if not (conn.busy() and conn.interrupts):
        return
    if conn.behaviour.polite:
        due = trio.current_time() + conn.behaviour.barge_in_delay
        conn.barge_at = min(conn.barge_at, due)
        conn.wake_timer()
    else:
        await barge_in(conn)


async def _interim(conn: Connection) -> None:
    vad = conn.vad
    if conn.model.transcription_only and vad.speech_seconds >= conn.next_interim:
        conn.next_interim = vad.speech_seconds + INTERIM_EVERY
        await conn.send(frames.interim_input_transcription(audio_label(vad.speech_seconds)))


async def end_activity(conn: Connection) -> None:
    """The user stopped speaking: transcribe, add to history, answer (or just transcribe)."""
    seconds = conn.vad.end()
    label = audio_label(seconds)
    if conn.options.voice_activity:
        end = conn.speech_end_offset if conn.vad.auto else conn.audio_received
        await conn.send(frames.voice_activity("ACTIVITY_END", end))
    if conn.input_transcription:
        await conn.send(frames.input_transcription(label))
    tokens = audio_tokens(seconds)
    conn.state.add_user_text(label, tokens, "AUDIO")
    conn.compress()
    if conn.model.transcription_only:
        conn.state.take_input()  # transcribed is answered
        usage = usage_metadata({"AUDIO": tokens}, {})
        await conn.send(conn.turn_complete_frame(usage))
        return
    conn.user_turn = "audio"
