"""The replay window: realtime media is kept for a replay only while it is recent (sans-IO).

A microphone streaming through silence keeps one exchange open for minutes; without a bound its
audio would grow memory and be replayed whole after a reconnect. So every audio or video chunk
held for a replay is also queued here, oldest first, and a chunk sent more than the window's
seconds before the newest one is dropped from its exchange as new media arrives: amortised
O(1) per chunk. Each exchange counts what it lost, so the plan that replays it can say so once
(:attr:`~liveactors._protocol.exchange.ResumePlan.trimmed`). Only media is queued: text,
``clientContent``, activity markers and tool responses are never trimmed.
"""

from __future__ import annotations

import math
from collections import deque

import attrs

from .exchange import Exchange, Held, ResumePlan

__all__ = ["MediaWindow"]


@attrs.define
class MediaWindow:
    """Held media chunks with their exchanges, oldest first (see the module docstring)."""

    #: Media chunks trimmed so far.
    trimmed: int = 0
    _held: deque[tuple[Held, Exchange]] = attrs.field(factory=deque, repr=False)

    def hold(self, entry: Held, exchange: Exchange, seconds: float) -> None:
        """``entry`` (a media chunk of ``exchange``) was just sent: queue it, and trim what was
        sent more than ``seconds`` before it."""
        if seconds == math.inf:
            return  # nothing is ever trimmed: do not keep a second reference either
        held = self._held
        held.append((entry, exchange))
        cutoff = entry.sent_at - seconds
        while held and held[0][0].sent_at < cutoff:
            old, owner = held.popleft()
            if owner.held.get(old.position) is not old:
                continue  # no longer held: covered, consumed, or its exchange answered and gone
            del owner.held[old.position]
            self.trimmed += 1
            owner.trimmed += 1
            # The stretch of the stream this chunk stood for: until the next one was sent.
            owner.trimmed_seconds += (held[0][0] if held else entry).sent_at - old.sent_at

    @staticmethod
    def report(plan: ResumePlan, replayed: list[Exchange]) -> ResumePlan:
        """``plan`` saying what the exchanges it replays lost to the window (each loss is
        reported once)."""
        chunks, seconds = 0, 0.0
        for exchange in replayed:
            chunks += exchange.trimmed
            seconds += exchange.trimmed_seconds
            exchange.trimmed, exchange.trimmed_seconds = 0, 0.0
        if not chunks:
            return plan
        return attrs.evolve(plan, trimmed=chunks, trimmed_seconds=seconds)
