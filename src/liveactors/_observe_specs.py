"""The metrics liveactors exports: each one's name, kind, labels and meaning (:data:`SPECS`), and
the shape of the numbers a scrape reads (:data:`Samples`).

``liveactors.metrics`` turns these specs into Prometheus families and docs/observability.md
describes them; the rest of the observability code only fills them in.
"""

from __future__ import annotations

from typing import Any, Final, Literal

import attrs

__all__ = ["GAP_BUCKETS", "SPECS", "Kind", "MetricSpec", "Samples"]

Kind = Literal["counter", "gauge", "histogram"]
#: Metric name -> label values (in the spec's label order) -> value. A histogram's value is a
#: :class:`HistogramValue`.
Samples = dict[str, dict[tuple[str, ...], Any]]


@attrs.frozen
class MetricSpec:
    """One metric: its full name (counters end in ``_total``), kind, labels and meaning.
    ``combine`` says how two orchestrators' values of a gauge combine (``sum`` or ``max``)."""

    name: str
    kind: Kind
    help: str
    labels: tuple[str, ...] = ()
    combine: Literal["sum", "max"] = "sum"


#: Upper bounds of the gap histograms, in seconds (a last ``+Inf`` bucket is implied).
GAP_BUCKETS: Final = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

SPECS: Final[tuple[MetricSpec, ...]] = (
    # -- now (gauges) -------------------------------------------------------------------------
    MetricSpec("liveactors_orchestrators", "gauge", "Orchestrators open in this process."),
    MetricSpec(
        "liveactors_conversations",
        "gauge",
        "Conversations running now, by state (connecting, ready, reconnecting).",
        ("state",),
    ),
    MetricSpec("liveactors_sessions", "gauge", "Session slots held now."),
    MetricSpec("liveactors_sessions_waiting", "gauge", "Spawns waiting for a session slot now."),
    MetricSpec(
        "liveactors_mailbox_commands", "gauge", "Input commands waiting in mailboxes, summed."
    ),
    MetricSpec(
        "liveactors_mailbox_commands_max",
        "gauge",
        "Input commands waiting in the fullest mailbox.",
        combine="max",
    ),
    MetricSpec(
        "liveactors_subscribers", "gauge", "Open subscriptions, by overflow policy.", ("overflow",)
    ),
    MetricSpec(
        "liveactors_subscriber_lag_events",
        "gauge",
        "Events published but not yet read, summed over subscribers, by overflow policy.",
        ("overflow",),
    ),
    MetricSpec(
        "liveactors_subscriber_lag_events_max",
        "gauge",
        "Events published but not yet read by the subscriber furthest behind, by policy.",
        ("overflow",),
        combine="max",
    ),
    MetricSpec(
        "liveactors_handles_pending", "gauge", "Resumption handles waiting to be stored now."
    ),
    # -- since start (counters) ---------------------------------------------------------------
    MetricSpec(
        "liveactors_conversations_spawned_total", "counter", "Conversations whose spawn returned."
    ),
    MetricSpec(
        "liveactors_conversations_ended_total",
        "counter",
        "Conversations that ended after their spawn returned, by outcome (closed, failed).",
        ("outcome",),
    ),
    MetricSpec(
        "liveactors_spawns_rejected_total",
        "counter",
        "Spawns that failed (first connect refused, timed out, cancelled, shut down).",
    ),
    MetricSpec(
        "liveactors_connect_attempts_total",
        "counter",
        "Connect attempts through admission and the connect-rate limiter.",
    ),
    MetricSpec(
        "liveactors_connects_total",
        "counter",
        "Connections set up, by cause (first, reconnect, handoff).",
        ("cause",),
    ),
    MetricSpec(
        "liveactors_reconnects_total",
        "counter",
        "Reconnects after a failed connection, by cause (the error: connection_lost, "
        "protocol_error, handle_expired...); busy retries are counted apart.",
        ("cause",),
    ),
    MetricSpec(
        "liveactors_busy_retries_total",
        "counter",
        "Retries after the service's concurrency limit refused a connect.",
    ),
    MetricSpec(
        "liveactors_handoffs_total",
        "counter",
        "Planned switches to a new connection, by cause (goaway: at a resumable point; "
        "goaway_closed: the connection ended after a goAway, before liveactors switched; "
        "service_close: a normal close after progress, without goAway).",
        ("cause",),
    ),
    MetricSpec(
        "liveactors_connection_closes_total",
        "counter",
        "Connections that ended, by close code (none: no close frame, e.g. the link broke or "
        "timed out) and initiator (client: liveactors ended it, for a stop, a handoff, a "
        "protocol error; service: the service closed it, or it was lost).",
        ("code", "initiator"),
    ),
    MetricSpec(
        "liveactors_restarts_exhausted_total",
        "counter",
        "Conversations that failed because their restart budget ran out, by the last error.",
        ("cause",),
    ),
    MetricSpec(
        "liveactors_messages_total",
        "counter",
        "WebSocket messages, by direction (in: from the service, out: to it).",
        ("direction",),
    ),
    MetricSpec("liveactors_turns_total", "counter", "Model turns completed."),
    MetricSpec(
        "liveactors_tokens_total",
        "counter",
        "Tokens the service reported (usageMetadata), by direction (in: prompt, out: response) "
        "and modality (text, audio, image, video, document; thoughts; unspecified when the "
        "report has no per-modality details).",
        ("direction", "modality"),
    ),
    MetricSpec(
        "liveactors_events_published_total",
        "counter",
        "Events the conversations published (each once, whoever subscribes).",
    ),
    MetricSpec(
        "liveactors_subscriber_events_total",
        "counter",
        "Events handed to subscribers (once per subscriber), by overflow policy.",
        ("overflow",),
    ),
    MetricSpec(
        "liveactors_subscriber_events_dropped_total",
        "counter",
        "Events subscribers lost to a full buffer, by overflow policy.",
        ("overflow",),
    ),
    MetricSpec(
        "liveactors_tool_calls_total",
        "counter",
        "Function calls a Conversation answered itself, by outcome (ok, error, cancelled).",
        ("outcome",),
    ),
    MetricSpec(
        "liveactors_input_undelivered_total",
        "counter",
        "Input messages handed back undelivered (InputUndelivered).",
    ),
    MetricSpec(
        "liveactors_replay_trimmed_total",
        "counter",
        "Realtime chunks trimmed from replay buffers (older than the replay window).",
    ),
    MetricSpec(
        "liveactors_handle_store_errors_total",
        "counter",
        "Failed writes to the handle store (each retry counts).",
    ),
    MetricSpec(
        "liveactors_handles_dropped_total",
        "counter",
        "Handles dropped because too many waited for a store that stayed down.",
    ),
    # -- distributions ------------------------------------------------------------------------
    MetricSpec(
        "liveactors_handoff_gap_seconds",
        "histogram",
        "After a handoff: seconds from the old connection's end until the new one was set up "
        "and had replayed what the service lacked (ready for new input); a handoff whose next "
        "connection fails counts as a reconnect.",
    ),
    MetricSpec(
        "liveactors_reconnect_gap_seconds",
        "histogram",
        "After a failed connection: seconds from the end of the last ready connection until "
        "the next one was ready (backoff and failed attempts included).",
    ),
)

_SPEC: Final = {spec.name: spec for spec in SPECS}
