"""The values the input ledger keeps: exchanges of input and answer, and resume plans (sans-IO).

An *exchange* is the client input that asks for one model turn — the messages up to and
including a *trigger* (``clientContent`` with ``turnComplete``, realtime text,
``audioStreamEnd``, ``activityEnd``) — and what is known of the turn answering it. Each input
message is *held* with its position in send order and the time it was sent, so that realtime
media can be trimmed once it is older than the replay window. The functions here classify wire
messages for the ledger.
"""

from __future__ import annotations

from typing import Any

import attrs

__all__ = [
    "Exchange",
    "Held",
    "ResumePlan",
    "history_message",
    "is_end_marker",
    "is_media",
    "is_trigger",
    "user_text",
]


def is_trigger(message: dict[str, Any]) -> bool:
    """Whether a client message asks the model for an answer."""
    content = message.get("clientContent")
    if content is not None:
        return bool(content.get("turnComplete"))
    realtime = message.get("realtimeInput")
    if realtime is not None:
        return bool(
            realtime.get("text") or realtime.get("audioStreamEnd") or "activityEnd" in realtime
        )
    return False


def is_end_marker(message: dict[str, Any]) -> bool:
    """``audioStreamEnd`` / ``activityEnd``: they close streamed input and carry none."""
    realtime = message.get("realtimeInput")
    return realtime is not None and (
        bool(realtime.get("audioStreamEnd")) or "activityEnd" in realtime
    )


def is_media(message: dict[str, Any]) -> bool:
    """Whether a client message is a realtime audio or video chunk (what the replay window
    trims; text, markers, ``clientContent`` and tool responses never are)."""
    realtime = message.get("realtimeInput")
    return realtime is not None and (
        "audio" in realtime or "video" in realtime or "mediaChunks" in realtime
    )


def user_text(message: dict[str, Any]) -> str:
    """The user's words in a client message (text parts of ``clientContent``, realtime
    text)."""
    content = message.get("clientContent")
    if content is not None:
        return "".join(
            part["text"]
            for turn in content.get("turns", ())
            if turn.get("role", "user") == "user"
            for part in turn.get("parts", ())
            if isinstance(part.get("text"), str)
        )
    realtime = message.get("realtimeInput")
    if realtime is not None and isinstance(realtime.get("text"), str):
        return str(realtime["text"])
    return ""


def history_message(contents: list[dict[str, Any]]) -> dict[str, Any]:
    """History for the model, appended without asking for an answer."""
    return {"clientContent": {"turns": contents}}


@attrs.define(eq=False)
class Held:
    """One input message kept for a replay."""

    #: Position in send order (renumbered when the message is sent again).
    position: int
    message: dict[str, Any] = attrs.field(repr=False)
    #: When it was first sent (the caller's clock): what the replay window measures.
    sent_at: float = 0.0
    #: The caller's name for this input (a cluster worker: its id in the durable input stream).
    tag: str | None = None


@attrs.define
class Exchange:
    """Client input that asks for one model turn, and what is known about its answer."""

    number: int
    #: The input still held for a replay, by position, in send order.
    held: dict[int, Held] = attrs.field(factory=dict, repr=False)
    triggered: bool = False
    #: Some model output for this exchange arrived (so the service consumed its input).
    output_seen: bool = False
    answered: bool = False
    #: Position of the trigger, or of the history message that restored this exchange.
    position: int = 0
    user_text: list[str] = attrs.field(factory=list, repr=False)
    input_transcript: list[str] = attrs.field(factory=list, repr=False)
    model_text: list[str] = attrs.field(factory=list, repr=False)
    #: Media chunks trimmed from this exchange that no replay has reported yet, and the
    #: stretch of the stream (seconds, by send time) they covered.
    trimmed: int = 0
    trimmed_seconds: float = 0.0
    #: Tag of the latest message that joined this exchange (see :attr:`Held.tag`).
    last_tag: str | None = None

    @property
    def inputs(self) -> list[tuple[int, dict[str, Any]]]:
        """(position, wire message) of the held input, in send order."""
        return [(p, h.message) for p, h in self.held.items()]

    @property
    def messages(self) -> list[dict[str, Any]]:
        """The held input's wire messages, in send order."""
        return [h.message for h in self.held.values()]

    def contents(self) -> list[dict[str, Any]]:
        """This exchange as history: the user's words (text, or the input transcript for audio)
        and the model's answer (text, or the output transcript)."""
        out = []
        user = "".join(self.user_text) or "".join(self.input_transcript)
        if user:
            out.append({"role": "user", "parts": [{"text": user}]})
        model = "".join(self.model_text)
        if model:
            out.append({"role": "model", "parts": [{"text": model}]})
        return out


@attrs.frozen
class ResumePlan:
    """What to send on a new connection, in this order, before any new input."""

    #: Resume from the latest handle; False means start a fresh session.
    resume: bool
    #: A ``clientContent`` history message (``turnComplete`` false), or None.
    history: dict[str, Any] | None = attrs.field(default=None, repr=False)
    #: Unanswered input to send again, in order.
    replay: tuple[dict[str, Any], ...] = attrs.field(default=(), repr=False)
    #: Ask the model to finish a turn it had begun (``clientContent{turnComplete:true}``).
    prompt_continue: bool = False
    #: Media chunks the replay lacks (trimmed: older than the replay window), not reported by
    #: an earlier plan, and the stretch of the stream they covered, in seconds.
    trimmed: int = 0
    trimmed_seconds: float = 0.0

    @property
    def messages(self) -> list[dict[str, Any]]:
        """Every message of the plan in send order."""
        out = [] if self.history is None else [self.history]
        out.extend(self.replay)
        if self.prompt_continue:
            out.append({"clientContent": {"turnComplete": True}})
        return out
