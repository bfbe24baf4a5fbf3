"""Observability hook points: the counters every orchestrator keeps, what a scrape reads, and the
seam through which :mod:`liveactors.otel` traces conversations.

Nothing here imports prometheus-client or OpenTelemetry (both are optional extras): this module
only counts and hands over plain numbers.

Theory of operation.

* **Counting.** Each orchestrator owns one :class:`Telemetry`; each conversation one
  :class:`ConversationObserver` pointing at it. The supervisor, its connections and its tool
  runner call the observer at rare points only — a connection set up or ended, a handoff, a
  reconnect, a usage report, a turn's end, a tool call — never per message, so counting is
  always on and costs nothing measurable (``benchmarks/bench_metrics.py``). Everything that
  already has a counter (messages, turns, mailbox depth, subscriber buffers...) is not counted
  again: it is read at scrape time.
* **Reading.** :func:`collect` returns :data:`Samples` (metric name -> label values -> value)
  for the orchestrators open in the process (a weak set, filled when each one opens) plus the
  final counts of those that closed, so counters never go down. A scrape may come from another
  thread (``prometheus_client.start_http_server``): the orchestrator's numbers are then read in
  its own trio thread (``TrioToken.run_sync_soon``), never while trio changes them. Reading
  calls no trio function, so it also works from asyncio callbacks of a guest run.
* **Tracing.** :data:`tracer_factory` is None until ``liveactors.otel.instrument()`` sets it;
  each conversation spawned from then on gets a :class:`ConversationTrace` from it, which the
  observer forwards to. With it unset, the only cost on the message path is one ``is None``
  test per frame.

:data:`SPECS` lists every metric (name, kind, labels, meaning): ``liveactors.metrics`` turns
them into Prometheus families, and docs/observability.md describes them.
"""

from __future__ import annotations

import bisect
import threading
import weakref
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, Any, Final, Literal, Protocol

import attrs
import trio

from . import events as ev
from ._conversation import ConversationState
from ._errors import LeaseLost, LiveError, ProtocolError, ServiceBusy

if TYPE_CHECKING:
    from google.genai import types

    from ._handoff import Ending
    from ._orchestrator import Orchestrator
    from ._supervisor import Supervisor

__all__ = [
    "SPECS",
    "ConversationObserver",
    "ConversationTrace",
    "Histogram",
    "MetricSpec",
    "Samples",
    "Telemetry",
    "collect",
]

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

_STATES: Final = (
    ConversationState.CONNECTING,
    ConversationState.READY,
    ConversationState.RECONNECTING,
)
_POLICIES: Final = ("block", "drop_oldest", "error")

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


# -- counters kept by the orchestrator ----------------------------------------------------------


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
    """What one orchestrator counts for observability, beyond its statistics (see the module
    docstring); also where a scrape finds it: its trio thread and token."""

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


# -- tracing seam -------------------------------------------------------------------------------


class ConversationTrace(Protocol):
    """One conversation's spans (implemented by :mod:`liveactors.otel`). Every method is called
    from the conversation's own trio tasks."""

    def started(self) -> None: ...
    def connection_started(self, number: int, cause: str) -> None: ...
    def connected(self, event: ev.Connected) -> None: ...
    def connection_ended(
        self, ending: str, code: str, initiator: str, error: BaseException | None
    ) -> None: ...
    def frame(self, events: Sequence[ev.Event]) -> None: ...
    def go_away(self, time_left: float) -> None: ...
    def usage(self, metadata: types.UsageMetadata) -> None: ...
    def turn_complete(self, event: ev.TurnComplete) -> None: ...
    def reconnecting(self, cause: str, reason: str, attempt: int, delay: float) -> None: ...
    def tool_started(self, call: types.FunctionCall) -> object: ...
    def tool_joined(self, span: object, call_id: str) -> None: ...
    def tool_active(self, span: object) -> AbstractContextManager[None]: ...
    def tool_finished(self, span: object, outcome: str, error: BaseException | None) -> None: ...
    def finished(self, sup: Supervisor, error: LiveError | None) -> None: ...


#: Makes the trace of a conversation (its name, its model); set by ``liveactors.otel``. Called
#: in the task that spawns the conversation, so it can take that task's trace context.
TracerFactory = Callable[[str, str], ConversationTrace]
tracer_factory: TracerFactory | None = None


def _cause(error: BaseException) -> str:
    """``ConnectionLost`` -> ``connection_lost``: an error class as a label value."""
    name = type(error).__name__
    return "".join("_" + c.lower() if c.isupper() else c for c in name).lstrip("_")


class ConversationObserver:
    """One conversation's hook points: counts into its orchestrator's :class:`Telemetry` and
    forwards to its trace, if tracing is on (see the module docstring)."""

    __slots__ = ("_gap", "_next_cause", "telemetry", "trace")

    def __init__(self, name: str, model: str, telemetry: Telemetry | None = None) -> None:
        self.telemetry = Telemetry() if telemetry is None else telemetry
        factory = tracer_factory
        self.trace: ConversationTrace | None = None if factory is None else factory(name, model)
        #: Why the next connection is made: first, reconnect or handoff.
        self._next_cause = "first"
        #: (histogram, when the previous connection ended), until the next one is ready.
        self._gap: tuple[Histogram, float] | None = None

    # -- the conversation ---------------------------------------------------------------------

    def started(self) -> None:
        if self.trace is not None:
            self.trace.started()

    def finished(self, sup: Supervisor, error: LiveError | None) -> None:
        if self.trace is not None:
            self.trace.finished(sup, error)

    # -- connections --------------------------------------------------------------------------

    def connection_started(self, number: int) -> None:
        if self.trace is not None:
            self.trace.connection_started(number, self._next_cause)

    def connected(self, event: ev.Connected) -> None:
        """Set up and replayed: ready for new input."""
        telemetry = self.telemetry
        _bump(telemetry.connects, (self._next_cause,))
        if self._gap is not None:
            histogram, since = self._gap
            histogram.observe(trio.current_time() - since)
            self._gap = None
        if self.trace is not None:
            self.trace.connected(event)

    def connection_ended(
        self, opened: bool, ending: Ending | None, error: BaseException | None
    ) -> None:
        """A connection ended: by ``ending`` (stop, handoff) or with ``error``."""
        if ending is not None:
            what, code, initiator = ending.value, "1000", "client"
        elif isinstance(error, LiveError):
            close = getattr(error, "close", None)
            what = "failure"
            code = "none" if close is None else str(close.code)
            # Liveactors ends a connection itself only on a protocol error or a lost lease;
            # anything else (a close frame, 1006, a broken link, silence) is the service's end.
            initiator = "client" if isinstance(error, ProtocolError | LeaseLost) else "service"
        else:  # cancelled: the transport closes the socket with 1000
            what, code, initiator = "cancelled", ("1000" if opened else "none"), "client"
        if opened or code != "none":
            _bump(self.telemetry.closes, (code, initiator))
        if self.trace is not None:
            self.trace.connection_ended(what, code, initiator, error)

    def handed_off(self, cause: str) -> None:
        _bump(self.telemetry.handoffs, (cause,))
        self._next_cause = "handoff"
        self._gap = (self.telemetry.handoff_gap, trio.current_time())

    def connection_failed(self) -> None:
        """A connection failed; a reconnect may follow. Its gap runs from now, or from the end
        of the last connection that was ready (a handoff whose next connection failed, a
        reconnect that failed again): how long new input has been waiting."""
        self._next_cause = "reconnect"
        since = trio.current_time() if self._gap is None else self._gap[1]
        self._gap = (self.telemetry.reconnect_gap, since)

    def reconnecting(self, error: LiveError, reason: str, attempt: int, delay: float) -> None:
        cause = _cause(error)
        if not isinstance(error, ServiceBusy):  # busy retries are counted apart
            _bump(self.telemetry.reconnects, (cause,))
        if self.trace is not None:
            self.trace.reconnecting(cause, reason, attempt, delay)

    def gave_up(self, error: LiveError) -> None:
        """The restart budget ran out: the conversation fails with ``error``."""
        _bump(self.telemetry.exhausted, (_cause(error),))
        self._gap = None

    # -- what the service said ----------------------------------------------------------------

    def go_away(self, time_left: float) -> None:
        if self.trace is not None:
            self.trace.go_away(time_left)

    def usage(self, metadata: types.UsageMetadata) -> None:
        self.telemetry.usage(metadata)
        if self.trace is not None:
            self.trace.usage(metadata)

    def turn_complete(self, event: ev.TurnComplete) -> None:
        if self.trace is not None:
            self.trace.turn_complete(event)

    # -- tool calls ---------------------------------------------------------------------------

    def tool_started(self, call: types.FunctionCall) -> object:
        """A call's run starts (in the reader): its span, if tracing."""
        return None if self.trace is None else self.trace.tool_started(call)

    def tool_joined(self, span: object, call_id: str) -> None:
        if self.trace is not None and span is not None:
            self.trace.tool_joined(span, call_id)

    def tool_active(self, span: object) -> AbstractContextManager[None]:
        """Around the function, in the call's task: its span is the current one there."""
        if self.trace is None or span is None:
            return nullcontext()
        return self.trace.tool_active(span)

    def tool_finished(self, span: object, outcome: str, error: BaseException | None) -> None:
        _bump(self.telemetry.tool_calls, (outcome,))
        if self.trace is not None and span is not None:
            self.trace.tool_finished(span, outcome, error)


# -- reading ------------------------------------------------------------------------------------


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


# -- the orchestrators of this process ----------------------------------------------------------

_lock = threading.Lock()
_open: weakref.WeakSet[Orchestrator] = weakref.WeakSet()
#: The counters of the orchestrators that closed, summed.
_retired: Samples = {}

#: How long a scrape from another thread waits for an orchestrator's trio thread.
READ_TIMEOUT: Final = 5.0


def opened(orch: Orchestrator) -> None:
    """``orch`` opened: scrapes see it from now on."""
    with _lock:
        _open.add(orch)


def closed(orch: Orchestrator) -> None:
    """``orch`` closed (in its trio thread): its counters join the totals of the closed ones."""
    telemetry = orch._telemetry
    if telemetry.final is not None:
        return
    final = _lasting(orchestrator_samples(orch))
    with _lock:
        telemetry.final = final
        _open.discard(orch)
        merge(_retired, final)


def _read(orch: Orchestrator, timeout: float) -> Samples | None:
    """``orchestrator_samples(orch)``, read in its own trio thread."""
    telemetry = orch._telemetry
    if telemetry.final is not None:
        return telemetry.final
    token = telemetry.token
    if threading.get_ident() == telemetry.thread or token is None:
        samples = orchestrator_samples(orch)
    else:
        done = threading.Event()
        box: list[Samples] = []

        def job() -> None:
            try:
                box.append(orchestrator_samples(orch))
            finally:
                done.set()

        try:
            token.run_sync_soon(job)
        except trio.RunFinishedError:
            return telemetry.final
        if not done.wait(timeout) or not box:
            # A trio loop that did not answer in time: its previous numbers (never a dip).
            return telemetry.final if telemetry.final is not None else telemetry.last
        samples = box[0]
    telemetry.last = samples
    return samples


def collect(
    orchestrators: Iterable[Orchestrator] | None = None, *, timeout: float = READ_TIMEOUT
) -> Samples:
    """The metrics of ``orchestrators`` (None: every one of the process, the closed ones'
    counters included), safe to call from any thread."""
    out: Samples = {}
    if orchestrators is None:
        with _lock:
            merge(out, _retired)
            chosen = list(_open)
        out.setdefault("liveactors_orchestrators", {(): 0})
    else:
        chosen = list(orchestrators)
    for orch in chosen:
        samples = _read(orch, timeout)
        if samples is not None:
            merge(out, samples)
    return out
