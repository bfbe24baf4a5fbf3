"""The state of one session that outlives its connections, and that a resumption handle restores.

``SessionState`` holds the conversation history (with token counts per entry), the model-turn
counter, user input not answered yet, function calls not answered yet, and a turn paused on
blocking calls. ``copy()`` is the snapshot a per-turn handle keeps: history entries are
immutable, so copying the lists is enough.

Context-window accounting lives here too: every entry carries its token estimate, the running
totals are kept per modality (for ``usageMetadata``), and :meth:`SessionState.compress` is the
sliding window: drop the oldest entries until the total is at most the target, and never start
the kept history anywhere but at a user turn.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import attrs

from ._tokens import content_tokens, text_tokens

__all__ = ["HistoryEntry", "PendingCall", "SessionState", "Waiting"]


@attrs.frozen
class HistoryEntry:
    """One ``Content`` of the conversation and what it costs in the context window."""

    content: Mapping[str, Any]
    tokens: int
    modality: str = "TEXT"
    #: Client-supplied history (``clientContent`` without ``turnComplete: true``): what a
    #: resumption may forget (``resume_loses_prefill``).
    prefill: bool = False

    @property
    def role(self) -> str:
        """ "user" or "model"."""
        return str(self.content.get("role", "user"))


@attrs.frozen
class PendingCall:
    """A function call sent in a ``toolCall`` and not answered (or cancelled) yet."""

    id: str
    name: str
    args: Mapping[str, Any]
    turn: int
    blocking: bool


@attrs.define
class Waiting:
    """A model turn paused until every one of its blocking calls has a response."""

    turn: int
    user_text: str
    call_ids: tuple[str, ...]
    responses: dict[str, Mapping[str, Any]] = attrs.field(factory=dict)
    #: Calls dropped by new input, to be issued again under new ids at ``reissue_at``
    #: (the 3.8 generation's way of cancelling a BLOCKING call).
    reissue: tuple[PendingCall, ...] = ()
    reissue_at: float = math.inf

    def ready(self) -> bool:
        """Whether every blocking call has been answered (and none is to be re-issued)."""
        return not self.reissue and all(call_id in self.responses for call_id in self.call_ids)

    def copy(self) -> Waiting:
        return Waiting(
            self.turn,
            self.user_text,
            self.call_ids,
            dict(self.responses),
            self.reissue,
            self.reissue_at,
        )


@attrs.define
class SessionState:
    """What a handle restores: history, counters, unanswered input and calls."""

    #: The model-turn counter: the number of the last turn started.
    turn: int = 0
    history: list[HistoryEntry] = attrs.field(factory=list)
    #: Context tokens per modality (the sum over ``history``).
    tokens: dict[str, int] = attrs.field(factory=dict)
    #: User texts (or audio transcriptions) the model has not answered yet.
    pending_input: list[str] = attrs.field(factory=list)
    pending_calls: dict[str, PendingCall] = attrs.field(factory=dict)
    waiting: Waiting | None = None
    #: How many times the sliding window trimmed the history.
    compressions: int = 0

    @property
    def total_tokens(self) -> int:
        """Tokens currently in the context window."""
        return sum(self.tokens.values())

    def copy(self) -> SessionState:
        """A snapshot that later changes to this state do not affect."""
        return SessionState(
            turn=self.turn,
            history=list(self.history),
            tokens=dict(self.tokens),
            pending_input=list(self.pending_input),
            pending_calls=dict(self.pending_calls),
            waiting=self.waiting.copy() if self.waiting else None,
            compressions=self.compressions,
        )

    def append(
        self, content: Mapping[str, Any], tokens: int, modality: str = "TEXT", prefill: bool = False
    ) -> HistoryEntry:
        """Add one entry to the history and to the token totals."""
        entry = HistoryEntry(content, tokens, modality, prefill)
        self.history.append(entry)
        self.tokens[modality] = self.tokens.get(modality, 0) + tokens
        return entry

    def discard(self, entry: HistoryEntry) -> None:
        """Take back an entry that turned out never to have happened."""
        for i in range(len(self.history) - 1, -1, -1):
            if self.history[i] is entry:
                del self.history[i]
                self.tokens[entry.modality] -= entry.tokens
                return

    def add_content(self, content: Mapping[str, Any], prefill: bool = False) -> None:
        """A client ``Content``: user text becomes pending input, a model turn answers it."""
        tokens, modality = content_tokens(content)
        self.append(content, tokens, modality, prefill)
        if content.get("role", "user") == "model":
            self.pending_input.clear()
            return
        for part in content.get("parts") or ():
            if isinstance(part, Mapping) and isinstance(part.get("text"), str):
                self.pending_input.append(part["text"])

    def add_user_text(self, text: str, tokens: int | None = None, modality: str = "TEXT") -> None:
        """User input that arrived as realtime text or (transcribed) audio."""
        content = {"role": "user", "parts": [{"text": text}]}
        self.append(content, text_tokens(text) if tokens is None else tokens, modality)
        self.pending_input.append(text)

    def forget_prefill(self) -> int:
        """Drop the client-prefilled history; returns how many model turns went with it (the
        turn counter forgets them too, so an echo shows the loss)."""
        kept: list[HistoryEntry] = []
        lost_turns = 0
        for entry in self.history:
            if entry.prefill:
                self.tokens[entry.modality] -= entry.tokens
                lost_turns += entry.role == "model"
            else:
                kept.append(entry)
        self.history = kept
        self.turn = max(0, self.turn - lost_turns)
        return lost_turns

    def take_input(self) -> list[str]:
        """The unanswered user input, now owned by the turn that answers it."""
        taken = self.pending_input
        self.pending_input = []
        return taken

    def compress(self, trigger: int, target: int) -> bool:
        """Sliding window: if over ``trigger`` tokens, trim the oldest entries to ``target``."""
        if self.total_tokens <= trigger or not self.history:
            return False
        drop = 0
        total = self.total_tokens
        while drop < len(self.history) - 1 and total > target:
            total -= self.history[drop].tokens
            drop += 1
        # The kept history must start at a user turn, never inside a model turn.
        while drop < len(self.history) - 1 and not _starts_user_turn(self.history[drop]):
            drop += 1
        if drop == 0:
            return False
        for entry in self.history[:drop]:
            self.tokens[entry.modality] -= entry.tokens
        del self.history[:drop]
        self.compressions += 1
        return True


def _starts_user_turn(entry: HistoryEntry) -> bool:
    if entry.role != "user":
        return False
    parts = entry.content.get("parts") or ()
    return not any(isinstance(p, Mapping) and "functionResponse" in p for p in parts)
