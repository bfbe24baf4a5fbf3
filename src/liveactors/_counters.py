"""The orchestrator's statistics: its own counts, and totals over its conversations.

Totals are summed by field, never by a list of names: every ``int`` field of
:class:`~liveactors.ConversationStatistics` is summed over the conversations (the running ones
at snapshot time, plus the final statistics of every one that ended) and lands in the
:class:`OrchestratorStatistics` field of the same name, if there is one. So a counter added to
``ConversationStatistics`` is summed without touching this module, and shows in the
orchestrator's statistics once ``OrchestratorStatistics`` has a field of its name. Fields the
orchestrator measures itself (``subscribers`` counts every subscription, orchestrator-wide ones
included) take the orchestrator's value, not a sum.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import attrs

from ._conversation import ConversationStatistics

__all__ = ["Counters", "OrchestratorStatistics"]


@attrs.frozen
class OrchestratorStatistics:
    """A snapshot of the whole orchestrator (``orch.statistics()``).

    Counters of messages, reconnects, handoffs, tokens and turns sum over every conversation this
    orchestrator ran, the ones that ended included.
    """

    #: Conversations running now (spawned, not yet closed or failed).
    conversations: int
    #: Highest number of session slots held at once so far (never above ``max_sessions``).
    peak_sessions: int
    max_sessions: int | None
    #: Conversations whose ``spawn`` returned.
    spawned: int
    #: Conversations that ended normally (stopped, or shut down with the orchestrator).
    closed: int
    #: Conversations that failed after their spawn returned.
    failed: int
    #: Connect attempts (first connects, reconnects and handoffs) through the rate limiter.
    connects: int
    reconnects: int
    handoffs: int
    messages_in: int
    messages_out: int
    actors: int
    #: Open subscriptions (per conversation and orchestrator-wide).
    subscribers: int
    #: Session slots held now: running conversations plus spawns past admission.
    sessions: int = 0
    #: Spawns waiting for a session slot now.
    waiting: int = 0
    #: Spawns that failed (first connect refused, cancelled, shut down, timed out...).
    rejected: int = 0
    #: Sum of ``totalTokenCount`` over every usage report.
    tokens: int = 0
    #: Model turns completed.
    turns: int = 0
    #: Whether shutdown has begun.
    closing: bool = False
    #: Retries after the service's concurrency limit refused a connect (not in ``reconnects``).
    busy_retries: int = 0
    #: Input accepted but never sent, handed back at a stop or shutdown (``InputUndelivered``).
    undelivered: int = 0
    #: Realtime chunks trimmed from replay buffers (older than the replay window).
    replay_trimmed: int = 0
    #: Failed writes to the handle store (each retry counts): non-zero while it is down.
    handle_store_errors: int = 0
    #: Handles waiting to be written to the handle store now.
    handles_pending: int = 0
    #: Handles dropped because too many were waiting for a store that stayed down.
    handles_dropped: int = 0


#: The ``int`` fields of each statistics class seen so far (worked out on first use).
_SUMMED: dict[type[ConversationStatistics], tuple[str, ...]] = {}


def _summed(cls: type[ConversationStatistics] = ConversationStatistics) -> tuple[str, ...]:
    """The names of the ``int`` fields of ``cls``, in field order."""
    names = _SUMMED.get(cls)
    if names is None:
        # (resolve_types turns the fields' string annotations into the types they name.)
        fields = attrs.fields(attrs.resolve_types(cls))
        names = _SUMMED[cls] = tuple(f.name for f in fields if f.type is int)
    return names


def _add(totals: dict[str, int], stats: ConversationStatistics) -> None:
    for name in _summed(type(stats)):
        totals[name] = totals.get(name, 0) + getattr(stats, name)


@attrs.define
class Counters:
    """What the orchestrator counts itself, and the totals of the conversations that ended."""

    #: Conversations whose ``spawn`` returned.
    spawned: int = 0
    #: Spawns that failed.
    rejected: int = 0
    #: Conversations that ended normally, and that failed, after their spawn returned.
    closed: int = 0
    failed: int = 0
    #: Sums of every ``int`` field of the final statistics of the conversations that ended.
    ended: dict[str, int] = attrs.Factory(dict)

    def conversation_ended(self, final: ConversationStatistics) -> None:
        """Add a conversation's final statistics to the totals."""
        _add(self.ended, final)

    def totals(self, running: Iterable[ConversationStatistics]) -> dict[str, int]:
        """The sums over the conversations that ended and the ``running`` ones."""
        totals = dict.fromkeys(_summed(), 0) | self.ended
        for stats in running:
            _add(totals, stats)
        return totals

    def snapshot(self, totals: Mapping[str, int], **own: object) -> OrchestratorStatistics:
        """The statistics: ``own`` (what the orchestrator measures), this object's counts, and
        the ``totals`` that have a field of their name."""
        fields = attrs.fields_dict(OrchestratorStatistics)
        values: dict[str, object] = {k: v for k, v in totals.items() if k in fields}
        values.update(
            spawned=self.spawned, rejected=self.rejected, closed=self.closed, failed=self.failed
        )
        values.update(own)
        return OrchestratorStatistics(**values)  # type: ignore[arg-type]
