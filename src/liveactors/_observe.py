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

This module keeps the hook points and the orchestrators of the process, and provides the names
of ``_observe_specs`` (the metrics), ``_observe_telemetry`` (one orchestrator's counters) and
``_observe_samples`` (what a scrape reads from one orchestrator), which importers take from here.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, Final, Protocol

import trio

from . import events as ev
from ._errors import LeaseLost, LiveError, ProtocolError, ServiceBusy
from ._observe_samples import _lasting, merge, orchestrator_samples
from ._observe_specs import SPECS, MetricSpec, Samples
from ._observe_telemetry import Histogram, HistogramValue, Telemetry, _bump

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
    "HistogramValue",
    "MetricSpec",
    "Samples",
    "Telemetry",
    "collect",
    "merge",
    "orchestrator_samples",
]


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
