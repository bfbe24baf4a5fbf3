"""The replay window: realtime media is kept for a replay only while it is recent (sans-IO).

A microphone streaming through silence keeps one exchange open for minutes; without a bound its
audio would grow memory and be replayed whole after a reconnect. So every audio or video chunk
is held in its exchange's :class:`~liveactors._protocol.exchange.MediaRun` (columns, no object
per chunk), the exchanges holding media are queued here oldest first, and a chunk sent more
than the window's seconds before the newest one is dropped from its exchange as new media
arrives: amortised O(1) per chunk. Each exchange counts what it lost, so the plan that
replays it can say so once (:attr:`~liveactors._protocol.exchange.ResumePlan.trimmed`). Only
media is queued: text, ``clientContent``, activity markers and tool responses are never
trimmed.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any

import attrs

from .exchange import Exchange, MediaRun, ResumePlan

__all__ = ["MediaWindow"]


@attrs.define
class MediaWindow:
    """Held media, oldest first, by exchange (see the module docstring)."""

    #: Media chunks trimmed so far.
    trimmed: int = 0
    #: The exchanges holding media, in send order (an exchange's chunks all come before the
    #: next one's): one entry per exchange, none per chunk.
    _runs: deque[Exchange] = attrs.field(factory=deque, repr=False)

    def hold(
        self,
        exchange: Exchange,
        position: int,
        message: dict[str, Any],
        sent_at: float,
        tag: str | None,
        seconds: float,
    ) -> None:
        """``message`` (a media chunk of ``exchange``) was just sent at ``sent_at``: hold it,
        and trim what was sent more than ``seconds`` before it."""
        run = exchange.media
        if run is None:
            run = exchange.media = MediaRun()
        run.add(position, message, sent_at, tag)
        if seconds == math.inf:
            return  # nothing is ever trimmed
        runs = self._runs
        if not runs or runs[-1] is not exchange:
            runs.append(exchange)
        cutoff = sent_at - seconds
        while runs:
            owner = runs[0]
            held = owner.media
            if not held:
                runs.popleft()  # covered, consumed or answered and gone
                continue
            index = held.first
            oldest = held.times[index]
            if oldest >= cutoff:
                return
            if held.retired:
                held.drop_front()
                continue  # covered: never to be sent again, so not a loss
            # The stretch of the stream this chunk stood for: until the next one was sent.
            last = index + 1 >= len(held.times)
            following = self._after(owner) if last else held.times[index + 1]
            held.drop_front()
            self.trimmed += 1
            owner.trimmed += 1
            owner.trimmed_seconds += following - oldest

    def _after(self, owner: Exchange) -> float:
        """The send time of the first chunk held after ``owner``'s."""
        later = False
        for exchange in self._runs:
            if later and exchange.media:
                return exchange.media.times[exchange.media.first]
            later = later or exchange is owner
        raise AssertionError("the newest chunk is never trimmed")

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
