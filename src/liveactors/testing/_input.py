"""Client input on one connection: ``clientContent``, ``realtimeInput``, ``contextUpdate``.

``clientContent`` turns join the history unconditionally; ``turnComplete: true`` asks for an
answer. It interrupts a busy model (the proto: "A message here will interrupt any current model
generation"); the 3.8 generation waits unless the message completes a turn, and 3.1 was seen to
refuse it (1007) once a model turn has run. Turns sent without ``turnComplete`` (or as initial
history) are *prefill*, which a 3.8 resumption may forget.

``realtimeInput``: audio goes to ``_speech`` (VAD, barge-in, transcription), video frames join
the context (258 tokens each, and the shorter session limit), text is a user turn that
interrupts unless ``NO_INTERRUPTION``. ``activityStart`` / ``activityEnd`` need manual VAD
(1007 otherwise).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ._bargein import barge_in
from ._setup import declared_functions
from ._speech import activity_start, end_activity, on_audio
from ._tokens import IMAGE_TOKENS
from ._wire import INVALID_ARGUMENT, ProtocolViolation

if TYPE_CHECKING:
    from ._session import Connection

__all__ = ["client_content", "context_update", "realtime_input"]


async def client_content(conn: Connection, body: Mapping[str, Any]) -> None:
    """``clientContent``: turns join the history; ``turnComplete: true`` asks for an answer."""
    behaviour = conn.behaviour
    if behaviour.refuse_late_client_content and conn.answered_once:
        # Seen on gemini-3.1-flash-live-preview: clientContent only as initial history.
        raise ProtocolViolation(1007, INVALID_ARGUMENT)
    turn_complete = bool(body.get("turnComplete"))
    # "A message here will interrupt any current model generation" (proto); the 3.8
    # generation waits unless the message completes a turn.
    interrupts = turn_complete or not behaviour.interrupt_needs_turn_complete
    if interrupts and conn.busy() and not conn.initial_history:
        await barge_in(conn)
    state = conn.state
    prefill = conn.initial_history or not turn_complete
    for content in body.get("turns") or ():
        state.add_content(content, prefill)
        if content.get("role") == "model":
            # A model turn the client supplies as history (restoring a conversation) counts
            # like one the model spoke, so the echo counter carries on across a restore.
            state.turn += 1
    conn.compress()
    if turn_complete:
        if conn.initial_history:
            # The seeded history ends: no model call, and what it said is history, not a
            # question the next turn answers.
            conn.initial_history = False
            state.pending_input.clear()
            return
        conn.user_turn = "clientContent"


async def realtime_input(conn: Connection, body: Mapping[str, Any]) -> None:
    """``realtimeInput``: each field in turn (the service tolerates several in one message)."""
    for field, value in body.items():
        if field == "audio":
            await on_audio(conn, value)
        elif field == "video":
            _video(conn, value)
        elif field == "mediaChunks":
            if value:  # "all but the first will be ignored"
                blob = value[0]
                if str(blob.get("mimeType", "")).startswith("image/"):
                    _video(conn, blob)
                else:
                    await on_audio(conn, blob)
        elif field == "text":
            if conn.busy() and conn.interrupts:
                await barge_in(conn)
            conn.state.add_user_text(value)
            conn.compress()
            conn.user_turn = "realtimeInput.text"
        elif field == "audioStreamEnd":
            if value and conn.vad.auto and conn.vad.active:
                await end_activity(conn)
        elif field == "activityStart":
            if conn.vad.auto:
                raise ProtocolViolation(1007, INVALID_ARGUMENT)
            await activity_start(conn)
        elif field == "activityEnd":
            if conn.vad.auto:
                raise ProtocolViolation(1007, INVALID_ARGUMENT)
            if conn.vad.active:
                await end_activity(conn)


def _video(conn: Connection, blob: Mapping[str, Any]) -> None:
    """A video frame: its cost joins the context, and the video session limit applies."""
    session = conn.session
    assert session is not None
    if not session.has_video:
        session.has_video = True
        conn.wake_timer()  # the shorter session limit applies from now on
    # The frame itself is not kept: only its place and cost in the context.
    content = {
        "role": "user",
        "parts": [{"inlineData": {"mimeType": blob.get("mimeType", "")}}],
    }
    conn.state.append(content, IMAGE_TOKENS, "IMAGE")
    conn.compress()


def context_update(conn: Connection, body: Mapping[str, Any]) -> None:
    """``contextUpdate`` (google-genai only): new system instruction and/or tools."""
    session = conn.session
    assert session is not None
    config = dict(session.config)
    if "systemInstruction" in body:
        config["systemInstruction"] = body["systemInstruction"]
    if "tools" in body:
        config["tools"] = (body["tools"] or {}).get("tools", [])
        conn.tools = declared_functions(config["tools"])
    session.config = config
