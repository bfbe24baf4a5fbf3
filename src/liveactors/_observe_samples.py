"""What a scrape reads from one orchestrator: every metric of :data:`SPECS` as :data:`Samples`,
from its telemetry and the counters its conversations, subscriptions and admission already keep;
and how the samples of several orchestrators add up.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from ._conversation import ConversationState
from ._observe_specs import _SPEC, Samples

if TYPE_CHECKING:
    from ._orchestrator import Orchestrator
    from ._supervisor import Supervisor

__all__ = ["merge", "orchestrator_samples"]

_STATES: Final = (
    ConversationState.CONNECTING,
    ConversationState.READY,
    ConversationState.RECONNECTING,
)
_POLICIES: Final = ("block", "drop_oldest", "error")


def _conversation_counts(sup: Supervisor) -> dict[str, int]:
    """The counters of a running conversation, read without calling trio."""
    return {
        "reconnects": sup.reconnects.reconnects,
        "busy_retries": sup.reconnects.busy_retries,
        "messages_in": sup.messages_in,
        "messages_out": sup.messages_out,
        "turns": sup.session.turns_completed,
        "undelivered": sup.undelivered,
        "replay_trimmed": sup.session.ledger.trimmed,
        "events": sup.session.tracker.seq,
    }


def orchestrator_samples(orch: Orchestrator) -> Samples:
    """Every metric of one orchestrator now (in its trio thread; see :func:`collect`)."""
    telemetry = orch._telemetry
    if telemetry.final is not None:
        return telemetry.final
    totals = dict(orch._counters.ended)
    totals["events"] = telemetry.events_ended
    states = dict.fromkeys(_STATES, 0)
    mailbox = mailbox_max = 0
    for entry in tuple(orch._registry.running):
        sup = entry.supervisor
        if sup is None:
            continue
        for key, value in _conversation_counts(sup).items():
            totals[key] = totals.get(key, 0) + value
        if sup.state in states:
            states[sup.state] += 1
        depth = len(sup.mailbox)
        mailbox += depth
        mailbox_max = max(mailbox_max, depth)
    subscribers = dict.fromkeys(_POLICIES, 0)
    lag = dict.fromkeys(_POLICIES, 0)
    lag_max = dict.fromkeys(_POLICIES, 0)
    bus = orch.bus
    offered = dict(bus.retired_events)
    dropped = dict(bus.retired_dropped)
    for sub in bus.subscriptions():
        policy = sub.overflow
        buffered = len(sub._queue)
        subscribers[policy] = subscribers.get(policy, 0) + 1
        lag[policy] = lag.get(policy, 0) + buffered
        lag_max[policy] = max(lag_max.get(policy, 0), buffered)
        offered[policy] = offered.get(policy, 0) + sub.delivered + buffered + sub.dropped
        dropped[policy] = dropped.get(policy, 0) + sub.dropped
    admission = orch._admission
    counters = orch._counters
    handles = orch._handles

    def one(value: Any) -> dict[tuple[str, ...], Any]:
        return {(): value}

    def by_policy(values: dict[str, int]) -> dict[tuple[str, ...], Any]:
        return {(policy,): values.get(policy, 0) for policy in {*_POLICIES, *values}}

    return {
        "liveactors_orchestrators": one(1),
        "liveactors_conversations": {(s.value,): n for s, n in states.items()},
        "liveactors_sessions": one(admission.sessions),
        "liveactors_sessions_waiting": one(admission.waiting),
        "liveactors_mailbox_commands": one(mailbox),
        "liveactors_mailbox_commands_max": one(mailbox_max),
        "liveactors_subscribers": by_policy(subscribers),
        "liveactors_subscriber_lag_events": by_policy(lag),
        "liveactors_subscriber_lag_events_max": by_policy(lag_max),
        "liveactors_handles_pending": one(handles.pending),
        "liveactors_conversations_spawned_total": one(counters.spawned),
        "liveactors_conversations_ended_total": {
            ("closed",): counters.closed,
            ("failed",): counters.failed,
        },
        "liveactors_spawns_rejected_total": one(counters.rejected),
        "liveactors_connect_attempts_total": one(admission.connects),
        "liveactors_connects_total": {(cause,): 0 for cause in ("first", "reconnect", "handoff")}
        | telemetry.connects,
        "liveactors_reconnects_total": dict(telemetry.reconnects),
        "liveactors_busy_retries_total": one(totals.get("busy_retries", 0)),
        "liveactors_handoffs_total": dict(telemetry.handoffs),
        "liveactors_connection_closes_total": dict(telemetry.closes),
        "liveactors_restarts_exhausted_total": dict(telemetry.exhausted),
        "liveactors_messages_total": {
            ("in",): totals.get("messages_in", 0),
            ("out",): totals.get("messages_out", 0),
        },
        "liveactors_turns_total": one(totals.get("turns", 0)),
        "liveactors_tokens_total": dict(telemetry.tokens),
        "liveactors_events_published_total": one(totals["events"]),
        "liveactors_subscriber_events_total": by_policy(offered),
        "liveactors_subscriber_events_dropped_total": by_policy(dropped),
        "liveactors_tool_calls_total": dict(telemetry.tool_calls),
        "liveactors_input_undelivered_total": one(totals.get("undelivered", 0)),
        "liveactors_replay_trimmed_total": one(totals.get("replay_trimmed", 0)),
        "liveactors_handle_store_errors_total": one(handles.errors),
        "liveactors_handles_dropped_total": one(handles.dropped),
        "liveactors_handoff_gap_seconds": one(telemetry.handoff_gap.value()),
        "liveactors_reconnect_gap_seconds": one(telemetry.reconnect_gap.value()),
    }


def _lasting(samples: Samples) -> Samples:
    """The part of ``samples`` that outlives its orchestrator: counters and histograms."""
    return {name: dict(values) for name, values in samples.items() if _SPEC[name].kind != "gauge"}


def merge(into: Samples, samples: Samples) -> None:
    """Add ``samples`` to ``into`` (gauges combine as their spec says)."""
    for name, values in samples.items():
        target = into.setdefault(name, {})
        combine_max = _SPEC[name].combine == "max"
        for labels, value in values.items():
            if labels not in target:
                target[labels] = value
            elif combine_max:
                target[labels] = max(target[labels], value)
            else:
                target[labels] = target[labels] + value
