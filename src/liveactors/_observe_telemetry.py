"""The counters one orchestrator keeps for observability (:class:`Telemetry`) and the fixed-bucket
histograms among them: plain ints and floats, no dependency, no lock, cheap enough to be always on.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING

import attrs
import trio

from ._observe_specs import GAP_BUCKETS, Samples

if TYPE_CHECKING:
    from google.genai import types

__all__ = ["Histogram", "HistogramValue", "Telemetry"]


@attrs.frozen
class HistogramValue:
    """A histogram's state: counts per bucket (not cumulative; the last one is ``+Inf``)."""

    bounds: tuple[float, ...]
    counts: tuple[int, ...]
    sum: float

    @property
    def count(self) -> int:
        return sum(self.counts)

    def __add__(self, other: HistogramValue) -> HistogramValue:
        counts = tuple(a + b for a, b in zip(self.counts, other.counts, strict=True))
        return HistogramValue(self.bounds, counts, self.sum + other.sum)


class Histogram:
    """Observations in fixed buckets (a handful of ints: no dependency, no lock)."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: Sequence[float] = GAP_BUCKETS) -> None:
        self.bounds = tuple(bounds)
        self.counts = [0] * (len(self.bounds) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        index = bisect.bisect_left(self.bounds, value)  # the first bound >= value
        self.counts[index] += 1
        self.sum += value

    def value(self) -> HistogramValue:
        return HistogramValue(self.bounds, tuple(self.counts), self.sum)


def _bump(counts: dict[tuple[str, ...], int], key: tuple[str, ...], by: int = 1) -> None:
    counts[key] = counts.get(key, 0) + by


class Telemetry:
    """What one orchestrator counts for observability, beyond its statistics (see
    :mod:`liveactors._observe`); also where a scrape finds it: its trio thread and token."""

    def __init__(self) -> None:
        self.connects: dict[tuple[str, ...], int] = {}
        self.reconnects: dict[tuple[str, ...], int] = {}
        self.handoffs: dict[tuple[str, ...], int] = {}
        self.closes: dict[tuple[str, ...], int] = {}
        self.exhausted: dict[tuple[str, ...], int] = {}
        self.tokens: dict[tuple[str, ...], int] = {}
        self.tool_calls: dict[tuple[str, ...], int] = {}
        self.handoff_gap = Histogram()
        self.reconnect_gap = Histogram()
        #: Events published by the conversations that ended.
        self.events_ended = 0
        #: The thread and trio run the orchestrator lives in (no token: made outside trio).
        self.thread = threading.get_ident()
        try:
            self.token: trio.lowlevel.TrioToken | None = trio.lowlevel.current_trio_token()
        except RuntimeError:
            self.token = None
        #: Set when the orchestrator closed: its final counters, which scrapes keep reporting.
        self.final: Samples | None = None
        #: The latest numbers read (reported again if a read from another thread times out).
        self.last: Samples | None = None

    def usage(self, metadata: types.UsageMetadata) -> None:
        """Tokens of one usage report, by direction and modality."""
        tokens = self.tokens
        for direction, details, total in (
            ("in", metadata.prompt_tokens_details, metadata.prompt_token_count),
            ("out", metadata.response_tokens_details, metadata.response_token_count),
        ):
            counted = 0
            for detail in details or ():
                if detail.token_count:
                    modality = detail.modality.value if detail.modality else "unspecified"
                    modality = modality.lower().replace("modality_", "")
                    _bump(tokens, (direction, modality), detail.token_count)
                    counted += detail.token_count
            if total and total > counted:
                _bump(tokens, (direction, "unspecified"), total - counted)
        if metadata.thoughts_token_count:
            _bump(tokens, ("out", "thoughts"), metadata.thoughts_token_count)
