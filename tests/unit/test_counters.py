"""Counters: the orchestrator's statistics sum every ``int`` field of the conversations'
statistics by field, so a counter added to ``ConversationStatistics`` is summed untouched."""

from __future__ import annotations

from typing import Any

import attrs

from liveactors import ConversationState, ConversationStatistics, OrchestratorStatistics
from liveactors._counters import Counters


def stats(cls: type[ConversationStatistics] = ConversationStatistics, **kw: Any) -> Any:
    values: dict[str, Any] = {
        "name": "c",
        "state": ConversationState.READY,
        "connections": 1,
        "reconnects": 0,
        "handoffs": 0,
        "messages_in": 0,
        "messages_out": 0,
        "tokens": 0,
        "turns": 0,
        "last_handle_age": 1.5,
        "mailbox": 0,
        "subscribers": 0,
        "events_dropped": 0,
    }
    values.update(kw)
    return cls(**values)


OWN = {
    "conversations": 1,
    "peak_sessions": 2,
    "max_sessions": None,
    "connects": 3,
    "actors": 0,
    "subscribers": 7,
}


def test_ended_and_running_conversations_are_summed_by_field() -> None:
    counters = Counters()
    counters.conversation_ended(stats(reconnects=2, tokens=100, turns=3, busy_retries=1))
    counters.conversation_ended(stats(handoffs=1, messages_in=5, messages_out=6))
    totals = counters.totals([stats(reconnects=1, turns=1, tokens=10, subscribers=4)])
    assert totals["reconnects"] == 3
    assert totals["tokens"] == 110
    assert totals["turns"] == 4
    assert (totals["handoffs"], totals["messages_in"], totals["messages_out"]) == (1, 5, 6)
    assert totals["busy_retries"] == 1
    assert totals["connections"] == 3
    # Only ints are summed: no name, state or age.
    assert not {"name", "state", "last_handle_age"} & totals.keys()
    # Running conversations are not remembered: a later snapshot sums the ended ones only.
    assert counters.totals([])["reconnects"] == 2


def test_the_snapshot_takes_the_totals_it_has_fields_for_and_its_own_measures() -> None:
    counters = Counters(spawned=3, rejected=1, closed=1, failed=1)
    counters.conversation_ended(stats(reconnects=2, subscribers=5, mailbox=9, turns=2))
    snapshot = counters.snapshot(counters.totals([]), **OWN)
    assert isinstance(snapshot, OrchestratorStatistics)
    assert (snapshot.spawned, snapshot.rejected, snapshot.closed, snapshot.failed) == (3, 1, 1, 1)
    assert (snapshot.reconnects, snapshot.turns) == (2, 2)
    # ``subscribers`` is the orchestrator's own count, not a sum over conversations.
    assert snapshot.subscribers == 7
    assert snapshot.connects == 3


def test_a_counter_added_to_conversation_statistics_is_summed_without_edits() -> None:
    # Counters a newer ConversationStatistics has (or will have), and one nobody has yet.
    have = attrs.fields_dict(ConversationStatistics)
    added = ("undelivered", "replay_trimmed", "brand_new")
    Newer = attrs.make_class(
        "Newer",
        {name: attrs.field(default=0, type=int) for name in added if name not in have},
        bases=(ConversationStatistics,),
        frozen=True,
    )

    counters = Counters()
    counters.conversation_ended(stats(Newer, undelivered=2, replay_trimmed=5, brand_new=1))
    totals = counters.totals([stats(Newer, undelivered=1, brand_new=1)])
    assert (totals["undelivered"], totals["replay_trimmed"], totals["brand_new"]) == (3, 5, 2)
    snapshot = counters.snapshot(totals, **OWN)
    assert (snapshot.undelivered, snapshot.replay_trimmed) == (3, 5)
